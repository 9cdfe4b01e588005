#!/usr/bin/env bash
# BGP speaker benchmark (issue 16 §4): replay feeders -> system under test
# (SUT) -> one counting monitor, SUT ∈ {Tabby standalone (`tabby-node
# bgp`), BIRD 2, GoBGP}, with the same feeders and monitor, in one run.
#
#   bash tests/bench-bgp.sh              # full sizes (below)
#   QUICK=1 bash tests/bench-bgp.sh      # small sizes, < 1 min
#   SUTS="tabby bird" REPEAT=3 SINGLE="100000" bash tests/bench-bgp.sh
#
# Cases (each its own table):
#   single  1 feeder × N prefixes                 (SINGLE, default 100k 1M)
#   multi   F feeders × N prefixes, as bgperf2     (MULTI="F N", 10 × 100k)
#   churn   1 feeder: load N, then withdraw all and announce all again with
#           a new community; only the second phase is timed (CHURN, 100k)
#
# Method, and why:
# - The feeder (tests/bench/bgp-tools, bgp-feeder) pre-encodes its UPDATEs
#   with tabby-bgp's wire encoder, packed full like BIRD's (~800 /32s per
#   4 KB message), does the handshake, and on a go signal writes them at
#   full speed, then an End-of-RIB. The monitor (bgp-monitor) counts the
#   NLRI it receives until every prefix is present with the phase's marker
#   community. The old BIRD feeder and monitor bounded every SUT (Tabby
#   and BIRD landed within 0.04-0.4 s of the direct row); these tools are
#   many times faster than any SUT, which the "direct" row (feeders ->
#   monitor, no SUT) shows.
# - The clock runs from the first feeder starting to write (all feeders are
#   Established and released together) to the monitor holding everything:
#   both are timestamps the tools print, no polling in the measurement.
# - CPU s = the SUT's utime+stime over the timed phase (/proc/PID/stat, read
#   by the script just before the go signal and by the monitor the moment
#   it completes): stable on a noisy shared machine, where wall time is
#   not. RSS = the SUT's VmHWM at the end of the run.
# - Everything is eBGP (feeders AS 65001, SUT 65002, monitor 65003), every
#   SUT with its default export (so in the multi case each SUT also sends
#   every feeder's routes to the other feeders, which drain them).
# - Reruns vary by ~10% in time; REPEAT=3 keeps the fastest run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ -n "${QUICK:-}" ]; then
  SINGLE=${SINGLE:-20000} MULTI=${MULTI:-"2 10000"} CHURN=${CHURN:-20000}
fi
SINGLE=${SINGLE-"100000 1000000"}
MULTI=${MULTI-"10 100000"}
CHURN=${CHURN-100000}
SUTS=${SUTS:-"tabby bird gobgp"}
REPEAT=${REPEAT:-1}
TIMEOUT=${TIMEOUT:-300}

command -v bird >/dev/null && command -v gobgpd >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bird2 gobgpd >/dev/null
}
# The daemon packages enable system-wide services; ours run in namespaces.
systemctl stop bird gobgpd >/dev/null 2>&1 || true

# Two builds: with --bin, cargo would build only tabby-node of both packages.
cargo build -q --release -p tabby-agent --bin tabby-node
cargo build -q --release -p tabby-bench-bgp
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
TABBY=$BIN/tabby-node FEEDER=$BIN/bgp-feeder MONITOR=$BIN/bgp-monitor

ID=$$
NS_F=bbf-$ID NS_S=bbs-$ID NS_M=bbm-$ID
WORK=$(mktemp -d /tmp/bench-bgp.XXXXXX)
PIDS=()

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_all
  for ns in "$NS_F" "$NS_S" "$NS_M"; do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

source "$ROOT/tests/bench/bgp/configs.sh"

# Feeders 10.201.1.11+ -- 10.201.1.2 SUT 10.201.2.1 -- 10.201.2.2 monitor;
# feeders 10.201.3.11+ -- 10.201.3.2 monitor for the direct row.
MAXF=1
[ -z "$MULTI" ] || MAXF=${MULTI%% *}
for ns in "$NS_F" "$NS_S" "$NS_M"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
link() { # ns1 ns2 addr2 tag
  ip link add "v$4a$ID" netns "$1" type veth peer name "v$4b$ID" netns "$2"
  ip -n "$2" addr add "$3/24" dev "v$4b$ID"
  ip -n "$1" link set "v$4a$ID" up
  ip -n "$2" link set "v$4b$ID" up
}
link "$NS_F" "$NS_S" 10.201.1.2 fs
link "$NS_S" "$NS_M" 10.201.2.2 sm
ip -n "$NS_S" addr add 10.201.2.1/24 dev "vsma$ID"
link "$NS_F" "$NS_M" 10.201.3.2 fm
for i in $(seq 0 $((MAXF - 1))); do
  ip -n "$NS_F" addr add "$(feeder_addr 1 "$i")/24" dev "vfsa$ID"
  ip -n "$NS_F" addr add "$(feeder_addr 3 "$i")/24" dev "vfma$ID"
done

now() { echo "${EPOCHREALTIME/,/.}"; }
cpu_of() { # pid -> utime+stime seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

wait_for() { # description seconds command...
  local what=$1 limit=$2 t0
  shift 2
  t0=$(now)
  until "$@"; do
    if awk -v a="$(now)" -v b="$t0" -v l="$limit" 'BEGIN{exit !(a-b>l)}'; then
      echo "timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.02
  done
}
all_ready() { # dir feeders
  local i
  [ -e "$1/monitor.ready" ] || return 1
  for i in $(seq 0 $(($2 - 1))); do [ -e "$1/feeder$i.ready" ] || return 1; done
}
phase_done() { grep -q "^phase $2 done" "$1/monitor.out"; }

start() { # out-file command... -> LAST_PID
  "${@:2}" >"$1" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# One measurement: RESULT="seconds cpu rss_kib" (cpu and rss "-" for direct).
run_one() { # sut feeders n phases
  local sut=$1 nf=$2 n=$3 phases=$4 i sut_pid="" net=1 dir
  dir="$WORK/$sut-$nf-$n-$phases-$RANDOM"
  mkdir -p "$dir"
  local mon=(--expect $((nf * n)) --phases "$phases" --ready "$dir/monitor.ready")
  if [ "$sut" = direct ]; then
    net=3
    for i in $(seq 0 $((nf - 1))); do mon+=(--connect "$(feeder_addr 3 "$i"):179"); done
  else
    case $sut in
    tabby)
      tabby_config "$nf" >"$dir/tabby.yaml"
      start "$dir/sut.out" env RUST_LOG=warn ip netns exec "$NS_S" "$TABBY" bgp --config "$dir/tabby.yaml"
      ;;
    bird)
      bird_sut_config "$nf" >"$dir/bird.conf"
      start "$dir/sut.out" ip netns exec "$NS_S" bird -f -c "$dir/bird.conf" -s "$dir/bird.ctl"
      ;;
    gobgp)
      gobgp_config "$nf" >"$dir/gobgpd.toml"
      start "$dir/sut.out" ip netns exec "$NS_S" gobgpd -f "$dir/gobgpd.toml" -t toml -p \
        --api-hosts 127.0.0.1:50051 --pprof-disable
      ;;
    esac
    sut_pid=$LAST_PID
    mon+=(--listen 10.201.2.2:179 --sut-pid "$sut_pid")
  fi
  for i in $(seq 0 $((nf - 1))); do
    local churn=()
    [ "$phases" = 1 ] || churn=(--churn-go "$dir/go2")
    start "$dir/feeder$i.out" ip netns exec "$NS_F" "$FEEDER" --listen "$(feeder_addr $net "$i"):179" \
      --count "$n" --first $((i * n)) --go "$dir/go" "${churn[@]}" --ready "$dir/feeder$i.ready"
  done
  start "$dir/monitor.out" ip netns exec "$NS_M" "$MONITOR" "${mon[@]}"
  wait_for "sessions of $sut (logs in $dir)" 60 all_ready "$dir" "$nf" || { KEEP=1; return 1; }
  local cpu0="-"
  [ -z "$sut_pid" ] || cpu0=$(cpu_of "$sut_pid")
  local perf_pid=""
  if [ -n "${PROFILE:-}" ] && [ "$sut" = "$PROFILE" ]; then
    # PROFILE=tabby: a call-graph profile of the SUT's timed phase(s).
    perf record -q -F 2000 -g -p "$sut_pid" -o "$WORK/perf-$sut-$nf-$n-$phases.data" 2>/dev/null &
    perf_pid=$!
    sleep 0.5
  fi
  touch "$dir/go"
  wait_for "$sut: phase 1 (logs in $dir)" "$TIMEOUT" phase_done "$dir" 1 || { KEEP=1; return 1; }
  if [ "$phases" = 2 ]; then
    cpu0=$(awk '/^phase 1 done/ { print $6 }' "$dir/monitor.out")
    touch "$dir/go2"
    wait_for "$sut: phase 2 (logs in $dir)" "$TIMEOUT" phase_done "$dir" 2 || { KEEP=1; return 1; }
  fi
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" 2>/dev/null || true
    echo "  profile: $WORK/perf-$sut-$nf-$n-$phases.data (KEEP=1 keeps it)" >&2
  fi
  local t0 t1 cpu1 rss="-" cpu="-"
  # The timed phase's clock starts with the first feeder to write.
  t0=$(for i in $(seq 0 $((nf - 1))); do
    awk -v k="$phases" '/^start/ && ++c == k { print $2 }' "$dir/feeder$i.out"
  done | sort -n | head -1)
  read -r t1 cpu1 < <(awk -v k="$phases" '$1 == "phase" && $2 == k { print $4, $6 }' "$dir/monitor.out")
  if [ -n "$sut_pid" ]; then
    rss=$(awk '/VmHWM/ { print $2 }' "/proc/$sut_pid/status")
    cpu=$(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN{printf "%.2f", a-b}')
  fi
  stop_all
  RESULT=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.3f", a-b}')" $cpu $rss"
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}

best_of() { # args of run_one -> BEST, the fastest of REPEAT runs
  local best="" line
  for _ in $(seq "$REPEAT"); do
    # A SUT that misses TIMEOUT gets a "-" row; the other rows still run.
    if ! run_one "$@"; then
      stop_all
      RESULT="- - -"
    fi
    line=$RESULT
    [ "${line%% *}" != - ] || { [ -n "$best" ] || best=$line; continue; }
    if [ -z "$best" ] || [ "${best%% *}" = - ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then
      best=$line
    fi
  done
  BEST=$best
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "-" && b+0 > 0) printf "%.2f", a/b; else print "-" }'; }
mib() { awk -v k="$1" 'BEGIN{ if (k == "-") print "-"; else printf "%.1f", k/1024 }'; }

# BENCH_RESULTS (issue 16's results convention, read by tests/bench/report):
# one JSON line per figure, appended; "-" (a SUT that timed out) is null.
# emit CASE METRIC UNIT VALUE [REFERENCE REF_VALUE [GOAL_RATIO GOAL_WORDS]]
emit() {
  [ -n "${BENCH_RESULTS:-}" ] || return 0
  awk -v c="$1" -v m="$2" -v u="$3" -v v="$4" -v r="${5:-}" -v rv="${6:--}" \
    -v g="${7:-}" -v gw="${8:-}" '
    function num(x) { return x ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }
    function str(x) { if (x == "") return "null"; gsub(/[\\"]/, "\\\\&", x); return "\"" x "\"" }
    BEGIN {
      ratio = "null"; met = "null"
      if (num(v) && num(rv) && rv + 0 > 0) ratio = sprintf("%.4g", v / rv)
      if (g != "" && ratio != "null") met = (ratio + 0 <= g + 0) ? "true" : "false"
      else if (g != "" && !num(v) && num(rv)) met = "false"
      printf "{\"section\":\"4\",\"bench\":\"bgp\",\"case\":%s,\"metric\":%s,\"unit\":%s,\"value\":%s,", str(c), str(m), str(u), num(v) ? v + 0 : "null"
      printf "\"reference\":%s,\"reference_value\":%s,\"ratio\":%s,\"goal\":%s,\"met\":%s}\n", str(r), num(rv) ? rv + 0 : "null", ratio, str(gw), met
    }' >>"$BENCH_RESULTS"
}

# The results of one case (called by case_table, whose T C R A it reads).
emit_case() { # title
  local title=$1 sut name
  declare -A NAME=([tabby]=Tabby [bird]="BIRD 2" [gobgp]=GoBGP)
  emit "$title: direct (no SUT)" time s "${T[direct]}"
  for sut in $SUTS; do
    name="$title: ${NAME[$sut]:-$sut}"
    # The goals are Tabby's: added time and CPU <= 0.7x BIRD, RSS <= 1.0x.
    local g7=() g1=()
    [ "$sut" != tabby ] || { g7=(0.7 "<= 0.7x BIRD"); g1=(1.0 "<= 1.0x BIRD"); }
    if [ "$sut" != bird ] && [ -n "${T[bird]:-}" ]; then
      emit "$name" time s "${T[$sut]}" "BIRD 2" "${T[bird]}"
      emit "$name, added time" time s "${A[$sut]}" "BIRD 2" "${A[bird]}" "${g7[@]}"
      emit "$name" cpu s "${C[$sut]}" "BIRD 2" "${C[bird]}" "${g7[@]}"
      emit "$name" rss MiB "$(mib "${R[$sut]}")" "BIRD 2" "$(mib "${R[bird]}")" "${g1[@]}"
    else
      emit "$name" time s "${T[$sut]}"
      emit "$name, added time" time s "${A[$sut]}"
      emit "$name" cpu s "${C[$sut]}"
      emit "$name" rss MiB "$(mib "${R[$sut]}")"
    fi
  done
  if [ -n "${T[tabby]:-}" ] && [ -n "${T[gobgp]:-}" ]; then
    emit "$title: Tabby vs GoBGP" time s "${T[tabby]}" GoBGP "${T[gobgp]}" 0.2 "<= 0.2x GoBGP"
    emit "$title: Tabby vs GoBGP, added time" time s "${A[tabby]}" GoBGP "${A[gobgp]}"
  fi
}

# One table: every SUT for one case.
case_table() { # title feeders n phases
  local title=$1 nf=$2 n=$3 phases=$4 sut
  declare -A T C R A
  for sut in direct $SUTS; do
    best_of "$sut" "$nf" "$n" "$phases"
    read -r T[$sut] C[$sut] R[$sut] <<<"$BEST"
    A[$sut]=$(awk -v a="${T[$sut]}" -v b="${T[direct]}" 'BEGIN{ if (a == "-" || b == "-") print "-"; else printf "%.3f", a-b}')
    echo "  measured $title $sut: ${T[$sut]} s, CPU ${C[$sut]} s, VmHWM ${R[$sut]} KiB" >&2
  done
  echo
  echo "== $title"
  printf "%-7s %9s %9s %8s %9s   %-26s\n" SUT "time (s)" "added (s)" "CPU (s)" "RSS (MiB)" "vs BIRD: time/added/CPU/RSS"
  for sut in direct $SUTS; do
    local vs="-"
    if [ "$sut" != direct ] && [ -n "${T[bird]:-}" ]; then
      vs="$(ratio "${T[$sut]}" "${T[bird]}") / $(ratio "${A[$sut]}" "${A[bird]}") / $(ratio "${C[$sut]}" "${C[bird]}") / $(ratio "${R[$sut]}" "${R[bird]}")"
    fi
    printf "%-7s %9s %9s %8s %9s   %-26s\n" "$sut" "${T[$sut]}" "${A[$sut]}" "${C[$sut]}" "$(mib "${R[$sut]}")" "$vs"
  done
  if [ -n "${T[tabby]:-}" ] && [ -n "${T[gobgp]:-}" ]; then
    echo "tabby vs GoBGP: time $(ratio "${T[tabby]}" "${T[gobgp]}"), added $(ratio "${A[tabby]}" "${A[gobgp]}") (goal <= 0.2)"
  fi
  if [ -n "${T[tabby]:-}" ] && [ -n "${T[bird]:-}" ]; then
    echo "goals vs BIRD: added <= 0.7, CPU <= 0.7, RSS <= 1.0"
  fi
  emit_case "$title"
}

echo "BGP speaker: replay feeders -> SUT -> counting monitor, IPv4 /32s, eBGP"
echo "time: first feeder write -> monitor holds all; added = time - direct row"
echo "CPU = SUT utime+stime during that time; RSS = SUT VmHWM"
for n in $SINGLE; do case_table "single: 1 feeder x $n" 1 "$n" 1; done
if [ -n "$MULTI" ]; then
  case_table "multi: ${MULTI%% *} feeders x ${MULTI##* }" "${MULTI%% *}" "${MULTI##* }" 1
fi
if [ -n "$CHURN" ]; then
  case_table "churn: withdraw + re-announce $CHURN (after loading them)" 1 "$CHURN" 2
fi
