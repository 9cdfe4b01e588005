//! Links and addresses: dumps and the few writes Tabby makes
//! (`vxlan.calico`, `vxlan-v6.calico` and their addresses).

use super::socket::{NlError, NlSocket, Request};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVxlan};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The VXLAN attributes Tabby cares about, as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanInfo {
    pub vni: Option<u32>,
    pub parent: Option<u32>,
    pub local: Option<Ipv4Addr>,
    pub port: Option<u16>,
    pub learning: Option<bool>,
    /// `local` of an IPv6 VXLAN device (`vxlan-v6.calico`).
    pub local6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLink {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: Option<Vec<u8>>,
    pub up: bool,
    pub kind: Option<InfoKind>,
    pub vxlan: Option<VxlanInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelAddr {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
}

pub fn dump_links(sock: &mut NlSocket) -> Result<Vec<KernelLink>, NlError> {
    let msgs = sock.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(&l)),
            _ => None,
        })
        .collect())
}

fn parse_link(msg: &LinkMessage) -> KernelLink {
    let mut link = KernelLink {
        index: msg.header.index,
        name: String::new(),
        mtu: 0,
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        kind: None,
        vxlan: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) => link.mac = Some(a.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = Some(k.clone()),
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            link.vxlan = Some(parse_vxlan(data));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn parse_vxlan(data: &[InfoVxlan]) -> VxlanInfo {
    let mut info = VxlanInfo::default();
    for d in data {
        match d {
            InfoVxlan::Id(v) => info.vni = Some(*v),
            InfoVxlan::Link(v) => info.parent = Some(*v),
            InfoVxlan::Local(v) => info.local = Some(*v),
            InfoVxlan::Local6(v) => info.local6 = Some(*v),
            InfoVxlan::Port(v) => info.port = Some(*v),
            InfoVxlan::Learning(v) => info.learning = Some(*v),
            _ => {}
        }
    }
    info
}

pub fn dump_addrs(sock: &mut NlSocket) -> Result<Vec<KernelAddr>, NlError> {
    Ok(dump_family(sock, AddressFamily::Inet)?
        .into_iter()
        .filter_map(|(index, ip, prefix_len)| match ip {
            IpAddr::V4(ip) => Some(KernelAddr {
                index,
                ip,
                prefix_len,
            }),
            IpAddr::V6(_) => None,
        })
        .collect())
}

/// Every address of one family: (ifindex, address, prefix length).
fn dump_family(
    sock: &mut NlSocket,
    family: AddressFamily,
) -> Result<Vec<(u32, IpAddr, u8)>, NlError> {
    let mut req = AddressMessage::default();
    req.header.family = family;
    let msgs = sock.dump(RouteNetlinkMessage::GetAddress(req))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => parse_addr(&a),
            _ => None,
        })
        .collect())
}

fn parse_addr(msg: &AddressMessage) -> Option<(u32, IpAddr, u8)> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
    // point-to-point links).
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    Some((msg.header.index, local.or(address)?, msg.header.prefix_len))
}

/// An IPv6 address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelAddr6 {
    pub index: u32,
    pub ip: Ipv6Addr,
    pub prefix_len: u8,
}

impl KernelAddr6 {
    /// fe80::/10: made by the kernel for every interface, never Tabby's to
    /// remove.
    pub fn is_link_local(&self) -> bool {
        self.ip.segments()[0] & 0xffc0 == 0xfe80
    }
}

pub fn dump_addrs6(sock: &mut NlSocket) -> Result<Vec<KernelAddr6>, NlError> {
    Ok(dump_family(sock, AddressFamily::Inet6)?
        .into_iter()
        .filter_map(|(index, ip, prefix_len)| match ip {
            IpAddr::V6(ip) => Some(KernelAddr6 {
                index,
                ip,
                prefix_len,
            }),
            IpAddr::V4(_) => None,
        })
        .collect())
}

/// An IPv6 address without duplicate address detection: a tunnel /128 or
/// the pod gateway's link-local address is only ever on one interface, and
/// a tentative address could not be used for the first second.
fn addr6_message(index: u32, ip: Ipv6Addr, prefix_len: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet6;
    msg.header.index = index;
    msg.header.prefix_len = prefix_len;
    msg.header.flags = AddressHeaderFlags::Nodad;
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V6(ip)));
    msg.attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    msg
}

pub fn add_addr6_request(index: u32, ip: Ipv6Addr, prefix_len: u8) -> Request {
    Request {
        message: RouteNetlinkMessage::NewAddress(addr6_message(index, ip, prefix_len)),
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

pub fn delete_addr6_request(index: u32, ip: Ipv6Addr, prefix_len: u8) -> Request {
    Request {
        message: RouteNetlinkMessage::DelAddress(addr6_message(index, ip, prefix_len)),
        flags: 0,
    }
}

/// What `vxlan.calico` is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub parent: u32,
    pub local: Ipv4Addr,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// `vxlan-v6.calico`: an IPv6 `local`, otherwise as [`VxlanSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vxlan6Spec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub parent: u32,
    pub local: Ipv6Addr,
    pub mac: [u8; 6],
    pub mtu: u32,
}

pub fn create_vxlan6_request(spec: &Vxlan6Spec) -> Request {
    let msg = LinkVxlan::new(&spec.name, spec.vni)
        .dev(spec.parent)
        .local6(spec.local)
        .port(spec.port)
        .learning(false)
        .mtu(spec.mtu)
        .address(spec.mac.to_vec())
        .up()
        .build();
    Request {
        message: RouteNetlinkMessage::NewLink(msg),
        flags: NLM_F_CREATE | NLM_F_EXCL,
    }
}

pub fn create_vxlan_request(spec: &VxlanSpec) -> Request {
    let msg = LinkVxlan::new(&spec.name, spec.vni)
        .dev(spec.parent)
        .local(spec.local)
        .port(spec.port)
        .learning(false)
        .mtu(spec.mtu)
        .address(spec.mac.to_vec())
        .up()
        .build();
    Request {
        message: RouteNetlinkMessage::NewLink(msg),
        flags: NLM_F_CREATE | NLM_F_EXCL,
    }
}

pub fn delete_link_request(index: u32) -> Request {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    Request {
        message: RouteNetlinkMessage::DelLink(msg),
        flags: 0,
    }
}

/// Sets the MTU and brings the link up (what drifts without the device
/// being wrong).
pub fn set_link_request(index: u32, mtu: u32) -> Request {
    let msg = LinkUnspec::new_with_index(index).mtu(mtu).up().build();
    Request {
        message: RouteNetlinkMessage::SetLink(msg),
        flags: 0,
    }
}

fn addr_message(index: u32, ip: Ipv4Addr, prefix_len: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.index = index;
    msg.header.prefix_len = prefix_len;
    msg.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V4(ip)));
    msg
}

pub fn add_addr_request(index: u32, ip: Ipv4Addr, prefix_len: u8) -> Request {
    Request {
        message: RouteNetlinkMessage::NewAddress(addr_message(index, ip, prefix_len)),
        flags: NLM_F_CREATE | NLM_F_REPLACE,
    }
}

pub fn delete_addr_request(index: u32, ip: Ipv4Addr, prefix_len: u8) -> Request {
    Request {
        message: RouteNetlinkMessage::DelAddress(addr_message(index, ip, prefix_len)),
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_request_reads_back_as_specified() {
        let spec = VxlanSpec {
            name: "vxlan.calico".into(),
            vni: 4096,
            port: 4789,
            parent: 5,
            local: Ipv4Addr::new(192, 0, 2, 1),
            mac: [0x66, 0x1, 0x2, 0x3, 0x4, 0x5],
            mtu: 1450,
        };
        let RouteNetlinkMessage::NewLink(msg) = create_vxlan_request(&spec).message else {
            panic!("not a NewLink");
        };
        let link = parse_link(&msg);
        assert_eq!(link.name, "vxlan.calico");
        assert_eq!(link.mtu, 1450);
        assert!(link.up);
        assert_eq!(link.mac.as_deref(), Some(&spec.mac[..]));
        assert_eq!(
            link.vxlan,
            Some(VxlanInfo {
                vni: Some(4096),
                parent: Some(5),
                local: Some(spec.local),
                port: Some(4789),
                learning: Some(false),
                local6: None,
            })
        );
    }
}
