//! Node address autodetection (`IP_AUTODETECTION_METHOD`), matching
//! calico-node's choices, over rtnetlink in the calling thread's namespace.
//!
//! Differences from Calico, all additive: `can-reach` asks the kernel's FIB
//! (RTM_GETROUTE, nothing is sent) instead of connecting a UDP socket; every
//! result carries a reason naming the chosen interface, the interfaces passed
//! over and the ones that would also have qualified (the seed failure was
//! VXLAN bound to a storage NIC that happened to come first); and warnings
//! flag a /32 node address (CrossSubnet then never matches, calico#4254), an
//! address present on several interfaces, and a down interface.

pub mod host;
mod method;
mod select;

pub use host::{HostAddr, HostError, HostInterface};
pub use method::{IpSetting, Method, ParseError, DEFAULT_EXCLUDES};
pub use select::{connected_subnets, is_global_unicast, Skipped};

use ipnet::Ipv4Net;
use std::net::{Ipv4Addr, ToSocketAddrs};

/// The node address and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub interface: String,
    pub address: Ipv4Net,
    /// MTU of [`Self::interface`], for [`crate::mtu`].
    pub mtu: u32,
    /// One line for the start-up log: which interface, by which rule, and
    /// what else was looked at.
    pub reason: String,
    /// Things that will probably hurt later; log them at WARN.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AutodetectError {
    #[error("IP_AUTODETECTION_METHOD={method}: no usable IPv4 address; looked at {}", list(.looked_at))]
    NothingFound {
        method: String,
        looked_at: Vec<Skipped>,
    },
    #[error("IP_AUTODETECTION_METHOD={method}: {problem}")]
    CanReach { method: String, problem: String },
    #[error("IP_AUTODETECTION_METHOD=kubernetes-internal-ip needs the Node's InternalIP; call autodetect::local_cidr with it")]
    NeedsKubernetes,
    #[error("node address {addr} is not on any interface; interfaces: {}", list(.looked_at))]
    NotLocal {
        addr: Ipv4Addr,
        looked_at: Vec<Skipped>,
    },
    #[error(transparent)]
    Host(#[from] HostError),
}

fn list(s: &[Skipped]) -> String {
    if s.is_empty() {
        return "no interfaces at all".into();
    }
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `method` against the current namespace's interfaces.
pub async fn detect(method: &Method) -> Result<Detected, AutodetectError> {
    let ifaces = host::interfaces().await?;
    match method {
        Method::CanReach(dest) => can_reach(method, dest, &ifaces).await,
        Method::KubernetesInternalIp => Err(AutodetectError::NeedsKubernetes),
        _ => detect_in(method, &ifaces),
    }
}

/// The enumeration methods over a given snapshot (no kernel access).
pub fn detect_in(method: &Method, ifaces: &[HostInterface]) -> Result<Detected, AutodetectError> {
    let (include, exclude, cidrs): (Vec<String>, Vec<String>, Vec<Ipv4Net>) = match method {
        Method::FirstFound => (vec![], owned(DEFAULT_EXCLUDES), vec![]),
        Method::Interface(r) => (r.clone(), vec![], vec![]),
        Method::SkipInterface(r) => {
            let mut ex = owned(DEFAULT_EXCLUDES);
            ex.extend(r.iter().cloned());
            (vec![], ex, vec![])
        }
        Method::Cidr(c) => (vec![], vec![], c.clone()),
        Method::CanReach(_) | Method::KubernetesInternalIp => {
            return Err(AutodetectError::NeedsKubernetes)
        }
    };
    let include = select::compile(&include);
    let exclude = select::compile(&exclude);
    let filter = select::Filter {
        include: &include,
        exclude: &exclude,
        cidrs: &cidrs,
    };
    let choice =
        select::choose(ifaces, &filter).map_err(|looked_at| AutodetectError::NothingFound {
            method: method.to_string(),
            looked_at,
        })?;
    let mut reason = format!(
        "{method}: chose {} on {} (interfaces are examined from the highest kernel index down, as Calico does)",
        choice.addr, choice.iface.name
    );
    if !choice.skipped.is_empty() {
        reason.push_str(&format!("; passed over {}", list(&choice.skipped)));
    }
    if !choice.also_eligible.is_empty() {
        let others: Vec<String> = choice
            .also_eligible
            .iter()
            .map(|(n, a)| format!("{n} {a}"))
            .collect();
        reason.push_str(&format!(
            "; also eligible but later in order: {} (pin one with interface=REGEX or cidr=CIDR)",
            others.join(", ")
        ));
    }
    let (interface, address, mtu) = (choice.iface.name.clone(), choice.addr, choice.iface.mtu);
    let warnings = warnings_for(&interface, address, ifaces);
    Ok(Detected {
        interface,
        address,
        mtu,
        reason,
        warnings,
    })
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn can_reach(
    method: &Method,
    dest: &str,
    ifaces: &[HostInterface],
) -> Result<Detected, AutodetectError> {
    let err = |problem: String| AutodetectError::CanReach {
        method: method.to_string(),
        problem,
    };
    let target: Ipv4Addr = match dest.parse() {
        Ok(ip) => ip,
        Err(_) => {
            // A host name, as Calico's Dial accepts: resolve it (that is
            // the only traffic this method causes).
            let addrs = (dest, 0u16)
                .to_socket_addrs()
                .map_err(|e| err(format!("cannot resolve {dest}: {e}")))?;
            addrs
                .filter_map(|a| match a.ip() {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    _ => None,
                })
                .next()
                .ok_or_else(|| err(format!("{dest} has no IPv4 address")))?
        }
    };
    let lookup = host::route_get(target)
        .await?
        .ok_or_else(|| err(format!("the kernel has no route to {target}")))?;
    let oif = lookup
        .oif
        .and_then(|i| ifaces.iter().find(|f| f.index == i));
    // The preferred source the kernel would use, else the output
    // interface's first usable address (what source selection would pick).
    let src = lookup.pref_src.or_else(|| {
        oif.and_then(|f| {
            f.addrs
                .iter()
                .map(|a| a.net.addr())
                .find(|a| is_global_unicast(*a))
        })
    });
    let Some(src) = src else {
        return Err(err(format!(
            "the route to {target} leaves via {} but gives no source address",
            oif.map_or("an unknown interface", |f| f.name.as_str())
        )));
    };
    let (iface, net) = find_addr(ifaces, src).ok_or_else(|| {
        err(format!(
            "the kernel would use source {src} towards {target}, but no interface holds it"
        ))
    })?;
    let via = oif.map_or(String::new(), |f| format!(" leaves via {} and", f.name));
    let reason = format!(
        "{method}: chose {net} on {}: the kernel route to {target}{via} uses source {src}",
        iface.name
    );
    Ok(Detected {
        interface: iface.name.clone(),
        address: net,
        mtu: iface.mtu,
        warnings: warnings_for(&iface.name, net, ifaces),
        reason,
    })
}

fn find_addr(ifaces: &[HostInterface], ip: Ipv4Addr) -> Option<(&HostInterface, Ipv4Net)> {
    ifaces.iter().find_map(|f| {
        f.addrs
            .iter()
            .find(|a| a.net.addr() == ip)
            .map(|a| (f, a.net))
    })
}

/// Calico's `GetLocalCIDR`: the interface and prefix holding `addr` (for
/// `IP=A.B.C.D` and `kubernetes-internal-ip`). Unlike Calico, an address on
/// no interface is an error (calico#5705: a node advertising an address it
/// does not have).
pub async fn local_cidr(addr: Ipv4Addr) -> Result<Detected, AutodetectError> {
    let ifaces = host::interfaces().await?;
    let Some((iface, net)) = find_addr(&ifaces, addr) else {
        let looked_at = ifaces
            .iter()
            .map(|f| Skipped {
                interface: f.name.clone(),
                why: if f.addrs.is_empty() {
                    "no IPv4 address".into()
                } else {
                    let a: Vec<String> = f.addrs.iter().map(|a| a.net.to_string()).collect();
                    format!("has {}", a.join(", "))
                },
            })
            .collect();
        return Err(AutodetectError::NotLocal { addr, looked_at });
    };
    Ok(Detected {
        interface: iface.name.clone(),
        address: net,
        mtu: iface.mtu,
        reason: format!(
            "configured address {addr}: found as {net} on {}",
            iface.name
        ),
        warnings: warnings_for(&iface.name, net, &ifaces),
    })
}

fn warnings_for(chosen: &str, addr: Ipv4Net, ifaces: &[HostInterface]) -> Vec<String> {
    let mut w = Vec::new();
    if addr.prefix_len() == 32 {
        w.push(format!(
            "node address {addr} on {chosen} is a /32: no other node is ever in its subnet, \
             so CrossSubnet encapsulates everything (calico#4254); give the address its real prefix"
        ));
    }
    let dups: Vec<&str> = ifaces
        .iter()
        .filter(|f| f.name != chosen && f.addrs.iter().any(|a| a.net.addr() == addr.addr()))
        .map(|f| f.name.as_str())
        .collect();
    if !dups.is_empty() {
        w.push(format!(
            "address {} is also on {}: an address shared between interfaces (or nodes, like \
             nodelocaldns's) is a poor node address (calico#6910)",
            addr.addr(),
            dups.join(", ")
        ));
    }
    if let Some(f) = ifaces.iter().find(|f| f.name == chosen) {
        if !f.up {
            w.push(format!("interface {chosen} is down"));
        }
    }
    w
}
