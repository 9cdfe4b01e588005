//! End to end, IPv6 (issue 14's tests 1–3) on real kernels: a dual-stack
//! mesh whose IPv6 blocks go native via the owner's IPv6 address with both
//! BGP tables Established; an IPv6-only cluster across two subnets with
//! VXLANCrossSubnet (native within, `vxlan-v6.calico` across); and the
//! IPv6 fallback through `vxlan-v6.calico` once TCP 179 is cut. Root only.

mod e2e_common;

use e2e_common::{protocol, serial, wait_until, Lab, HOLD};
use serde_json::Value;
use std::net::Ipv6Addr;
use std::time::Duration;

const DROP_179: &str = "table inet e2e_drop_bgp6 {
  chain input { type filter hook input priority -10; tcp dport 179 drop; tcp sport 179 drop; }
  chain output { type filter hook output priority -10; tcp dport 179 drop; tcp sport 179 drop; }
}
";

/// The IPv6 /122 blocks `node`'s pods' addresses come from.
fn blocks6_of(lab: &Lab, node: &str) -> Vec<String> {
    let mut v: Vec<String> = lab
        .pods()
        .into_iter()
        .filter(|p| p["node"] == node)
        .filter_map(|p| p["address6"].as_str()?.parse::<Ipv6Addr>().ok())
        .map(|a| ipnet::Ipv6Net::new(a, 122).unwrap().trunc().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn address6(lab: &Lab, node: &str) -> String {
    lab.node(node)["address6"]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no IPv6 address"))
        .to_string()
}

fn route6(lab: &Lab, node: &str, block: &str) -> Option<Value> {
    let out = lab.sh(node, &["ip", "-6", "-j", "-d", "route", "show", block]);
    let v: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
    v.into_iter().find(|r| r["dst"] == block)
}

/// `node`'s route to `owner`'s IPv6 block is Tabby's and goes `via`
/// (native: the owner's IPv6 address on eth0) or through the IPv6 tunnel.
fn route6_ok(lab: &Lab, node: &str, owner: &str, block: &str, tunnel: bool) -> Result<(), String> {
    let r = route6(lab, node, block).ok_or_else(|| format!("{node}: no route to {block}"))?;
    if protocol(&r) != "81" {
        return Err(format!("{node}: {block} is not Tabby's (proto 81): {r}"));
    }
    let dev = r["dev"].as_str().unwrap_or_default();
    if tunnel {
        if dev != "vxlan-v6.calico" {
            return Err(format!("{node}: {block} not via vxlan-v6.calico: {r}"));
        }
    } else {
        let want = address6(lab, owner);
        if r["gateway"].as_str() != Some(want.as_str()) || dev != "eth0" {
            return Err(format!(
                "{node}: {block} not native via {want} dev eth0: {r}"
            ));
        }
    }
    Ok(())
}

/// Every node's IPv6 route to every other node's blocks passes `ok`.
fn all_routes(
    lab: &Lab,
    ok: impl Fn(&str, &str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let nodes = lab.node_names();
    for n in &nodes {
        for o in nodes.iter().filter(|o| *o != n) {
            let blocks = blocks6_of(lab, o);
            if blocks.is_empty() {
                return Err(format!("{o} has no IPv6 pod"));
            }
            for b in blocks {
                ok(n, o, &b)?;
            }
        }
    }
    Ok(())
}

/// Established rows of `node status`'s IPv6 BGP table.
fn established6(lab: &Lab, node: &str) -> Vec<String> {
    let (_, out) = lab.node_status(node);
    out.lines()
        .skip_while(|l| !l.starts_with("IPv6 BGP status"))
        .take_while(|l| !l.starts_with("Block paths"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() == 7 && cells[5] == "Established").then(|| cells[1].to_string())
        })
        .collect()
}

fn converge(lab: &Lab, what: &str, f: impl Fn() -> Result<(), String>) {
    let mut why = String::new();
    let ok = wait_until(Duration::from_secs(30), || f().map_err(|e| why = e).is_ok());
    assert!(ok, "{what}: {why}\n{}", lab.logs());
}

#[test]
fn dual_stack_mesh_routes_ipv6_natively_via_the_owners_ipv6_address() {
    let _g = serial();
    let lab = Lab::three_nodes_with("v6dual", "1", "None", &["--ip-family", "dual"]);
    converge(&lab, "IPv6 routes never became native", || {
        all_routes(&lab, |n, o, b| route6_ok(&lab, n, o, b, false))
    });
    let (ok, out) = lab.wait_check(Duration::from_secs(30));
    assert!(ok, "{out}");
    assert!(out.contains("IPv4: 30/30 pod pairs reachable"), "{out}");
    assert!(out.contains("IPv6: 30/30 pod pairs reachable"), "{out}");
    for n in lab.node_names() {
        let v4 = lab.established_peers(&n);
        let v6 = established6(&lab, &n);
        assert_eq!((v4.len(), v6.len()), (2, 2), "{n}: {v4:?} {v6:?}");
        // The IPv6 table names the peers by their IPv6 addresses.
        assert!(v6.iter().all(|a| a.starts_with("fd31:")), "{n}: {v6:?}");
    }
}

#[test]
fn ipv6_only_cross_subnet_is_native_within_and_vxlan_v6_across() {
    let _g = serial();
    let lab = Lab::three_nodes_with("v6only", "2", "VXLANCrossSubnet", &["--ip-family", "ipv6"]);
    for p in lab.pods() {
        assert!(p["address"].is_null(), "an IPv6-only pod has no IPv4: {p}");
    }
    let subnet = |n: &str| address6(&lab, n).rsplit_once("::").unwrap().0.to_string();
    converge(&lab, "IPv6 CrossSubnet routes", || {
        all_routes(&lab, |n, o, b| {
            route6_ok(&lab, n, o, b, subnet(n) != subnet(o))
        })
    });
    let (ok, out) = lab.wait_check(Duration::from_secs(30));
    assert!(ok, "{out}");
    assert!(out.contains("IPv6: 30/30 pod pairs reachable"), "{out}");
    for n in lab.node_names() {
        assert_eq!(established6(&lab, &n).len(), 2, "{n}: IPv6 sessions");
        assert!(
            lab.established_peers(&n).is_empty(),
            "{n}: no IPv4 sessions"
        );
    }
}

#[test]
fn ipv6_blocks_fall_back_to_vxlan_v6_when_bgp_is_cut() {
    let _g = serial();
    let lab = Lab::three_nodes_with("v6fb", "1", "None", &["--ip-family", "dual"]);
    converge(&lab, "IPv6 routes never became native", || {
        all_routes(&lab, |n, o, b| route6_ok(&lab, n, o, b, false))
    });
    let nodes = lab.node_names();
    let cut = nodes[0].clone();
    let f = std::env::temp_dir().join(format!("{}-drop.nft", lab.name));
    std::fs::write(&f, DROP_179).unwrap();
    lab.sh(&cut, &["nft", "-f", f.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
    assert!(
        wait_until(HOLD + Duration::from_secs(10), || lab
            .established_peers(&cut)
            .is_empty()),
        "{cut}: sessions stayed Established with TCP 179 dropped"
    );
    let mut why = String::new();
    let ok = wait_until(HOLD + Duration::from_secs(8), || {
        for o in nodes.iter().filter(|o| **o != cut) {
            for (from, owner) in [(&cut, o), (o, &cut)] {
                for b in blocks6_of(&lab, owner) {
                    if let Err(e) = route6_ok(&lab, from, owner, &b, true) {
                        why = e;
                        return false;
                    }
                }
            }
        }
        let (ok, out) = lab.check();
        why = out;
        ok
    });
    assert!(
        ok,
        "no IPv6 VXLAN fallback after the hold time: {why}\n{}",
        lab.logs()
    );
}
