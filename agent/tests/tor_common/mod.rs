//! ToR-lab helpers (`lab up --topology tor`): the rack's router, BIRD's
//! control socket, nftables in the fabric namespace, and whether a node
//! routes a block natively via its ToR with Tabby's protocol.

#![allow(dead_code)]

use crate::e2e_common::{protocol, wait_until, Lab};
use std::time::Duration;

/// The protocol number Tabby's routes carry.
pub const TABBY_PROTO: &str = "81";

/// Two racks, one node each, one pod per node, the given extra arguments.
pub fn two_racks(tag: &str, extra: &[&str]) -> Lab {
    let mut args = vec![
        "--nodes",
        "2",
        "--subnets",
        "2",
        "--pods-per-node",
        "1",
        "--topology",
        "tor",
    ];
    args.extend_from_slice(extra);
    Lab::up(tag, &args)
}

/// The router (ToR) address of `node`'s subnet.
pub fn tor_of(lab: &Lab, node: &str) -> String {
    let subnet = lab.node_subnet(node);
    lab.state["fabric"]["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["subnet"] == subnet.as_str())
        .and_then(|b| b["router"].as_str())
        .unwrap_or_else(|| panic!("no bridge for {subnet}"))
        .to_string()
}

pub fn bird_socket(lab: &Lab) -> String {
    format!("/var/run/tabby-lab/{}/bird.ctl", lab.name)
}

pub fn birdc(lab: &Lab, args: &[&str]) -> String {
    let sock = bird_socket(lab);
    let mut a = vec!["birdc", "-s", &sock];
    a.extend_from_slice(args);
    String::from_utf8_lossy(&lab.exec("fabric", &a).stdout).into_owned()
}

/// Loads an nftables ruleset into the fabric namespace.
pub fn fabric_nft(lab: &Lab, ruleset: &str) {
    let f = std::env::temp_dir().join(format!("{}-{}.nft", lab.name, std::process::id()));
    std::fs::write(&f, ruleset).unwrap();
    lab.sh("fabric", &["nft", "-f", f.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
}

/// Whether `node` routes `block` natively via its ToR, as Tabby's route.
pub fn tor_route_ok(lab: &Lab, node: &str, block: &str) -> Result<(), String> {
    let via = tor_of(lab, node);
    match lab.route_to(node, block) {
        Some(r)
            if r["gateway"] == via.as_str()
                && r["dev"] == "eth0"
                && protocol(&r) == TABBY_PROTO =>
        {
            Ok(())
        }
        other => Err(format!(
            "route {other:?} is not via {via} dev eth0 proto {TABBY_PROTO}"
        )),
    }
}

/// Waits until every node routes every other node's blocks via its ToR.
pub fn wait_tor_routes(lab: &Lab, timeout: Duration) -> Result<(), String> {
    let nodes = lab.node_names();
    let mut why = String::new();
    let ok = wait_until(timeout, || {
        for n in &nodes {
            for o in nodes.iter().filter(|o| *o != n) {
                for b in lab.blocks_of(o) {
                    if let Err(e) = tor_route_ok(lab, n, &b) {
                        why = format!("{n} -> {o}'s {b}: {e}");
                        return false;
                    }
                }
            }
        }
        true
    });
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

/// The `node status` block rows (block, node, path, via, reason).
pub fn block_rows(lab: &Lab, node: &str) -> Vec<Vec<String>> {
    let (_, out) = lab.node_status(node);
    out.lines()
        .skip_while(|l| !l.starts_with("Block paths"))
        .take_while(|l| !l.starts_with("Problems"))
        .filter_map(|l| {
            let cells: Vec<String> = l.split('|').map(|c| c.trim().to_string()).collect();
            (cells.len() == 7 && cells[1] != "BLOCK").then(|| cells[1..6].to_vec())
        })
        .collect()
}
