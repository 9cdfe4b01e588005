//! The VXLAN, node-address, MTU and offload faults: what real hosts have
//! when cross-node pod traffic dies while each node looks fine alone.

use super::super::sh::{self, in_ns, ip_in};
use super::super::state::{ns_prefix, Lab};
use super::{env_of, restart_with_env, Fault};
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "storage-nic",
        about: "a second NIC (eth1, 192.168.250.0/24, a storage network no other node is on) and tabby-node restarted with IP=autodetect IP_AUTODETECTION_METHOD=interface=eth1 (seed 001)",
        inject: storage_inject,
        clear: storage_clear,
    },
    Fault {
        name: "mtu",
        about: "the node's switch port (its fabric-side link) at MTU 1400 while the node's NIC and pods keep 1500/1450: big packets vanish on the path",
        inject: mtu_inject,
        clear: mtu_clear,
    },
    Fault {
        name: "block-4789",
        about: "a host firewall (nft table inet host-firewall) dropping UDP 4789 on input: VXLAN from the other nodes never arrives",
        inject: block_inject,
        clear: block_clear,
    },
    Fault {
        name: "fdb-wrong",
        about: "the FDB entry for another subnet's node's VTEP MAC pointing at a stale address (.250 on its subnet); a running tabby-node repairs it within a second, so stop it first (lab node stop) to see the doctor find it",
        inject: fdb_inject,
        clear: fdb_clear,
    },
    Fault {
        name: "checksum-offload",
        about: "FELIX_FEATUREDETECTOVERRIDE=ChecksumOffloadBroken=true edited into the node's env but not rolled out (tabby-node not restarted), with tx checksum offload on for vxlan.calico",
        inject: offload_inject,
        clear: offload_clear,
    },
];

const STORAGE_NIC: &str = "eth1";
const STORAGE_BRIDGE: &str = "br-storage";
const PATH_MTU: &str = "1400";
const FW_TABLE: &str = "host-firewall";
const OVERRIDE: &str = "FELIX_FEATUREDETECTOVERRIDE";

fn storage_ns(lab: &Lab) -> String {
    format!("{}storage", ns_prefix(&lab.name))
}

fn storage_addr(i: usize) -> String {
    format!("192.168.250.{}/24", 11 + i)
}

fn has_link(ns: &str, name: &str) -> bool {
    ip_in(ns, &["link", "show", name]).is_ok()
}

fn storage_inject(lab: &mut Lab, i: usize) -> Result<()> {
    let node_ns = lab.nodes[i].netns.clone();
    if !has_link(&node_ns, STORAGE_NIC) {
        // The storage network: its own switch, on which no other node
        // of the cluster has a port.
        let s = storage_ns(lab);
        if !sh::netns_list()?.contains(&s) {
            sh::ip(&["netns", "add", &s])?;
            ip_in(&s, &["link", "add", STORAGE_BRIDGE, "type", "bridge"])?;
            ip_in(&s, &["link", "set", STORAGE_BRIDGE, "up"])?;
        }
        let port = format!("s{}", i + 1);
        ip_in(
            &s,
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                STORAGE_NIC,
                "netns",
                &node_ns,
            ],
        )?;
        ip_in(&s, &["link", "set", &port, "master", STORAGE_BRIDGE, "up"])?;
        ip_in(
            &node_ns,
            &["addr", "add", &storage_addr(i), "dev", STORAGE_NIC],
        )?;
        ip_in(&node_ns, &["link", "set", STORAGE_NIC, "up"])?;
    }
    let method = format!("interface={STORAGE_NIC}");
    if env_of(lab, i, "IP_AUTODETECTION_METHOD") != Some(method.as_str()) {
        restart_with_env(
            lab,
            i,
            &[("IP", "autodetect"), ("IP_AUTODETECTION_METHOD", &method)],
            &[],
        )?;
    }
    Ok(())
}

fn storage_clear(lab: &mut Lab, i: usize) -> Result<()> {
    let n = &lab.nodes[i];
    let fixed = format!(
        "{}/{}",
        n.address,
        n.subnet.rsplit('/').next().unwrap_or("24")
    );
    if env_of(lab, i, "IP") != Some(fixed.as_str())
        || env_of(lab, i, "IP_AUTODETECTION_METHOD").is_some()
    {
        restart_with_env(lab, i, &[("IP", &fixed)], &["IP_AUTODETECTION_METHOD"])?;
    }
    let node_ns = lab.nodes[i].netns.clone();
    if has_link(&node_ns, STORAGE_NIC) {
        ip_in(&node_ns, &["link", "del", STORAGE_NIC])?;
    }
    // The storage switch goes with its last port.
    let s = storage_ns(lab);
    if sh::netns_list()?.contains(&s) {
        let out = ip_in(&s, &["-o", "link", "show", "master", STORAGE_BRIDGE])?;
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            sh::ip(&["netns", "del", &s])?;
        }
    }
    Ok(())
}

fn mtu_inject(lab: &mut Lab, i: usize) -> Result<()> {
    let (f, port) = (lab.fabric.netns.clone(), lab.nodes[i].fabric_link.clone());
    ip_in(&f, &["link", "set", "dev", &port, "mtu", PATH_MTU]).map(|_| ())
}

fn mtu_clear(lab: &mut Lab, i: usize) -> Result<()> {
    let (f, port) = (lab.fabric.netns.clone(), lab.nodes[i].fabric_link.clone());
    ip_in(&f, &["link", "set", "dev", &port, "mtu", "1500"])?;
    // The path MTU the nodes learnt from the router's "fragmentation
    // needed" while the fault was in: it would outlive the fault by
    // minutes.
    for n in &lab.nodes {
        ip_in(&n.netns, &["route", "flush", "cache"])?;
    }
    Ok(())
}

fn nft(ns: &str, args: &[&str]) -> Result<std::process::Output> {
    sh::run(in_ns(ns, "nft").args(args))
}

fn has_fw_table(ns: &str) -> bool {
    nft(ns, &["list", "table", "inet", FW_TABLE]).is_ok()
}

fn block_inject(lab: &mut Lab, i: usize) -> Result<()> {
    let ns = lab.nodes[i].netns.clone();
    if has_fw_table(&ns) {
        return Ok(());
    }
    nft(&ns, &["add", "table", "inet", FW_TABLE])?;
    nft(
        &ns,
        &[
            "add",
            "chain",
            "inet",
            FW_TABLE,
            "input",
            "{ type filter hook input priority filter; policy accept; }",
        ],
    )?;
    nft(
        &ns,
        &[
            "add", "rule", "inet", FW_TABLE, "input", "udp", "dport", "4789", "drop",
        ],
    )?;
    Ok(())
}

fn block_clear(lab: &mut Lab, i: usize) -> Result<()> {
    let ns = lab.nodes[i].netns.clone();
    if has_fw_table(&ns) {
        nft(&ns, &["delete", "table", "inet", FW_TABLE])?;
    }
    Ok(())
}

/// The address the wrong FDB entry for node `j` points at: an unused
/// address on its subnet (a host that has since been replaced).
fn stale_addr(lab: &Lab, j: usize) -> Ipv4Addr {
    let o = lab.nodes[j].address.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 250)
}

/// `bridge -j fdb show dev vxlan.calico` in node `i`: (mac, dst) pairs.
fn fdb(lab: &Lab, i: usize) -> Result<Vec<(String, String)>> {
    let out = sh::run(in_ns(&lab.nodes[i].netns, "bridge").args([
        "-j",
        "fdb",
        "show",
        "dev",
        "vxlan.calico",
    ]))?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading bridge -j fdb show")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["mac"].as_str()?.into(), e["dst"].as_str()?.into())))
        .collect())
}

fn fdb_replace(lab: &Lab, i: usize, mac: &str, dst: &str) -> Result<()> {
    sh::run(in_ns(&lab.nodes[i].netns, "bridge").args([
        "fdb",
        "replace",
        mac,
        "dev",
        "vxlan.calico",
        "dst",
        dst,
        "self",
        "permanent",
    ]))
    .map(|_| ())
}

fn fdb_inject(lab: &mut Lab, i: usize) -> Result<()> {
    // A node this one tunnels to: on another subnet if there is one.
    let others: Vec<usize> = (0..lab.nodes.len()).filter(|&j| j != i).collect();
    let Some(&j) = others
        .iter()
        .find(|&&j| lab.nodes[j].subnet != lab.nodes[i].subnet)
        .or(others.first())
    else {
        bail!("fdb-wrong needs a second node");
    };
    let entries = fdb(lab, i)?;
    let want = lab.nodes[j].address.to_string();
    let stale = stale_addr(lab, j).to_string();
    if entries.iter().any(|(_, d)| *d == stale) {
        return Ok(());
    }
    let Some((mac, _)) = entries.iter().find(|(_, d)| *d == want) else {
        bail!(
            "{} has no FDB entry towards {} ({want}) on vxlan.calico to make wrong",
            lab.nodes[i].name,
            lab.nodes[j].name
        );
    };
    fdb_replace(lab, i, mac, &stale)
}

fn fdb_clear(lab: &mut Lab, i: usize) -> Result<()> {
    if !has_link(&lab.nodes[i].netns, "vxlan.calico") {
        return Ok(());
    }
    let entries = fdb(lab, i)?;
    for j in (0..lab.nodes.len()).filter(|&j| j != i) {
        let stale = stale_addr(lab, j).to_string();
        for (mac, _) in entries.iter().filter(|(_, d)| *d == stale) {
            fdb_replace(lab, i, mac, &lab.nodes[j].address.to_string())?;
        }
    }
    Ok(())
}

fn offload_inject(lab: &mut Lab, i: usize) -> Result<()> {
    // The DaemonSet's env edited, the pod not restarted: the record
    // `lab exec` (and so node doctor) reads changes, tabby-node does not.
    let env = &mut lab.nodes[i].env;
    env.retain(|kv| !kv.starts_with(&format!("{OVERRIDE}=")));
    env.push(format!("{OVERRIDE}=ChecksumOffloadBroken=true"));
    sh::run(in_ns(&lab.nodes[i].netns, "ethtool").args(["-K", "vxlan.calico", "tx", "on"]))
        .map(|_| ())
}

fn offload_clear(lab: &mut Lab, i: usize) -> Result<()> {
    lab.nodes[i]
        .env
        .retain(|kv| !kv.starts_with(&format!("{OVERRIDE}=")));
    Ok(())
}
