#!/usr/bin/python3
"""Fills one bucket with many small objects through S3 (boto3), reporting
progress, then times listing one prefix (what issue 14's acceptance asks:
after 1M objects, the replica's RSS stays under 1 GiB and `aws s3 ls` of a
prefix answers as fast as with 1,000 objects).

Keys are `pN/objNNNNNNNN` (N = index mod --prefixes), 1 KiB each.

    stratus dev --nodes 6 &
    eval "$(stratus s3 keys create | grep '^ *export')"
    scripts/s3-fill.py --bucket acc --count 1000000 --pid $(pgrep -f 'stratus dev' | head -1)
"""

import argparse
import concurrent.futures
import os
import time

import boto3
from botocore.config import Config


def rss_mib(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:7480"))
    ap.add_argument("--bucket", default="acc")
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--start", type=int, default=0, help="first index (to resume)")
    ap.add_argument("--prefixes", type=int, default=10)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--pid", type=int, default=0, help="process whose RSS to report")
    ap.add_argument("--every", type=int, default=10_000, help="report every this many objects")
    args = ap.parse_args()
    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(10, args.parallel)),
    )
    try:
        s3.create_bucket(Bucket=args.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    body = os.urandom(1024)

    def put(i):
        s3.put_object(Bucket=args.bucket, Key=f"p{i % args.prefixes}/obj{i:08d}", Body=body)

    def list_prefix():
        t = time.perf_counter()
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix="p3/", PaginationConfig={"MaxItems": 1000}):
            n += len(page.get("Contents", []))
        return n, time.perf_counter() - t

    start = time.perf_counter()
    done = args.start
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as ex:
        while done < args.count:
            end = min(done + args.every, args.count)
            list(ex.map(put, range(done, end)))
            done = end
            n, secs = list_prefix()
            el = time.perf_counter() - start
            print(
                f"{done:>9} objects  {(done - args.start) / el:7.1f} puts/s  rss {rss_mib(args.pid)} MiB  "
                f"list p3/ (first {n} keys) {secs * 1000:.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
