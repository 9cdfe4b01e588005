//! ARP (IPv4 neighbour) and bridge FDB entries on one device.

use super::socket::{NlError, NlSocket, Request};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelNeigh {
    pub ip: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

/// A unicast FDB entry pointing at a remote VTEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFdb {
    pub mac: [u8; 6],
    pub dst: Ipv4Addr,
    pub permanent: bool,
}

fn mac6(bytes: &[u8]) -> Option<[u8; 6]> {
    bytes.try_into().ok()
}

/// IPv4 neighbours of interface `ifindex`.
pub fn dump_neighbours(sock: &mut NlSocket, ifindex: u32) -> Result<Vec<KernelNeigh>, NlError> {
    let mut req = NeighbourMessage::default();
    req.header.family = AddressFamily::Inet;
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
        if n.header.ifindex != ifindex || n.header.family != AddressFamily::Inet {
            continue;
        }
        let mut ip = None;
        let mut mac = None;
        for attr in &n.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
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

/// FDB entries of interface `ifindex` that have a remote destination.
pub fn dump_fdb(sock: &mut NlSocket, ifindex: u32) -> Result<Vec<KernelFdb>, NlError> {
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
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(*a),
                // AF_BRIDGE dumps carry the VTEP address as raw bytes.
                NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                    dst = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
                }
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
pub fn set_neighbour_request(ifindex: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Request {
    let mut msg = neigh_message(AddressFamily::Inet, ifindex);
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    Request {
        message: RouteNetlinkMessage::NewNeighbour(msg),
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

pub fn delete_neighbour_request(ifindex: u32, ip: Ipv4Addr) -> Request {
    let mut msg = neigh_message(AddressFamily::Inet, ifindex);
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    Request {
        message: RouteNetlinkMessage::DelNeighbour(msg),
        flags: 0,
    }
}

fn fdb_message(ifindex: u32, mac: [u8; 6], dst: Ipv4Addr) -> NeighbourMessage {
    let mut msg = neigh_message(AddressFamily::Bridge, ifindex);
    // NTF_SELF: the entry belongs to the VXLAN device's own table.
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    msg
}

/// `bridge fdb replace <mac> dev <ifindex> dst <dst> self permanent`.
pub fn set_fdb_request(ifindex: u32, mac: [u8; 6], dst: Ipv4Addr) -> Request {
    Request {
        message: RouteNetlinkMessage::NewNeighbour(fdb_message(ifindex, mac, dst)),
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

pub fn delete_fdb_request(ifindex: u32, mac: [u8; 6], dst: Ipv4Addr) -> Request {
    Request {
        message: RouteNetlinkMessage::DelNeighbour(fdb_message(ifindex, mac, dst)),
        flags: 0,
    }
}
