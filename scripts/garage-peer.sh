#!/usr/bin/env bash
# The peer of `scripts/bench-s3.py`: three local Garage nodes keeping three
# copies (lmdb metadata), the layout issue 19 compares against.
#
#   scripts/garage-peer.sh DIR [--durable]     # starts it, prints the env to use
#   scripts/garage-peer.sh DIR --stop          # stops it
#
# Garage itself: `cargo install garage --version 2.5.0 --locked` (put it on
# PATH or set GARAGE=/path/to/garage).
#
# Garage acknowledges a write before its data and metadata reach the disk
# (`data_fsync` and `metadata_fsync` are off by default); Stratus acknowledges
# a PUT only once every piece is fsynced. `--durable` turns both on, so the
# two are compared at the same guarantee; without it Garage runs as shipped.
set -euo pipefail

dir=${1:?usage: garage-peer.sh DIR [--durable|--stop]}
mode=${2:-}
garage=${GARAGE:-garage}

if [[ $mode == --stop ]]; then
    for i in 1 2 3; do
        if [[ -f $dir/n$i.pid ]]; then
            kill "$(cat "$dir/n$i.pid")" 2>/dev/null || true
            rm -f "$dir/n$i.pid"
        fi
    done
    exit 0
fi
command -v "$garage" >/dev/null || {
    echo "garage not found: cargo install garage --version 2.5.0 --locked, or set GARAGE" >&2
    exit 1
}
fsync=false
[[ $mode == --durable ]] && fsync=true

mkdir -p "$dir"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
for i in 1 2 3; do
    mkdir -p "$dir/n$i/meta" "$dir/n$i/data"
    cat >"$dir/n$i.toml" <<EOF
metadata_dir = "$dir/n$i/meta"
data_dir = "$dir/n$i/data"
db_engine = "lmdb"
replication_factor = 3
metadata_fsync = $fsync
data_fsync = $fsync
rpc_bind_addr = "127.0.0.1:$((3900 + i * 10 + 1))"
rpc_public_addr = "127.0.0.1:$((3900 + i * 10 + 1))"
rpc_secret = "$secret"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$((3900 + i * 10))"
root_domain = ".s3.garage.localhost"
EOF
    "$garage" -c "$dir/n$i.toml" server >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
done

g() { "$garage" -c "$dir/n1.toml" "$@"; }
for _ in $(seq 50); do
    g status >/dev/null 2>&1 && break
    sleep 0.2
done
ids=()
for i in 1 2 3; do
    id=
    for _ in $(seq 50); do
        id=$("$garage" -c "$dir/n$i.toml" node id -q 2>/dev/null) && break
        id=
        sleep 0.2
    done
    [[ -n $id ]] || {
        echo "garage node $i did not answer in 10 s: see $dir/n$i.log" >&2
        exit 1
    }
    ids+=("$id")
    [[ $i == 1 ]] || g node connect "$id" >/dev/null
done
for id in "${ids[@]}"; do
    g layout assign -z dc1 -c 10G "${id%@*}" >/dev/null
done
g layout apply --version 1 >/dev/null
key=$(g key create bench)
g key allow --create-bucket bench >/dev/null
echo "# Garage (data_fsync = metadata_fsync = $fsync), S3 on http://127.0.0.1:3910"
echo "export AWS_ACCESS_KEY_ID=$(awk '/Key ID/ {print $NF}' <<<"$key")"
echo "export AWS_SECRET_ACCESS_KEY=$(awk '/Secret key/ {print $NF}' <<<"$key")"
echo "export AWS_ENDPOINT_URL=http://127.0.0.1:3910"
