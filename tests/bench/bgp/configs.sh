# Config generators for tests/bench-bgp.sh (sourced). Addresses are the
# namespaces' veth ends set up there; timers are the daemons' defaults except
# where noted, so no SUT is tuned beyond what its operator would write.

# N unique /32s from 20.0.0.0 upwards, as a BIRD static protocol.
bird_static_routes() { # n
  awk -v n="$1" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "  route 20.%d.%d.%d/32 blackhole;\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256
  }'
}

bird_common() { # router_id
  cat <<EOF
router id $1;
log stderr all;
timeformat log "%F %T.%6f";
protocol device { }
EOF
}

# Session "feed" starts disabled; the bench enables it once the static table
# is loaded, so config parsing is not timed.
bird_feeder_config() { # n local neighbor neighbor_as
  bird_common 10.201.0.1
  echo "protocol static gen { ipv4;"
  bird_static_routes "$1"
  echo "}"
  cat <<EOF
protocol bgp feed {
  disabled;
  debug { states${BENCH_DEBUG:+, packets} };
  local $2 as 65001; neighbor $3 as $4;
  connect delay time 1;
  ipv4 { import none; export all; };
}
EOF
}

bird_monitor_config() { # neighbor neighbor_as
  bird_common 10.201.0.3
  cat <<EOF
protocol bgp mon {
  debug { states${BENCH_DEBUG:+, packets} };
  local as 65003; neighbor $1 as $2;
  connect delay time 1; connect retry time 1;
  ipv4 { import all; export none; };
}
EOF
}

bird_sut_config() {
  bird_common 10.201.1.2
  cat <<EOF
protocol bgp feeder {
  local 10.201.1.2 as 65002; neighbor 10.201.1.1 as 65001;
  connect delay time 1; connect retry time 1;
  ipv4 { import all; export all; };
}
protocol bgp monitor {
  local 10.201.2.1 as 65002; neighbor 10.201.2.2 as 65003;
  connect delay time 1; connect retry time 1;
  ipv4 { import all; export all; };
}
EOF
}

tabby_config() {
  cat <<EOF
routerId: 10.201.1.2
asNumber: 65002
gracefulRestartTime: 0
peers:
  - address: 10.201.1.1
    asNumber: 65001
    sourceAddress: 10.201.1.2
  - address: 10.201.2.2
    asNumber: 65003
    sourceAddress: 10.201.2.1
EOF
}

gobgp_config() {
  cat <<EOF
[global.config]
  as = 65002
  router-id = "10.201.1.2"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.201.1.1"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.201.2.2"
    peer-as = 65003
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
EOF
}
