//! `node-address` and `vxlan-device`: the node address on an interface the
//! other nodes cannot reach (seed 001: autodetection picked the storage
//! NIC, so BGP peers and VXLAN FDB entries everywhere point at an address
//! nobody routes to), and `vxlan.calico` bound to another parent or local
//! address than the node address.
//!
//! The address check reads the kernel's own route lookup towards each
//! other node (`ip route get`), then confirms with pings sourced from the
//! node address: a node address that is only routed indirectly (a loopback
//! address announced by BGP) answers those and is left alone.

use super::local::{self, Me, Remote};
use super::probe::{self, Ping};
use super::{Ctx, Finding};
use futures::future::join_all;
use tabby_felix_lite::autodetect::host::{route_get, RouteLookup};
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::model::VXLAN_DEVICE;

/// At most this many other nodes are looked up and pinged per run.
const MAX_REMOTES: usize = 8;

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let (Some(k), Some(me)) = (ctx.kernel(), local::me(ctx)) else {
        return Vec::new();
    };
    let mut out = device(k, &me);
    out.extend(advertised(ctx, &me));
    out.extend(address(ctx, k, &me).await);
    out
}

/// `vxlan.calico`'s parent and local address against the node's.
fn device(k: &KernelSnapshot, me: &Me) -> Vec<Finding> {
    let Some(vx) = local::vxlan_link(k) else {
        return Vec::new();
    };
    let info = vx.vxlan.clone().unwrap_or_default();
    let parent = info.parent.map(|i| k.ifname(i));
    let shown = format!(
        "`ip -d link show {VXLAN_DEVICE}`: vxlan local {} dev {}; node address {} (from {}) is on {}",
        info.local.map_or("none".into(), |l| l.to_string()),
        parent.as_deref().unwrap_or("none"),
        me.ip,
        me.source,
        me.link.as_ref().map_or("no interface", |l| l.name.as_str())
    );
    let repair = |iface: &str| {
        format!(
            "ip link del {VXLAN_DEVICE}  # tabby-node re-creates it on {iface} with local {} on its next pass (start it if it is down)",
            me.ip
        )
    };
    let mut out = Vec::new();
    if info.local != Some(me.ip) {
        out.push(
            Finding::error(
                "vxlan-device",
                format!(
                    "{VXLAN_DEVICE} sends VXLAN from {} but this node's address is {}: other nodes' FDB entries point at {} and their packets' replies come from an address they do not expect",
                    info.local.map_or("no local address".into(), |l| l.to_string()),
                    me.ip,
                    me.ip
                ),
            )
            .evidence(shown.clone())
            .fix(repair(me.link.as_ref().map_or("the node interface", |l| l.name.as_str()))),
        );
    }
    if let Some(want) = &me.link {
        if info.parent.is_some() && info.parent != Some(want.index) {
            out.push(
                Finding::error(
                    "vxlan-device",
                    format!(
                        "{VXLAN_DEVICE} is bound to {} but the node address {} is on {}: encapsulated packets leave through the wrong interface",
                        parent.as_deref().unwrap_or("none"),
                        me.ip,
                        want.name
                    ),
                )
                .evidence(shown)
                .fix(repair(&want.name)),
            );
        }
    }
    out
}

/// The address tabby-node uses against the one its Node resource
/// advertises (what the other nodes peer with and tunnel to).
fn advertised(ctx: &Ctx, me: &Me) -> Option<Finding> {
    if me.source != "tabby-node" {
        return None;
    }
    let node = ctx.this_node()?;
    let adv = super::node_ipv4(node)?;
    (adv != me.ip).then(|| {
        Finding::error(
            "node-address",
            format!(
                "tabby-node uses {} but this node's Node resource advertises {adv}: the other nodes peer with and tunnel to {adv}",
                me.ip
            ),
        )
        .evidence(format!(
            "Node {} spec.bgp.ipv4Address {}; tabby-node's node address {}",
            ctx.node_name,
            node.spec
                .bgp
                .as_ref()
                .and_then(|b| b.ipv4_address.clone())
                .unwrap_or_default(),
            me.ip
        ))
        .fix("restart tabby-node: it writes its node address into its Node at start")
    })
}

/// One other node as the kernel routes to it.
struct Lookup {
    remote: Remote,
    route: Option<RouteLookup>,
}

/// `ip route get R` as ip prints it: `R dev eth0 src A`.
fn route_line(k: &KernelSnapshot, l: &Lookup) -> String {
    match &l.route {
        None => format!("{}: no route", l.remote.ip),
        Some(r) => {
            let mut s = l.remote.ip.to_string();
            if let Some(o) = r.oif {
                s.push_str(&format!(" dev {}", k.ifname(o)));
            }
            if let Some(src) = r.pref_src {
                s.push_str(&format!(" src {src}"));
            }
            s
        }
    }
}

/// The others this node reaches through another interface than the one
/// holding its address: (lookup, that interface's index).
fn elsewhere<'a>(me: &Me, lookups: &'a [Lookup]) -> Vec<(&'a Lookup, u32)> {
    let Some(mine) = &me.link else {
        return Vec::new();
    };
    lookups
        .iter()
        .filter_map(|l| {
            let oif = l.route.as_ref()?.oif?;
            (oif != mine.index).then_some((l, oif))
        })
        .collect()
}

/// The setting that puts the node address on `iface` (towards `via`).
pub fn fix_for(ctx: &Ctx, k: &KernelSnapshot, iface_index: u32, via: std::net::Ipv4Addr) -> String {
    let name = k.ifname(iface_index);
    let addr = local::first_addr(k, iface_index);
    if local::ip_is_fixed(ctx) {
        if let Some(a) = addr {
            return format!("IP={a} (the address on {name}), or IP=autodetect with IP_AUTODETECTION_METHOD=interface={name}");
        }
    }
    format!("IP_AUTODETECTION_METHOD=interface={name} (or can-reach={via})")
}

async fn address(ctx: &Ctx, k: &KernelSnapshot, me: &Me) -> Vec<Finding> {
    let Some(mine) = &me.link else {
        let chosen = local::chosen_by(ctx);
        let have: Vec<String> = k
            .addrs
            .iter()
            .filter(|a| tabby_felix_lite::autodetect::is_global_unicast(a.ip))
            .map(|a| format!("{}/{} on {}", a.ip, a.prefix_len, k.ifname(a.index)))
            .collect();
        return vec![Finding::error(
            "node-address",
            format!(
                "this node's address {} (from {}) is on none of its interfaces (calico#5705): nothing answers the other nodes' BGP and VXLAN there",
                me.ip, me.source
            ),
        )
        .evidence(format!("{chosen}; addresses here: {}", have.join(", ")))
        .fix("IP_AUTODETECTION_METHOD=can-reach=<another node's address> (or IP=<an address of this node>)")];
    };
    let remotes: Vec<Remote> = local::remotes(ctx, Some(me))
        .into_iter()
        .take(MAX_REMOTES)
        .collect();
    let mut lookups = Vec::new();
    for r in remotes {
        let route = route_get(r.ip).await.ok().flatten();
        lookups.push(Lookup { remote: r, route });
    }
    let off = elsewhere(me, &lookups);
    let Some(&(first, oif)) = off.first() else {
        return Vec::new();
    };
    let chosen = local::chosen_by(ctx);
    let routes: Vec<String> = off.iter().map(|(l, _)| route_line(k, l)).collect();
    let mut evidence = format!(
        "{chosen} gave {} on {}; `ip route get`: {}",
        me.net.map_or(me.ip.to_string(), |n| n.to_string()),
        mine.name,
        routes.join("; ")
    );
    let what = format!(
        "the node address {} is on {}, but the other nodes ({}) are reached through {}: they cannot reach this node at its address (BGP and VXLAN towards it fail)",
        me.ip,
        mine.name,
        off.iter()
            .map(|(l, _)| l.remote.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        k.ifname(oif)
    );
    let fix = fix_for(ctx, k, oif, first.remote.ip);
    if !ctx.opts.probes {
        return vec![Finding::warning("node-address", what)
            .evidence(evidence)
            .fix(fix)];
    }
    let src = me.ip.to_string();
    let t = ctx.opts.probe_timeout;
    let pings: Vec<(Ping, Ping)> = join_all(off.iter().take(3).map(|(l, _)| {
        let src = src.clone();
        async move {
            let from = probe::ping(t, &["-I", &src], l.remote.ip).await;
            let plain = if from.ok {
                None
            } else {
                Some(probe::ping(t, &[], l.remote.ip).await)
            };
            (from, plain)
        }
    }))
    .await
    .into_iter()
    .filter_map(|(from, plain)| Some((from, plain?)))
    .collect();
    // Unreachable from the node address but reachable otherwise: the
    // address is the problem. Both failing says nothing about it.
    let confirmed: Vec<&(Ping, Ping)> = pings.iter().filter(|(_, p)| p.ok).collect();
    if confirmed.is_empty() {
        return Vec::new();
    }
    for (from, plain) in confirmed {
        evidence.push_str(&format!("; {}; {}", from.describe(), plain.describe()));
    }
    vec![Finding::error("node-address", what)
        .evidence(evidence)
        .fix(fix)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_felix_lite::netlink::links::{KernelAddr, KernelLink, VxlanInfo};

    fn link(index: u32, name: &str) -> KernelLink {
        KernelLink {
            index,
            name: name.into(),
            mtu: 1500,
            mac: None,
            up: true,
            kind: None,
            vxlan: None,
        }
    }

    fn snapshot(vx_parent: u32, vx_local: &str) -> KernelSnapshot {
        let mut vx = link(9, VXLAN_DEVICE);
        vx.vxlan = Some(VxlanInfo {
            parent: Some(vx_parent),
            local: Some(vx_local.parse().unwrap()),
            ..Default::default()
        });
        KernelSnapshot {
            links: vec![link(2, "eth0"), link(3, "eth1"), vx],
            addrs: vec![
                KernelAddr {
                    index: 2,
                    ip: "172.31.1.11".parse().unwrap(),
                    prefix_len: 24,
                },
                KernelAddr {
                    index: 3,
                    ip: "192.168.250.11".parse().unwrap(),
                    prefix_len: 24,
                },
            ],
            ..Default::default()
        }
    }

    fn me(k: &KernelSnapshot, ip: &str) -> Me {
        let ip = ip.parse().unwrap();
        let a = k.addrs.iter().find(|a| a.ip == ip).unwrap();
        Me {
            ip,
            net: ipnet::Ipv4Net::new(ip, a.prefix_len).ok(),
            source: "tabby-node",
            link: k.link_by_index(a.index).cloned(),
        }
    }

    #[test]
    fn device_on_the_node_interface_is_fine() {
        let k = snapshot(2, "172.31.1.11");
        assert!(device(&k, &me(&k, "172.31.1.11")).is_empty());
    }

    #[test]
    fn device_on_another_parent_and_local_is_named() {
        let k = snapshot(3, "192.168.250.11");
        let f = device(&k, &me(&k, "172.31.1.11"));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].what.contains("sends VXLAN from 192.168.250.11"),
            "{f:?}"
        );
        assert!(f[1].what.contains("bound to eth1") && f[1].what.contains("on eth0"));
        assert!(f[1].fix.starts_with("ip link del vxlan.calico"));
        assert!(f[0]
            .evidence
            .contains("vxlan local 192.168.250.11 dev eth1"));
    }

    #[test]
    fn others_reached_through_another_interface() {
        let k = snapshot(3, "192.168.250.11");
        let m = me(&k, "192.168.250.11");
        let lk = |ip: &str, oif| Lookup {
            remote: Remote {
                name: format!("n-{ip}"),
                ip: ip.parse().unwrap(),
                tunnel_ip: None,
                mac: None,
            },
            route: Some(RouteLookup {
                oif: Some(oif),
                pref_src: None,
                gateway: None,
            }),
        };
        let ls = vec![lk("172.31.1.12", 2), lk("192.168.250.12", 3)];
        let off = elsewhere(&m, &ls);
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].1, 2);
        assert_eq!(route_line(&k, off[0].0), "172.31.1.12 dev eth0");
        // Everything through the address's own interface: nothing.
        assert!(elsewhere(&me(&k, "172.31.1.11"), &ls[..1]).is_empty());
    }
}
