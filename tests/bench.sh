#!/usr/bin/env bash
# Every benchmark, each printing its figures next to a reference measured in
# the same run: IPAM assignment against raw etcd CAS transactions (one
# assigner, then 8 assigner processes), the dataplane's route writer against
# `ip -batch`, the BGP speaker against BIRD 2 and GoBGP, and pod-route
# convergence in an N-node lab against the old 100 ms SQLite poll. As root
# (network namespaces). Installs what it needs.
#
#   bash tests/bench.sh            # full sizes
#   QUICK=1 bash tests/bench.sh    # smaller sizes (the BGP part < 1 min,
#                                  # convergence 10 nodes x 50 claims)
#
# Every bench also appends its figures as JSON lines to $BENCH_RESULTS
# (target/bench/results.jsonl, fresh each run); at the end, even after a
# bench failed, tests/bench/report turns them into target/bench/report.md
# with convergence.svg and ratios.svg beside it, naming what did not run.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
# Absolute: cargo bench runs each bench binary in its own package's folder.
case $TARGET in /*) ;; *) TARGET=$PWD/$TARGET ;; esac
export BENCH_RESULTS=$TARGET/bench/results.jsonl
mkdir -p "$TARGET/bench"
: >"$BENCH_RESULTS"
report() {
  local rc=$?
  echo "== report"
  if cargo run -q -p tabby-bench-report -- "$BENCH_RESULTS" "$TARGET/bench"; then
    echo "benchmark report: $TARGET/bench/report.md (results: $BENCH_RESULTS)"
  fi
  exit "$rc"
}
trap report EXIT
need=()
for pair in etcd:etcd-server protoc:protobuf-compiler ip:iproute2 \
  bird:bird2 gobgpd:gobgpd; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -z "${QUICK:-}" ] || export IPAM_BENCH_N=${IPAM_BENCH_N:-300}
echo "== IPAM assignment (etcd, SQLite) vs raw etcd CAS"
cargo bench -q -p tabby-agent --bench ipam
echo "== dataplane: 100k routes, Tabby's netlink writer and reconciler (first, no-op, full-dump passes) vs ip -batch"
cargo bench -q -p tabby-felix-lite --bench routes
echo "== BGP: replay feeders -> system under test -> counting monitor, Tabby vs BIRD 2 vs GoBGP"
bash tests/bench-bgp.sh
echo "== SQLite watch: another process's write -> the watcher's event, wake-up vs 100 ms poll"
cargo run -q -p tabby-bench-converge --bin bench-watch -- "${WATCH_WRITES:-200}"
echo "== pod-route convergence: CNI ADD on node-1 -> the route in every other node's kernel"
bash tests/bench-converge.sh
echo "== idle cost per tabby-node: 49 mesh peers + 10k routes from a BIRD peer, RSS and CPU over 60 s"
bash tests/bench-idle.sh
