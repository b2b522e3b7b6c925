"""boto3 against the S3 gateway: object lock (WORM) played by an owner who
tries to get rid of locked versions, around one lifecycle pass of the
leader (driven by tests/s3_object_lock.rs; a lifecycle day lasts 1 ms).

Usage: object_lock_s3.py ENDPOINT A_KEY A_SECRET B_KEY B_SECRET setup|check

setup: tenant A creates bucket ol-vault with object lock; `doc` gets a
COMPLIANCE version (retained one hour) and then a newer one, `gov` a
GOVERNANCE version, `held` a legal hold. The owner tries to delete them
(one by one and in a batch, with and without bypass), to shorten the
COMPLIANCE retention or turn it into GOVERNANCE, to suspend versioning;
tenant B and an anonymous client try too. Everything is refused. Then a
lifecycle rule that would expire every noncurrent version after one day and
every current one is set.

check (after the pass): the COMPLIANCE version is still there and readable
with its retention; the legal hold and the GOVERNANCE version are too
(behind delete markers); the owner's bypass then removes the GOVERNANCE one.
"""

import datetime
import json
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, ak_a, sk_a, ak_b, sk_b, phase = sys.argv[1:7]
BUCKET = "ol-vault"
STATE = "/tmp/stratus-object-lock-%s.json" % endpoint.rsplit(":", 1)[-1]


def client(ak=None, sk=None):
    cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    if ak is None:
        cfg = cfg.merge(Config(signature_version=UNSIGNED))
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=cfg,
    )


a, b, anon = client(ak_a, sk_a), client(ak_b, sk_b), client()


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok: " + msg)


def refused(fn, codes, msg, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        expect(code in codes, "%s refused (%s)" % (msg, code))
        return
    raise AssertionError("%s was not refused" % msg)


def setup():
    hour = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    a.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    v1 = a.put_object(Bucket=BUCKET, Key="doc", Body=b"contract v1",
                      ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=hour)["VersionId"]
    a.put_object(Bucket=BUCKET, Key="doc", Body=b"contract v2")
    gov = a.put_object(Bucket=BUCKET, Key="gov", Body=b"g",
                       ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=hour)["VersionId"]
    held = a.put_object(Bucket=BUCKET, Key="held", Body=b"h",
                        ObjectLockLegalHoldStatus="ON")["VersionId"]

    for bypass in (False, True):
        refused(a.delete_object, ["AccessDenied"], "deleting the COMPLIANCE version (bypass=%s)" % bypass,
                Bucket=BUCKET, Key="doc", VersionId=v1, BypassGovernanceRetention=bypass)
        refused(a.delete_object, ["AccessDenied"], "deleting the held version (bypass=%s)" % bypass,
                Bucket=BUCKET, Key="held", VersionId=held, BypassGovernanceRetention=bypass)
    refused(a.delete_object, ["AccessDenied"], "deleting the GOVERNANCE version without bypass",
            Bucket=BUCKET, Key="gov", VersionId=gov)
    r = a.delete_objects(Bucket=BUCKET, BypassGovernanceRetention=True, Delete={"Objects": [
        {"Key": "doc", "VersionId": v1}, {"Key": "held", "VersionId": held}]})
    codes = sorted(e["Code"] for e in r.get("Errors", []))
    expect(codes == ["AccessDenied", "AccessDenied"] and not r.get("Deleted"),
           "a batch delete of locked versions removes nothing: %s" % codes)

    shorter = hour - datetime.timedelta(minutes=30)
    refused(a.put_object_retention, ["AccessDenied"], "shortening COMPLIANCE",
            Bucket=BUCKET, Key="doc", VersionId=v1, BypassGovernanceRetention=True,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": shorter})
    refused(a.put_object_retention, ["AccessDenied"], "COMPLIANCE to GOVERNANCE",
            Bucket=BUCKET, Key="doc", VersionId=v1, BypassGovernanceRetention=True,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": hour})
    refused(a.put_bucket_versioning, ["InvalidBucketState"], "suspending versioning",
            Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})

    # Another tenant and an anonymous client.
    refused(b.delete_object, ["AccessDenied", "NoSuchBucket"], "tenant B deleting A's version",
            Bucket=BUCKET, Key="gov", VersionId=gov, BypassGovernanceRetention=True)
    refused(b.put_object_retention, ["AccessDenied", "NoSuchBucket"], "tenant B lifting A's retention",
            Bucket=BUCKET, Key="gov", VersionId=gov, BypassGovernanceRetention=True,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": shorter})
    refused(b.put_object_legal_hold, ["AccessDenied", "NoSuchBucket"], "tenant B lifting A's legal hold",
            Bucket=BUCKET, Key="held", VersionId=held, LegalHold={"Status": "OFF"})
    refused(anon.delete_object, ["AccessDenied"], "an anonymous delete",
            Bucket=BUCKET, Key="gov", VersionId=gov, BypassGovernanceRetention=True)

    # Lock headers on a bucket without object lock.
    a.create_bucket(Bucket="ol-plain")
    refused(a.put_object, ["InvalidRequest"], "a lock on a bucket without object lock",
            Bucket="ol-plain", Key="k", Body=b"x",
            ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=hour)

    a.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [
        {"ID": "all", "Status": "Enabled", "Filter": {"Prefix": ""},
         "Expiration": {"Days": 1},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]})
    with open(STATE, "w") as f:
        json.dump({"v1": v1, "gov": gov, "held": held, "until": hour.isoformat()}, f)


def check():
    with open(STATE) as f:
        s = json.load(f)
    r = a.list_object_versions(Bucket=BUCKET)
    ids = {(v["Key"], v["VersionId"]) for v in r.get("Versions", [])}
    for key, vid in (("doc", s["v1"]), ("gov", s["gov"]), ("held", s["held"])):
        expect((key, vid) in ids, "%s's locked version survived the lifecycle pass" % key)
    expect(any(m["IsLatest"] for m in r.get("DeleteMarkers", [])),
           "current versions expired behind delete markers")
    body = a.get_object(Bucket=BUCKET, Key="doc", VersionId=s["v1"])["Body"].read()
    expect(body == b"contract v1", "the COMPLIANCE version still reads back")
    h = a.head_object(Bucket=BUCKET, Key="doc", VersionId=s["v1"])
    expect(h["ObjectLockMode"] == "COMPLIANCE", "HEAD shows the retention mode")
    until = datetime.datetime.fromisoformat(s["until"])
    expect(abs((h["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1,
           "HEAD shows the retain-until date")
    r = a.get_object_retention(Bucket=BUCKET, Key="doc", VersionId=s["v1"])
    expect(r["Retention"]["Mode"] == "COMPLIANCE", "GetObjectRetention answers it")
    hold = a.get_object_legal_hold(Bucket=BUCKET, Key="held", VersionId=s["held"])
    expect(hold["LegalHold"]["Status"] == "ON", "the legal hold is still on")
    a.delete_object(Bucket=BUCKET, Key="gov", VersionId=s["gov"], BypassGovernanceRetention=True)
    expect(True, "the owner's bypass removes the GOVERNANCE version")


{"setup": setup, "check": check}[phase]()
