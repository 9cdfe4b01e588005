//! A read-only snapshot of the host's interfaces and addresses, and the
//! kernel's answer to "which route would reach D", all over rtnetlink in the
//! network namespace of the calling thread.

use futures::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use rtnetlink::packet_route::address::{AddressAttribute, AddressScope};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One link as autodetection and MTU detection see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    pub mtu: u32,
    /// IPv4 addresses with their prefix, in the order the kernel lists them.
    pub addrs: Vec<HostAddr>,
    /// IPv6 addresses likewise (link-local ones included: autodetection
    /// says why it passed them over).
    pub addrs6: Vec<HostAddr<Ipv6Net>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddr<N = Ipv4Net> {
    pub net: N,
    /// Kernel scope: `host` for loopback, `link` for 169.254/16 and the like.
    pub scope_link_or_host: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink {what} failed: {source}")]
    Netlink {
        what: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
}

fn connect() -> Result<Handle, HostError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(HostError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// All links with their IPv4 and IPv6 addresses, sorted by kernel index.
pub async fn interfaces() -> Result<Vec<HostInterface>, HostError> {
    let handle = connect()?;
    let mut by_index: BTreeMap<u32, HostInterface> = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(|source| HostError::Netlink {
            what: "link dump",
            source,
        })?
    {
        let mut iface = HostInterface {
            index: msg.header.index,
            name: String::new(),
            up: msg.header.flags.contains(LinkFlags::Up),
            mtu: 0,
            addrs: Vec::new(),
            addrs6: Vec::new(),
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => iface.name = n,
                LinkAttribute::Mtu(m) => iface.mtu = m,
                _ => {}
            }
        }
        by_index.insert(iface.index, iface);
    }
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(|source| HostError::Netlink {
            what: "address dump",
            source,
        })?
    {
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer
        // on point-to-point links, so prefer LOCAL when both are present.
        let mut local = None;
        let mut address = None;
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Address(a) => address = Some(*a),
                _ => {}
            }
        }
        let Some(ip) = local.or(address) else {
            continue;
        };
        let scope_link_or_host =
            matches!(msg.header.scope, AddressScope::Link | AddressScope::Host);
        let Some(iface) = by_index.get_mut(&msg.header.index) else {
            continue;
        };
        match ip {
            IpAddr::V4(a) => {
                if let Ok(net) = Ipv4Net::new(a, msg.header.prefix_len) {
                    iface.addrs.push(HostAddr {
                        net,
                        scope_link_or_host,
                    });
                }
            }
            IpAddr::V6(a) => {
                if let Ok(net) = Ipv6Net::new(a, msg.header.prefix_len) {
                    iface.addrs6.push(HostAddr {
                        net,
                        scope_link_or_host,
                    });
                }
            }
        }
    }
    Ok(by_index.into_values().collect())
}

/// What the kernel's FIB says about reaching `dest` (as `ip route get`):
/// the output interface, the preferred source address and the gateway, if
/// any (None: `dest` is on a connected subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLookup<A = Ipv4Addr> {
    pub oif: Option<u32>,
    pub pref_src: Option<A>,
    pub gateway: Option<A>,
}

/// RTM_GETROUTE for one IPv4 destination. Nothing is sent on the wire.
pub async fn route_get(dest: Ipv4Addr) -> Result<Option<RouteLookup>, HostError> {
    let r = route_get_ip(IpAddr::V4(dest)).await?;
    Ok(r.map(|r| RouteLookup {
        oif: r.oif,
        pref_src: r.pref_src.and_then(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }),
        gateway: r.gateway.and_then(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }),
    }))
}

/// RTM_GETROUTE for one IPv6 destination. Nothing is sent on the wire.
pub async fn route_get6(dest: Ipv6Addr) -> Result<Option<RouteLookup<Ipv6Addr>>, HostError> {
    let r = route_get_ip(IpAddr::V6(dest)).await?;
    Ok(r.map(|r| RouteLookup {
        oif: r.oif,
        pref_src: r.pref_src.and_then(|a| match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }),
        gateway: r.gateway.and_then(|a| match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }),
    }))
}

/// RTM_GETROUTE for a destination of either family.
pub async fn route_get_ip(dest: IpAddr) -> Result<Option<RouteLookup<IpAddr>>, HostError> {
    let handle = connect()?;
    let msg = match dest {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .build(),
    };
    let mut replies = handle.route().get(msg).execute();
    let reply = match replies.try_next().await {
        Ok(r) => r,
        // ENETUNREACH / EHOSTUNREACH: no route at all.
        Err(rtnetlink::Error::NetlinkError(_)) => return Ok(None),
        Err(source) => {
            return Err(HostError::Netlink {
                what: "route lookup",
                source,
            })
        }
    };
    let addr = |a: RouteAddress| match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(a)),
        _ => None,
    };
    Ok(reply.map(|r| {
        let mut out = RouteLookup {
            oif: None,
            pref_src: None,
            gateway: None,
        };
        for attr in r.attributes {
            match attr {
                RouteAttribute::Oif(i) => out.oif = Some(i),
                RouteAttribute::PrefSource(a) => out.pref_src = addr(a),
                RouteAttribute::Gateway(a) => out.gateway = addr(a),
                _ => {}
            }
        }
        out
    }))
}
