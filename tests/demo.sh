#!/usr/bin/env bash
# The "main job" until the multi-node lab lands: build tabbyctl and drive the
# embedded datastore the way an operator drives calicoctl. Uses a throwaway
# store unless TABBY_DATASTORE is set.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null 2>&1 || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
}
cargo build -q --bin tabbyctl
ctl=target/debug/tabbyctl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DATASTORE_TYPE=sqlite TABBY_DATASTORE=${TABBY_DATASTORE:-$work/tabby.db}

run() { echo "\$ tabbyctl $*"; $ctl "$@"; echo; }
run apply -f tests/fixtures/calico-docs/ippools.yaml
run apply -f tests/fixtures/calico-docs/bgp.yaml
run get ippools -o wide
run get bgppeers
run get bgpconfig
run get ippool vxlan-pool -o yaml
cat > "$work/bad.yaml" <<'YAML'
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: overlapping}
spec: {cidr: 10.1.128.0/17, blockSize: 26}
YAML
echo "\$ tabbyctl apply -f bad.yaml   # overlaps my.ippool-1: rejected, nothing applied"
$ctl apply -f "$work/bad.yaml" || true
