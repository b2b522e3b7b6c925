"""boto3 against the S3 gateway, around one lifecycle pass of the leader
(driven by tests/s3_lifecycle.rs; a lifecycle day lasts 1 ms there).

Usage: lifecycle_s3.py ENDPOINT A_KEY A_SECRET B_KEY B_SECRET setup|check

setup: tenant A's versioned bucket lc-rules gets 10 versions of `k`, an
object `tmp/x`, a key `dm/x` whose only version is a delete marker, an
unfinished multipart upload, and rules: keep 3 noncurrent versions, expire
tmp/ after 1 day, remove expired delete markers under dm/, abort uploads
after 1 day. A's bucket lc-plain (no rules) and B's bucket lc-other get 10
versions of `k` too. Tenant B tries to set rules on A's bucket and to read
them, and is refused.

check (after the pass): `k` has its 4 newest versions, tmp/x is hidden
behind a delete marker, dm/x is gone, the upload is aborted; lc-plain and
lc-other still have 10 versions.
"""

import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, ak_a, sk_a, ak_b, sk_b, phase = sys.argv[1:7]


def client(ak, sk):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


a, b = client(ak_a, sk_a), client(ak_b, sk_b)
RULES = [
    {"ID": "keep3", "Status": "Enabled", "Filter": {"Prefix": "k"},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 3}},
    {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
    {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "dm/"},
     "Expiration": {"ExpiredObjectDeleteMarker": True}},
    {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
]


def versions(c, bucket, prefix):
    r = c.list_object_versions(Bucket=bucket, Prefix=prefix)
    return r.get("Versions", []), r.get("DeleteMarkers", [])


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok: " + msg)


def refused(what, f):
    try:
        f()
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        expect(status in (403, 404), "%s refused (%s)" % (what, status))
        return
    raise AssertionError("%s: accepted" % what)


if phase == "setup":
    for c, name in [(a, "lc-rules"), (a, "lc-plain"), (b, "lc-other")]:
        c.create_bucket(Bucket=name)
        c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        for i in range(10):
            c.put_object(Bucket=name, Key="k", Body=b"version %d" % i)
    a.put_object(Bucket="lc-rules", Key="tmp/x", Body=b"scratch")
    a.put_object(Bucket="lc-rules", Key="dm/x", Body=b"soon gone")
    a.delete_object(Bucket="lc-rules", Key="dm/x")
    v, _ = versions(a, "lc-rules", "dm/x")
    a.delete_object(Bucket="lc-rules", Key="dm/x", VersionId=v[0]["VersionId"])
    a.create_multipart_upload(Bucket="lc-rules", Key="big/unfinished")
    a.put_bucket_lifecycle_configuration(Bucket="lc-rules", LifecycleConfiguration={"Rules": RULES})
    refused("tenant B setting rules on A's bucket", lambda: b.put_bucket_lifecycle_configuration(
        Bucket="lc-rules", LifecycleConfiguration={"Rules": [RULES[1]]}))
    refused("tenant B reading A's rules", lambda: b.get_bucket_lifecycle_configuration(Bucket="lc-rules"))
    refused("tenant B deleting A's rules", lambda: b.delete_bucket_lifecycle(Bucket="lc-rules"))
    expect(a.get_bucket_lifecycle_configuration(Bucket="lc-rules")["Rules"] == RULES, "A's rules intact")
elif phase == "check":
    v, m = versions(a, "lc-rules", "k")
    expect(len(v) == 4 and not m, "k keeps 4 versions (got %d)" % len(v))
    bodies = [a.get_object(Bucket="lc-rules", Key="k", VersionId=x["VersionId"])["Body"].read() for x in v]
    expect(bodies == [b"version %d" % i for i in (9, 8, 7, 6)], "the 4 newest are kept")
    v, m = versions(a, "lc-rules", "tmp/")
    expect(len(v) == 1 and len(m) == 1 and m[0]["IsLatest"], "tmp/x hidden behind a delete marker")
    v, m = versions(a, "lc-rules", "dm/")
    expect(not v and not m, "the expired delete marker of dm/x is removed")
    expect(not a.list_multipart_uploads(Bucket="lc-rules").get("Uploads"), "the old upload is aborted")
    for c, name in [(a, "lc-plain"), (b, "lc-other")]:
        v, m = versions(c, name, "k")
        expect(len(v) == 10, "%s untouched (%d versions)" % (name, len(v)))
else:
    raise SystemExit("unknown phase %r" % phase)
