//! `tabbyctl node doctor`: the cross-node failures Calico and Flannel users
//! lose days to, found on one node and named with their fix.
//!
//! A doctor run gathers a [`Ctx`] once — the kernel as it is (read here,
//! with netlink, so it works when tabby-node is down or from a hostNetwork
//! pod), the local tabby-node's view over its socket, and the cluster from
//! the datastore — then every check group reads it and returns
//! [`Finding`]s. Checks that need the network (DF-bit pings, the VXLAN
//! probe, TCP 179) send their probes only to the node addresses and tunnel
//! addresses the datastore lists.
//!
//! Each part of the context is a `Result`: a check whose source is missing
//! says nothing (the missing source is itself a finding), so one broken
//! part never hides the others.
//!
//! | group | finds |
//! |---|---|
//! | `routes` | foreign routes into pod blocks (edge-address next hops, wrong owner, shadowing) |
//! | `vxlan` | `vxlan.calico` on the wrong parent/local address, a node address others cannot reach, FDB/ARP entries, the UDP 4789 probe |
//! | `mtu` | NIC vs pod MTU plus overhead, veth MTUs, DF-bit probes between nodes |
//! | `bgp` | peers not Established and why, and whether fallback carries their blocks |
//! | `forward` | forward drop policies Tabby's accepts do not precede (nftables, iptables-legacy) |
//! | `offload` | tx checksum offload on `vxlan.calico` against the known-bad kernels and the override |
//! | `sysctl` | `ip_forward`, per-interface forwarding, strict `rp_filter` |
//! | `neigh` | the host-wide ARP/NDP tables overflowing now or nearly full, with the `gc_thresh` sysctls to raise |
//! | `pools` | pools overlapping node subnets, node addresses, service CIDRs, each other; the route budget |
//! | `cni` | conflists that sort before Tabby's, a missing plugin binary, a foreign conflist |
//! | `ipv6` | IPv6 forwarding, `vxlan-v6.calico` VNI/port/parent/MTU, IPv6 block routes via unconnected next hops, NAT66, IPv6 forward accepts |
//! | `datastore` | unreachable or lagging datastore, IPAM inconsistencies, VTEP addresses that are other hosts' |

mod bgp;
mod budget;
mod cni;
mod datastore;
mod forward;
mod gather;
mod ipv6;
mod local;
mod mtu;
mod neigh;
mod offload;
mod pools;
mod probe;
mod render;
mod routes;
mod sysctl;
mod vxlan;
mod vxlan_fw;
mod vxlan_path;

pub use gather::{gather, node_ipv4, node_ipv4_net, Agent, Cluster, Ctx, Options};
pub use ipv6::{inspect as inspect_ipv6, Pool6Want, Want6};
pub use render::{line as render_line, render_json, render_text, summary};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Breaks pod traffic or will: `node doctor` exits non-zero.
    Error,
    /// Works today but is fragile or degraded (a fallback in use, a budget
    /// nearly spent).
    Warning,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        })
    }
}

/// One problem: what is wrong, what shows it, and what fixes it (a command
/// to run or a setting to change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// The check that found it, e.g. `route` or `bgp` (stable: scripts and
    /// tests key on it).
    pub check: String,
    /// The node it was found on (filled in by [`run`]).
    pub node: String,
    pub what: String,
    pub evidence: String,
    pub fix: String,
}

impl Finding {
    pub fn error(check: &str, what: impl Into<String>) -> Finding {
        Finding::new(Severity::Error, check, what)
    }

    pub fn warning(check: &str, what: impl Into<String>) -> Finding {
        Finding::new(Severity::Warning, check, what)
    }

    fn new(severity: Severity, check: &str, what: impl Into<String>) -> Finding {
        Finding {
            severity,
            check: check.to_string(),
            node: String::new(),
            what: what.into(),
            evidence: String::new(),
            fix: String::new(),
        }
    }

    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence = e.into();
        self
    }

    pub fn fix(mut self, f: impl Into<String>) -> Finding {
        self.fix = f.into();
        self
    }
}

/// Every check group over one context, errors first.
pub async fn run(ctx: &Ctx) -> Vec<Finding> {
    let mut all = Vec::new();
    all.extend(gather::source_findings(ctx));
    all.extend(routes::check(ctx).await);
    all.extend(pools::check(ctx).await);
    all.extend(budget::check(ctx).await);
    all.extend(cni::check(ctx).await);
    all.extend(datastore::check(ctx).await);
    all.extend(vxlan::check(ctx).await);
    all.extend(mtu::check(ctx).await);
    all.extend(vxlan_path::check(ctx).await);
    all.extend(offload::check(ctx).await);
    all.extend(bgp::check(ctx).await);
    all.extend(forward::check(ctx).await);
    all.extend(sysctl::check(ctx).await);
    all.extend(ipv6::check(ctx).await);
    all.extend(neigh::check(ctx).await);
    for f in &mut all {
        f.node = ctx.node_name.clone();
    }
    all.sort_by_key(|f| f.severity);
    all
}

/// True when any finding is an error (`node doctor`'s exit status).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
