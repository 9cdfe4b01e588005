//! `sysctl`: the kernel settings that silently stop pod traffic crossing
//! this node — IPv4 forwarding off (globally, or on the node interface or
//! `vxlan.calico`) and strict reverse-path filtering on the node interface.
//!
//! `net.ipv4.ip_forward` and `net.ipv4.conf.all.forwarding` are one knob
//! (writing either sets both, and every interface's `forwarding` with it),
//! so it is one finding; per-interface values are looked at only while it
//! is on. The kernel filters reverse paths by max(conf.all, conf.<if>), so
//! that is the value judged, and setting the interface to loose (2) is
//! enough to fix it whatever `all` says.

use super::{node_ipv4, Ctx, Finding};
use tabby_felix_lite::sysctl;

const CHECK: &str = "sysctl";
const VXLAN: &str = "vxlan.calico";

/// The values read for one node.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub ip_forward: Option<String>,
    /// (interface, its `forwarding`).
    pub forwarding: Vec<(String, String)>,
    /// The node interface, `conf.all.rp_filter` and its own `rp_filter`.
    pub rp_filter: Option<(String, u8, u8)>,
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(k) = ctx.kernel() else {
        return Vec::new();
    };
    // The node interface: the one holding the node address (the agent's,
    // else the Node resource's), found in the kernel itself so this works
    // with tabby-node down.
    let ip = ctx
        .agent()
        .and_then(|a| a.status.node_ip.split('/').next()?.parse().ok())
        .or_else(|| ctx.this_node().and_then(node_ipv4));
    let parent = ip.and_then(|ip| {
        k.addrs
            .iter()
            .find(|a| a.ip == ip)
            .map(|a| k.ifname(a.index))
    });
    let mut v = Values {
        ip_forward: sysctl::read(&["net", "ipv4", "ip_forward"]).ok(),
        ..Values::default()
    };
    let mut ifaces: Vec<String> = parent.iter().cloned().collect();
    if k.link(VXLAN).is_some() {
        ifaces.push(VXLAN.into());
    }
    for i in ifaces {
        if let Ok(f) = sysctl::read(&["net", "ipv4", "conf", &i, "forwarding"]) {
            v.forwarding.push((i, f));
        }
    }
    if let Some(p) = &parent {
        let all = sysctl::read(&["net", "ipv4", "conf", "all", "rp_filter"]);
        let own = sysctl::read(&["net", "ipv4", "conf", p, "rp_filter"]);
        if let (Ok(a), Ok(o)) = (all, own) {
            if let (Ok(a), Ok(o)) = (a.parse(), o.parse()) {
                v.rp_filter = Some((p.clone(), a, o));
            }
        }
    }
    judge(&v, ctx.agent().is_some())
}

/// `sysctl -w` wants `/` between the parts when an interface name has a
/// dot in it (`vxlan.calico`).
fn key(iface: &str, leaf: &str) -> String {
    if iface.contains('.') {
        format!("net/ipv4/conf/{iface}/{leaf}")
    } else {
        format!("net.ipv4.conf.{iface}.{leaf}")
    }
}

pub fn judge(v: &Values, agent_up: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let keeps = if agent_up {
        "tabby-node sets it and something on this host turned it off again"
    } else {
        "tabby-node sets it while it runs, and it is not running"
    };
    if v.ip_forward.as_deref() == Some("0") {
        out.push(
            Finding::error(
                CHECK,
                format!(
                    "IPv4 forwarding is off: this node drops every packet to or from its pods \
                     that crosses it, and routes nothing for other nodes ({keeps})"
                ),
            )
            .evidence("net.ipv4.ip_forward = 0 (net.ipv4.conf.all.forwarding = 0)")
            .fix("sysctl -w net.ipv4.ip_forward=1"),
        );
    } else {
        for (iface, f) in &v.forwarding {
            if f == "0" {
                out.push(
                    Finding::error(
                        CHECK,
                        format!(
                            "IPv4 forwarding is off on {iface}: pod traffic arriving on {iface} \
                             is not forwarded"
                        ),
                    )
                    .evidence(format!(
                        "{} = 0",
                        key(iface, "forwarding").replace('/', ".")
                    ))
                    .fix(format!("sysctl -w {}=1", key(iface, "forwarding"))),
                );
            }
        }
    }
    if let Some((iface, all, own)) = &v.rp_filter {
        if (*all).max(*own) == 1 {
            out.push(
                Finding::warning(
                    CHECK,
                    format!(
                        "strict reverse-path filtering on {iface}: pod traffic that arrives on \
                         {iface} while this node's route back to its source leaves by another \
                         interface (VXLAN fallback, a second NIC, asymmetric routes) is dropped \
                         without a trace"
                    ),
                )
                .evidence(format!(
                    "net.ipv4.conf.all.rp_filter = {all}, {} = {own}: effective max = 1 (strict)",
                    key(iface, "rp_filter").replace('/', ".")
                ))
                .fix(format!("sysctl -w {}=2", key(iface, "rp_filter"))),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Values {
        Values {
            ip_forward: Some("1".into()),
            forwarding: vec![("eth0".into(), "1".into()), (VXLAN.into(), "1".into())],
            rp_filter: Some(("eth0".into(), 0, 0)),
        }
    }

    #[test]
    fn a_healthy_node_has_nothing() {
        assert!(judge(&healthy(), true).is_empty());
        let mut loose = healthy();
        loose.rp_filter = Some(("eth0".into(), 1, 2));
        assert!(judge(&loose, true).is_empty(), "max(1, 2) is loose");
    }

    #[test]
    fn ip_forward_off_is_one_finding_not_one_per_interface() {
        let mut v = healthy();
        v.ip_forward = Some("0".into());
        v.forwarding = vec![("eth0".into(), "0".into()), (VXLAN.into(), "0".into())];
        let f = judge(&v, false);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].fix, "sysctl -w net.ipv4.ip_forward=1");
        assert!(f[0].what.contains("not running"));
    }

    #[test]
    fn per_interface_forwarding_uses_slashes_for_dotted_names() {
        let mut v = healthy();
        v.forwarding[1].1 = "0".into();
        let f = judge(&v, true);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].fix,
            "sysctl -w net/ipv4/conf/vxlan.calico/forwarding=1"
        );
        assert_eq!(f[0].evidence, "net.ipv4.conf.vxlan.calico.forwarding = 0");
    }

    #[test]
    fn strict_rp_filter_counts_all_or_the_interface() {
        for (all, own) in [(1, 0), (0, 1), (1, 1)] {
            let mut v = healthy();
            v.rp_filter = Some(("eth0".into(), all, own));
            let f = judge(&v, true);
            assert_eq!(f.len(), 1, "all={all} own={own}");
            assert_eq!(f[0].fix, "sysctl -w net.ipv4.conf.eth0.rp_filter=2");
        }
    }
}
