//! rtnetlink change notifications that should wake the reconciler.
//!
//! An event says "look again". Route notifications also keep the
//! reconciler's [`Views`] of the main tables current, and link, address
//! and nexthop notifications tell the views when the kernel may have
//! removed routes without a word (see `view`). A lost event (ENOBUFS) is
//! treated as a change, and makes both views stale: the next pass dumps.
//!
//! Groups: links, IPv4 and IPv6 addresses and routes, neighbours
//! (`vxlan.calico`'s and `vxlan-v6.calico`'s only), and IPv4 and IPv6
//! netconf, which the kernel notifies when `ip_forward` or an
//! interface's `forwarding`, `proxy_arp` or `rp_filter` is written, so an
//! admin's `sysctl -w net.ipv4.ip_forward=0` is undone by the pass it wakes.
//! nftables changes come on another netlink family (see `nft_events`).

use super::view::Views;
use crate::netlink::routes;
use crate::netlink::socket::setsockopt_int;
use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REPLACE};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::route::{RouteAttribute, RouteFlags, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use tokio::io::unix::AsyncFd;

// Bit (group - 1) of the legacy bind mask for RTNLGRP_LINK (1),
// RTNLGRP_NEIGH (3), RTNLGRP_IPV4_IFADDR (5), RTNLGRP_IPV4_ROUTE (7),
// RTNLGRP_IPV6_IFADDR (9), RTNLGRP_IPV6_ROUTE (11),
// RTNLGRP_IPV4_NETCONF (24), RTNLGRP_IPV6_NETCONF (25), RTNLGRP_NEXTHOP
// (32: a nexthop object removed takes its routes along silently; the
// messages do not decode here, which makes the views stale).
const GROUPS: u32 =
    1 | (1 << 2) | (1 << 4) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 23) | (1 << 24) | (1 << 31);
/// Room for the notifications of a few thousand route writes queued while a
/// pass runs (the default, about 200 KiB, overflowed at a few hundred and
/// cost a full dump each time). A cap, not an allocation.
const EVENTS_RCVBUF: libc::c_int = 8 << 20;
const RT_TABLE_MAIN: u32 = 254;
/// RTM_NEWNETCONF and RTM_DELNETCONF: netlink-packet-route has no type for
/// them, so they are recognised by header before decoding.
const NETCONF_TYPES: [u16; 2] = [80, 81];

/// The indexes of `vxlan.calico` and `vxlan-v6.calico` (None: absent).
pub type Vxlans = [Option<u32>; 2];

pub struct Events {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
}

impl Events {
    /// Subscribes in the calling thread's network namespace; must be called
    /// inside a tokio runtime.
    pub fn open() -> io::Result<Events> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, GROUPS))?;
        sock.set_non_blocking(true)?;
        // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the capped size.
        if setsockopt_int(&sock, libc::SO_RCVBUFFORCE, EVENTS_RCVBUF).is_err() {
            let _ = setsockopt_int(&sock, libc::SO_RCVBUF, EVENTS_RCVBUF);
        }
        Ok(Events {
            // SAFETY: the socket is moved into the AsyncFd and its fd stays
            // open and owned by it until the AsyncFd is dropped.
            fd: unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// Waits until at least one relevant notification arrived (or some were
    /// lost), then consumes everything queued. `vxlan` are the indexes of
    /// `vxlan.calico` and `vxlan-v6.calico`: neighbour churn on other
    /// interfaces (ordinary ARP and NDP) is not Tabby's business.
    pub async fn changed(&mut self, vxlan: Vxlans, views: &mut Views) -> io::Result<()> {
        loop {
            self.fd.readable().await?.clear_ready();
            // Level of readiness was just cleared; anything arriving from
            // here on marks the fd ready again, so nothing is missed.
            let relevant = self.drain(vxlan, views)?;
            if relevant {
                return Ok(());
            }
        }
    }

    /// Reads everything queued without waiting, applying it to `views`;
    /// true if any of it matters.
    pub fn drain(&mut self, vxlan: Vxlans, views: &mut Views) -> io::Result<bool> {
        let mut relevant = false;
        let result = loop {
            self.buf.clear();
            match self.fd.get_ref().recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(_) => relevant |= datagram(&self.buf, vxlan, views),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(relevant),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    views.invalidate();
                    relevant = true;
                }
                Err(e) => {
                    views.invalidate();
                    break Err(e);
                }
            }
        };
        views.end_batch();
        result
    }
}

/// Applies every message of a datagram to `views`; true if one matters.
fn datagram(buf: &[u8], vxlan: Vxlans, views: &mut Views) -> bool {
    let mut relevant = false;
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            views.invalidate();
            return true;
        }
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if NETCONF_TYPES.contains(&kind) {
            relevant = true;
        } else {
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..off + len]) {
                Ok(msg) => {
                    let replace = msg.header.flags & NLM_F_REPLACE != 0;
                    if let NetlinkPayload::InnerMessage(m) = &msg.payload {
                        apply(m, replace, views);
                        neighbour_seen(m, vxlan, views);
                    }
                    relevant |= message_matters(&msg.payload, vxlan);
                }
                Err(_) => {
                    views.invalidate();
                    relevant = true;
                }
            }
        }
        off += (len + 3) & !3;
    }
    relevant
}

/// What a notification says about the main tables' routes.
pub(super) fn apply(m: &RouteNetlinkMessage, replace: bool, views: &mut Views) {
    match m {
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
            // Exceptions (PMTU, redirects) are not in the dumps either.
            if route_table(r) != RT_TABLE_MAIN || r.header.flags.contains(RouteFlags::Cloned) {
                return;
            }
            let new = matches!(m, RouteNetlinkMessage::NewRoute(_));
            match r.header.address_family {
                AddressFamily::Inet => match routes::parse::<Ipv4Net>(r) {
                    Some(k) if new => views.v4.added(k, replace),
                    Some(k) => views.v4.deleted(&k),
                    None => views.v4.invalidate(),
                },
                AddressFamily::Inet6 => match routes::parse::<Ipv6Net>(r) {
                    Some(k) if new => views.v6.added(k, replace),
                    Some(k) => views.v6.deleted(&k),
                    None => views.v6.invalidate(),
                },
                _ => {}
            }
        }
        // AF_BRIDGE link messages are about bridge ports (a DELLINK of
        // one is `nomaster`, not a device deleted); the device's own come
        // as AF_UNSPEC.
        RouteNetlinkMessage::NewLink(l)
            if l.header.interface_family == AddressFamily::Unspec
                && !l.header.flags.contains(LinkFlags::Up) =>
        {
            views.link_down(l.header.index);
        }
        RouteNetlinkMessage::DelLink(l) if l.header.interface_family == AddressFamily::Unspec => {
            views.link_gone(l.header.index);
        }
        // IPv4 drops the routes through a device silently when its last
        // address goes, and routes with that preferred source.
        RouteNetlinkMessage::DelAddress(a) if a.header.family == AddressFamily::Inet => {
            views.v4.invalidate();
        }
        _ => {}
    }
}

/// Marks the neighbours of the VXLAN device an ARP/NDP or FDB message is
/// about as needing a dump.
fn neighbour_seen(m: &RouteNetlinkMessage, vxlan: Vxlans, views: &mut Views) {
    if let RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n) = m {
        for (fam, dev) in vxlan.iter().enumerate() {
            if *dev == Some(n.header.ifindex) {
                views.neigh_stale[fam] = true;
            }
        }
    }
}

fn message_matters(payload: &NetlinkPayload<RouteNetlinkMessage>, vxlan: Vxlans) -> bool {
    let NetlinkPayload::InnerMessage(m) = payload else {
        return false;
    };
    match m {
        // ARP/NDP and FDB entries of the VXLAN devices only.
        RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n) => {
            vxlan.contains(&Some(n.header.ifindex))
        }
        // The kernel's own link-local address appearing: it comes a second
        // or two after each link is up (when duplicate address detection
        // ends) and would wake a pass with nothing to do. Tabby never
        // removes one; one disappearing (the pod gateway's) still matters.
        RouteNetlinkMessage::NewAddress(a) => !a
            .attributes
            .iter()
            .any(|at| matches!(at, AddressAttribute::Address(IpAddr::V6(ip)) if is_link_local(ip))),
        // The local table is the kernel's, derived from addresses (whose
        // own notifications wake a pass); Tabby writes only the main table.
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
            route_table(r) != RT_TABLE_LOCAL
        }
        _ => true,
    }
}

const RT_TABLE_LOCAL: u32 = 255;

fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::AddressMessage;

    fn addr(ip: &str) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut a = AddressMessage::default();
        a.attributes
            .push(AddressAttribute::Address(ip.parse().unwrap()));
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a))
    }

    fn route(table: u8, new: bool) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut r = RouteMessage::default();
        r.header.table = table;
        NetlinkPayload::InnerMessage(if new {
            RouteNetlinkMessage::NewRoute(r)
        } else {
            RouteNetlinkMessage::DelRoute(r)
        })
    }

    /// Measured on 6.18: `ip link set X nomaster` is an AF_BRIDGE DELLINK
    /// of X, which stays; deleting X is an AF_UNSPEC one.
    #[test]
    fn only_a_device_deleted_drops_its_routes_from_the_view() {
        use netlink_packet_route::link::LinkMessage;
        use netlink_packet_route::route::{RouteScope, RouteType};
        let route = crate::netlink::routes::KernelRoute {
            dst: "10.1.0.0/26".parse().unwrap(),
            protocol: 81,
            tos: 0,
            priority: 0,
            kind: RouteType::Unicast,
            scope: RouteScope::Link,
            gateway: None,
            oif: Some(5),
            onlink: false,
        };
        let mut views = Views::default();
        views.v4.refill(vec![route]);
        let mut port = LinkMessage::default();
        port.header.index = 5;
        port.header.interface_family = AddressFamily::Bridge;
        apply(
            &RouteNetlinkMessage::DelLink(port.clone()),
            false,
            &mut views,
        );
        views.end_batch();
        assert_eq!(views.v4.len(), 1, "a bridge port left its bridge");
        port.header.interface_family = AddressFamily::Unspec;
        apply(
            &RouteNetlinkMessage::NewLink(port.clone()),
            false,
            &mut views,
        );
        apply(&RouteNetlinkMessage::DelLink(port), false, &mut views);
        views.end_batch();
        assert_eq!(views.v4.len(), 0);
        assert!(!views.v4.is_stale(), "down, then deleted: no dump needed");
    }

    /// Seen in `ipv6_vxlan`: DAD ending on eth0 and vxlan-v6.calico a
    /// second after link up (an fe80 address, its local and anycast routes)
    /// woke passes with nothing to do.
    #[test]
    fn the_kernels_link_local_and_local_table_wake_nothing() {
        let none = [None, None];
        assert!(!message_matters(&addr("fe80::6400:ff:fe00:60a"), none));
        assert!(message_matters(&addr("fd00:1::5"), none));
        assert!(message_matters(&addr("10.0.0.5"), none));
        let mut gone = AddressMessage::default();
        gone.attributes.push(AddressAttribute::Address(
            "fe80::ecee:eeff:feee:eeee".parse().unwrap(),
        ));
        let gone = NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(gone));
        assert!(message_matters(&gone, none), "a link-local address removed");
        assert!(!message_matters(&route(255, true), none));
        assert!(!message_matters(&route(255, false), none));
        assert!(message_matters(&route(254, true), none));
        assert!(message_matters(&route(254, false), none));
    }
}
