"""boto3 against the S3 gateway: tenant acme is at its quotas (stored bytes
100000 with USED used: 90000 of objects and its module, which is an object
too; 1 open upload), tenant beta is not.

Usage: quotas_s3.py ENDPOINT ACME_KEY ACME_SECRET BETA_KEY BETA_SECRET USED
"""

import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, ak_a, sk_a, ak_b, sk_b, used = sys.argv[1:7]


def client(ak, sk):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


acme, beta = client(ak_a, sk_a), client(ak_b, sk_b)


def refused(what, f):
    try:
        f()
    except ClientError as e:
        code = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        msg = e.response["Error"].get("Message", "")
        assert code == "QuotaExceeded" and status == 403, f"{what}: {code} {status} {msg}"
        print(f"ok: {what} refused: {msg}")
        return msg
    raise AssertionError(f"{what}: accepted past the quota")


msg = refused("put past stored bytes",
              lambda: acme.put_object(Bucket="acme-data", Key="s3", Body=b"y" * 20000))
assert "stored-bytes" in msg and "100000" in msg and used in msg, msg
refused("copy past stored bytes",
        lambda: acme.copy_object(Bucket="acme-data", Key="copy",
                                 CopySource={"Bucket": "acme-data", "Key": "one"}))
acme.put_object(Bucket="acme-data", Key="small", Body=b"z" * 5000)
print("ok: a put within the quota is accepted")
acme.create_multipart_upload(Bucket="acme-data", Key="mp1")
refused("a second open multipart upload",
        lambda: acme.create_multipart_upload(Bucket="acme-data", Key="mp2"))

# Another tenant is not affected.
beta.put_object(Bucket="beta-data", Key="s3", Body=b"y" * 20000)
beta.copy_object(Bucket="beta-data", Key="copy", CopySource={"Bucket": "beta-data", "Key": "two"})
beta.create_multipart_upload(Bucket="beta-data", Key="mp1")
beta.create_multipart_upload(Bucket="beta-data", Key="mp2")
print("ok: beta unaffected")
