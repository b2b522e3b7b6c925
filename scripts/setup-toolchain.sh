#!/usr/bin/env bash
# Installs what building and testing Stratus needs on a Debian machine.
# Sourced by scripts/dev and scripts/test; safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages: a C toolchain for crates that build C (ring), pkg-config.
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
# Real S3 clients for stratus-s3's client tests (they fail without them).
[ -x /usr/bin/aws ] || need_apt+=(awscli)
[ -x /usr/bin/s3cmd ] || need_apt+=(s3cmd)
[ -x /usr/bin/rclone ] || need_apt+=(rclone)
/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1 || need_apt+=(python3-boto3)
# Containers and images (issue 6): libcontainer links libseccomp; tests build
# images from busybox-static and nginx-light, mount flists with FUSE, and
# pull from a real registry (docker-registry, fed by skopeo, htpasswd auth).
[ -e /usr/include/seccomp.h ] || need_apt+=(libseccomp-dev)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
[ -x /bin/fusermount3 ] || need_apt+=(fuse3)
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
[ -x /usr/bin/skopeo ] || need_apt+=(skopeo)
[ -x /usr/bin/htpasswd ] || need_apt+=(apache2-utils)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# `stratus bench ingress` measures with wrk beside that nginx.
[ -x /usr/bin/wrk ] || need_apt+=(wrk)
# Networks (issue 17): the NAT lab of the tests builds network namespaces,
# veth pairs, a bridge and masquerading routers.
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need_apt+=(iproute2)
[ -x /usr/sbin/iptables ] || [ -x /sbin/iptables ] || need_apt+=(iptables)
# ...and the two-service app of the network tests runs Debian's redis-server
# (copied into a test image with its libraries; the host's own service is
# not wanted and is turned off below).
[ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
# A UDP service in a container (published UDP ports, crates/stratus-cli/tests/networks.rs).
[ -x /usr/bin/socat ] || need_apt+=(socat)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
  if [[ " ${need_apt[*]} " == *" redis-server "* ]]; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi

# Rust toolchain (1.95 or newer) with rustfmt and clippy.
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "==> installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
