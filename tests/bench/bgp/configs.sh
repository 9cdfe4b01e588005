# Config generators for tests/bench-bgp.sh (sourced). The SUT is
# 10.201.1.2 towards the feeders (10.201.1.11, .12, ...; AS 65001, all
# passive) and 10.201.2.1 towards the monitor (10.201.2.2, AS 65003,
# passive), so every SUT opens every session itself. Timers are the
# daemons' defaults except the connect delays, so no SUT is tuned beyond
# what its operator would write.

feeder_addr() { # subnet index -> 10.201.SUBNET.(11+index)
  echo "10.201.$1.$((11 + $2))"
}

bird_sut_config() { # feeders
  cat <<EOF
router id 10.201.1.2;
log stderr all;
protocol device { }
EOF
  for i in $(seq 0 $(($1 - 1))); do
    cat <<EOF
protocol bgp feeder$i {
  local 10.201.1.2 as 65002; neighbor $(feeder_addr 1 "$i") as 65001;
  connect delay time 1; connect retry time 1;
  ipv4 { import all; export all; };
}
EOF
  done
  cat <<EOF
protocol bgp monitor {
  local 10.201.2.1 as 65002; neighbor 10.201.2.2 as 65003;
  connect delay time 1; connect retry time 1;
  ipv4 { import all; export all; };
}
EOF
}

tabby_config() { # feeders
  cat <<EOF
routerId: 10.201.1.2
asNumber: 65002
gracefulRestartTime: 0
peers:
EOF
  for i in $(seq 0 $(($1 - 1))); do
    cat <<EOF
  - address: $(feeder_addr 1 "$i")
    asNumber: 65001
    sourceAddress: 10.201.1.2
EOF
  done
  cat <<EOF
  - address: 10.201.2.2
    asNumber: 65003
    sourceAddress: 10.201.2.1
EOF
}

gobgp_neighbor() { # address as
  cat <<EOF
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$1"
    peer-as = $2
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
EOF
}

gobgp_config() { # feeders
  cat <<EOF
[global.config]
  as = 65002
  router-id = "10.201.1.2"
EOF
  for i in $(seq 0 $(($1 - 1))); do
    gobgp_neighbor "$(feeder_addr 1 "$i")" 65001
  done
  gobgp_neighbor 10.201.2.2 65003
}
