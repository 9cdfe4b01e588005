//! tabby-node's environment: defaults, every variable read, and every
//! malformed value refused with a message naming the variable.

use std::collections::HashMap;
use std::time::Duration;
use tabby_agent::datastore::DatastoreConfig;
use tabby_agent::node::config::{Backend, NodeConfig};
use tabby_agent::resources::ippool::EncapMode;
use tabby_felix_lite::autodetect::{IpSetting, Method};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = HashMap::from([("NODENAME".into(), "node-1".into())]);
    for (k, v) in pairs {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn err(pairs: &[(&str, &str)]) -> String {
    NodeConfig::from_map(&env(pairs)).expect_err("should be refused")
}

#[test]
fn defaults_match_calico_node() {
    let c = NodeConfig::from_map(&env(&[])).unwrap();
    assert_eq!(c.node_name, "node-1");
    assert_eq!(c.ip, IpSetting::Autodetect);
    assert_eq!(c.autodetect, Method::FirstFound);
    assert_eq!(c.as_number, None);
    assert_eq!(c.backend, Backend::Bird);
    assert!(matches!(c.datastore, DatastoreConfig::Sqlite { .. }));
    assert_eq!(c.pool.cidr.to_string(), "192.168.0.0/16");
    assert_eq!(c.pool.block_size, 26);
    assert_eq!(c.pool.vxlan_mode, EncapMode::Never);
    assert!(c.pool.nat_outgoing);
    assert_eq!(c.run_dir.to_str(), Some("/var/run/tabby"));
    assert_eq!(c.socket_path().to_str(), Some("/var/run/tabby/tabby.sock"));
    assert!(c.vxlan_fallback);
    assert_eq!(c.hold_time, Duration::from_secs(90));
    assert_eq!(c.connect_retry, Duration::from_secs(5));
    assert_eq!(c.log, "info");
    assert_eq!(c.vxlan_mtu, None);
    assert_eq!(c.checksum_offload_override, None);
}

#[test]
fn every_variable_is_read() {
    let c = NodeConfig::from_map(&env(&[
        ("IP", "10.0.0.5/24"),
        ("IP_AUTODETECTION_METHOD", "interface=eth.*"),
        ("AS", "65001"),
        ("CALICO_NETWORKING_BACKEND", "vxlan"),
        ("DATASTORE_TYPE", "etcdv3"),
        ("ETCD_ENDPOINTS", "http://127.0.0.1:23790"),
        ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
        ("CALICO_IPV4POOL_BLOCK_SIZE", "24"),
        ("CALICO_IPV4POOL_VXLAN", "CrossSubnet"),
        ("CALICO_IPV4POOL_NAT_OUTGOING", "false"),
        ("TABBY_RUN_DIR", "/tmp/x/run"),
        ("TABBY_VXLAN_FALLBACK", "false"),
        ("TABBY_BGP_HOLD_TIME", "9"),
        ("TABBY_BGP_CONNECT_RETRY", "1"),
        ("TABBY_LOG", "debug"),
        ("FELIX_VXLANMTU", "1400"),
        (
            "FELIX_FEATUREDETECTOVERRIDE",
            "SNATFullyRandom=false,ChecksumOffloadBroken=true",
        ),
    ]))
    .unwrap();
    assert_eq!(
        c.ip,
        IpSetting::Fixed {
            addr: "10.0.0.5".parse().unwrap(),
            prefix_len: Some(24)
        }
    );
    assert_eq!(c.autodetect, Method::Interface(vec!["eth.*".into()]));
    assert_eq!(c.as_number.map(|a| a.0), Some(65001));
    assert_eq!(c.backend, Backend::Vxlan);
    assert_eq!(
        c.datastore,
        DatastoreConfig::Etcd {
            endpoints: vec!["http://127.0.0.1:23790".into()]
        }
    );
    assert_eq!(c.pool.cidr.to_string(), "10.244.0.0/16");
    assert_eq!(c.pool.block_size, 24);
    assert_eq!(c.pool.vxlan_mode, EncapMode::CrossSubnet);
    assert!(!c.pool.nat_outgoing);
    assert_eq!(c.socket_path().to_str(), Some("/tmp/x/run/tabby.sock"));
    assert!(!c.vxlan_fallback);
    assert_eq!(c.hold_time, Duration::from_secs(9));
    assert_eq!(c.connect_retry, Duration::from_secs(1));
    assert_eq!(c.log, "debug");
    assert_eq!(c.vxlan_mtu, Some(1400));
    assert_eq!(c.checksum_offload_override, Some(true));
    let c = NodeConfig::from_map(&env(&[
        ("IP", "none"),
        ("CALICO_NETWORKING_BACKEND", "none"),
    ]))
    .unwrap();
    assert_eq!(c.ip, IpSetting::None);
    assert_eq!(c.backend, Backend::None);
}

#[test]
fn felix_variables_auto_and_override_forms() {
    // 0 and empty mean "auto", as in Felix.
    for v in ["0", "", " "] {
        let c = NodeConfig::from_map(&env(&[("FELIX_VXLANMTU", v)])).unwrap();
        assert_eq!(c.vxlan_mtu, None, "FELIX_VXLANMTU={v:?}");
    }
    let c = NodeConfig::from_map(&env(&[("FELIX_VXLANMTU", "68")])).unwrap();
    assert_eq!(c.vxlan_mtu, Some(68));
    // An override list without ChecksumOffloadBroken leaves the kernel check.
    let c = NodeConfig::from_map(&env(&[(
        "FELIX_FEATUREDETECTOVERRIDE",
        "SNATFullyRandom=false",
    )]))
    .unwrap();
    assert_eq!(c.checksum_offload_override, None);
    let c = NodeConfig::from_map(&env(&[(
        "FELIX_FEATUREDETECTOVERRIDE",
        "ChecksumOffloadBroken=false",
    )]))
    .unwrap();
    assert_eq!(c.checksum_offload_override, Some(false));
    assert!(
        !c.checksum_offload_broken(),
        "the override wins over the kernel"
    );
}

#[test]
fn bad_values_name_their_variable() {
    let m: HashMap<String, String> = HashMap::new();
    let e = NodeConfig::from_map(&m).unwrap_err();
    assert!(e.starts_with("NODENAME:") && e.contains("required"), "{e}");
    let e = err(&[("NODENAME", "Node_1")]);
    assert!(e.starts_with("NODENAME:"), "{e}");

    for (var, value, expect) in [
        ("IP", "10.0.0.300", "IP="),
        ("IP", "auto", "IP="),
        (
            "IP_AUTODETECTION_METHOD",
            "first",
            "IP_AUTODETECTION_METHOD=",
        ),
        (
            "IP_AUTODETECTION_METHOD",
            "cidr=10.0.0/8",
            "IP_AUTODETECTION_METHOD=",
        ),
        ("AS", "0", "AS:"),
        ("AS", "sixty", "AS:"),
        (
            "CALICO_NETWORKING_BACKEND",
            "gobgp",
            "CALICO_NETWORKING_BACKEND:",
        ),
        ("DATASTORE_TYPE", "mysql", "DATASTORE_TYPE:"),
        (
            "CALICO_IPV4POOL_CIDR",
            "192.168.0.0",
            "CALICO_IPV4POOL_CIDR:",
        ),
        (
            "CALICO_IPV4POOL_CIDR",
            "192.168.0.1/16",
            "CALICO_IPV4POOL_CIDR:",
        ),
        (
            "CALICO_IPV4POOL_BLOCK_SIZE",
            "33",
            "CALICO_IPV4POOL_BLOCK_SIZE:",
        ),
        (
            "CALICO_IPV4POOL_BLOCK_SIZE",
            "x",
            "CALICO_IPV4POOL_BLOCK_SIZE:",
        ),
        ("CALICO_IPV4POOL_VXLAN", "always", "CALICO_IPV4POOL_VXLAN:"),
        (
            "CALICO_IPV4POOL_NAT_OUTGOING",
            "maybe",
            "CALICO_IPV4POOL_NAT_OUTGOING:",
        ),
        ("TABBY_VXLAN_FALLBACK", "on-ish", "TABBY_VXLAN_FALLBACK:"),
        ("TABBY_BGP_HOLD_TIME", "2", "TABBY_BGP_HOLD_TIME:"),
        ("TABBY_BGP_HOLD_TIME", "9s", "TABBY_BGP_HOLD_TIME:"),
        ("TABBY_BGP_CONNECT_RETRY", "0", "TABBY_BGP_CONNECT_RETRY:"),
        ("TABBY_LOG", "info,[", "TABBY_LOG:"),
        ("FELIX_VXLANMTU", "big", "FELIX_VXLANMTU="),
        ("FELIX_VXLANMTU", "40", "FELIX_VXLANMTU="),
        ("FELIX_VXLANMTU", "65536", "FELIX_VXLANMTU="),
        ("FELIX_VXLANMTU", "-1", "FELIX_VXLANMTU="),
        (
            "FELIX_FEATUREDETECTOVERRIDE",
            "ChecksumOffloadBroken",
            "FELIX_FEATUREDETECTOVERRIDE:",
        ),
        (
            "FELIX_FEATUREDETECTOVERRIDE",
            "ChecksumOffloadBroken=yes",
            "FELIX_FEATUREDETECTOVERRIDE:",
        ),
        (
            "FELIX_FEATUREDETECTOVERRIDE",
            "=true",
            "FELIX_FEATUREDETECTOVERRIDE:",
        ),
    ] {
        let e = err(&[(var, value)]);
        assert!(
            e.starts_with(expect),
            "{var}={value:?}: message {e:?} should start with {expect:?}"
        );
        assert!(
            e.contains("expected"),
            "{var}={value:?}: {e:?} says what was expected"
        );
    }
    // Blocks larger than the pool cannot be carved from it.
    let e = err(&[
        ("CALICO_IPV4POOL_CIDR", "10.0.0.0/24"),
        ("CALICO_IPV4POOL_BLOCK_SIZE", "22"),
    ]);
    assert!(e.starts_with("CALICO_IPV4POOL_BLOCK_SIZE:"), "{e}");
}

#[test]
fn the_binary_refuses_bad_configuration_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tabby-node"))
        .env_clear()
        .env("NODENAME", "n1")
        .env("CALICO_IPV4POOL_VXLAN", "Sometimes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CALICO_IPV4POOL_VXLAN")
            && stderr.contains("expected Never, Always or CrossSubnet"),
        "{stderr}"
    );
    for (var, value) in [
        ("FELIX_VXLANMTU", "1400b"),
        ("FELIX_FEATUREDETECTOVERRIDE", "ChecksumOffloadBroken=on"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tabby-node"))
            .env_clear()
            .env("NODENAME", "n1")
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(var) && stderr.contains(value) && stderr.contains("expected"),
            "{stderr}"
        );
    }
}

#[test]
fn health_and_metrics_endpoints_as_felix_names_them() {
    // Off unless enabled, as in Felix (calico-node's manifest enables
    // health); defaults localhost:9099 and all interfaces:9091.
    let c = NodeConfig::from_map(&env(&[])).unwrap();
    assert_eq!((c.health, c.metrics), (None, None));
    let c = NodeConfig::from_map(&env(&[
        ("FELIX_HEALTHENABLED", "true"),
        ("FELIX_PROMETHEUSMETRICSENABLED", "true"),
    ]))
    .unwrap();
    assert_eq!(c.health, Some("127.0.0.1:9099".parse().unwrap()));
    assert_eq!(c.metrics, Some("0.0.0.0:9091".parse().unwrap()));
    let c = NodeConfig::from_map(&env(&[
        ("FELIX_HEALTHENABLED", "true"),
        ("FELIX_HEALTHHOST", "10.0.0.1"),
        ("FELIX_HEALTHPORT", "19099"),
        ("FELIX_PROMETHEUSMETRICSENABLED", "true"),
        ("FELIX_PROMETHEUSMETRICSHOST", "localhost"),
        ("FELIX_PROMETHEUSMETRICSPORT", "19091"),
    ]))
    .unwrap();
    assert_eq!(c.health, Some("10.0.0.1:19099".parse().unwrap()));
    assert_eq!(c.metrics, Some("127.0.0.1:19091".parse().unwrap()));
    for (var, v) in [
        ("FELIX_HEALTHENABLED", "maybe"),
        ("FELIX_HEALTHPORT", "0"),
        ("FELIX_HEALTHPORT", "99999"),
        ("FELIX_HEALTHHOST", "node.example"),
        ("FELIX_PROMETHEUSMETRICSPORT", "x"),
    ] {
        let e = err(&[(var, v)]);
        assert!(e.starts_with(&format!("{var}: ")), "{var}={v}: {e}");
    }
}
