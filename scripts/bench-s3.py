#!/usr/bin/python3
"""S3 throughput of an endpoint, with a real client (boto3).

PUT and GET of 4 KiB, 1 MiB and 64 MiB objects and small-object operations
per second, sequential and with --parallel requests in flight.

    stratus dev --nodes 6 &
    eval "$(stratus s3 keys create | grep '^ *export')"
    scripts/bench-s3.py --endpoint "$AWS_ENDPOINT_URL"

Compare with the data path's one-core limit from `stratus bench datapath`
measured in the same session, and with any other S3 store (docs/BENCHMARKS.md
has a run beside Garage).
"""

import argparse
import concurrent.futures
import os
import time
import uuid

import boto3
from botocore.config import Config


def client(endpoint, parallel):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            max_pool_connections=max(10, parallel),
            retries={"max_attempts": 1},
        ),
    )


def timed(fn, count, parallel):
    start = time.perf_counter()
    if parallel <= 1:
        for i in range(count):
            fn(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
            list(ex.map(fn, range(count)))
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:7480"))
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--small-count", type=int, default=500)
    args = ap.parse_args()
    s3 = client(args.endpoint, args.parallel)
    bucket = "bench-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    rows = []
    for label, size, count in [("4 KiB", 4 << 10, args.small_count), ("1 MiB", 1 << 20, 64), ("64 MiB", 64 << 20, 4)]:
        for parallel in (1, args.parallel):
            # Distinct random bodies: a store that dedupes must not get the
            # repeats for free.
            bodies = [os.urandom(size) for _ in range(count)]
            put = timed(
                lambda i: s3.put_object(Bucket=bucket, Key=f"{label}/{parallel}/{i}", Body=bodies[i]), count, parallel
            )
            get = timed(
                lambda i: s3.get_object(Bucket=bucket, Key=f"{label}/{parallel}/{i}")["Body"].read(), count, parallel
            )
            mb = size * count / 1e6
            rows.append((label, parallel, count, mb / put, count / put, mb / get, count / get))
    print(f"endpoint {args.endpoint}, boto3 {boto3.__version__}")
    print(f"{'object':>7} {'in flight':>9} {'count':>6} {'PUT MB/s':>9} {'PUT op/s':>9} {'GET MB/s':>9} {'GET op/s':>9}")
    for label, parallel, count, pmb, pop, gmb, gop in rows:
        print(f"{label:>7} {parallel:>9} {count:>6} {pmb:>9.1f} {pop:>9.1f} {gmb:>9.1f} {gop:>9.1f}")
    # Clean up.
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=bucket)


if __name__ == "__main__":
    main()
