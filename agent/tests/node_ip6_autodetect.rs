//! `IP6=autodetect`: tabby-node's start-up runs `IP6_AUTODETECTION_METHOD`
//! in the node's namespace and writes the result, with its prefix, to the
//! Node's `spec.bgp.ipv6Address`; finding nothing fails naming the
//! variable. Root only (a throwaway namespace).

#[path = "../../felix-lite/tests/common/mod.rs"]
mod ns;

use ns::Netns;
use std::collections::HashMap;
use tabby_agent::datastore::memory::MemoryStore;
use tabby_agent::datastore::Datastore;
use tabby_agent::node::config::NodeConfig;
use tabby_agent::node::startup::write_node_ipv6;
use tabby_agent::resources::{Kind, Resource};
use tabby_felix_lite::inspect::KernelSnapshot;

/// Runs the start-up step in `ns` against `ds`; the Node's ipv6Address
/// afterwards, or the error.
fn start(ns: &Netns, ds: &MemoryStore, method: &str) -> Result<Option<String>, String> {
    let env: HashMap<String, String> = [
        ("NODENAME", "node-1"),
        ("IP6", "autodetect"),
        ("IP6_AUTODETECTION_METHOD", method),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = NodeConfig::from_map(&env).expect("valid config");
    let ds = ds.clone();
    tabby_felix_lite::netns::block_on_in(&ns.name, move || async move {
        write_node_ipv6(&ds, &cfg, &KernelSnapshot::default())
            .await
            .map_err(|e| format!("{e:#}"))?;
        let Ok(Resource::Node(n)) = ds.get(Kind::Node, "node-1").await else {
            return Ok(None);
        };
        Ok(n.spec.bgp.and_then(|b| b.ipv6_address))
    })
    .expect("enter netns")
}

#[test]
fn ip6_autodetect_writes_the_node_address_or_names_the_variable() {
    if !ns::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = Netns::new("ip6ad");
    ns.veth("stor0", "vethst");
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "fd00:99::10/64",
        "dev",
        "stor0",
        "nodad",
    ]);
    ns.veth("eth0", "vethe0");
    ns.ip(&["-6", "addr", "add", "fd00:5::10/64", "dev", "eth0", "nodad"]);
    let ds = MemoryStore::new();

    assert_eq!(
        start(&ns, &ds, "first-found").unwrap().as_deref(),
        Some("fd00:5::10/64")
    );
    assert_eq!(
        start(&ns, &ds, "can-reach=fd00:99::1").unwrap().as_deref(),
        Some("fd00:99::10/64")
    );
    assert_eq!(
        start(&ns, &ds, "cidr=fd00:5::/48").unwrap().as_deref(),
        Some("fd00:5::10/64")
    );
    let e = start(&ns, &ds, "interface=bond.*").unwrap_err();
    assert!(
        e.starts_with("IP6_AUTODETECTION_METHOD=interface=bond.*: no usable IPv6 address")
            && e.contains("eth0 (name matches none of bond.*)"),
        "{e}"
    );
}
