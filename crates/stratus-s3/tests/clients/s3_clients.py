#!/usr/bin/python3
"""Real S3 clients against an S3 endpoint: aws cli, rclone, s3cmd and boto3.

Usage:
  /usr/bin/python3 s3_clients.py --endpoint http://127.0.0.1:9000 \
      --access-key AK_A --secret SK_A --access-key-b AK_B --secret-b SK_B \
      [--only aws,rclone,s3cmd,boto3]

The two key pairs must belong to two different tenants. Every client is
configured for region us-east-1 and path-style addressing, with the EC2
metadata lookup disabled. A client that is not installed is a FAILURE naming
the Debian package to install:

  apt-get install -y awscli s3cmd rclone python3-boto3

Exits non-zero if any check fails. Buckets get random names and are removed at
the end, so the harness can be pointed at a long-lived cloud (`stratus dev`).
"""

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
AWS = "/usr/bin/aws"
MIB = 1024 * 1024


class Failed(Exception):
    pass


def need(path, package):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise Failed("%s not found; install it with: apt-get install -y %s" % (path, package))


def run(cmd, env=None, check=True, input=None):
    """Runs cmd; returns stdout. Raises Failed with the output on failure."""
    r = subprocess.run(cmd, env=env, input=input, capture_output=True, timeout=600)
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        shown = " ".join(a if "secret" not in a.lower() else "<redacted>" for a in cmd)
        raise Failed("`%s` exited %d\nstdout: %s\nstderr: %s" % (shown, r.returncode, out[-3000:], err[-3000:]))
    return out if check else (r.returncode, out, err)


def make_tree(root):
    """A small tree with nested dirs, odd names and one multipart-sized file."""
    files = {
        "a.txt": b"alpha\n",
        "dir/b.txt": b"bravo\n" * 1000,
        "dir/sub/c.bin": os.urandom(70000),
        "dir/with space.txt": b"spaces\n",
        "empty": b"",
        "big.bin": os.urandom(20 * MIB + 17),
    }
    for rel, data in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    return files


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)

    def walk(c):
        if c.left_only or c.right_only or c.diff_files or c.funny_files:
            raise Failed("trees differ: left_only=%s right_only=%s diff=%s" % (c.left_only, c.right_only, c.diff_files))
        for sub in c.subdirs.values():
            walk(sub)

    # dircmp compares shallowly (size/mtime); compare contents too.
    walk(cmp)
    for dirpath, _, names in os.walk(a):
        for n in names:
            pa = os.path.join(dirpath, n)
            pb = os.path.join(b, os.path.relpath(pa, a))
            if not filecmp.cmp(pa, pb, shallow=False):
                raise Failed("content differs: %s" % os.path.relpath(pa, a))


def md5_file(p):
    h = hashlib.md5()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


# --- aws cli --------------------------------------------------------------

def check_aws(args, tmp):
    AWS = args.aws_bin
    need(AWS, "awscli")
    cfg = os.path.join(tmp, "aws-config")
    with open(cfg, "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env = dict(os.environ,
               AWS_ACCESS_KEY_ID=args.access_key, AWS_SECRET_ACCESS_KEY=args.secret,
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=cfg, AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "no-credentials"),
               AWS_PAGER="")
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    base = [AWS, "--endpoint-url", args.endpoint]
    bucket = "aws-%s" % uuid.uuid4().hex[:12]
    src = os.path.join(tmp, "aws-src")
    files = make_tree(src)

    def aws(*a, **kw):
        return run(base + list(a), env=env, **kw)

    def api(*a):
        out = aws("s3api", *a, "--output", "json")
        return json.loads(out) if out.strip() else {}

    try:
        aws("s3", "mb", "s3://%s" % bucket)
        # cp (big.bin is above the 8 MiB multipart threshold)
        aws("s3", "cp", os.path.join(src, "big.bin"), "s3://%s/single/big.bin" % bucket)
        aws("s3", "cp", os.path.join(src, "a.txt"), "s3://%s/single/a.txt" % bucket)
        got = os.path.join(tmp, "aws-big.bin")
        aws("s3", "cp", "s3://%s/single/big.bin" % bucket, got)
        if md5_file(got) != md5_file(os.path.join(src, "big.bin")):
            raise Failed("aws s3 cp round trip differs")
        # sync up and down
        aws("s3", "sync", src, "s3://%s/tree/" % bucket)
        listing = aws("s3", "ls", "--recursive", "s3://%s/tree/" % bucket)
        for rel in files:
            if ("tree/" + rel) not in listing:
                raise Failed("aws s3 ls is missing %s:\n%s" % (rel, listing))
        top = aws("s3", "ls", "s3://%s/tree/" % bucket)
        if "PRE dir/" not in top:
            raise Failed("aws s3 ls shows no common prefix dir/:\n%s" % top)
        down = os.path.join(tmp, "aws-down")
        aws("s3", "sync", "s3://%s/tree/" % bucket, down)
        same_tree(src, down)
        # a second sync uploads nothing
        again = aws("s3", "sync", src, "s3://%s/tree/" % bucket)
        if "upload:" in again:
            raise Failed("second sync re-uploaded:\n%s" % again)
        # A Python package: empty __init__.py files between small ones, one
        # at a time on one keep-alive connection, no retries, 10 s read
        # timeout. botocore sends `Expect: 100-continue` for every file; a
        # gateway that leaves it unable to frame the next response makes
        # this fail with a read timeout (it crawled at ~9 objects/s before).
        pkg = os.path.join(tmp, "aws-pkg")
        pkg_files = {"__init__.py": b"", "a.py": b"A = 1\n", "sub/__init__.py": b"",
                     "sub/b.py": b"B = 2\n", "sub/deep/__init__.py": b"", "z.py": b""}
        for rel, data in pkg_files.items():
            os.makedirs(os.path.dirname(os.path.join(pkg, rel)), exist_ok=True)
            with open(os.path.join(pkg, rel), "wb") as f:
                f.write(data)
        serial_cfg = os.path.join(tmp, "aws-config-serial")
        with open(serial_cfg, "w") as f:
            f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
                    "    max_concurrent_requests = 1\n")
        run(base + ["--cli-read-timeout", "10", "s3", "cp", "--recursive", pkg, "s3://%s/pkg/" % bucket],
            env=dict(env, AWS_CONFIG_FILE=serial_cfg, AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard"))
        listing = aws("s3", "ls", "--recursive", "s3://%s/pkg/" % bucket)
        for rel in pkg_files:
            if ("pkg/" + rel) not in listing:
                raise Failed("aws s3 cp --recursive of a package is missing %s:\n%s" % (rel, listing))
        buckets = aws("s3", "ls")
        if bucket not in buckets:
            raise Failed("aws s3 ls does not list the bucket")
        # versioning
        api("put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
        if api("get-bucket-versioning", "--bucket", bucket).get("Status") != "Enabled":
            raise Failed("versioning not enabled")
        f1 = os.path.join(tmp, "v1")
        f2 = os.path.join(tmp, "v2")
        open(f1, "wb").write(b"version one")
        open(f2, "wb").write(b"version two")
        v1 = api("put-object", "--bucket", bucket, "--key", "ver/k", "--body", f1)["VersionId"]
        v2 = api("put-object", "--bucket", bucket, "--key", "ver/k", "--body", f2)["VersionId"]
        lv = api("list-object-versions", "--bucket", bucket, "--prefix", "ver/")
        ids = [v["VersionId"] for v in lv.get("Versions", [])]
        if ids != [v2, v1]:
            raise Failed("list-object-versions: %s, want %s" % (ids, [v2, v1]))
        out = os.path.join(tmp, "v1-out")
        api("get-object", "--bucket", bucket, "--key", "ver/k", "--version-id", v1, out)
        if open(out, "rb").read() != b"version one":
            raise Failed("get-object --version-id returned the wrong version")
        aws("s3", "rm", "s3://%s/ver/k" % bucket)
        lv = api("list-object-versions", "--bucket", bucket, "--prefix", "ver/")
        if len(lv.get("DeleteMarkers", [])) != 1 or not lv["DeleteMarkers"][0]["IsLatest"]:
            raise Failed("no delete marker after s3 rm: %s" % lv)
        code, _, err = aws("s3", "cp", "s3://%s/ver/k" % bucket, os.path.join(tmp, "gone"), check=False)
        if code == 0:
            raise Failed("reading a deleted key succeeded")
        # Server-side copies of large objects: `aws s3 cp` between S3 URLs
        # copies big.bin (above the multipart threshold) with UploadPartCopy
        # (`--copy-props metadata-directive`: the default also copies object
        # tags, which are not supported yet); upload-part-copy by hand with a
        # source range.
        aws("s3", "cp", "--copy-props", "metadata-directive",
            "s3://%s/single/big.bin" % bucket, "s3://%s/copied/big.bin" % bucket)
        got = os.path.join(tmp, "aws-copied.bin")
        aws("s3", "cp", "s3://%s/copied/big.bin" % bucket, got)
        if md5_file(got) != md5_file(os.path.join(src, "big.bin")):
            raise Failed("aws s3 cp s3->s3 of a multipart-sized object differs")
        uid = api("create-multipart-upload", "--bucket", bucket, "--key", "upc/dst")["UploadId"]
        five = 5 * 1024 * 1024
        p1 = api("upload-part-copy", "--bucket", bucket, "--key", "upc/dst", "--upload-id", uid,
                 "--part-number", "1", "--copy-source", "%s/single/big.bin" % bucket,
                 "--copy-source-range", "bytes=0-%d" % (five - 1))["CopyPartResult"]["ETag"]
        p2 = api("upload-part-copy", "--bucket", bucket, "--key", "upc/dst", "--upload-id", uid,
                 "--part-number", "2", "--copy-source", "%s/single/a.txt" % bucket)["CopyPartResult"]["ETag"]
        parts = os.path.join(tmp, "upc-parts.json")
        with open(parts, "w") as f:
            json.dump({"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]}, f)
        api("complete-multipart-upload", "--bucket", bucket, "--key", "upc/dst", "--upload-id", uid,
            "--multipart-upload", "file://" + parts)
        got = os.path.join(tmp, "aws-upc.bin")
        api("get-object", "--bucket", bucket, "--key", "upc/dst", got)
        with open(os.path.join(src, "big.bin"), "rb") as f:
            want = f.read(five)
        with open(os.path.join(src, "a.txt"), "rb") as f:
            want += f.read()
        if open(got, "rb").read() != want:
            raise Failed("upload-part-copy with a range assembled the wrong bytes")
        # bucket tags and lifecycle rules round trip
        api("put-bucket-tagging", "--bucket", bucket, "--tagging", "TagSet=[{Key=team,Value=ci}]")
        tags = api("get-bucket-tagging", "--bucket", bucket).get("TagSet")
        if tags != [{"Key": "team", "Value": "ci"}]:
            raise Failed("get-bucket-tagging: %s" % tags)
        rules = os.path.join(tmp, "lifecycle.json")
        with open(rules, "w") as f:
            json.dump({"Rules": [{"ID": "keep3", "Status": "Enabled", "Filter": {"Prefix": "ver/"},
                                  "NoncurrentVersionExpiration": {"NoncurrentDays": 1,
                                                                  "NewerNoncurrentVersions": 3}}]}, f)
        api("put-bucket-lifecycle-configuration", "--bucket", bucket, "--lifecycle-configuration",
            "file://" + rules)
        got_rules = api("get-bucket-lifecycle-configuration", "--bucket", bucket).get("Rules", [])
        if [r.get("ID") for r in got_rules] != ["keep3"]:
            raise Failed("get-bucket-lifecycle-configuration: %s" % got_rules)
        api("delete-bucket-lifecycle", "--bucket", bucket)
        code, _, err = aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket, check=False)
        if code == 0 or "NoSuchLifecycleConfiguration" not in err:
            raise Failed("lifecycle rules left after delete-bucket-lifecycle: %s" % err)
        # rm --recursive removes everything visible
        aws("s3", "rm", "--recursive", "s3://%s/tree/" % bucket)
        left = aws("s3", "ls", "--recursive", "s3://%s/tree/" % bucket, check=False)[1]
        if left.strip():
            raise Failed("objects left after rm --recursive:\n%s" % left)
    finally:
        cleanup_versions_aws(api, bucket)
        aws("s3", "rb", "s3://%s" % bucket, check=False)


def cleanup_versions_aws(api, bucket):
    try:
        lv = api("list-object-versions", "--bucket", bucket)
    except Failed:
        return
    for v in lv.get("Versions", []) + lv.get("DeleteMarkers", []):
        try:
            api("delete-object", "--bucket", bucket, "--key", v["Key"], "--version-id", v["VersionId"])
        except Failed:
            pass


# --- rclone ---------------------------------------------------------------

def check_rclone(args, tmp):
    rclone = "/usr/bin/rclone"
    need(rclone, "rclone")
    env = dict(os.environ,
               RCLONE_CONFIG=os.path.join(tmp, "rclone-none.conf"),
               RCLONE_CONFIG_STRATUS_TYPE="s3",
               RCLONE_CONFIG_STRATUS_PROVIDER="Other",
               RCLONE_CONFIG_STRATUS_ENV_AUTH="false",
               RCLONE_CONFIG_STRATUS_ACCESS_KEY_ID=args.access_key,
               RCLONE_CONFIG_STRATUS_SECRET_ACCESS_KEY=args.secret,
               RCLONE_CONFIG_STRATUS_ENDPOINT=args.endpoint,
               RCLONE_CONFIG_STRATUS_REGION="us-east-1",
               RCLONE_CONFIG_STRATUS_FORCE_PATH_STYLE="true",
               AWS_EC2_METADATA_DISABLED="true")
    # rclone's AWS SDK cannot use AWS_CA_BUNDLE with its own HTTP transport
    # ("LoadCustomCABundleError"); use rclone's --ca-cert instead.
    ca_bundle = env.pop("AWS_CA_BUNDLE", None)
    ca_args = ["--ca-cert", ca_bundle] if ca_bundle and args.endpoint.startswith("https:") else []
    bucket = "rclone-%s" % uuid.uuid4().hex[:12]
    src = os.path.join(tmp, "rclone-src")
    make_tree(src)
    remote = "stratus:%s/tree" % bucket

    def rc(*a, **kw):
        return run([rclone, "--retries", "1", "--low-level-retries", "1", *ca_args, *a], env=env, **kw)

    try:
        rc("mkdir", "stratus:%s" % bucket)
        # multipart for big.bin too: 5 MiB chunks above a 10 MiB cutoff
        rc("sync", "--s3-upload-cutoff", "10M", "--s3-chunk-size", "5M", src, remote)
        rc("check", src, remote)
        rc("check", "--download", src, remote)
        # change one file, delete one, add one; sync again; check again
        with open(os.path.join(src, "a.txt"), "wb") as f:
            f.write(b"changed\n")
        os.remove(os.path.join(src, "dir", "b.txt"))
        with open(os.path.join(src, "dir", "new.txt"), "wb") as f:
            f.write(b"new\n")
        rc("sync", src, remote)
        rc("check", src, remote)
        listed = rc("lsf", "-R", remote)
        if "dir/b.txt" in listed or "dir/new.txt" not in listed:
            raise Failed("rclone lsf after sync:\n%s" % listed)
        down = os.path.join(tmp, "rclone-down")
        rc("sync", remote, down)
        same_tree(src, down)
    finally:
        rc("purge", "stratus:%s" % bucket, check=False)


# --- s3cmd ----------------------------------------------------------------

def check_s3cmd(args, tmp):
    s3cmd = "/usr/bin/s3cmd"
    need(s3cmd, "s3cmd")
    u = urlparse(args.endpoint)
    cfg = os.path.join(tmp, "s3cmd.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join([
            "[default]",
            "access_key = %s" % args.access_key,
            "secret_key = %s" % args.secret,
            "host_base = %s" % u.netloc,
            "host_bucket = %s" % u.netloc,  # no %(bucket)s: path-style
            "use_https = %s" % ("True" if u.scheme == "https" else "False"),
            "signature_v2 = False",
            "bucket_location = us-east-1",
            "check_ssl_certificate = True",
            "guess_mime_type = True",
            "",
        ]))
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true")
    bucket = "s3cmd-%s" % uuid.uuid4().hex[:12]
    src = os.path.join(tmp, "s3cmd-src")
    make_tree(src)

    def s3(*a, **kw):
        return run([s3cmd, "-c", cfg, "--no-progress", *a], env=env, **kw)

    try:
        s3("mb", "s3://%s" % bucket)
        s3("put", os.path.join(src, "a.txt"), "s3://%s/a.txt" % bucket)
        s3("put", "--multipart-chunk-size-mb=5", os.path.join(src, "big.bin"), "s3://%s/big.bin" % bucket)
        s3("put", "--recursive", os.path.join(src, "dir"), "s3://%s/tree/" % bucket)
        ls = s3("ls", "s3://%s" % bucket)
        if "a.txt" not in ls or "big.bin" not in ls or "DIR" not in ls:
            raise Failed("s3cmd ls:\n%s" % ls)
        la = s3("ls", "--recursive", "s3://%s" % bucket)
        if "tree/dir/sub/c.bin" not in la and "tree/sub/c.bin" not in la:
            raise Failed("s3cmd ls --recursive:\n%s" % la)
        if bucket not in s3("ls"):
            raise Failed("s3cmd ls does not list the bucket")
        for name in ("a.txt", "big.bin"):
            out = os.path.join(tmp, "s3cmd-" + name)
            s3("get", "--force", "s3://%s/%s" % (bucket, name), out)
            if md5_file(out) != md5_file(os.path.join(src, name)):
                raise Failed("s3cmd get %s differs" % name)
        info = s3("info", "s3://%s/a.txt" % bucket)
        if md5_file(os.path.join(src, "a.txt")) not in info:
            raise Failed("s3cmd info shows no md5:\n%s" % info)
        s3("del", "s3://%s/a.txt" % bucket)
        if "a.txt" in s3("ls", "s3://%s" % bucket):
            raise Failed("a.txt still listed after del")
        s3("del", "--recursive", "--force", "s3://%s" % bucket)
        s3("rb", "s3://%s" % bucket)
    finally:
        s3("del", "--recursive", "--force", "s3://%s" % bucket, check=False)
        s3("rb", "s3://%s" % bucket, check=False)


# --- boto3 ----------------------------------------------------------------

def check_boto3(args, tmp):
    need(PYTHON, "python3")
    code, _, _ = run([PYTHON, "-c", "import boto3"], check=False)
    if code != 0:
        raise Failed("boto3 is not importable by %s; install it with: apt-get install -y python3-boto3" % PYTHON)
    r = subprocess.run([PYTHON, os.path.join(HERE, "boto3_checks.py"),
                        "--endpoint", args.endpoint,
                        "--access-key", args.access_key, "--secret", args.secret,
                        "--access-key-b", args.access_key_b, "--secret-b", args.secret_b],
                       capture_output=True, timeout=900)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    print(out)
    if r.returncode != 0:
        raise Failed("boto3 checks failed (see above)")


CLIENTS = {"aws": check_aws, "rclone": check_rclone, "s3cmd": check_s3cmd, "boto3": check_boto3}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--access-key-b", required=True)
    p.add_argument("--secret-b", required=True)
    p.add_argument("--aws-bin", default=AWS, help="aws cli to run (default %(default)s, Debian's awscli)")
    p.add_argument("--only", default=",".join(CLIENTS), help="comma-separated subset of %s" % ",".join(CLIENTS))
    args = p.parse_args()
    failed = []
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in CLIENTS:
            print("FAIL unknown client %r" % name)
            failed.append(name)
            continue
        tmp = tempfile.mkdtemp(prefix="stratus-s3-%s-" % name)
        try:
            CLIENTS[name](args, tmp)
            print("PASS %s" % name)
        except (Failed, subprocess.TimeoutExpired, OSError) as e:
            print("FAIL %s: %s" % (name, e))
            failed.append(name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
    if failed:
        print("FAILED: %s" % ", ".join(failed))
        sys.exit(1)
    print("all clients passed")


if __name__ == "__main__":
    main()
