//! ARP/NDP neighbour entries and bridge FDB entries on one device, for
//! either family (IPv4 is the default type parameter).

use super::family::{Addr, Net};
use super::socket::{NlError, NlSocket, Request};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelNeigh<A = Ipv4Addr> {
    pub ip: A,
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

/// A unicast FDB entry pointing at a remote VTEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFdb<A = Ipv4Addr> {
    pub mac: [u8; 6],
    pub dst: A,
    pub permanent: bool,
}

fn mac6(bytes: &[u8]) -> Option<[u8; 6]> {
    bytes.try_into().ok()
}

/// IPv4 neighbours of interface `ifindex`.
pub fn dump_neighbours(sock: &mut NlSocket, ifindex: u32) -> Result<Vec<KernelNeigh>, NlError> {
    dump_neighbours_of(sock, ifindex)
}

/// IPv6 (NDP) neighbours of interface `ifindex`.
pub fn dump_neighbours6(
    sock: &mut NlSocket,
    ifindex: u32,
) -> Result<Vec<KernelNeigh<Ipv6Addr>>, NlError> {
    dump_neighbours_of(sock, ifindex)
}

pub fn dump_neighbours_of<A: Addr>(
    sock: &mut NlSocket,
    ifindex: u32,
) -> Result<Vec<KernelNeigh<A>>, NlError> {
    let mut req = NeighbourMessage::default();
    req.header.family = A::Net::FAMILY;
    // NDA_IFINDEX makes the kernel filter the dump (strict or not), so a
    // host with a large ARP table on other interfaces does not ship it all
    // every pass; the check below stays as a guard.
    req.attributes.push(NeighbourAttribute::IfIndex(ifindex));
    let msgs = sock.dump(RouteNetlinkMessage::GetNeighbour(req))?;
    let mut out = Vec::new();
    for m in msgs {
        let RouteNetlinkMessage::NewNeighbour(n) = m else {
            continue;
        };
        if n.header.ifindex != ifindex || n.header.family != A::Net::FAMILY {
            continue;
        }
        let mut ip = None;
        let mut mac = None;
        for attr in &n.attributes {
            match attr {
                NeighbourAttribute::Destination(a) => ip = A::Net::from_neigh_addr(a),
                NeighbourAttribute::LinkLayerAddress(l) => mac = mac6(l),
                _ => {}
            }
        }
        if let Some(ip) = ip {
            out.push(KernelNeigh {
                ip,
                mac,
                permanent: n.header.state == NeighbourState::Permanent,
            });
        }
    }
    Ok(out)
}

/// FDB entries of interface `ifindex` that have a remote IPv4 destination.
pub fn dump_fdb(sock: &mut NlSocket, ifindex: u32) -> Result<Vec<KernelFdb>, NlError> {
    dump_fdb_of(sock, ifindex)
}

/// FDB entries of interface `ifindex` that have a remote IPv6 destination
/// (those of `vxlan-v6.calico`).
pub fn dump_fdb6(sock: &mut NlSocket, ifindex: u32) -> Result<Vec<KernelFdb<Ipv6Addr>>, NlError> {
    dump_fdb_of(sock, ifindex)
}

pub fn dump_fdb_of<A: Addr>(
    sock: &mut NlSocket,
    ifindex: u32,
) -> Result<Vec<KernelFdb<A>>, NlError> {
    let mut req = NeighbourMessage::default();
    req.header.family = AddressFamily::Bridge;
    let msgs = sock.dump(RouteNetlinkMessage::GetNeighbour(req))?;
    let mut out = Vec::new();
    for m in msgs {
        let RouteNetlinkMessage::NewNeighbour(n) = m else {
            continue;
        };
        if n.header.ifindex != ifindex {
            continue;
        }
        let mut dst = None;
        let mut mac = None;
        for attr in &n.attributes {
            match attr {
                // AF_BRIDGE dumps carry the VTEP address as raw bytes; their
                // length says the family.
                NeighbourAttribute::Destination(a) => dst = A::Net::from_neigh_addr(a),
                NeighbourAttribute::LinkLayerAddress(l) => mac = mac6(l),
                _ => {}
            }
        }
        if let (Some(mac), Some(dst)) = (mac, dst) {
            out.push(KernelFdb {
                mac,
                dst,
                permanent: n.header.state == NeighbourState::Permanent,
            });
        }
    }
    Ok(out)
}

fn neigh_message(family: AddressFamily, ifindex: u32) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg
}

/// `ip neigh replace <ip> lladdr <mac> dev <ifindex> nud permanent`.
pub fn set_neighbour_request<A: Addr>(ifindex: u32, ip: A, mac: [u8; 6]) -> Request {
    let mut msg = neigh_message(A::Net::FAMILY, ifindex);
    msg.attributes
        .push(NeighbourAttribute::Destination(A::Net::neigh_addr(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    Request {
        message: RouteNetlinkMessage::NewNeighbour(msg),
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

pub fn delete_neighbour_request<A: Addr>(ifindex: u32, ip: A) -> Request {
    let mut msg = neigh_message(A::Net::FAMILY, ifindex);
    msg.attributes
        .push(NeighbourAttribute::Destination(A::Net::neigh_addr(ip)));
    Request {
        message: RouteNetlinkMessage::DelNeighbour(msg),
        flags: 0,
    }
}

fn fdb_message<A: Addr>(ifindex: u32, mac: [u8; 6], dst: A) -> NeighbourMessage {
    let mut msg = neigh_message(AddressFamily::Bridge, ifindex);
    // NTF_SELF: the entry belongs to the VXLAN device's own table.
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(A::Net::neigh_addr(dst)));
    msg
}

/// `bridge fdb replace <mac> dev <ifindex> dst <dst> self permanent`.
pub fn set_fdb_request<A: Addr>(ifindex: u32, mac: [u8; 6], dst: A) -> Request {
    Request {
        message: RouteNetlinkMessage::NewNeighbour(fdb_message(ifindex, mac, dst)),
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

pub fn delete_fdb_request<A: Addr>(ifindex: u32, mac: [u8; 6], dst: A) -> Request {
    Request {
        message: RouteNetlinkMessage::DelNeighbour(fdb_message(ifindex, mac, dst)),
        flags: 0,
    }
}
