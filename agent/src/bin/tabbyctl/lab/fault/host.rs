//! Host settings that stop pod or BGP traffic, put onto a node as a host
//! firewall or an admin's `sysctl -w` would: nftables tables dropping or
//! rejecting TCP 179 or dropping forwarded traffic, iptables-legacy's
//! FORWARD policy, IPv4 forwarding off, strict reverse-path filtering.
//!
//! Each nft fault owns one table, so clearing it (deleting that table) takes
//! away exactly what inject added and nothing of another fault's.

use super::super::sh::{in_ns, run, sysctl_in};
use super::super::state::Lab;
use super::Fault;
use anyhow::Result;

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "block-179",
        about: "a host firewall drops incoming TCP 179 (table inet bgpblock): BGP filtered",
        inject: |lab, i| port_179(lab, i, BLOCK, "drop"),
        clear: |lab, i| delete_table(lab, i, BLOCK),
    },
    Fault {
        name: "reject-179",
        about: "a host firewall rejects incoming TCP 179 with a reset (table inet bgpreject)",
        inject: |lab, i| port_179(lab, i, REJECT, "reject with tcp reset"),
        clear: |lab, i| delete_table(lab, i, REJECT),
    },
    Fault {
        name: "forward-drop",
        about: "a host firewall's forward chain with policy drop (table inet filter), seed 001",
        inject: forward_drop,
        clear: |lab, i| delete_table(lab, i, FILTER),
    },
    Fault {
        name: "forward-drop-legacy",
        about: "iptables-legacy -P FORWARD DROP (Docker does this), out of nftables' reach",
        inject: |lab, i| legacy_policy(lab, i, "DROP"),
        clear: |lab, i| legacy_policy(lab, i, "ACCEPT"),
    },
    Fault {
        name: "ip-forward-off",
        about: "sysctl -w net.ipv4.ip_forward=0",
        inject: |lab, i| sysctl(lab, i, &["net.ipv4.ip_forward=0"]),
        clear: |lab, i| sysctl(lab, i, &["net.ipv4.ip_forward=1"]),
    },
    Fault {
        name: "rp-filter-strict",
        about: "strict rp_filter (1) on conf.all and eth0, as RHEL-family hosts ship it",
        inject: |lab, i| {
            sysctl(
                lab,
                i,
                &[
                    "net.ipv4.conf.all.rp_filter=1",
                    "net.ipv4.conf.eth0.rp_filter=1",
                ],
            )
        },
        // A lab namespace starts with 0 for both.
        clear: |lab, i| {
            sysctl(
                lab,
                i,
                &[
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.eth0.rp_filter=0",
                ],
            )
        },
    },
];

const BLOCK: &str = "bgpblock";
const REJECT: &str = "bgpreject";
const FILTER: &str = "filter";

fn nft(lab: &Lab, i: usize, args: &[&str]) -> Result<String> {
    let out = run(in_ns(&lab.nodes[i].netns, "nft").args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn has_table(lab: &Lab, i: usize, table: &str) -> Result<bool> {
    let tables = nft(lab, i, &["list", "tables"])?;
    Ok(tables
        .lines()
        .any(|l| l.trim() == format!("table inet {table}")))
}

fn delete_table(lab: &mut Lab, i: usize, table: &str) -> Result<()> {
    if has_table(lab, i, table)? {
        nft(lab, i, &["delete", "table", "inet", table])?;
    }
    Ok(())
}

/// A table with an input chain that lets everything in but TCP 179.
fn port_179(lab: &mut Lab, i: usize, table: &str, verdict: &str) -> Result<()> {
    delete_table(lab, i, table)?;
    nft(lab, i, &["add", "table", "inet", table])?;
    nft(
        lab,
        i,
        &[
            "add",
            "chain",
            "inet",
            table,
            "input",
            "{ type filter hook input priority 0; policy accept; }",
        ],
    )?;
    let rule = format!("tcp dport 179 {verdict}");
    let mut args = vec!["add", "rule", "inet", table, "input"];
    args.extend(rule.split(' '));
    nft(lab, i, &args)?;
    Ok(())
}

fn forward_drop(lab: &mut Lab, i: usize) -> Result<()> {
    delete_table(lab, i, FILTER)?;
    nft(lab, i, &["add", "table", "inet", FILTER])?;
    nft(
        lab,
        i,
        &[
            "add",
            "chain",
            "inet",
            FILTER,
            "forward",
            "{ type filter hook forward priority 0; policy drop; }",
        ],
    )?;
    Ok(())
}

fn legacy_policy(lab: &mut Lab, i: usize, policy: &str) -> Result<()> {
    run(in_ns(&lab.nodes[i].netns, "iptables-legacy").args(["-P", "FORWARD", policy]))?;
    Ok(())
}

fn sysctl(lab: &mut Lab, i: usize, settings: &[&str]) -> Result<()> {
    for s in settings {
        sysctl_in(&lab.nodes[i].netns, s)?;
    }
    Ok(())
}
