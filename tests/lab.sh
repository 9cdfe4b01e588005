#!/usr/bin/env bash
# The README's main job: build Tabby, bring up a 3-node lab on 2 subnets
# with 2 pods per node, show `tabbyctl node status` on every node, run
# `tabbyctl node doctor` on all of them and check that every pod reaches
# every other. The lab is removed on exit unless
# KEEP=1 (then: target/debug/tabbyctl lab down --name "$LAB_NAME").
#
# Root on Debian 12. Overrides: LAB_NAME (default lab), NODES, SUBNETS,
# PODS_PER_NODE, ENCAPSULATION (None|VXLAN|VXLANCrossSubnet), DATASTORE
# (sqlite|etcdv3|kubernetes: the last on the test-only API stand-in),
# TOPOLOGY (mesh|rr|tor: rr makes the first node of each subnet a route
# reflector and turns the mesh off; tor is AS per rack with a BIRD 2 ToR per
# subnet, mesh off), IP_FAMILY (ipv4|ipv6|dual: ipv6 and dual give every
# node subnet an IPv6 /64 and the pods IPv6 addresses; mesh only).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the lab runs, each checked by the command it provides: iproute2
# (namespaces, veth, bridges), iputils-ping (lab check), nftables (the
# dataplane's rules), protobuf-compiler (etcd-client's build script) and
# etcd-server for DATASTORE=etcdv3.
need=()
pairs=(ip:iproute2 bridge:iproute2 ping:iputils-ping nft:nftables protoc:protobuf-compiler)
[ "${DATASTORE:-sqlite}" = etcdv3 ] && pairs+=(etcd:etcd-server)
[ "${TOPOLOGY:-mesh}" = tor ] && pairs+=(bird:bird2 birdc:bird2)
for pair in "${pairs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${DATASTORE:-sqlite}" = etcdv3 ]; then
  # The lab starts its own etcd inside its fabric namespace.
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi

cargo build --workspace
# Absolute: node doctor's --exec runs it from another directory.
tabbyctl=$(realpath -m "${CARGO_TARGET_DIR:-target}/debug/tabbyctl")
name=${LAB_NAME:-lab}

cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: lab '$name' left running; remove it with: $tabbyctl lab down --name $name"
  else
    "$tabbyctl" lab down --name "$name"
  fi
}
# A lab of the same name left by an earlier KEEP=1 or interrupted run.
"$tabbyctl" lab down --name "$name" >/dev/null
trap cleanup EXIT

"$tabbyctl" lab up --name "$name" \
  --nodes "${NODES:-3}" --subnets "${SUBNETS:-2}" --pods-per-node "${PODS_PER_NODE:-2}" \
  ${ENCAPSULATION:+--encapsulation "$ENCAPSULATION"} --datastore "${DATASTORE:-sqlite}" \
  --topology "${TOPOLOGY:-mesh}" --ip-family "${IP_FAMILY:-ipv4}"

# BGP sessions need a connect retry or two (1 s in the lab) and routes a
# moment to follow: give the lab up to 20 s to converge before judging.
# A deadline, not a count: a check with unreachable pairs takes seconds.
deadline=$((SECONDS + 20))
while [ "$SECONDS" -lt "$deadline" ]; do
  "$tabbyctl" lab check --name "$name" >/dev/null 2>&1 && break
  sleep 0.5
done

"$tabbyctl" lab status --name "$name"
for run_dir in $("$tabbyctl" lab status --name "$name" -o json |
  sed -n 's/.*"run_dir": "\(.*\)".*/\1/p'); do
  node=$(basename "$(dirname "$run_dir")")
  echo
  echo "=== $node: tabbyctl node status"
  "$tabbyctl" lab exec --name "$name" "$node" -- tabbyctl node status
done
echo
# Every node's doctor, collected through lab exec: a healthy lab has no
# findings, and a non-zero exit here names what is wrong.
echo "=== tabbyctl node doctor --all-nodes"
"$tabbyctl" lab exec --name "$name" fabric -- tabbyctl node doctor --all-nodes \
  --exec "$tabbyctl lab --name $name exec {node} --"
echo
echo "=== tabbyctl lab check"
rc=0
out=$("$tabbyctl" lab check --name "$name" 2>&1) || rc=$?
echo "$out"
echo
# One line per family the lab has (IPv4, IPv6), the exit status is check's.
echo "=== summary (ip family ${IP_FAMILY:-ipv4})"
grep -E '^IPv[46]: ' <<<"$out" || true
exit "$rc"
