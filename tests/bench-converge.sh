#!/usr/bin/env bash
# Pod-route convergence (issue 16 §1): N-node labs (one subnet, no
# encapsulation), full mesh or route reflectors; the last node claims fresh
# /31 blocks one after another through the CNI plugin (a timed CNI ADD
# each, then an untimed one filling the block), and every other node's
# kernel is watched through a netlink socket in its namespace, and the
# lab's datastore for the claim (the block's affinity confirmed). Prints
# p50/p99/max from the claim to the route (proto 81) in each other node,
# over all (claim, node) pairs, per row, and the same from the start of
# the CNI ADD, and each other node's CPU per claim (utime+stime). The
# "poll 100ms" row restores the old SQLite watch poll as the reference,
# in the same run. Release builds (as the other benches).
# Rows run two labs at a time (BATCH=1: one), their claims alternating, so
# both see the same background load. As root.
#
#   bash tests/bench-converge.sh            # 50 nodes, 200 claims
#   QUICK=1 bash tests/bench-converge.sh    # 10 nodes, 50 claims
#   NODES=20 CLAIMS=100 ROWS="mesh:sqlite rr:etcdv3" bash tests/bench-converge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${QUICK:-}" ]; then nodes=${NODES:-10} claims=${CLAIMS:-50}
else nodes=${NODES:-50} claims=${CLAIMS:-200}; fi
rows=${ROWS:-"mesh:sqlite mesh:sqlite-poll mesh:etcdv3 rr:sqlite rr:etcdv3"}
target=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p tabby-agent --bins -p tabby-bench-converge
bin=$(cd "$target/release" && pwd)

# The host-wide limits a big lab needs (the shared neighbour tables,
# inotify instances) are raised by `lab up` itself for its size.

pool=$(mktemp)
labs=()
cleanup() {
  for l in "${labs[@]}"; do "$bin/tabbyctl" lab down --name "$l" >/dev/null 2>&1 || true; done
  rm -f "$pool"
}
trap cleanup EXIT
cat >"$pool" <<'YAML'
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: bench-converge
spec:
  cidr: 10.96.0.0/16
  blockSize: 31
  ipipMode: Never
  vxlanMode: Never
  natOutgoing: false
  nodeSelector: all()
---
# A fresh block per timed pod: past Calico's default of 20 blocks per host.
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata:
  name: default
spec:
  strictAffinity: false
  autoAllocateBlocks: true
  maxBlocksPerHost: 100000
YAML

echo "pod-route convergence: $nodes nodes per lab, $claims claims on node-$nodes (CNI ADD -> route in every other node's kernel)"
# Seconds (0.1 s steps, polled: a figure of seconds) from now until every
# node of lab $1 routes to each other node's block (one pod each):
# nodes-1 proto 81 routes via a gateway.
ready() {
  local t0 ns n ok start=$SECONDS
  t0=$(date +%s.%N)
  while :; do
    ok=1
    for ((n = 1; n <= nodes; n++)); do
      ns="${1}_node-$n"
      [ "$(ip -n "$ns" route show proto 81 | grep -c ' via ')" -ge $((nodes - 1)) ] || { ok=0; break; }
    done
    [ $ok = 1 ] && break
    [ $((SECONDS - start)) -lt 600 ] || { echo "timeout"; return; }
    sleep 0.1
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
# One batch: its labs up, their claims alternating, then down.
batch() {
  local dirs=() labels=() row topo ds name extra kind label secs
  for row in "$@"; do
    topo=${row%%:*} ds=${row#*:}
    name="bc$$${topo}${ds//[^a-z0-9]/}"
    labs+=("$name")
    extra=() kind=$ds label="$topo, $ds wake-up"
    case $ds in
      sqlite-poll) kind=sqlite extra=(TABBY_SQLITE_WATCH_POLL_MS=100) label="$topo, sqlite poll 100ms (ref)" ;;
      etcdv3) label="$topo, etcd watch" ;;
    esac
    env "${extra[@]}" "$bin/tabbyctl" lab up --name "$name" --nodes "$nodes" --subnets 1 \
      --pods-per-node 1 --encapsulation None --datastore "$kind" --topology "$topo" >/dev/null
    secs=$(ready "$name")
    echo "$label: every node has every other node's block route $secs s after lab up returned"
    if [ -n "${BENCH_RESULTS:-}" ] && [ "$secs" != timeout ]; then
      printf '{"section":"1","bench":"converge","case":"%s, %s nodes: lab up returned -> every remote block route in every kernel","metric":"time","unit":"s","value":%s,"reference":null,"reference_value":null,"ratio":null,"goal":null,"met":null}\n' \
        "$label" "$nodes" "$secs" >>"$BENCH_RESULTS"
    fi
    "$bin/tabbyctl" lab exec --name "$name" node-1 -- "$bin/tabbyctl" apply -f "$pool" >/dev/null
    dirs+=(--lab-dir "/var/run/tabby-lab/$name") labels+=(--label "$label")
  done
  sleep 3 # until every node's cache holds the pool (100 ms polls in the reference row)
  # With route reflectors node-1 is the reflector: the last node is a client.
  "$bin/bench-converge" "${dirs[@]}" "${labels[@]}" --claims "$claims" \
    --node "node-$nodes" --plugin "$bin/tabby"
  for name in "${labs[@]}"; do "$bin/tabbyctl" lab down --name "$name" >/dev/null 2>&1 || true; done
  labs=()
}
set -- $rows
# BATCH=1: one lab at a time (at 50 nodes two labs are 100 tabby-nodes on
# this machine's 2 cores).
per=${BATCH:-2}
while [ $# -gt 0 ]; do
  if [ "$per" -ge 2 ] && [ $# -ge 2 ]; then batch "$1" "$2"; shift 2; else batch "$1"; shift; fi
done
