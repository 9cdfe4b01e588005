//! Kernel routes as `ip route` prints them, and the `ip route del` that
//! removes exactly one of them: `node doctor` quotes routes it did not
//! write (another protocol's, an operator's) in the words the operator will
//! search for, and hands back a delete that cannot take Tabby's own route
//! on the same prefix with it.

use crate::inspect::KernelSnapshot;
use crate::netlink::routes::KernelRoute;
use netlink_packet_route::route::{RouteScope, RouteType};

/// A route protocol by the name `ip route` uses (/etc/iproute2/rt_protos),
/// or its number.
pub fn protocol_name(p: u8) -> String {
    let name = match p {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        17 => "mrouted",
        18 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        _ => return p.to_string(),
    };
    name.to_string()
}

/// The route's type word as `ip route` prints it before the prefix; None
/// for an ordinary (unicast) route.
pub fn type_name(r: &KernelRoute) -> Option<String> {
    // By number: the enum is non-exhaustive, the numbers are the ABI.
    let name = match u8::from(r.kind) {
        1 => return None,
        0 => "unspec",
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        11 => "xresolve",
        n => return Some(n.to_string()),
    };
    Some(name.to_string())
}

/// True for a route that drops what it matches (blackhole, unreachable,
/// prohibit) rather than forwarding it.
pub fn drops(r: &KernelRoute) -> bool {
    matches!(
        r.kind,
        RouteType::BlackHole | RouteType::Unreachable | RouteType::Prohibit
    )
}

fn scope_name(s: RouteScope) -> Option<String> {
    let name = match u8::from(s) {
        0 => return None,
        200 => "site",
        253 => "link",
        254 => "host",
        255 => "nowhere",
        n => return Some(n.to_string()),
    };
    Some(name.to_string())
}

fn dst_text(r: &KernelRoute) -> String {
    match r.dst.prefix_len() {
        0 => "default".into(),
        32 => r.dst.addr().to_string(),
        _ => r.dst.to_string(),
    }
}

/// The words that pick out this one route: type, prefix, TOS, next hop,
/// device, protocol (always: it keeps another protocol's route on the same
/// prefix out of a delete) and metric.
fn selector(r: &KernelRoute, ifname: &dyn Fn(u32) -> String) -> Vec<String> {
    let mut w = Vec::new();
    w.extend(type_name(r));
    w.push(dst_text(r));
    if r.tos != 0 {
        w.push(format!("tos 0x{:x}", r.tos));
    }
    if let Some(g) = r.gateway {
        w.push(format!("via {g}"));
    }
    if let Some(i) = r.oif {
        w.push(format!("dev {}", ifname(i)));
    }
    w.push(format!("proto {}", protocol_name(r.protocol)));
    w
}

/// `r` as `ip route show` prints it (interfaces by name; `proto boot`,
/// the default, left out as `ip` leaves it out).
pub fn line(r: &KernelRoute, ifname: &dyn Fn(u32) -> String) -> String {
    let mut w = selector(r, ifname);
    if r.protocol == 3 {
        w.retain(|x| x != "proto boot");
    }
    w.extend(scope_name(r.scope).map(|s| format!("scope {s}")));
    if r.priority != 0 {
        w.push(format!("metric {}", r.priority));
    }
    if r.onlink {
        w.push("onlink".into());
    }
    w.join(" ")
}

/// The `ip route del` that removes `r` and nothing else.
pub fn delete_command(r: &KernelRoute, ifname: &dyn Fn(u32) -> String) -> String {
    let mut w = vec!["ip route del".to_string()];
    w.extend(selector(r, ifname));
    if r.priority != 0 {
        w.push(format!("metric {}", r.priority));
    }
    w.join(" ")
}

impl KernelSnapshot {
    /// [`line`] with this snapshot's interface names.
    pub fn route_line(&self, r: &KernelRoute) -> String {
        line(r, &|i| self.ifname(i))
    }

    /// [`delete_command`] with this snapshot's interface names.
    pub fn route_delete_command(&self, r: &KernelRoute) -> String {
        delete_command(r, &|i| self.ifname(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, protocol: u8) -> KernelRoute {
        KernelRoute {
            dst: dst.parse().unwrap(),
            protocol,
            tos: 0,
            priority: 0,
            kind: RouteType::Unicast,
            scope: RouteScope::Universe,
            gateway: None,
            oif: None,
            onlink: false,
        }
    }

    fn names(i: u32) -> String {
        match i {
            2 => "eth0".into(),
            _ => format!("if{i}"),
        }
    }

    #[test]
    fn routes_print_as_ip_route_prints_them() {
        let mut r = route("172.30.221.128/27", 4);
        r.gateway = Some("172.31.1.0".parse().unwrap());
        r.oif = Some(2);
        assert_eq!(
            line(&r, &names),
            "172.30.221.128/27 via 172.31.1.0 dev eth0 proto static"
        );
        assert_eq!(
            delete_command(&r, &names),
            "ip route del 172.30.221.128/27 via 172.31.1.0 dev eth0 proto static"
        );
        r.priority = 100;
        r.onlink = true;
        r.protocol = 3;
        assert_eq!(
            line(&r, &names),
            "172.30.221.128/27 via 172.31.1.0 dev eth0 metric 100 onlink"
        );
        // The delete names the protocol and metric even when `ip` does not
        // print them, so Tabby's metric-0 route on the prefix survives it.
        assert_eq!(
            delete_command(&r, &names),
            "ip route del 172.30.221.128/27 via 172.31.1.0 dev eth0 proto boot metric 100"
        );
    }

    #[test]
    fn types_scopes_and_host_routes() {
        let mut b = route("10.0.0.0/26", 99);
        b.kind = RouteType::BlackHole;
        assert_eq!(line(&b, &names), "blackhole 10.0.0.0/26 proto openr");
        assert!(drops(&b));
        let mut w = route("10.0.0.5/32", 81);
        w.oif = Some(7);
        w.scope = RouteScope::Link;
        assert_eq!(line(&w, &names), "10.0.0.5 dev if7 proto 81 scope link");
        assert!(!drops(&w));
        assert_eq!(line(&route("0.0.0.0/0", 16), &names), "default proto dhcp");
    }
}
