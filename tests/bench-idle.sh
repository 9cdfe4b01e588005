#!/usr/bin/env bash
# Idle cost per tabby-node (issue 16 §2): an N-node mesh lab (one subnet, no
# encapsulation) plus one external BGP peer, a real BIRD 2 in the lab's
# fabric namespace (the nodes' router address 172.31.1.1) peered with every
# node through one global BGPPeer, announcing R static prefixes.
#
# Two idle windows of S seconds, read from /proc by `bench-idle sample`:
#   before: the mesh (N-1 peers per node) and the BIRD session, no routes —
#           the same-run reference;
#   after:  BIRD announced the R prefixes and every node has all of them in
#           its kernel (proto 81: they are inside the IP pool, where
#           tabby-node routes what a non-mesh peer teaches natively via its
#           next hop; prefixes outside every pool stay in its BGP RIB only).
# Per tabby-node: VmRSS at the end, VmHWM, CPU % of a core (utime+stime
# delta ÷ clock ticks ÷ wall time), wake-ups/s; median / p90 / max against
# the goals (RSS < 30 MB, CPU < 0.5 %), next to the reference window; BIRD's
# own figures (N sessions, R routes) over the same windows; the whole lab's
# CPU. Release build (what a cluster runs). As root.
#
# What bounds the figures (measured 2026-12-02, 50 nodes, 10k routes):
# - CPU: until the run loop's 1 s ticker stopped recalculating an idle
#   node's routes (`routes_bgp::clock_matters`) that recalculation was
#   ~80% of it (perf: routes::calculate, IpNet::contains, malloc):
#   1.9 % -> 0.55 % of a core, 0.45 % without the routes. What is left is
#   mostly the sessions: 49 mesh peers at the lab's 9 s hold time send and
#   receive a keepalive every 3 s each (~100 wake-ups/s).
# - RSS: ~17 MB of it is the binary's code (RssFile, shared clean pages;
#   24 MB of text), ~9 MB anonymous without the routes, ~+0.95 KB per
#   learned route (held by the speaker's RIB, the run loop's learned map
#   and inputs, the status rows, felix-lite's desired and kernel models;
#   ~1.5 KB before tabby-node trimmed its heap after a change).
#
#   bash tests/bench-idle.sh              # 50 nodes, 10k routes, 60 s windows
#   QUICK=1 bash tests/bench-idle.sh      # 10 nodes, 1k routes, 20 s
#   NODES=20 ROUTES=5000 SECONDS_IDLE=30 bash tests/bench-idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${QUICK:-}" ]; then
  nodes=${NODES:-10} routes=${ROUTES:-1000} window=${SECONDS_IDLE:-20}
else
  nodes=${NODES:-50} routes=${ROUTES:-10000} window=${SECONDS_IDLE:-60}
fi
# The prefixes are /30s of the lab's pool 172.30.0.0/16 (16384 of them).
[ "$routes" -le 16384 ] || { echo "ROUTES must be <= 16384" >&2; exit 2; }
command -v bird >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bird2 >/dev/null
}
systemctl stop bird >/dev/null 2>&1 || true

target=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p tabby-agent --bins -p tabby-bench-converge --bin bench-idle
bin=$(cd "$target/release" && pwd)

# The host-wide limits a big lab needs (the shared neighbour tables,
# inotify instances) are raised by `lab up` itself for its size.

name="bi$$"
dir=/var/run/tabby-lab/$name
work=$(mktemp -d)
bird_pid=
cleanup() {
  [ -z "$bird_pid" ] || kill "$bird_pid" 2>/dev/null || true
  "$bin/tabbyctl" lab down --name "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "idle cost: $nodes-node mesh lab + 1 BIRD 2 peer with $routes prefixes; ${window} s idle windows before and after the routes"
"$bin/tabbyctl" lab up --name "$name" --nodes "$nodes" --subnets 1 \
  --pods-per-node 0 --encapsulation None >"$work/lab-up.log" ||
  { tail -20 "$work/lab-up.log"; exit 1; }
"$bin/bench-idle" nodes --lab-dir "$dir" >"$work/nodes"
fabric=${name}_fabric
node1_ns=$(awk 'NR == 1 {print $2}' "$work/nodes")
router=172.31.1.1

# wait_until SECONDS WHAT COMMAND...: polls every 2 s.
wait_until() {
  local limit=$1 what=$2 t0=$SECONDS; shift 2
  until "$@"; do
    if ((SECONDS - t0 > limit)); then
      echo "timed out after ${limit} s waiting for $what" >&2
      exit 1
    fi
    sleep 2
  done
  echo "  $what after $((SECONDS - t0)) s"
}
# Every node holds one block (its VXLAN tunnel address: the fallback is
# on), so node-1 knows them all once it has one route per node.
blocks_known() { [ "$(ip -n "$node1_ns" route show proto 81 | wc -l)" -ge "$nodes" ]; }
wait_until 120 "every node's block in node-1's kernel" blocks_known

# BIRD: one session per node (AS 64513 against the nodes' default 64512),
# the prefixes in a static protocol that starts disabled, so the "before"
# window has the sessions without the routes. No kernel protocol: the
# fabric's own table stays as the lab made it.
{
  echo "router id $router;"
  echo "log \"$work/bird.log\" all;"
  echo "protocol device { }"
  echo "protocol static idle_routes {"
  echo "  disabled; ipv4;"
  # /30s of the pool outside every block the nodes hold (tabby-node
  # leaves a learned prefix that overlaps a known block to the block's
  # own rules): the blocks are node-1's proto-81 routes before announcing.
  ip -n "$node1_ns" route show proto 81 | awk -v want="$routes" -v n=0 '
    function ip2n(a,  o) { split(a, o, "."); return ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4] }
    { split($1 == "blackhole" ? $2 : $1, c, "/"); if (c[2] == "") c[2] = 32
      lo[n] = ip2n(c[1]); hi[n] = lo[n] + 2 ^ (32 - c[2]) - 1; n++ }
    END {
      base = ip2n("172.30.0.0")
      for (i = 0; i < 16384 && made < want; i++) {
        a = base + i * 4; clash = 0
        for (j = 0; j < n; j++) if (a <= hi[j] && a + 3 >= lo[j]) { clash = 1; break }
        if (clash) continue
        printf "  route 172.30.%d.%d/30 blackhole;\n", int(i / 64), (i % 64) * 4
        made++
      }
    }'
  echo "}"
  echo "template bgp node {"
  echo "  local $router as 64513;"
  echo "  ipv4 { import none; export where proto = \"idle_routes\"; };"
  echo "}"
  while read -r n _ addr _; do
    echo "protocol bgp ${n//-/_} from node { neighbor $addr as 64512; }"
  done <"$work/nodes"
} >"$work/bird.conf"
ip netns exec "$fabric" bird -f -c "$work/bird.conf" -s "$work/bird.ctl" \
  >"$work/bird.out" 2>&1 &
bird_pid=$!
birdc() { ip netns exec "$fabric" birdc -s "$work/bird.ctl" "$@"; }
for _ in $(seq 50); do birdc show status >/dev/null 2>&1 && break; sleep 0.2; done

cat >"$work/peer.yaml" <<YAML
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bench-idle-external
spec:
  peerIP: $router
  asNumber: 64513
YAML
"$bin/tabbyctl" lab exec --name "$name" node-1 -- "$bin/tabbyctl" apply -f "$work/peer.yaml" >/dev/null

established() { [ "$(birdc show protocols | grep -c Established)" -ge "$nodes" ]; }
wait_until 120 "every node's session with BIRD Established" established

# Routes in every node's kernel; the lowest count is kept for the message.
all_routes() {
  local least=$routes c
  while read -r _ ns _ _; do
    c=$(ip -n "$ns" route show proto 81 | grep -c '/30 ' || true)
    ((c >= least)) || least=$c
  done <"$work/nodes"
  low=$least
  ((least >= routes))
}

sleep 5 # the sessions' first keepalives and the status snapshots settle
echo "  window 1 (${window} s): mesh + BIRD session, no routes"
"$bin/bench-idle" sample --lab-dir "$dir" --bird-pid "$bird_pid" --seconds "$window" --out "$work/before.json"
birdc enable idle_routes >/dev/null
low=0
wait_until 600 "$routes routes (proto 81) in all $nodes nodes' kernels" all_routes
sleep 10 # past the last UPDATE's processing and the dataplane's pass
echo "  window 2 (${window} s): the same + $routes routes in every node"
"$bin/bench-idle" sample --lab-dir "$dir" --bird-pid "$bird_pid" --seconds "$window" --out "$work/after.json"
all_routes || { echo "a node lost routes during the window (lowest count $low)" >&2; exit 1; }
"$bin/bench-idle" report --before "$work/before.json" --after "$work/after.json" --routes "$routes"
[ -z "${KEEP_WINDOWS:-}" ] || cp "$work"/before.json "$work"/after.json "$KEEP_WINDOWS"/
