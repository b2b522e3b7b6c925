#!/usr/bin/python3
"""boto3 checks against an S3 endpoint (Stratus's gateway, or any S3).

Usage:
  /usr/bin/python3 boto3_checks.py --endpoint http://127.0.0.1:9000 \
      --access-key AK_A --secret SK_A --access-key-b AK_B --secret-b SK_B

The two key pairs must belong to two different tenants. Exits non-zero if any
check fails. Needs boto3 (Debian: apt-get install python3-boto3).
"""

import argparse
import hashlib
import io
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:
    print("FAIL: boto3 is not importable by %s; install it with: apt-get install -y python3-boto3"
          % sys.executable)
    sys.exit(2)

MIB = 1024 * 1024


def client(endpoint, ak, sk):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
        ),
    )


def error_code(fn):
    """Runs fn, which must fail with a ClientError; returns (code, http status)."""
    try:
        fn()
    except ClientError as e:
        return e.response.get("Error", {}).get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("expected an error, the call succeeded")


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Checks:
    def __init__(self, args):
        self.endpoint = args.endpoint
        self.s3 = client(args.endpoint, args.access_key, args.secret)
        self.s3b = client(args.endpoint, args.access_key_b, args.secret_b)
        self.args = args
        self.bucket = "boto3-%s" % uuid.uuid4().hex[:12]

    # --- checks -----------------------------------------------------------

    def create_bucket(self):
        self.s3.create_bucket(Bucket=self.bucket)
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        expect(self.bucket in names, "bucket listed")
        self.s3.head_bucket(Bucket=self.bucket)
        loc = self.s3.get_bucket_location(Bucket=self.bucket)
        expect(loc.get("LocationConstraint") in (None, "", "us-east-1"), "location %r" % loc)

    def put_get_metadata(self):
        body = b"hello stratus\n" * 100
        r = self.s3.put_object(Bucket=self.bucket, Key="meta/obj.txt", Body=body,
                               ContentType="text/plain", Metadata={"color": "blue", "x-y": "z"})
        expect(r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), "quoted md5 etag, got %r" % r["ETag"])
        h = self.s3.head_object(Bucket=self.bucket, Key="meta/obj.txt")
        expect(h["ContentType"] == "text/plain", "content type %r" % h["ContentType"])
        expect(h["Metadata"] == {"color": "blue", "x-y": "z"}, "metadata %r" % h["Metadata"])
        expect(h["ContentLength"] == len(body), "length")
        g = self.s3.get_object(Bucket=self.bucket, Key="meta/obj.txt")
        expect(g["Body"].read() == body, "body round trip")
        code, status = error_code(lambda: self.s3.get_object(Bucket=self.bucket, Key="nope"))
        expect((code, status) == ("NoSuchKey", 404), "missing key: %r" % ((code, status),))

    def multipart(self):
        key = "mp/big.bin"
        parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 12345)]
        up = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType="application/x-big",
                                             Metadata={"kind": "multipart"})
        uid = up["UploadId"]
        uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        expect(any(u["UploadId"] == uid and u["Key"] == key for u in uploads), "upload listed")
        parts = []
        for i, data in enumerate(parts_data, start=1):
            r = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=i, Body=data)
            expect(r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest(), "part etag")
            parts.append({"PartNumber": i, "ETag": r["ETag"]})
        listed = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)["Parts"]
        expect([p["PartNumber"] for p in listed] == [1, 2, 3, 4], "list parts")
        expect([p["Size"] for p in listed] == [len(d) for d in parts_data], "part sizes")
        # Out of order is rejected.
        code, _ = error_code(lambda: self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [parts[1], parts[0]]}))
        expect(code == "InvalidPartOrder", "out of order: %s" % code)
        r = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                              MultipartUpload={"Parts": parts})
        want = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-4"
        expect(r["ETag"] == '"%s"' % want, "multipart etag %r, want %r" % (r["ETag"], want))
        h = self.s3.head_object(Bucket=self.bucket, Key=key)
        expect(h["ContentLength"] == sum(len(d) for d in parts_data), "size")
        expect(h["ContentType"] == "application/x-big", "content type from create")
        expect(h["Metadata"] == {"kind": "multipart"}, "metadata from create")
        got = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        expect(hashlib.md5(got).digest() == hashlib.md5(b"".join(parts_data)).digest(), "content")
        # Abort.
        uid2 = self.s3.create_multipart_upload(Bucket=self.bucket, Key="mp/aborted")["UploadId"]
        self.s3.upload_part(Bucket=self.bucket, Key="mp/aborted", UploadId=uid2, PartNumber=1, Body=b"x")
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key="mp/aborted", UploadId=uid2)
        code, _ = error_code(lambda: self.s3.list_parts(Bucket=self.bucket, Key="mp/aborted", UploadId=uid2))
        expect(code == "NoSuchUpload", "aborted upload gone: %s" % code)
        # boto3's managed transfer (multipart above its threshold) too.
        from boto3.s3.transfer import TransferConfig
        data = os.urandom(12 * MIB)
        import io
        self.s3.upload_fileobj(io.BytesIO(data), self.bucket, "mp/managed",
                               Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
        out = io.BytesIO()
        self.s3.download_fileobj(self.bucket, "mp/managed", out,
                                 Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
        expect(out.getvalue() == data, "managed transfer round trip")

    def ranged_get(self):
        data = bytes(range(256)) * 40  # 10240 bytes
        self.s3.put_object(Bucket=self.bucket, Key="range", Body=data)
        r = self.s3.get_object(Bucket=self.bucket, Key="range", Range="bytes=100-199")
        expect(r["Body"].read() == data[100:200], "bytes=100-199")
        expect(r["ContentRange"] == "bytes 100-199/10240", "content range %r" % r["ContentRange"])
        expect(r["ResponseMetadata"]["HTTPStatusCode"] == 206, "206")
        r = self.s3.get_object(Bucket=self.bucket, Key="range", Range="bytes=-10")
        expect(r["Body"].read() == data[-10:], "suffix range")
        r = self.s3.get_object(Bucket=self.bucket, Key="range", Range="bytes=10000-")
        expect(r["Body"].read() == data[10000:], "open range")
        code, status = error_code(lambda: self.s3.get_object(Bucket=self.bucket, Key="range", Range="bytes=20000-"))
        expect((code, status) == ("InvalidRange", 416), "unsatisfiable: %r" % ((code, status),))

    def conditional_get(self):
        self.s3.put_object(Bucket=self.bucket, Key="cond", Body=b"conditional")
        etag = self.s3.head_object(Bucket=self.bucket, Key="cond")["ETag"]
        r = self.s3.get_object(Bucket=self.bucket, Key="cond", IfMatch=etag)
        expect(r["Body"].read() == b"conditional", "If-Match ok")
        _, status = error_code(lambda: self.s3.get_object(Bucket=self.bucket, Key="cond", IfNoneMatch=etag))
        expect(status == 304, "If-None-Match -> 304, got %s" % status)
        code, status = error_code(lambda: self.s3.get_object(Bucket=self.bucket, Key="cond", IfMatch='"0000"'))
        expect(status == 412, "If-Match mismatch -> 412, got %s %s" % (code, status))
        future = datetime.now(timezone.utc) + timedelta(days=1)
        past = datetime.now(timezone.utc) - timedelta(days=1)
        _, status = error_code(lambda: self.s3.get_object(Bucket=self.bucket, Key="cond", IfModifiedSince=future))
        expect(status == 304, "If-Modified-Since future -> 304, got %s" % status)
        _, status = error_code(lambda: self.s3.get_object(Bucket=self.bucket, Key="cond", IfUnmodifiedSince=past))
        expect(status == 412, "If-Unmodified-Since past -> 412, got %s" % status)
        r = self.s3.get_object(Bucket=self.bucket, Key="cond", IfModifiedSince=past)
        expect(r["Body"].read() == b"conditional", "If-Modified-Since past -> 200")
        _, status = error_code(lambda: self.s3.head_object(Bucket=self.bucket, Key="cond", IfNoneMatch=etag))
        expect(status == 304, "HEAD If-None-Match -> 304, got %s" % status)

    def copy_object(self):
        self.s3.put_object(Bucket=self.bucket, Key="copy/src", Body=b"copy me", ContentType="text/x-src",
                           Metadata={"a": "1"})
        r = self.s3.copy_object(Bucket=self.bucket, Key="copy/dst", CopySource={"Bucket": self.bucket, "Key": "copy/src"})
        expect(r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"copy me").hexdigest(), "copy etag")
        h = self.s3.head_object(Bucket=self.bucket, Key="copy/dst")
        expect(h["Metadata"] == {"a": "1"} and h["ContentType"] == "text/x-src", "COPY keeps metadata")
        self.s3.copy_object(Bucket=self.bucket, Key="copy/dst2", CopySource="%s/copy/src" % self.bucket,
                            MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/x-new")
        h = self.s3.head_object(Bucket=self.bucket, Key="copy/dst2")
        expect(h["Metadata"] == {"b": "2"} and h["ContentType"] == "text/x-new", "REPLACE metadata %r" % h)
        body = self.s3.get_object(Bucket=self.bucket, Key="copy/dst2")["Body"].read()
        expect(body == b"copy me", "copied body")

    def delete_objects(self):
        keys = ["del/%d" % i for i in range(5)]
        for k in keys:
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=k.encode())
        r = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys + ["del/none"]]})
        expect(sorted(d["Key"] for d in r["Deleted"]) == sorted(keys + ["del/none"]), "deleted %r" % r)
        expect(not r.get("Errors"), "no errors")
        left = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="del/").get("KeyCount")
        expect(left == 0, "all deleted, %s left" % left)

    def listing(self):
        keys = ["ls/a/1", "ls/a/2", "ls/b/1", "ls/c", "ls/d", "ls/sp ace+%", "ls/é"]
        for k in keys:
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=b"x")
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="ls/", Delimiter="/")
        expect([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["ls/a/", "ls/b/"], "prefixes %r" % r)
        expect([o["Key"] for o in r.get("Contents", [])] == ["ls/c", "ls/d", "ls/sp ace+%", "ls/é"], "contents %r" % r)
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="ls/", PaginationConfig={"PageSize": 2})
        seen = [o["Key"] for p in pages for o in p.get("Contents", [])]
        expect(seen == sorted(keys, key=lambda k: k.encode()), "v2 paging %r" % seen)
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="ls/", Delimiter="/", PaginationConfig={"PageSize": 1})
        items = []
        for p in pages:
            items += [c["Prefix"] for c in p.get("CommonPrefixes", [])] + [o["Key"] for o in p.get("Contents", [])]
        expect(items == ["ls/a/", "ls/b/", "ls/c", "ls/d", "ls/sp ace+%", "ls/é"], "delimited paging %r" % items)
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="ls/", StartAfter="ls/b/1")
        expect([o["Key"] for o in r["Contents"]] == ["ls/c", "ls/d", "ls/sp ace+%", "ls/é"], "start-after")
        pages = self.s3.get_paginator("list_objects").paginate(
            Bucket=self.bucket, Prefix="ls/", PaginationConfig={"PageSize": 3})
        seen = [o["Key"] for p in pages for o in p.get("Contents", [])]
        expect(seen == sorted(keys, key=lambda k: k.encode()), "v1 paging %r" % seen)
        r = self.s3.list_objects(Bucket=self.bucket, Prefix="ls/", Marker="ls/c")
        expect([o["Key"] for o in r["Contents"]] == ["ls/d", "ls/sp ace+%", "ls/é"], "v1 marker")

    def versioning(self):
        b = self.bucket + "-v"
        self.s3.create_bucket(Bucket=b)
        self.extra_buckets.append(b)
        expect("Status" not in self.s3.get_bucket_versioning(Bucket=b), "unversioned at first")
        self.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        expect(self.s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled", "enabled")
        v1 = self.s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
        v2 = self.s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
        expect(v1 != v2, "distinct version ids")
        expect(self.s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two", "latest")
        expect(self.s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one", "by version")
        d = self.s3.delete_object(Bucket=b, Key="k")
        expect(d.get("DeleteMarker") is True and d.get("VersionId"), "delete marker %r" % d)
        code, status = error_code(lambda: self.s3.get_object(Bucket=b, Key="k"))
        expect(status == 404, "deleted key 404 (%s)" % code)
        lv = self.s3.list_object_versions(Bucket=b)
        expect([v["VersionId"] for v in lv.get("Versions", [])] == [v2, v1], "versions %r" % lv)
        dms = lv.get("DeleteMarkers", [])
        expect(len(dms) == 1 and dms[0]["IsLatest"] and dms[0]["VersionId"] == d["VersionId"], "markers %r" % dms)
        self.s3.delete_object(Bucket=b, Key="k", VersionId=d["VersionId"])
        expect(self.s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two", "marker removed")
        self.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
        expect(self.s3.get_bucket_versioning(Bucket=b)["Status"] == "Suspended", "suspended")
        self.s3.put_object(Bucket=b, Key="k", Body=b"null")
        lv = self.s3.list_object_versions(Bucket=b, Prefix="k")
        ids = [v["VersionId"] for v in lv["Versions"]]
        expect(ids == ["null", v2, v1], "null version on top: %r" % ids)
        expect(self.s3.get_object(Bucket=b, Key="k", VersionId="null")["Body"].read() == b"null", "versionId=null")
        code, _ = error_code(lambda: self.s3.delete_bucket(Bucket=b))
        expect(code == "BucketNotEmpty", "bucket not empty: %s" % code)

    def presigned(self):
        self.s3.put_object(Bucket=self.bucket, Key="pre/get", Body=b"presigned body")
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": "pre/get"},
                                             ExpiresIn=300)
        with urllib.request.urlopen(url) as r:
            expect(r.read() == b"presigned body", "presigned GET")
        url = self.s3.generate_presigned_url("put_object", Params={"Bucket": self.bucket, "Key": "pre/put"},
                                             ExpiresIn=300)
        req = urllib.request.Request(url, data=b"uploaded via presigned PUT", method="PUT")
        with urllib.request.urlopen(req) as r:
            expect(r.status == 200, "presigned PUT status %s" % r.status)
        got = self.s3.get_object(Bucket=self.bucket, Key="pre/put")["Body"].read()
        expect(got == b"uploaded via presigned PUT", "presigned PUT stored")
        # A tampered URL is refused.
        bad = url.replace("pre%2Fput", "pre%2Fother").replace("pre/put", "pre/other")
        try:
            urllib.request.urlopen(urllib.request.Request(bad, data=b"x", method="PUT"))
            raise AssertionError("tampered presigned URL accepted")
        except urllib.error.HTTPError as e:
            expect(e.code == 403, "tampered URL -> 403, got %s" % e.code)
        # An expired URL is refused.
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": "pre/get"},
                                             ExpiresIn=1)
        time.sleep(2.5)
        try:
            urllib.request.urlopen(url)
            raise AssertionError("expired presigned URL accepted")
        except urllib.error.HTTPError as e:
            expect(e.code == 403, "expired URL -> 403, got %s" % e.code)

    def presign_limits(self):
        # 7 days is the longest a presigned URL may live (AWS's limit).
        key = "pre/limits"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"limits")
        params = {"Bucket": self.bucket, "Key": key}
        url = self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=7 * 24 * 3600)
        with urllib.request.urlopen(url) as r:
            expect(r.read() == b"limits", "7-day presigned GET")
        # Longer: refused, though correctly signed.
        url = self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=7 * 24 * 3600 + 1)
        try:
            urllib.request.urlopen(url)
            raise AssertionError("presigned URL of 7 days + 1 s accepted")
        except urllib.error.HTTPError as e:
            body = e.read()
            expect(e.code == 400 and b"AuthorizationQueryParametersError" in body,
                   "7 days + 1 s -> 400 AuthorizationQueryParametersError: %s %r" % (e.code, body))
        # Negative: refused. generate_presigned_url asserts a positive expiry,
        # so sign with botocore's SigV4 query signer directly.
        from botocore.auth import S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        signer = S3SigV4QueryAuth(Credentials(self.args.access_key, self.args.secret), "s3", "us-east-1",
                                  expires=-60)
        req = AWSRequest(method="GET", url="%s/%s/%s" % (self.endpoint.rstrip("/"), self.bucket, key))
        signer.add_auth(req)
        url = req.prepare().url
        expect("X-Amz-Expires=-60" in url, "a negative expiry was signed: %s" % url)
        try:
            urllib.request.urlopen(url)
            raise AssertionError("presigned URL with a negative expiry accepted")
        except urllib.error.HTTPError as e:
            body = e.read()
            expect(e.code == 400 and b"AuthorizationQueryParametersError" in body,
                   "negative expiry -> 400 AuthorizationQueryParametersError: %s %r" % (e.code, body))

    def sigv2_refused(self):
        # A correctly signed SigV2 request (botocore's "s3" signer), header and query.
        v2 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.args.access_key,
            aws_secret_access_key=self.args.secret,
            region_name="us-east-1",
            config=Config(signature_version="s3", s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}),
        )
        code, status = error_code(lambda: v2.list_buckets())
        expect((code, status) == ("AccessDenied", 403), "SigV2 header: %r" % ((code, status),))
        code, status = error_code(lambda: v2.get_object(Bucket=self.bucket, Key="pre/get"))
        expect((code, status) == ("AccessDenied", 403), "SigV2 header GET: %r" % ((code, status),))
        url = v2.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": "pre/get"},
                                        ExpiresIn=300)
        expect("Signature=" in url and "AWSAccessKeyId=" in url, "a SigV2 presigned URL: %s" % url)
        try:
            urllib.request.urlopen(url)
            raise AssertionError("SigV2 presigned URL accepted")
        except urllib.error.HTTPError as e:
            expect(e.code == 403, "SigV2 presigned URL -> 403, got %s" % e.code)

    def anonymous_denied(self):
        url = "%s/%s/meta/obj.txt" % (self.endpoint.rstrip("/"), self.bucket)
        try:
            urllib.request.urlopen(url)
            raise AssertionError("anonymous GET accepted")
        except urllib.error.HTTPError as e:
            expect(e.code == 403 and b"AccessDenied" in e.read(), "anonymous -> 403 AccessDenied")

    def cross_tenant_denied(self):
        b = self.s3b
        names = [x["Name"] for x in b.list_buckets()["Buckets"]]
        expect(self.bucket not in names, "tenant B does not list A's bucket")
        for what, fn in [
            ("head_bucket", lambda: b.head_bucket(Bucket=self.bucket)),
            ("get_object", lambda: b.get_object(Bucket=self.bucket, Key="meta/obj.txt")),
            ("head_object", lambda: b.head_object(Bucket=self.bucket, Key="meta/obj.txt")),
            ("list_objects_v2", lambda: b.list_objects_v2(Bucket=self.bucket)),
            ("put_object", lambda: b.put_object(Bucket=self.bucket, Key="evil", Body=b"x")),
            ("delete_object", lambda: b.delete_object(Bucket=self.bucket, Key="meta/obj.txt")),
            ("copy_object", lambda: b.copy_object(Bucket=self.bucket, Key="evil2",
                                                  CopySource={"Bucket": self.bucket, "Key": "meta/obj.txt"})),
            ("delete_bucket", lambda: b.delete_bucket(Bucket=self.bucket)),
        ]:
            _, status = error_code(fn)
            expect(status in (403, 404), "%s by tenant B -> %s" % (what, status))
        # A's object is intact.
        self.s3.head_object(Bucket=self.bucket, Key="meta/obj.txt")

    def wrong_secret_rejected(self):
        bad = client(self.endpoint, self.args.access_key, self.args.secret + "x")
        code, status = error_code(lambda: bad.list_buckets())
        expect((code, status) == ("SignatureDoesNotMatch", 403), "wrong secret: %r" % ((code, status),))
        unknown = client(self.endpoint, "NOSUCHACCESSKEY", "whatever")
        code, status = error_code(lambda: unknown.list_buckets())
        expect(status == 403 and code == "InvalidAccessKeyId", "unknown key: %r" % ((code, status),))

    def bad_digest(self):
        import base64
        wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
        code, status = error_code(lambda: self.s3.put_object(Bucket=self.bucket, Key="digest", Body=b"payload",
                                                             ContentMD5=wrong))
        expect(code == "BadDigest", "Content-MD5 mismatch: %r" % ((code, status),))
        _, status = error_code(lambda: self.s3.head_object(Bucket=self.bucket, Key="digest"))
        expect(status == 404, "a put with a bad digest stores nothing (HEAD gave %s)" % status)

    def checksums(self):
        """The additional checksums are verified, not ignored: a body that does
        not match its x-amz-checksum-* is refused and stores nothing; a matching
        one is stored and its checksum echoed (whatever boto3 sends by default
        must keep working too: newer ones send a CRC32 on every upload)."""
        import base64
        import zlib
        data = b"checked by the gateway" * 100
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        r = self.s3.put_object(Bucket=self.bucket, Key="sum/default", Body=data)
        expect(r["ResponseMetadata"]["HTTPStatusCode"] == 200, "default put")
        import botocore
        if tuple(int(x) for x in botocore.__version__.split(".")[:2]) >= (1, 36):
            # botocore 1.36+ sends a CRC32 with every upload by default.
            expect(r.get("ChecksumCRC32") == crc, "default CRC32 echoed: %r" % r.get("ChecksumCRC32"))
        r = self.s3.put_object(Bucket=self.bucket, Key="sum/sha", Body=data, ChecksumAlgorithm="SHA256")
        expect(r.get("ChecksumSHA256") == sha, "SHA256 echoed: %r, want %r" % (r.get("ChecksumSHA256"), sha))
        r = self.s3.put_object(Bucket=self.bucket, Key="sum/crc", Body=data, ChecksumCRC32=crc)
        expect(r.get("ChecksumCRC32") == crc, "CRC32 echoed: %r" % r.get("ChecksumCRC32"))
        wrong = base64.b64encode(zlib.crc32(b"other bytes").to_bytes(4, "big")).decode()
        code, status = error_code(lambda: self.s3.put_object(Bucket=self.bucket, Key="sum/bad", Body=data,
                                                             ChecksumCRC32=wrong))
        expect((code, status) == ("BadDigest", 400), "CRC32 mismatch: %r" % ((code, status),))
        _, status = error_code(lambda: self.s3.head_object(Bucket=self.bucket, Key="sum/bad"))
        expect(status == 404, "a put with a bad checksum stores nothing (HEAD gave %s)" % status)
        # Multipart with per-part checksums; Complete lists them.
        uid = self.s3.create_multipart_upload(Bucket=self.bucket, Key="sum/mp", ChecksumAlgorithm="CRC32")["UploadId"]
        code, _ = error_code(lambda: self.s3.upload_part(Bucket=self.bucket, Key="sum/mp", UploadId=uid, PartNumber=1,
                                                         Body=data, ChecksumCRC32=wrong))
        expect(code == "BadDigest", "part CRC32 mismatch: %r" % code)
        p = self.s3.upload_part(Bucket=self.bucket, Key="sum/mp", UploadId=uid, PartNumber=1, Body=data,
                                ChecksumAlgorithm="CRC32")
        expect(p.get("ChecksumCRC32") == crc, "part CRC32 echoed: %r" % p.get("ChecksumCRC32"))
        # The composite checksum: CRC32 of the parts' CRC32s, "-1".
        composite = base64.b64encode(zlib.crc32(base64.b64decode(crc)).to_bytes(4, "big")).decode() + "-1"
        code, _ = error_code(lambda: self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key="sum/mp", UploadId=uid, ChecksumCRC32=wrong + "-1",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"], "ChecksumCRC32": crc}]}))
        expect(code == "BadDigest", "a wrong expected composite: %r" % code)
        code, _ = error_code(lambda: self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key="sum/mp", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"], "ChecksumCRC32": wrong}]}))
        expect(code == "InvalidPart", "a part listed with another checksum: %r" % code)
        c = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key="sum/mp", UploadId=uid, ChecksumCRC32=composite,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"], "ChecksumCRC32": crc}]})
        expect(c.get("ChecksumCRC32") == composite, "composite answered: %r" % c.get("ChecksumCRC32"))
        # Stored: reads with ChecksumMode get them, others do not.
        g = self.s3.get_object(Bucket=self.bucket, Key="sum/mp", ChecksumMode="ENABLED")
        expect(g["Body"].read() == data, "multipart content")
        expect(g.get("ChecksumCRC32") == composite, "stored composite: %r" % g.get("ChecksumCRC32"))
        # (older botocore models do not read ChecksumType: only its value is checked)
        expect(g.get("ChecksumType") in (None, "COMPOSITE"), "type: %r" % g.get("ChecksumType"))
        h = self.s3.head_object(Bucket=self.bucket, Key="sum/sha", ChecksumMode="ENABLED")
        expect(h.get("ChecksumSHA256") == sha, "stored SHA256: %r" % h.get("ChecksumSHA256"))
        h = self.s3.head_object(Bucket=self.bucket, Key="sum/sha")
        expect("ChecksumSHA256" not in h, "no checksum without ChecksumMode")
        a = self.s3.get_object_attributes(Bucket=self.bucket, Key="sum/mp",
                                          ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize"])
        expect(a["ETag"] == c["ETag"].strip('"'), "attributes ETag: %r" % a["ETag"])
        expect(a["ObjectSize"] == len(data), "attributes size")
        expect(a["Checksum"].get("ChecksumCRC32") == composite, "attributes checksum: %r" % a["Checksum"])
        parts = a["ObjectParts"]["Parts"]
        expect([(x["PartNumber"], x.get("ChecksumCRC32")) for x in parts] == [(1, crc)], "parts: %r" % parts)
        # Deletes under size conditions (the header is added by hand: older
        # botocore models do not know IfMatchSize).
        def delete_if_size(n):
            def add(request, **_):
                request.headers["x-amz-if-match-size"] = str(n)
            self.s3.meta.events.register_first("before-sign.s3.DeleteObject", add, unique_id="if-size")
            try:
                return self.s3.delete_object(Bucket=self.bucket, Key="sum/sha")
            finally:
                self.s3.meta.events.unregister("before-sign.s3.DeleteObject", unique_id="if-size")
        code, status = error_code(lambda: delete_if_size(len(data) + 1))
        expect((code, status) == ("PreconditionFailed", 412), "delete with a wrong size: %r" % ((code, status),))
        delete_if_size(len(data))
        _, status = error_code(lambda: self.s3.head_object(Bucket=self.bucket, Key="sum/sha"))
        expect(status == 404, "deleted when the size matched (HEAD gave %s)" % status)

    def sse(self):
        """Server-side encryption is answered truthfully, never ignored: SSE-S3
        (everything is encrypted at rest) says AES256; an object under a
        customer key (SSE-C) reads only with that key; KMS is refused and
        stores nothing. (sse_c_checks.py covers SSE-C in depth.)"""
        r = self.s3.put_object(Bucket=self.bucket, Key="sse/s3", Body=b"x", ServerSideEncryption="AES256")
        expect(r.get("ServerSideEncryption") == "AES256", "SSE-S3 put answered %r" % r.get("ServerSideEncryption"))
        h = self.s3.head_object(Bucket=self.bucket, Key="sse/s3")
        expect(h.get("ServerSideEncryption") == "AES256", "head says %r" % h.get("ServerSideEncryption"))
        key = os.urandom(32)
        self.s3.put_object(Bucket=self.bucket, Key="sse/c", Body=b"secret",
                           SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        g = self.s3.get_object(Bucket=self.bucket, Key="sse/c", SSECustomerAlgorithm="AES256",
                               SSECustomerKey=key)
        expect(g["Body"].read() == b"secret", "SSE-C read with its key")
        refused = {
            "SSE-C get without the key": (lambda: self.s3.get_object(Bucket=self.bucket, Key="sse/c"),
                                          ("InvalidRequest", 400)),
            "SSE-C get with another key": (lambda: self.s3.get_object(
                Bucket=self.bucket, Key="sse/c", SSECustomerAlgorithm="AES256",
                SSECustomerKey=os.urandom(32)), ("AccessDenied", 403)),
            "SSE-C key on a plain object": (lambda: self.s3.get_object(
                Bucket=self.bucket, Key="sse/s3", SSECustomerAlgorithm="AES256", SSECustomerKey=key),
                ("InvalidRequest", 400)),
            "SSE-KMS put": (lambda: self.s3.put_object(Bucket=self.bucket, Key="sse/k", Body=b"secret",
                                                       ServerSideEncryption="aws:kms"),
                            ("NotImplemented", 501)),
        }
        for what, (call, want) in refused.items():
            got = error_code(call)
            expect(got == want, "%s: %r, want %r" % (what, got, want))
        _, status = error_code(lambda: self.s3.head_object(Bucket=self.bucket, Key="sse/k"))
        expect(status == 404, "a refused SSE-KMS upload stores nothing (HEAD gave %s)" % status)

    def unsupported_refused(self):
        """A write asking for what the gateway does not do (other storage
        classes, website redirects), for an object lock in a bucket without
        object lock, or granting to a tenant that does not exist is refused
        and stores nothing; what clients send by default passes."""
        import datetime
        r = self.s3.put_object(Bucket=self.bucket, Key="plain/defaults", Body=b"x", ACL="private",
                               StorageClass="STANDARD")
        expect("ETag" in r, "defaults accepted")
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        attempts = {
            "storage class": dict(StorageClass="GLACIER"),
            "website redirect": dict(WebsiteRedirectLocation="/elsewhere"),
        }
        for what, extra in attempts.items():
            code, status = error_code(lambda: self.s3.put_object(Bucket=self.bucket, Key="plain/x", Body=b"x",
                                                                 **extra))
            expect((code, status) == ("NotImplemented", 501), "put with %s: %r" % (what, (code, status)))
        # Object lock exists, but only in buckets created with it (as S3).
        locks = {
            "object lock": dict(ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until),
            "legal hold": dict(ObjectLockLegalHoldStatus="ON"),
        }
        for what, extra in locks.items():
            code, status = error_code(lambda: self.s3.put_object(Bucket=self.bucket, Key="plain/x", Body=b"x",
                                                                 **extra))
            expect((code, status) == ("InvalidRequest", 400), "put with %s: %r" % (what, (code, status)))
        # A grant to a tenant that does not exist, on every kind of write.
        code, status = error_code(lambda: self.s3.put_object(Bucket=self.bucket, Key="plain/x", Body=b"x",
                                                             GrantRead='id="someone"'))
        expect((code, status) == ("InvalidArgument", 400), "put with a grant: %r" % ((code, status),))
        code, status = error_code(lambda: self.s3.create_multipart_upload(Bucket=self.bucket, Key="plain/x",
                                                                          GrantRead='id="someone"'))
        expect((code, status) == ("InvalidArgument", 400), "multipart with a grant: %r" % ((code, status),))
        code, status = error_code(lambda: self.s3.copy_object(Bucket=self.bucket, Key="plain/x",
                                                              CopySource={"Bucket": self.bucket,
                                                                          "Key": "plain/defaults"},
                                                              GrantRead='id="someone"'))
        expect((code, status) == ("InvalidArgument", 400), "copy with a grant: %r" % ((code, status),))
        _, status = error_code(lambda: self.s3.head_object(Bucket=self.bucket, Key="plain/x"))
        expect(status == 404, "a refused write stores nothing (HEAD gave %s)" % status)

    def correct_answers(self):
        """Issue 19's answers as boto3 reads them: request ids, stored headers
        and tags, partNumber, delete markers, repeated CreateBucket and
        CompleteMultipartUpload, a bucket holding only uploads deleted."""
        b = self.bucket
        r = self.s3.put_object(Bucket=b, Key="ans/k", Body=b"data", CacheControl="max-age=9",
                               ContentDisposition="inline", ContentEncoding="identity",
                               ContentLanguage="en", Tagging="a=1&b=2")
        expect(len(r["ResponseMetadata"].get("RequestId", "")) == 16, "request id %r" % r["ResponseMetadata"])
        h = self.s3.head_object(Bucket=b, Key="ans/k")
        expect((h["CacheControl"], h["ContentDisposition"], h["ContentEncoding"], h["ContentLanguage"])
               == ("max-age=9", "inline", "identity", "en"), "stored headers %r" % h)
        g = self.s3.get_object(Bucket=b, Key="ans/k")
        expect(g.get("TagCount") == 2, "tag count %r" % g.get("TagCount"))
        expect(g["Body"].read() == b"data", "body")
        tags = self.s3.get_object_tagging(Bucket=b, Key="ans/k")["TagSet"]
        expect(sorted((t["Key"], t["Value"]) for t in tags) == [("a", "1"), ("b", "2")], "tags %r" % tags)
        self.s3.put_object_tagging(Bucket=b, Key="ans/k", Tagging={"TagSet": [{"Key": "z", "Value": "9"}]})
        expect(self.s3.get_object_tagging(Bucket=b, Key="ans/k")["TagSet"] == [{"Key": "z", "Value": "9"}],
               "tags replaced")
        self.s3.delete_object_tagging(Bucket=b, Key="ans/k")
        expect(self.s3.get_object_tagging(Bucket=b, Key="ans/k")["TagSet"] == [], "tags removed")
        code, status = error_code(lambda: self.s3.put_object_tagging(
            Bucket=b, Key="ans/k", Tagging={"TagSet": [{"Key": "k%d" % i, "Value": "v"} for i in range(11)]}))
        expect((code, status) == ("InvalidTag", 400), "11 tags: %r" % ((code, status),))
        # An error carries the request id in its body too.
        try:
            self.s3.get_object(Bucket=b, Key="ans/none")
            raise AssertionError("missing key read")
        except ClientError as e:
            expect(len(e.response["ResponseMetadata"].get("RequestId", "")) == 16, "error request id")
        # partNumber.
        up = self.s3.create_multipart_upload(Bucket=b, Key="ans/mp")["UploadId"]
        p1 = self.s3.upload_part(Bucket=b, Key="ans/mp", UploadId=up, PartNumber=1, Body=b"x" * (5 * MIB))
        p2 = self.s3.upload_part(Bucket=b, Key="ans/mp", UploadId=up, PartNumber=2, Body=b"tail")
        parts = {"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]}
        done = self.s3.complete_multipart_upload(Bucket=b, Key="ans/mp", UploadId=up, MultipartUpload=parts)
        again = self.s3.complete_multipart_upload(Bucket=b, Key="ans/mp", UploadId=up, MultipartUpload=parts)
        expect(again["ETag"] == done["ETag"], "completing again answers the object")
        g = self.s3.get_object(Bucket=b, Key="ans/mp", PartNumber=2)
        expect((g["PartsCount"], g["ContentLength"], g["Body"].read()) == (2, 4, b"tail"), "part 2 %r" % g)
        code, status = error_code(lambda: self.s3.get_object(Bucket=b, Key="ans/mp", PartNumber=3))
        expect((code, status) == ("InvalidPartNumber", 416), "part 3: %r" % ((code, status),))
        # (Conditional writes: Debian's botocore has no IfNoneMatch; tests/answers.rs.)
        # CreateBucket of an owned bucket (us-east-1): 200.
        self.s3.create_bucket(Bucket=b)
        # A bucket holding only an upload in progress is deleted.
        extra = "boto3-up-%s" % uuid.uuid4().hex[:8]
        self.s3.create_bucket(Bucket=extra)
        self.s3.create_multipart_upload(Bucket=extra, Key="pending")
        self.s3.delete_bucket(Bucket=extra)
        code, status = error_code(lambda: self.s3.head_bucket(Bucket=extra))
        expect(status == 404, "deleted bucket: %s" % status)

    def keep_alive(self):
        """Every operation, with empty and non-empty bodies, with and without
        `Expect: 100-continue` (botocore sends it for file-like bodies), in
        sequence on ONE keep-alive connection. A response the client cannot
        frame makes it wait for its read timeout (10 s here) and, with no
        retries, fail: after an empty upload that expects 100-continue,
        botocore misreads the next expecting request's response unless the
        connection is closed in between."""
        s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.args.access_key,
            aws_secret_access_key=self.args.secret, region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"total_max_attempts": 1}, max_pool_connections=1,
                          read_timeout=10, connect_timeout=10))
        b = self.bucket
        bodies = {
            "empty": lambda: b"",
            "empty+expect": lambda: io.BytesIO(b""),
            "bytes": lambda: b"k" * 1000,
            "bytes+expect": lambda: io.BytesIO(b"k" * 1000),
        }
        step = 0
        for first, make_first in bodies.items():
            for second, make_second in bodies.items():
                # Two uploads back to back, then read both back.
                done = []
                for name, make in ((first, make_first), (second, make_second)):
                    step += 1
                    key = "ka/%d" % step
                    want = make()
                    want = want.getvalue() if isinstance(want, io.BytesIO) else want
                    try:
                        s3.put_object(Bucket=b, Key=key, Body=make())
                    except Exception as e:  # noqa: BLE001 - name the sequence that hung
                        raise AssertionError("put %s, then put %s: %s" % (first, name, e))
                    done.append((key, want))
                for key, want in done:
                    h = s3.head_object(Bucket=b, Key=key)
                    got = s3.get_object(Bucket=b, Key=key)["Body"].read()
                    expect(got == want and h["ContentLength"] == len(want), "round trip of %s" % key)
        s3.copy_object(Bucket=b, Key="ka/copy", CopySource={"Bucket": b, "Key": "ka/1"})
        s3.list_objects_v2(Bucket=b, Prefix="ka/")
        up = s3.create_multipart_upload(Bucket=b, Key="ka/mp")["UploadId"]
        parts = []
        for n, body in enumerate([io.BytesIO(b""), io.BytesIO(b"p"), b"", b"q", io.BytesIO(b"")], start=1):
            try:
                e = s3.upload_part(Bucket=b, Key="ka/mp", UploadId=up, PartNumber=n, Body=body)["ETag"]
            except Exception as err:  # noqa: BLE001
                raise AssertionError("upload_part %d: %s" % (n, err))
            parts.append({"ETag": e, "PartNumber": n})
        expect(len(s3.list_parts(Bucket=b, Key="ka/mp", UploadId=up).get("Parts", [])) == 5, "5 parts listed")
        s3.abort_multipart_upload(Bucket=b, Key="ka/mp", UploadId=up)
        s3.put_object(Bucket=b, Key="ka/last", Body=io.BytesIO(b""))
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "ka/%d" % i} for i in range(1, step + 1)]})
        s3.put_object(Bucket=b, Key="ka/after-delete", Body=io.BytesIO(b"z"))
        s3.delete_object(Bucket=b, Key="ka/after-delete")

    def upload_part_copy(self):
        b = self.bucket
        src = os.urandom(6 * MIB + 321)
        self.s3.put_object(Bucket=b, Key="upc/src", Body=src)
        h = self.s3.head_object(Bucket=b, Key="upc/src")
        uid = self.s3.create_multipart_upload(Bucket=b, Key="upc/dst")["UploadId"]
        cs = {"Bucket": b, "Key": "upc/src"}
        p1 = self.s3.upload_part_copy(Bucket=b, Key="upc/dst", UploadId=uid, PartNumber=1, CopySource=cs,
                                      CopySourceRange="bytes=0-%d" % (5 * MIB - 1))
        p2 = self.s3.upload_part_copy(Bucket=b, Key="upc/dst", UploadId=uid, PartNumber=2, CopySource=cs,
                                      CopySourceRange="bytes=%d-%d" % (5 * MIB, len(src) - 1),
                                      CopySourceIfMatch=h["ETag"])
        want1 = hashlib.md5(src[:5 * MIB]).hexdigest()
        expect(p1["CopyPartResult"]["ETag"] == '"%s"' % want1, "part etag is the md5 of the copied range")
        self.s3.complete_multipart_upload(Bucket=b, Key="upc/dst", UploadId=uid, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
        got = self.s3.get_object(Bucket=b, Key="upc/dst")["Body"].read()
        expect(got == src, "the copied parts reassemble the source")
        uid = self.s3.create_multipart_upload(Bucket=b, Key="upc/dst2")["UploadId"]
        for what, kw, want in [
            ("a failed if-match", {"CopySourceIfMatch": '"0123"'}, ("PreconditionFailed", 412)),
            ("a matching if-none-match", {"CopySourceIfNoneMatch": h["ETag"]}, ("PreconditionFailed", 412)),
            ("an open range", {"CopySourceRange": "bytes=0-"}, ("InvalidArgument", 400)),
            ("a range past the end", {"CopySourceRange": "bytes=0-%d" % len(src)}, ("InvalidRange", 416)),
            ("a missing source", {"CopySource": {"Bucket": b, "Key": "upc/none"}}, ("NoSuchKey", 404)),
        ]:
            args = dict(Bucket=b, Key="upc/dst2", UploadId=uid, PartNumber=1, CopySource=cs)
            args.update(kw)
            got = error_code(lambda: self.s3.upload_part_copy(**args))
            expect(got == want, "upload_part_copy with %s: %r, want %r" % (what, got, want))
        # Tenant B can neither copy A's object into its upload nor into A's.
        other = "boto3b-%s" % uuid.uuid4().hex[:12]
        self.s3b.create_bucket(Bucket=other)
        try:
            uid_b = self.s3b.create_multipart_upload(Bucket=other, Key="stolen")["UploadId"]
            _, status = error_code(lambda: self.s3b.upload_part_copy(
                Bucket=other, Key="stolen", UploadId=uid_b, PartNumber=1, CopySource=cs))
            expect(status in (403, 404), "tenant B copied A's object: %s" % status)
            self.s3b.abort_multipart_upload(Bucket=other, Key="stolen", UploadId=uid_b)
        finally:
            self.s3b.delete_bucket(Bucket=other)
        self.s3.abort_multipart_upload(Bucket=b, Key="upc/dst2", UploadId=uid)

    def bucket_tagging(self):
        b = self.bucket
        code, status = error_code(lambda: self.s3.get_bucket_tagging(Bucket=b))
        expect((code, status) == ("NoSuchTagSet", 404), "no tags yet: %r" % ((code, status),))
        tags = [{"Key": "k%d" % i, "Value": "v" * 256} for i in range(50)]
        self.s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": tags})
        expect(self.s3.get_bucket_tagging(Bucket=b)["TagSet"] == tags, "tags round trip")
        for what, bad in [
            ("51 tags", tags + [{"Key": "x", "Value": "y"}]),
            ("a 129-character key", [{"Key": "k" * 129, "Value": "v"}]),
            ("a 257-character value", [{"Key": "k", "Value": "v" * 257}]),
            ("a repeated key", [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]),
        ]:
            got = error_code(lambda: self.s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": bad}))
            expect(got == ("InvalidTag", 400), "tagging with %s: %r" % (what, got))
        expect(len(self.s3.get_bucket_tagging(Bucket=b)["TagSet"]) == 50, "a refused put changed nothing")
        for what, fn in [
            ("get", lambda: self.s3b.get_bucket_tagging(Bucket=b)),
            ("put", lambda: self.s3b.put_bucket_tagging(Bucket=b, Tagging={"TagSet": []})),
            ("delete", lambda: self.s3b.delete_bucket_tagging(Bucket=b)),
        ]:
            _, status = error_code(fn)
            expect(status in (403, 404), "%s of A's tags by tenant B -> %s" % (what, status))
        self.s3.delete_bucket_tagging(Bucket=b)
        code, _ = error_code(lambda: self.s3.get_bucket_tagging(Bucket=b))
        expect(code == "NoSuchTagSet", "tags left after delete: %s" % code)

    def lifecycle_rules(self):
        b = self.bucket
        code, status = error_code(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=b))
        expect((code, status) == ("NoSuchLifecycleConfiguration", 404), "no rules yet: %r" % ((code, status),))
        rules = [
            {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
            {"ID": "old", "Status": "Disabled", "Prefix": "old/",
             "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 3}},
            {"ID": "mp", "Status": "Enabled", "Filter": {"Prefix": ""},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
        ]
        self.s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": rules})
        got = self.s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
        expect(got == rules, "rules round trip: %r" % got)
        rule = {"ID": "r", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}
        for what, bad, want in [
            ("a transition", [dict(rule, Transitions=[{"Days": 30, "StorageClass": "GLACIER"}])],
             ("NotImplemented", 501)),
            ("an expiration date not at midnight", [dict(rule, Expiration={"Date": "2030-01-01T10:00:00Z"})],
             ("InvalidArgument", 400)),
            ("11 filter tags", [dict(rule, Filter={"And": {"Tags": [{"Key": "k%d" % i, "Value": "v"}
                                                                   for i in range(11)]}})],
             ("InvalidArgument", 400)),
            ("a bad status", [dict(rule, Status="on")], ("MalformedXML", 400)),
            ("two rules with one id", [rule, rule], ("InvalidArgument", 400)),
            ("an id of 256 characters", [dict(rule, ID="i" * 256)], ("InvalidArgument", 400)),
            ("zero days", [dict(rule, Expiration={"Days": 0})], ("InvalidArgument", 400)),
        ]:
            got = error_code(lambda: self.s3.put_bucket_lifecycle_configuration(
                Bucket=b, LifecycleConfiguration={"Rules": bad}))
            expect(got == want, "lifecycle with %s: %r, want %r" % (what, got, want))
        expect(self.s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"] == rules, "refused puts changed nothing")
        # Tag, And and size filters and an expiration Date round trip.
        filtered = [
            {"ID": "tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
             "Expiration": {"Days": 3}},
            {"ID": "and", "Status": "Enabled",
             "Filter": {"And": {"Prefix": "p/", "Tags": [{"Key": "a", "Value": "1"}],
                                "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 100}},
             "Expiration": {"Days": 3}},
            {"ID": "date", "Status": "Enabled", "Filter": {"Prefix": "d/"},
             "Expiration": {"Date": datetime(2030, 1, 1, tzinfo=timezone.utc)}},
        ]
        self.s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": filtered})
        got = self.s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
        expect(got == filtered, "filters round trip: %r" % got)
        self.s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": rules})
        for what, fn in [
            ("get", lambda: self.s3b.get_bucket_lifecycle_configuration(Bucket=b)),
            ("put", lambda: self.s3b.put_bucket_lifecycle_configuration(
                Bucket=b, LifecycleConfiguration={"Rules": [rule]})),
            ("delete", lambda: self.s3b.delete_bucket_lifecycle(Bucket=b)),
        ]:
            _, status = error_code(fn)
            expect(status in (403, 404), "%s of A's lifecycle by tenant B -> %s" % (what, status))
        self.s3.delete_bucket_lifecycle(Bucket=b)
        code, _ = error_code(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=b))
        expect(code == "NoSuchLifecycleConfiguration", "rules left after delete: %s" % code)

    # --- cleanup ----------------------------------------------------------

    def cleanup(self):
        for b in [self.bucket] + self.extra_buckets:
            try:
                for p in self.s3.get_paginator("list_object_versions").paginate(Bucket=b):
                    for v in p.get("Versions", []) + p.get("DeleteMarkers", []):
                        self.s3.delete_object(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])
                for u in self.s3.list_multipart_uploads(Bucket=b).get("Uploads", []):
                    self.s3.abort_multipart_upload(Bucket=b, Key=u["Key"], UploadId=u["UploadId"])
                self.s3.delete_bucket(Bucket=b)
            except ClientError as e:
                print("  cleanup of %s: %s" % (b, e))
                return False
        return True

    def run(self):
        self.extra_buckets = []
        order = [
            "create_bucket", "put_get_metadata", "multipart", "ranged_get", "conditional_get",
            "copy_object", "delete_objects", "listing", "versioning", "presigned", "presign_limits",
            "sigv2_refused", "anonymous_denied",
            "cross_tenant_denied", "wrong_secret_rejected", "bad_digest", "checksums", "sse", "unsupported_refused",
            "keep_alive", "upload_part_copy", "bucket_tagging", "lifecycle_rules",
            "correct_answers",
        ]
        failed = []
        for name in order:
            try:
                getattr(self, name)()
                print("PASS boto3 %s" % name)
            except Exception as e:  # noqa: BLE001 - report every failure
                failed.append(name)
                print("FAIL boto3 %s: %s" % (name, e))
                traceback.print_exc(limit=3)
            sys.stdout.flush()
        if self.cleanup():
            print("PASS boto3 cleanup")
        else:
            failed.append("cleanup")
            print("FAIL boto3 cleanup")
        return failed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--access-key-b", required=True)
    p.add_argument("--secret-b", required=True)
    args = p.parse_args()
    failed = Checks(args).run()
    if failed:
        print("boto3: %d check(s) failed: %s" % (len(failed), ", ".join(failed)))
        sys.exit(1)
    print("boto3: all checks passed")


if __name__ == "__main__":
    main()
