#!/usr/bin/env bash
# Benchmarks with their reference measured in the same run. Needs what the
# test command installs (etcd-server, protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server protobuf-compiler >/dev/null
}
cargo bench -q -p tabby-agent --bench ipam
