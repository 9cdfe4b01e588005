//! `mtu`: the sizes pod packets are given against what the NIC and the
//! path carry (seeds 001/003). Read from the kernel: `vxlan.calico`'s MTU
//! against its parent NIC's minus VXLAN's 50 bytes, and the pods' `cali*`
//! veths against the pod MTU this node computes now (a NIC MTU changed
//! after the pods were created leaves them with the old size). Then
//! probed: a DF-bit ping of the full wire size to each other node, next to
//! a small one so an unreachable node is not taken for an MTU problem; a
//! path that drops big packets is bisected for the size that passes.

use super::local::{self, Me};
use super::probe::{self, Ping};
use super::{Ctx, Finding};
use futures::future::join_all;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::model::{VXLAN_DEVICE, VXLAN_OVERHEAD};
use tabby_felix_lite::netlink::links::KernelLink;

/// At most this many other nodes get a DF probe per run.
const MAX_PROBES: usize = 8;
/// Bisection steps for the largest size that passes (1500 → exact).
const BISECT_STEPS: u32 = 11;
/// Each bisection ping waits this long: most of them are expected to fail.
const BISECT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// A small ping's IP size: it gets through any working path.
const SMALL: u32 = 84;

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let (Some(k), Some(me)) = (ctx.kernel(), local::me(ctx)) else {
        return Vec::new();
    };
    let vx = local::vxlan_link(k);
    // The NIC pod traffic leaves through: VXLAN's parent, else the one
    // holding the node address.
    let nic = vx
        .and_then(|v| v.vxlan.as_ref()?.parent)
        .and_then(|i| k.link_by_index(i))
        .or(me.link.as_ref());
    let Some(nic) = nic else {
        return Vec::new();
    };
    let pod_mtu = ctx
        .agent()
        .map(|a| a.dataplane.pod_mtu)
        .filter(|m| *m > 0)
        .or(vx.map(|v| v.mtu));
    let explicit = ctx
        .env("FELIX_VXLANMTU")
        .filter(|v| !v.trim().is_empty() && *v != "0");
    let mut out = headroom(vx, nic, pod_mtu, explicit);
    if let Some(p) = pod_mtu {
        out.extend(veths(k, p, explicit.is_some()));
    }
    if ctx.opts.probes {
        let overhead = if vx.is_some() { VXLAN_OVERHEAD } else { 0 };
        let size = pod_mtu.map_or(nic.mtu, |p| (p + overhead).min(nic.mtu));
        out.extend(path(ctx, &me, nic, size, vx.is_some(), explicit.is_some()).await);
    }
    out
}

/// `vxlan.calico` (or, without VXLAN, the pods) against the NIC's MTU.
fn headroom(
    vx: Option<&KernelLink>,
    nic: &KernelLink,
    pod_mtu: Option<u32>,
    explicit: Option<&str>,
) -> Vec<Finding> {
    let room = nic.mtu.saturating_sub(VXLAN_OVERHEAD);
    match vx {
        Some(v) if v.mtu > room => vec![Finding::error(
            "mtu",
            format!(
                "{VXLAN_DEVICE} has MTU {} but {} (MTU {}) leaves room for {room} after VXLAN's {VXLAN_OVERHEAD}-byte header: full-size pod packets are dropped between nodes",
                v.mtu, nic.name, nic.mtu
            ),
        )
        .evidence(format!(
            "`ip link`: {VXLAN_DEVICE} mtu {}, {} mtu {}{}",
            v.mtu,
            nic.name,
            nic.mtu,
            explicit.map_or(String::new(), |e| format!("; FELIX_VXLANMTU={e}"))
        ))
        .fix(match explicit {
            Some(_) => format!("FELIX_VXLANMTU={room} (or unset it: tabby-node derives {room} from {})", nic.name),
            None => format!("ip link set dev {VXLAN_DEVICE} mtu {room}"),
        })],
        None => match pod_mtu {
            Some(p) if p > nic.mtu => vec![Finding::error(
                "mtu",
                format!(
                    "pods get MTU {p} but {} has MTU {}: their full-size packets are dropped",
                    nic.name, nic.mtu
                ),
            )
            .evidence(format!("tabby-node's pod MTU {p}; `ip link`: {} mtu {}", nic.name, nic.mtu))
            .fix("restart tabby-node so it derives the pod MTU from the NIC, then re-create the pods")],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The pods' host-side veths whose MTU is not the node's pod MTU, by MTU.
fn veths(k: &KernelSnapshot, pod_mtu: u32, explicit: bool) -> Vec<Finding> {
    let mut by_mtu: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for l in k.links.iter().filter(|l| l.name.starts_with("cali")) {
        if l.mtu != pod_mtu {
            by_mtu.entry(l.mtu).or_default().push(&l.name);
        }
    }
    by_mtu
        .into_iter()
        .map(|(mtu, names)| {
            let shown = names.iter().take(4).copied().collect::<Vec<_>>().join(", ");
            let more = names.len().saturating_sub(4);
            let evidence = format!(
                "`ip link`: {shown}{} mtu {mtu}; tabby-node's pod MTU {pod_mtu}",
                if more > 0 { format!(" and {more} more") } else { String::new() }
            );
            let fix = format!(
                "re-create the pods on this node (kubectl delete pod -A --field-selector spec.nodeName=<this node>) so the CNI plugin gives them MTU {pod_mtu}{}",
                if explicit { "" } else { ", or pin the old size with FELIX_VXLANMTU if the network carries it" }
            );
            if mtu > pod_mtu {
                Finding::error(
                    "mtu",
                    format!(
                        "{} pod interface(s) have MTU {mtu}, above the {pod_mtu} this node now gives pods: their full-size packets do not fit the network",
                        names.len()
                    ),
                )
                .evidence(evidence)
                .fix(fix)
            } else {
                Finding::warning(
                    "mtu",
                    format!(
                        "{} pod interface(s) have MTU {mtu}, below the {pod_mtu} this node now gives pods (created before the MTU changed)",
                        names.len()
                    ),
                )
                .evidence(evidence)
                .fix(fix)
            }
        })
        .collect()
}

/// One DF probe: the big ping failed and the small one passed.
struct Drop {
    name: String,
    ip: Ipv4Addr,
    big: Ping,
    small: Ping,
}

async fn probe_one(ctx: &Ctx, name: String, ip: Ipv4Addr, size: u32) -> Option<Drop> {
    let t = ctx.opts.probe_timeout;
    let big = probe::df_ping(t, ip, size).await;
    if big.ok {
        return None;
    }
    let small = probe::ping(t, &[], ip).await;
    small.ok.then_some(Drop {
        name,
        ip,
        big,
        small,
    })
}

async fn path(
    ctx: &Ctx,
    me: &Me,
    nic: &KernelLink,
    size: u32,
    vxlan: bool,
    explicit: bool,
) -> Vec<Finding> {
    let remotes = local::remotes(ctx, Some(me));
    let drops: Vec<Drop> = join_all(
        remotes
            .into_iter()
            .take(MAX_PROBES)
            .map(|r| probe_one(ctx, r.name, r.ip, size)),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    let Some(first) = drops.first() else {
        return Vec::new();
    };
    let largest = match first.big.local_mtu().filter(|m| *m < size) {
        // The kernel already knows the path MTU (an ICMP "fragmentation
        // needed" came back): no need to bisect.
        Some(m) => m,
        None => {
            probe::largest_passing(
                BISECT_WAIT.min(ctx.opts.probe_timeout),
                first.ip,
                SMALL,
                size,
                BISECT_STEPS,
            )
            .await
        }
    };
    let names: Vec<String> = drops
        .iter()
        .map(|d| format!("{} ({})", d.name, d.ip))
        .collect();
    let sent = if vxlan {
        format!(
            "pods' {} plus VXLAN's {VXLAN_OVERHEAD}",
            size.saturating_sub(VXLAN_OVERHEAD)
        )
    } else {
        "pods' full-size packets".to_string()
    };
    let mut evidence: Vec<String> = drops
        .iter()
        .map(|d| format!("{}; {}", d.big.describe(), d.small.describe()))
        .collect();
    evidence.push(format!(
        "largest that passed to {}: {largest} bytes",
        first.ip
    ));
    let fix = if vxlan && explicit {
        format!("FELIX_VXLANMTU={}", largest.saturating_sub(VXLAN_OVERHEAD))
    } else {
        format!("ip link set dev {} mtu {largest}", nic.name)
    };
    let alt = if vxlan && !explicit {
        format!(
            "; lower the NIC's MTU to match (tabby-node then gives new pods {}), or set FELIX_VXLANMTU={} and re-create the pods",
            largest.saturating_sub(VXLAN_OVERHEAD),
            largest.saturating_sub(VXLAN_OVERHEAD)
        )
    } else {
        String::new()
    };
    vec![Finding::error(
        "mtu",
        format!(
            "{size}-byte packets ({sent}) with DF set do not reach {} though small pings do: the path carries only {largest} bytes, below {}'s MTU {}{alt}",
            names.join(", "),
            nic.name,
            nic.mtu
        ),
    )
    .evidence(evidence.join("; "))
    .fix(fix)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, mtu: u32) -> KernelLink {
        KernelLink {
            index: 0,
            name: name.into(),
            mtu,
            mac: None,
            up: true,
            kind: None,
            vxlan: None,
        }
    }

    #[test]
    fn vxlan_mtu_without_room() {
        let nic = link("eth0", 1500);
        assert!(headroom(Some(&link(VXLAN_DEVICE, 1450)), &nic, Some(1450), None).is_empty());
        let f = headroom(Some(&link(VXLAN_DEVICE, 1480)), &nic, Some(1480), None);
        assert_eq!(f.len(), 1);
        assert!(f[0].what.contains("leaves room for 1450"), "{f:?}");
        assert_eq!(f[0].fix, "ip link set dev vxlan.calico mtu 1450");
        let f = headroom(
            Some(&link(VXLAN_DEVICE, 1480)),
            &nic,
            Some(1480),
            Some("1480"),
        );
        assert!(f[0].fix.starts_with("FELIX_VXLANMTU=1450"));
        // Native routing: pods at the NIC's MTU are right.
        assert!(headroom(None, &nic, Some(1500), None).is_empty());
        assert_eq!(headroom(None, &nic, Some(9000), None).len(), 1);
    }

    #[test]
    fn veths_that_disagree_with_the_pod_mtu() {
        let k = KernelSnapshot {
            links: vec![
                link("eth0", 1400),
                link("cali0001", 1450),
                link("cali0002", 1450),
                link("cali0003", 1350),
                link("cali0004", 1300),
            ],
            ..Default::default()
        };
        let f = veths(&k, 1350, false);
        assert_eq!(f.len(), 2, "{f:?}");
        // Sorted by MTU: the smaller (a warning) first.
        assert_eq!(f[0].severity, super::super::Severity::Warning);
        assert_eq!(f[1].severity, super::super::Severity::Error);
        assert!(f[1].what.starts_with("2 pod interface(s) have MTU 1450"));
        assert!(f[1].evidence.contains("cali0001, cali0002 mtu 1450"));
        assert!(f[1].fix.contains("MTU 1350"));
        assert!(veths(&k, 1450, false)
            .iter()
            .all(|f| !f.evidence.contains("cali0001")));
    }
}
