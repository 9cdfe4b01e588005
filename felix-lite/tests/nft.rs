//! Tabby's nftables state, read back with `nft -j` inside namespaces, and
//! real packets through a router whose host firewall drops forwarding.

mod common;

use common::Netns;
use serde_json::Value;
use tabby_felix_lite::model::Pool;
use tabby_felix_lite::netns;
use tabby_felix_lite::nft::{self, Nft, NftError, NftReport};

fn pool(cidr: &str, nat_outgoing: bool) -> Pool {
    Pool {
        cidr: cidr.parse().unwrap(),
        nat_outgoing,
    }
}

fn reconcile(ns: &Netns, pools: Vec<Pool>) -> NftReport {
    netns::run_in(&ns.name, move || nft::reconcile(&pools))
        .unwrap()
        .unwrap()
}

fn remove(ns: &Netns) -> NftReport {
    netns::run_in(&ns.name, nft::remove).unwrap().unwrap()
}

fn json(ns: &Netns, what: &str) -> Vec<Value> {
    let out = ns.must(&format!("nft -j list {what}"));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["nftables"].as_array().unwrap().clone()
}

fn set_elems(items: &[Value], name: &str) -> Vec<String> {
    let set = items
        .iter()
        .find_map(|i| i.get("set").filter(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no set {name} in {items:?}"));
    set.get("elem")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["prefix"]["addr"].as_str().unwrap(),
                        e["prefix"]["len"]
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rules(items: &[Value], chain: &str) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| i.get("rule").filter(|r| r["chain"] == chain).cloned())
        .collect()
}

#[test]
fn masquerade_only_for_nat_outgoing_pools() {
    let ns = Netns::new("nft");
    let r = reconcile(
        &ns,
        vec![pool("10.244.0.0/16", true), pool("10.50.0.0/16", false)],
    );
    assert!(r.changed && r.table_written, "{r:?}");
    let t = json(&ns, "table ip tabby");
    assert_eq!(
        set_elems(&t, "all-pools"),
        ["10.50.0.0/16", "10.244.0.0/16"]
    );
    assert_eq!(set_elems(&t, "masq-pools"), ["10.244.0.0/16"]);
    let nat = rules(&t, "nat-outgoing");
    assert_eq!(nat.len(), 1, "{nat:?}");
    let text = ns.must("nft list chain ip tabby nat-outgoing");
    assert!(
        text.contains("ip saddr @masq-pools ip daddr != @all-pools masquerade"),
        "{text}"
    );
    assert!(text.contains("hook postrouting priority srcnat"), "{text}");

    // Idempotent: a second pass writes nothing.
    let r = reconcile(
        &ns,
        vec![pool("10.50.0.0/16", false), pool("10.244.0.0/16", true)],
    );
    assert_eq!(r, NftReport::default());

    // natOutgoing off everywhere: no masquerade rule at all.
    let r = reconcile(
        &ns,
        vec![pool("10.244.0.0/16", false), pool("10.50.0.0/16", false)],
    );
    assert!(r.changed);
    let t = json(&ns, "table ip tabby");
    assert!(rules(&t, "nat-outgoing").is_empty());
    assert!(set_elems(&t, "masq-pools").is_empty());

    // An external edit is repaired.
    ns.must("nft add set ip tabby extra '{ type ipv4_addr; }'");
    let r = reconcile(
        &ns,
        vec![pool("10.244.0.0/16", true), pool("10.96.0.0/12", false)],
    );
    assert!(r.table_written);
    let t = json(&ns, "table ip tabby");
    assert_eq!(
        set_elems(&t, "all-pools"),
        ["10.96.0.0/12", "10.244.0.0/16"]
    );
    assert!(!ns.must("nft list table ip tabby").contains("extra"));

    let r = remove(&ns);
    assert!(r.changed);
    let all = json(&ns, "ruleset");
    assert_eq!(all.len(), 1, "only metainfo should remain: {all:?}");
    assert_eq!(remove(&ns), NftReport::default());
    // No pools is the same as removal.
    reconcile(&ns, vec![pool("10.244.0.0/16", true)]);
    reconcile(&ns, vec![]);
    assert_eq!(json(&ns, "ruleset").len(), 1);
}

const HOST_FIREWALL: &str = "nft -f - <<'EOF'
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
  }
}
EOF";

#[test]
fn forward_rules_go_into_foreign_chains_and_come_out_exactly() {
    let ns = Netns::new("nftf");
    ns.must(HOST_FIREWALL);
    let r = reconcile(
        &ns,
        vec![pool("10.244.0.0/16", false), pool("10.245.0.0/16", true)],
    );
    assert_eq!(r.forward_chains, ["inet filter forward (policy drop)"]);
    assert_eq!(r.rules_inserted, 2);
    let fw = rules(&json(&ns, "chain inet filter forward"), "forward");
    assert_eq!(fw.len(), 3, "{fw:?}");
    assert_eq!(fw[0]["comment"], "tabby:forward");
    assert_eq!(fw[1]["comment"], "tabby:forward");
    let text = ns.must("nft list chain inet filter forward");
    // The two sibling /16 pools are written as their /15.
    assert!(
        text.contains("ip saddr 10.244.0.0/15 accept comment \"tabby:forward\""),
        "{text}"
    );
    assert!(
        text.contains("ip daddr 10.244.0.0/15 accept comment \"tabby:forward\""),
        "{text}"
    );

    assert!(
        !reconcile(
            &ns,
            vec![pool("10.244.0.0/16", false), pool("10.245.0.0/16", true)]
        )
        .changed
    );

    // kube-proxy's table is left alone (its rejects are service semantics).
    ns.must(
        "nft add table ip kube-proxy && nft add chain ip kube-proxy forward \
         '{ type filter hook forward priority -101; policy accept; }' && \
         nft add rule ip kube-proxy forward ct state invalid drop",
    );
    let r = reconcile(
        &ns,
        vec![pool("10.244.0.0/16", false), pool("10.245.0.0/16", true)],
    );
    assert!(!r.changed, "{r:?}");
    assert!(!ns.must("nft list table ip kube-proxy").contains("tabby"));

    // Someone puts a rule above ours, and deletes one of ours.
    let handle = fw[1]["handle"].as_u64().unwrap();
    ns.must(&format!(
        "nft delete rule inet filter forward handle {handle}"
    ));
    ns.must("nft insert rule inet filter forward iifname lo drop");
    let r = reconcile(
        &ns,
        vec![pool("10.244.0.0/16", false), pool("10.245.0.0/16", true)],
    );
    assert_eq!((r.rules_deleted, r.rules_inserted), (1, 2), "{r:?}");
    let fw = rules(&json(&ns, "chain inet filter forward"), "forward");
    assert_eq!(fw.len(), 4);
    assert_eq!(fw[0]["comment"], "tabby:forward");
    assert_eq!(fw[1]["comment"], "tabby:forward");

    remove(&ns);
    let text = ns.must("nft list ruleset");
    assert!(!text.contains("tabby"), "{text}");
    assert!(
        text.contains("iifname \"lo\" drop")
            && text.contains("ct state established,related accept"),
        "{text}"
    );
    assert!(
        text.contains("policy drop"),
        "the host firewall itself stays: {text}"
    );
}

#[test]
fn missing_nft_names_the_package() {
    let nft = Nft {
        bin: "/nonexistent/nft".into(),
    };
    let e = nft.reconcile(&[pool("10.244.0.0/16", true)]).unwrap_err();
    assert!(matches!(e, NftError::Missing(_)));
    assert!(
        e.to_string().contains("install the nftables package"),
        "{e}"
    );
}

/// pod (10.244.1.2) -- router (policy-drop forward chain) -- outside (192.168.77.2)
struct Lab {
    pod: Netns,
    router: Netns,
    outside: Netns,
}

fn lab() -> Lab {
    let (pod, router, outside) = (Netns::new("pod"), Netns::new("rtr"), Netns::new("out"));
    router.link_to("rp0", "10.244.1.1/24", &pod, "eth0", "10.244.1.2/24");
    router.link_to(
        "rx0",
        "192.168.77.1/24",
        &outside,
        "eth0",
        "192.168.77.2/24",
    );
    pod.ip(&["route", "add", "default", "via", "10.244.1.1"]);
    router.must("sysctl -qw net.ipv4.ip_forward=1");
    router.must(HOST_FIREWALL);
    Lab {
        pod,
        router,
        outside,
    }
}

fn ping(from: &Netns, to: &str) -> bool {
    from.sh(&format!("ping -c1 -W1 {to}")).0
}

#[test]
fn pod_traffic_crosses_a_drop_policy_firewall_after_reconcile() {
    let l = lab();
    assert!(
        !ping(&l.pod, "192.168.77.2"),
        "forward policy drop must block before reconcile"
    );
    // Why Tabby inserts into the firewall's chain: an accept in a table of
    // its own, even at an earlier priority, does not override that drop.
    l.router.must(
        "nft add table ip probe && nft add chain ip probe pfw \
         '{ type filter hook forward priority -10; policy accept; }' && \
         nft add rule ip probe pfw ip saddr 10.244.0.0/16 accept && \
         nft add rule ip probe pfw ip daddr 10.244.0.0/16 accept && \
         nft add chain ip probe nat '{ type nat hook postrouting priority srcnat; }' && \
         nft add rule ip probe nat ip saddr 10.244.0.0/16 masquerade",
    );
    assert!(
        !ping(&l.pod, "192.168.77.2"),
        "own-table accept must not be enough"
    );
    l.router.must("nft delete table ip probe");

    // natOutgoing: the outside host has no route to the pool, so a reply
    // proves both the forward accept and the masquerade.
    reconcile(&l.router, vec![pool("10.244.0.0/16", true)]);
    assert!(
        ping(&l.pod, "192.168.77.2"),
        "{}",
        l.router.must("nft list ruleset")
    );

    // Without NAT the reply has no way back ...
    reconcile(&l.router, vec![pool("10.244.0.0/16", false)]);
    assert!(!ping(&l.pod, "192.168.77.2"), "no NAT and no return route");
    // ... until the outside learns the pool route; then forwarding alone
    // carries it.
    l.outside
        .ip(&["route", "add", "10.244.0.0/16", "via", "192.168.77.1"]);
    assert!(ping(&l.pod, "192.168.77.2"));
    assert!(
        ping(&l.outside, "10.244.1.2"),
        "inbound to the pool is forwarded too"
    );

    remove(&l.router);
    assert!(
        !ping(&l.outside, "10.244.1.2"),
        "removal leaves the host firewall's drop in force"
    );
}
