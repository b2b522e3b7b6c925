#!/usr/bin/python3
"""boto3 checks of SSE-C (customer-provided keys) and bucket encryption
against an S3 endpoint (Stratus's gateway).

Usage:
  /usr/bin/python3 sse_c_checks.py --endpoint http://127.0.0.1:9000 \
      --access-key AK --secret SK --key-hex 64HEX --keep-bucket B

Leaves one object, KEEP_KEY in --keep-bucket, sealed under --key-hex (the
caller then checks that the store holds nothing that gives the key back).
Exits non-zero if any check fails. Needs boto3 (python3-boto3).
"""

import argparse
import base64
import hashlib
import os
import sys
import uuid

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("FAIL: boto3 is not importable; apt-get install -y python3-boto3")
    sys.exit(2)

MIB = 1024 * 1024
KEEP_KEY = "diary.txt"


def client(endpoint, ak, sk):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}),
    )


def failure(fn):
    """Runs fn, which must fail; returns (code, HTTP status)."""
    try:
        fn()
    except ClientError as e:
        return (e.response.get("Error", {}).get("Code"),
                e.response["ResponseMetadata"]["HTTPStatusCode"])
    raise AssertionError("expected an error, the call succeeded")


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def sse(key):
    """The SSE-C arguments of a request with raw key bytes `key`."""
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def sse_b64(key):
    """The SSE-C arguments as the headers carry them (for operations whose
    key botocore does not encode itself, such as CompleteMultipartUpload)."""
    return {"SSECustomerAlgorithm": "AES256",
            "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": md5_b64(key)}


def src_sse(key):
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def md5_b64(key):
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def checks(s3, key_a, keep_bucket):
    key_b = os.urandom(32)
    bucket = "ssec-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    body = b"dear diary, " * 1000

    # Put and read back with the key; the key's MD5 is echoed, SSE-S3 is not claimed.
    r = s3.put_object(Bucket=bucket, Key="o", Body=body, **sse(key_a))
    expect(r["SSECustomerAlgorithm"] == "AES256", "put echoes the algorithm")
    expect(r["SSECustomerKeyMD5"] == md5_b64(key_a), "put echoes the key MD5")
    expect("ServerSideEncryption" not in r, "an SSE-C put is not SSE-S3")
    r = s3.get_object(Bucket=bucket, Key="o", **sse(key_a))
    expect(r["Body"].read() == body, "get with the key returns the body")
    expect(r["SSECustomerKeyMD5"] == md5_b64(key_a), "get echoes the key MD5")
    r = s3.get_object(Bucket=bucket, Key="o", Range="bytes=12-23", **sse(key_a))
    expect(r["Body"].read() == body[12:24], "ranged get with the key")
    h = s3.head_object(Bucket=bucket, Key="o", **sse(key_a))
    expect(h["ContentLength"] == len(body), "head with the key")
    r = s3.get_object(Bucket=bucket, Key="o", PartNumber=1, **sse(key_a))
    expect(r["Body"].read() == body, "part 1 of a simple upload with the key")

    # Refusals: no key, another key, a key on a plain object, bad headers.
    expect(failure(lambda: s3.get_object(Bucket=bucket, Key="o")) == ("InvalidRequest", 400),
           "get without the key is 400 InvalidRequest")
    expect(failure(lambda: s3.head_object(Bucket=bucket, Key="o"))[1] == 400,
           "head without the key is 400")
    expect(failure(lambda: s3.get_object(Bucket=bucket, Key="o", **sse(key_b)))
           == ("AccessDenied", 403), "get with another key is 403 AccessDenied")
    expect(failure(lambda: s3.head_object(Bucket=bucket, Key="o", **sse(key_b)))[1] == 403,
           "head with another key is 403")
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain")
    expect(failure(lambda: s3.get_object(Bucket=bucket, Key="plain", **sse(key_a)))
           == ("InvalidRequest", 400), "a key for a plain object is 400")
    b64 = base64.b64encode(key_a).decode()
    for what, headers in [
        ("a wrong key MD5", {"x-amz-server-side-encryption-customer-algorithm": "AES256",
                             "x-amz-server-side-encryption-customer-key": b64,
                             "x-amz-server-side-encryption-customer-key-md5": "AAAAAAAAAAAAAAAAAAAAAA=="}),
        ("no key MD5", {"x-amz-server-side-encryption-customer-algorithm": "AES256",
                        "x-amz-server-side-encryption-customer-key": b64}),
        ("a 5-byte key", {"x-amz-server-side-encryption-customer-algorithm": "AES256",
                          "x-amz-server-side-encryption-customer-key": "c2hvcnQ=",
                          "x-amz-server-side-encryption-customer-key-md5": md5_b64(b"short")}),
        ("AES192", {"x-amz-server-side-encryption-customer-algorithm": "AES192",
                    "x-amz-server-side-encryption-customer-key": b64,
                    "x-amz-server-side-encryption-customer-key-md5": md5_b64(key_a)}),
        ("a key without algorithm", {"x-amz-server-side-encryption-customer-key": b64,
                                     "x-amz-server-side-encryption-customer-key-md5": md5_b64(key_a)}),
    ]:
        def inject(params, headers=headers, **_):
            params["headers"].update(headers)
        s3.meta.events.register("before-call.s3.PutObject", inject, unique_id="ssec-inject")
        try:
            got = failure(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x"))
        finally:
            s3.meta.events.unregister("before-call.s3.PutObject", unique_id="ssec-inject")
        expect(got == ("InvalidArgument", 400), "%s: %r, want 400 InvalidArgument" % (what, got))
    expect(failure(lambda: s3.head_object(Bucket=bucket, Key="x"))[1] == 404,
           "refused SSE-C puts stored nothing")
    expect(failure(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x",
                                         ServerSideEncryption="aws:kms"))
           == ("NotImplemented", 501), "SSE-KMS is not implemented")

    # Copies: the source needs its key; the copy is sealed under the new one (or none).
    expect(failure(lambda: s3.copy_object(Bucket=bucket, Key="c0",
                                          CopySource={"Bucket": bucket, "Key": "o"}))[1] == 400,
           "a copy of an SSE-C source without its key is 400")
    s3.copy_object(Bucket=bucket, Key="c1", CopySource={"Bucket": bucket, "Key": "o"},
                   **src_sse(key_a), **sse(key_b))
    expect(s3.get_object(Bucket=bucket, Key="c1", **sse(key_b))["Body"].read() == body,
           "a copy under a new key reads with it")
    expect(failure(lambda: s3.get_object(Bucket=bucket, Key="c1", **sse(key_a)))[1] == 403,
           "and not with the source's key")
    s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "o"},
                   **src_sse(key_a))
    expect(s3.get_object(Bucket=bucket, Key="c2")["Body"].read() == body,
           "a copy without a destination key is a plain object")
    s3.copy_object(Bucket=bucket, Key="c3", CopySource={"Bucket": bucket, "Key": "plain"},
                   **sse(key_a))
    expect(s3.get_object(Bucket=bucket, Key="c3", **sse(key_a))["Body"].read() == b"plain",
           "a plain object copied under a key")

    # Multipart: every part carries the upload's key.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse(key_a))
    uid = up["UploadId"]
    expect(up["SSECustomerKeyMD5"] == md5_b64(key_a), "create echoes the key MD5")
    p1 = os.urandom(5 * MIB)
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=p1,
                        **sse(key_a))["ETag"]
    expect(failure(lambda: s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2,
                                          Body=b"tail", **sse(key_b)))[1] == 400,
           "a part under another key is 400")
    expect(failure(lambda: s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2,
                                          Body=b"tail"))[1] == 400,
           "a part without the key is 400")
    e2 = s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "o"},
                             CopySourceRange="bytes=0-99", **src_sse(key_a),
                             **sse(key_a))["CopyPartResult"]["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
    expect(failure(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                                        MultipartUpload=parts))[1] == 400,
           "a completion without the upload's key is 400")
    expect(failure(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                                        MultipartUpload=parts,
                                                        **sse_b64(key_b)))[1] == 400,
           "a completion with another key is 400")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload=parts,
                                 **sse_b64(key_a))
    got = s3.get_object(Bucket=bucket, Key="mp", **sse(key_a))["Body"].read()
    expect(got == p1 + body[:100], "the multipart object with its key")
    r = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, **sse(key_a))
    expect(r["Body"].read() == body[:100], "part 2 with the key")
    expect(failure(lambda: s3.get_object(Bucket=bucket, Key="mp"))[1] == 400,
           "the multipart object without its key")

    # Bucket default encryption: AES256 stored and answered; KMS not implemented.
    expect(failure(lambda: s3.get_bucket_encryption(Bucket=bucket))[0]
           == "ServerSideEncryptionConfigurationNotFoundError", "no configuration yet")
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    r = s3.get_bucket_encryption(Bucket=bucket)
    rule = r["ServerSideEncryptionConfiguration"]["Rules"][0]
    expect(rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256",
           "AES256 default stored")
    expect(failure(lambda: s3.put_bucket_encryption(
        Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                   "KMSMasterKeyID": "k"}}]}))[1] == 501,
           "a KMS default is not implemented")
    r = s3.put_object(Bucket=bucket, Key="d", Body=b"d")
    expect(r.get("ServerSideEncryption") == "AES256", "objects say AES256")
    s3.delete_bucket_encryption(Bucket=bucket)
    expect(failure(lambda: s3.get_bucket_encryption(Bucket=bucket))[0]
           == "ServerSideEncryptionConfigurationNotFoundError", "configuration deleted")

    # The object the caller inspects.
    s3.put_object(Bucket=keep_bucket, Key=KEEP_KEY, Body=body, **sse(key_a))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--key-hex", required=True)
    ap.add_argument("--keep-bucket", required=True)
    a = ap.parse_args()
    s3 = client(a.endpoint, a.access_key, a.secret)
    s3.create_bucket(Bucket=a.keep_bucket)
    try:
        checks(s3, bytes.fromhex(a.key_hex), a.keep_bucket)
    except AssertionError as e:
        import traceback
        traceback.print_exc()
        print("FAIL: sse-c: %s" % e)
        sys.exit(1)
    print("ok: sse-c")


if __name__ == "__main__":
    main()
