//! rtnetlink change notifications that should wake the reconciler.
//!
//! The reconciler always re-reads the kernel before writing, so an event
//! only needs to say "look again", not what changed; that also makes a lost
//! event (ENOBUFS) harmless: it is treated as a change.
//!
//! Groups: links, IPv4 and IPv6 addresses and routes, neighbours
//! (`vxlan.calico`'s and `vxlan-v6.calico`'s only), and IPv4 and IPv6
//! netconf, which the kernel notifies when `ip_forward` or an
//! interface's `forwarding`, `proxy_arp` or `rp_filter` is written, so an
//! admin's `sysctl -w net.ipv4.ip_forward=0` is undone by the pass it wakes.
//! nftables changes come on another netlink family (see `nft_events`).

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::route::{RouteAttribute, RouteMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use tokio::io::unix::AsyncFd;

// Bit (group - 1) of the legacy bind mask for RTNLGRP_LINK (1),
// RTNLGRP_NEIGH (3), RTNLGRP_IPV4_IFADDR (5), RTNLGRP_IPV4_ROUTE (7),
// RTNLGRP_IPV6_IFADDR (9), RTNLGRP_IPV6_ROUTE (11),
// RTNLGRP_IPV4_NETCONF (24), RTNLGRP_IPV6_NETCONF (25).
const GROUPS: u32 =
    1 | (1 << 2) | (1 << 4) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 23) | (1 << 24);
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
    pub async fn changed(&mut self, vxlan: Vxlans) -> io::Result<()> {
        loop {
            self.fd.readable().await?.clear_ready();
            // Level of readiness was just cleared; anything arriving from
            // here on marks the fd ready again, so nothing is missed.
            let relevant = self.drain(vxlan)?;
            if relevant {
                return Ok(());
            }
        }
    }

    /// Reads everything queued without waiting; true if any of it matters.
    pub fn drain(&mut self, vxlan: Vxlans) -> io::Result<bool> {
        let mut relevant = false;
        loop {
            self.buf.clear();
            match self.fd.get_ref().recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(_) => relevant |= datagram_matters(&self.buf, vxlan),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(relevant),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => relevant = true,
                Err(e) => return Err(e),
            }
        }
    }
}

fn datagram_matters(buf: &[u8], vxlan: Vxlans) -> bool {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            return true;
        }
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if NETCONF_TYPES.contains(&kind) {
            return true;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..off + len]) {
            Ok(msg) => {
                if message_matters(&msg.payload, vxlan) {
                    return true;
                }
            }
            Err(_) => return true,
        }
        off += (len + 3) & !3;
    }
    false
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
