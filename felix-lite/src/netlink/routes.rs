//! Main-table routes of either family (IPv4 is the default type parameter,
//! IPv6 is `Ipv6Net`): what Tabby programs, what the kernel holds, and the
//! messages between the two.

use super::family::Net;
use super::socket::{NlError, NlSocket, Request};
use crate::model::TABBY_ROUTE_PROTOCOL;
use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

const RT_TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// Where a route sends traffic, in kernel terms (interfaces by index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTarget<A = std::net::Ipv4Addr> {
    /// `via <gateway> dev <oif> [onlink]`.
    Gateway { gateway: A, oif: u32, onlink: bool },
    /// `dev <oif> scope link` (workload routes).
    Link { oif: u32 },
    /// `blackhole <dst>`.
    Blackhole,
}

/// A route as Tabby programs it: main table, the family's default metric
/// (0, IPv6 1024), TOS 0, protocol 81.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteSpec<N: Net = Ipv4Net> {
    pub dst: N,
    pub target: RouteTarget<N::Addr>,
}

/// A route read back from the kernel's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute<N: Net = Ipv4Net> {
    pub dst: N,
    pub protocol: u8,
    pub tos: u8,
    pub priority: u32,
    pub kind: RouteType,
    pub scope: RouteScope,
    pub gateway: Option<N::Addr>,
    pub oif: Option<u32>,
    pub onlink: bool,
}

/// An IPv6 route read back from the main table.
pub type KernelRoute6 = KernelRoute<Ipv6Net>;
pub type RouteSpec6 = RouteSpec<Ipv6Net>;

impl<N: Net> KernelRoute<N> {
    pub fn is_tabbys(&self) -> bool {
        self.protocol == TABBY_ROUTE_PROTOCOL
    }

    /// The key Tabby's routes are unique on; a second route on the same key
    /// can only be added by replacing the first.
    pub fn occupies_tabby_slot(&self) -> bool {
        self.tos == 0 && self.priority == N::DEFAULT_METRIC
    }

    /// This route in [`RouteSpec`] terms, if it has a shape Tabby writes.
    pub fn spec(&self) -> Option<RouteSpec<N>> {
        let target = match (self.kind, self.gateway, self.oif) {
            (RouteType::BlackHole, None, _) => RouteTarget::Blackhole,
            (RouteType::Unicast, Some(gateway), Some(oif)) => RouteTarget::Gateway {
                gateway,
                oif,
                onlink: self.onlink,
            },
            // IPv6 has no route scopes: the kernel reports universe.
            (RouteType::Unicast, None, Some(oif))
                if self.scope == RouteScope::Link || N::FAMILY == AddressFamily::Inet6 =>
            {
                RouteTarget::Link { oif }
            }
            _ => return None,
        };
        Some(RouteSpec {
            dst: self.dst,
            target,
        })
    }
}

fn base_message<N: Net>(dst: N) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = N::FAMILY;
    msg.header.destination_prefix_length = dst.plen();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(TABBY_ROUTE_PROTOCOL);
    if dst.plen() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(N::route_addr(dst.network())));
    }
    msg
}

/// RTM_NEWROUTE for `spec`. `replace` = false fails with EEXIST when any
/// route holds the slot (so a foreign route is never overwritten); true
/// replaces, which the reconciler only does over a route it read as its own.
pub fn add_request<N: Net>(spec: &RouteSpec<N>, replace: bool) -> Request {
    let mut msg = base_message(spec.dst);
    match spec.target {
        RouteTarget::Gateway {
            gateway,
            oif,
            onlink,
        } => {
            msg.header.scope = RouteScope::Universe;
            msg.header.kind = RouteType::Unicast;
            if onlink {
                msg.header.flags |= RouteFlags::Onlink;
            }
            msg.attributes
                .push(RouteAttribute::Gateway(N::route_addr(gateway)));
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        RouteTarget::Link { oif } => {
            msg.header.scope = RouteScope::Link;
            msg.header.kind = RouteType::Unicast;
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        RouteTarget::Blackhole => {
            msg.header.scope = RouteScope::Universe;
            msg.header.kind = RouteType::BlackHole;
        }
    }
    let flags = if replace {
        NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_CREATE | NLM_F_EXCL
    };
    Request {
        message: RouteNetlinkMessage::NewRoute(msg),
        flags,
    }
}

/// RTM_DELROUTE that matches only a route carrying Tabby's protocol number:
/// the kernel skips routes whose protocol differs, so this can never remove
/// someone else's route for the same prefix.
pub fn delete_request(dst: Ipv4Net, tos: u8, priority: u32) -> Request {
    delete_request_of(dst, tos, priority)
}

/// [`delete_request`] for either family.
pub fn delete_request_of<N: Net>(dst: N, tos: u8, priority: u32) -> Request {
    let mut msg = base_message(dst);
    msg.header.tos = tos;
    msg.header.scope = RouteScope::NoWhere;
    msg.header.kind = RouteType::Unspec;
    if priority != 0 {
        msg.attributes.push(RouteAttribute::Priority(priority));
    }
    Request {
        message: RouteNetlinkMessage::DelRoute(msg),
        flags: 0,
    }
}

/// Every IPv4 route of the main table (all protocols: foreign routes matter
/// when one occupies a destination Tabby wants).
pub fn dump(sock: &mut NlSocket) -> Result<Vec<KernelRoute>, NlError> {
    dump_family(sock)
}

/// Every IPv6 route of the main table.
pub fn dump6(sock: &mut NlSocket) -> Result<Vec<KernelRoute6>, NlError> {
    dump_family(sock)
}

pub fn dump_family<N: Net>(sock: &mut NlSocket) -> Result<Vec<KernelRoute<N>>, NlError> {
    let mut req = RouteMessage::default();
    req.header.address_family = N::FAMILY;
    req.header.table = RouteHeader::RT_TABLE_MAIN;
    let msgs = sock.dump(RouteNetlinkMessage::GetRoute(req))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => parse(&r),
            _ => None,
        })
        .collect())
}

pub(crate) fn parse<N: Net>(msg: &RouteMessage) -> Option<KernelRoute<N>> {
    if msg.header.address_family != N::FAMILY {
        return None;
    }
    let mut table = msg.header.table as u32;
    let mut dst = N::unspecified();
    let mut gateway = None;
    let mut oif = None;
    let mut priority = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = N::from_route_addr(a)?,
            RouteAttribute::Gateway(a) => gateway = N::from_route_addr(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    let dst = N::new(dst, msg.header.destination_prefix_length)?;
    Some(KernelRoute {
        dst,
        protocol: u8::from(msg.header.protocol),
        tos: msg.header.tos,
        priority,
        kind: msg.header.kind,
        scope: msg.header.scope,
        gateway,
        oif,
        onlink: msg.header.flags.contains(RouteFlags::Onlink),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn roundtrip<N: Net>(spec: RouteSpec<N>) -> Option<RouteSpec<N>> {
        let req = add_request(&spec, false);
        let RouteNetlinkMessage::NewRoute(msg) = req.message else {
            panic!("not a NewRoute");
        };
        parse(&msg).and_then(|r| {
            assert!(r.is_tabbys());
            r.spec()
        })
    }

    #[test]
    fn every_target_reads_back_as_written() {
        let dst: Ipv4Net = "10.244.1.0/26".parse().unwrap();
        for target in [
            RouteTarget::Blackhole,
            RouteTarget::Link { oif: 7 },
            RouteTarget::Gateway {
                gateway: Ipv4Addr::new(10, 0, 0, 2),
                oif: 3,
                onlink: true,
            },
            RouteTarget::Gateway {
                gateway: Ipv4Addr::new(10, 0, 0, 2),
                oif: 3,
                onlink: false,
            },
        ] {
            let spec = RouteSpec { dst, target };
            assert_eq!(roundtrip(spec), Some(spec));
        }
    }

    #[test]
    fn ipv6_targets_read_back_as_written() {
        let dst: Ipv6Net = "fd00:10:244:1::/122".parse().unwrap();
        for target in [
            RouteTarget::Blackhole,
            RouteTarget::Link { oif: 7 },
            RouteTarget::Gateway {
                gateway: "fd00::2".parse::<Ipv6Addr>().unwrap(),
                oif: 3,
                onlink: false,
            },
        ] {
            let spec = RouteSpec { dst, target };
            assert_eq!(roundtrip(spec), Some(spec));
        }
    }

    #[test]
    fn deletes_name_tabbys_protocol() {
        let req = delete_request("10.1.0.0/16".parse::<Ipv4Net>().unwrap(), 0, 0);
        let RouteNetlinkMessage::DelRoute(msg) = req.message else {
            panic!("not a DelRoute");
        };
        assert_eq!(u8::from(msg.header.protocol), TABBY_ROUTE_PROTOCOL);
    }
}
