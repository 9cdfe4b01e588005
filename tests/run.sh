#!/usr/bin/env bash
# The test command (README "Run the tests"; .ci/run calls exactly this).
# On a fresh Debian 12 machine as root it installs what the tests need, then
# checks formatting and lints and runs every test once from one build.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests run for real, each checked by the command it provides:
# etcd-server (etcdv3 tests start a real etcd on loopback), protobuf-compiler
# (etcd-client's build script runs protoc; Tabby's own protos use protox),
# bird2 and gobgpd (BGP interop peers), nftables, ethtool, iproute2 and
# iputils-ping (dataplane tests in network namespaces read the kernel back
# with the tools an operator uses), containerd and busybox-static (the CNI
# plugin is run by a real runtime on a busybox rootfs), python3 (the
# import-cycle check), kubernetes-client (kubectl is run against the
# Kubernetes API stand-in, tests/kube-standin), iptables (node doctor's
# iptables-legacy FORWARD check is tested against a real legacy table).
need=()
for pair in etcd:etcd-server protoc:protobuf-compiler bird:bird2 birdc:bird2 \
  gobgpd:gobgpd gobgp:gobgpd nft:nftables ethtool:ethtool ip:iproute2 \
  bridge:iproute2 ping:iputils-ping containerd:containerd ctr:containerd \
  python3:python3 kubectl:kubernetes-client iptables-legacy:iptables; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# The container rootfs gets a copy of /usr/bin/busybox, so it must be the
# static build (Debian's plain busybox package is dynamically linked).
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian packages enable and start their daemons; the tests start their
# own inside network namespaces, so the system copies only get in the way.
for unit in bird gobgpd etcd containerd; do
  systemctl disable --now "$unit" >/dev/null 2>&1 || true
done
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

# House rules a reviewer would otherwise check by hand: no module import
# cycles inside a crate, and no source file a person can't read in one go.
python3 tests/import-cycles.py
big=$(find proto bfd bgp ipam felix-lite agent tests/kube-standin -name '*.rs' -not -path '*/target/*' -exec awk 'END { if (NR > 500) print FILENAME ": " NR " lines" }' {} \;)
if [ -n "$big" ]; then
  echo "source files over 500 lines (split them by responsibility):"
  echo "$big"
  exit 1
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# cargo prints one "test result" per test binary, the last ones often for
# crates with no doc-tests; the total is what a reader (and CI) wants.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
