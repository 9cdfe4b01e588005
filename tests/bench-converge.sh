#!/usr/bin/env bash
# Pod-route convergence (issue 16 §1): an N-node lab (mesh, one subnet, no
# encapsulation); node-1 claims fresh /31 blocks one after another through
# the CNI plugin (a timed CNI ADD each, then an untimed one filling the
# block), and every other node's kernel is watched
# through a netlink socket in its namespace. Prints p50/p99/max from the
# start of the CNI ADD to the route (proto 81) in each other node, over all
# (claim, node) pairs, per datastore; the "poll 100ms" row restores the old
# SQLite watch poll as the reference, in the same run. As root.
#
#   bash tests/bench-converge.sh            # 50 nodes, 200 claims
#   QUICK=1 bash tests/bench-converge.sh    # 10 nodes, 50 claims
#   NODES=20 CLAIMS=100 DATASTORES="sqlite" bash tests/bench-converge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${QUICK:-}" ]; then nodes=${NODES:-10} claims=${CLAIMS:-50}
else nodes=${NODES:-50} claims=${CLAIMS:-200}; fi
datastores=${DATASTORES:-"sqlite sqlite-poll etcdv3"}
target=${CARGO_TARGET_DIR:-target}
cargo build -q -p tabby-agent --bins -p tabby-bench-converge
bin=$(cd "$target/debug" && pwd)

# Host-wide limits a big lab needs, raised only (never lowered): the shared
# neighbour table (49 VTEP/ARP entries per node) and one inotify instance
# per tabby-node (SQLite watch wake-up).
raise() { # sysctl minimum
  local cur; cur=$(sysctl -n "$1")
  [ "$cur" -ge "$2" ] || sysctl -q -w "$1=$2"
}
raise net.ipv4.neigh.default.gc_thresh1 4096
raise net.ipv4.neigh.default.gc_thresh2 8192
raise net.ipv4.neigh.default.gc_thresh3 16384
raise fs.inotify.max_user_instances 1024

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

echo "pod-route convergence: $nodes nodes per lab, mesh, $claims claims on node-1, alternating between the labs (CNI ADD -> route in every other node's kernel)"
dirs=() rows=()
for ds in $datastores; do
  name="bc$$${ds//[^a-z0-9]/}"
  labs+=("$name")
  extra=() kind=$ds label="$ds wake-up"
  case $ds in
    sqlite-poll) kind=sqlite extra=(TABBY_SQLITE_WATCH_POLL_MS=100) label="sqlite poll 100ms (ref)" ;;
    etcdv3) label="etcd watch" ;;
  esac
  env "${extra[@]}" "$bin/tabbyctl" lab up --name "$name" --nodes "$nodes" --subnets 1 \
    --pods-per-node 0 --encapsulation None --datastore "$kind" >/dev/null
  "$bin/tabbyctl" lab exec --name "$name" node-1 -- "$bin/tabbyctl" apply -f "$pool" >/dev/null
  dirs+=(--lab-dir "/var/run/tabby-lab/$name") rows+=(--label "$label")
done
sleep 3 # until every node's cache holds the pool (100 ms polls in the reference row)
# All labs run at once and the claims alternate between them, so each row
# sees the same background load (a shared 2-core machine varies by 2x
# within a minute).
"$bin/bench-converge" "${dirs[@]}" "${rows[@]}" --claims "$claims" --plugin "$bin/tabby"
