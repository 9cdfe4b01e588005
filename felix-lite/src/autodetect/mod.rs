//! Node address autodetection (`IP_AUTODETECTION_METHOD`, and with
//! `Method<Ipv6Net>` `IP6_AUTODETECTION_METHOD`), matching calico-node's
//! choices, over rtnetlink in the calling thread's namespace. Both families
//! run the same code through [`Family`]; IPv6 skips link-local fe80::/10
//! where IPv4 skips 169.254/16.
//!
//! Differences from Calico, all additive: `can-reach` asks the kernel's FIB
//! (RTM_GETROUTE, nothing is sent) instead of connecting a UDP socket; every
//! result carries a reason naming the chosen interface, the interfaces passed
//! over and the ones that would also have qualified (the seed failure was
//! VXLAN bound to a storage NIC that happened to come first); and warnings
//! flag a /32 node address (CrossSubnet then never matches, calico#4254), an
//! address present on several interfaces, and a down interface.

mod family;
pub mod host;
mod method;
mod select;

pub use family::Family;
pub use host::{HostAddr, HostError, HostInterface};
pub use method::{IpSetting, Method, ParseError, DEFAULT_EXCLUDES};
pub use select::{connected_subnets, is_global_unicast, Skipped};

use ipnet::Ipv4Net;
use std::net::{IpAddr, ToSocketAddrs};

/// The node address and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected<N = Ipv4Net> {
    pub interface: String,
    pub address: N,
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
    #[error("{variable}={method}: no usable {family} address; looked at {}", list(.looked_at))]
    NothingFound {
        /// `IP_AUTODETECTION_METHOD` or `IP6_AUTODETECTION_METHOD`.
        variable: &'static str,
        /// "IPv4" or "IPv6".
        family: &'static str,
        method: String,
        looked_at: Vec<Skipped>,
    },
    #[error("{variable}={method}: {problem}")]
    CanReach {
        variable: &'static str,
        method: String,
        problem: String,
    },
    #[error("{variable}=kubernetes-internal-ip needs the Node's InternalIP; call autodetect::local_cidr with it")]
    NeedsKubernetes { variable: &'static str },
    #[error("node address {addr} is not on any interface; interfaces: {}", list(.looked_at))]
    NotLocal {
        addr: IpAddr,
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
pub async fn detect<N: Family>(method: &Method<N>) -> Result<Detected<N>, AutodetectError> {
    let ifaces = host::interfaces().await?;
    match method {
        Method::CanReach(dest) => can_reach(method, dest, &ifaces).await,
        Method::KubernetesInternalIp => Err(AutodetectError::NeedsKubernetes {
            variable: N::METHOD_VAR,
        }),
        _ => detect_in(method, &ifaces),
    }
}

/// The enumeration methods over a given snapshot (no kernel access).
pub fn detect_in<N: Family>(
    method: &Method<N>,
    ifaces: &[HostInterface],
) -> Result<Detected<N>, AutodetectError> {
    let (include, exclude, cidrs): (Vec<String>, Vec<String>, Vec<N>) = match method {
        Method::FirstFound => (vec![], owned(DEFAULT_EXCLUDES), vec![]),
        Method::Interface(r) => (r.clone(), vec![], vec![]),
        Method::SkipInterface(r) => {
            let mut ex = owned(DEFAULT_EXCLUDES);
            ex.extend(r.iter().cloned());
            (vec![], ex, vec![])
        }
        Method::Cidr(c) => (vec![], vec![], c.clone()),
        Method::CanReach(_) | Method::KubernetesInternalIp => {
            return Err(AutodetectError::NeedsKubernetes {
                variable: N::METHOD_VAR,
            })
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
            variable: N::METHOD_VAR,
            family: N::NAME,
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

async fn can_reach<N: Family>(
    method: &Method<N>,
    dest: &str,
    ifaces: &[HostInterface],
) -> Result<Detected<N>, AutodetectError> {
    let err = |problem: String| AutodetectError::CanReach {
        variable: N::METHOD_VAR,
        method: method.to_string(),
        problem,
    };
    let target: N::Ip = match dest.parse() {
        Ok(ip) => ip,
        Err(_) => {
            // A host name, as Calico's Dial accepts: resolve it (that is
            // the only traffic this method causes).
            let addrs = (dest, 0u16)
                .to_socket_addrs()
                .map_err(|e| err(format!("cannot resolve {dest}: {e}")))?;
            addrs
                .filter_map(|a| N::from_ip(a.ip()))
                .next()
                .ok_or_else(|| err(format!("{dest} has no {} address", N::NAME)))?
        }
    };
    let lookup = host::route_get_ip(N::to_ip(target))
        .await?
        .ok_or_else(|| err(format!("the kernel has no route to {target}")))?;
    let oif = lookup
        .oif
        .and_then(|i| ifaces.iter().find(|f| f.index == i));
    // The preferred source the kernel would use, else the output
    // interface's first usable address (what source selection would pick).
    let src = lookup.pref_src.and_then(N::from_ip).or_else(|| {
        oif.and_then(|f| {
            N::addrs(f)
                .iter()
                .map(|a| a.net.ip())
                .find(|a| N::is_global_unicast(*a))
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

fn find_addr<N: Family>(ifaces: &[HostInterface], ip: N::Ip) -> Option<(&HostInterface, N)> {
    ifaces.iter().find_map(|f| {
        N::addrs(f)
            .iter()
            .find(|a| a.net.ip() == ip)
            .map(|a| (f, a.net))
    })
}

/// Calico's `GetLocalCIDR`: the interface and prefix holding `addr` (for
/// `IP=A.B.C.D` and `kubernetes-internal-ip`). Unlike Calico, an address on
/// no interface is an error (calico#5705: a node advertising an address it
/// does not have).
pub async fn local_cidr(addr: std::net::Ipv4Addr) -> Result<Detected, AutodetectError> {
    local_cidr_of::<Ipv4Net>(addr).await
}

/// [`local_cidr`] for either family (`IP6=ADDR`, IPv6 `kubernetes-internal-ip`).
pub async fn local_cidr_of<N: Family>(addr: N::Ip) -> Result<Detected<N>, AutodetectError> {
    let ifaces = host::interfaces().await?;
    let Some((iface, net)) = find_addr::<N>(&ifaces, addr) else {
        let looked_at = ifaces
            .iter()
            .map(|f| Skipped {
                interface: f.name.clone(),
                why: if N::addrs(f).is_empty() {
                    format!("no {} address", N::NAME)
                } else {
                    let a: Vec<String> = N::addrs(f).iter().map(|a| a.net.to_string()).collect();
                    format!("has {}", a.join(", "))
                },
            })
            .collect();
        return Err(AutodetectError::NotLocal {
            addr: N::to_ip(addr),
            looked_at,
        });
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

fn warnings_for<N: Family>(chosen: &str, addr: N, ifaces: &[HostInterface]) -> Vec<String> {
    let mut w = Vec::new();
    if addr.prefix_len() == N::HOST_PREFIX {
        w.push(format!(
            "node address {addr} on {chosen} is a /{}: no other node is ever in its subnet, \
             so CrossSubnet encapsulates everything (calico#4254); give the address its real prefix",
            N::HOST_PREFIX
        ));
    }
    let dups: Vec<&str> = ifaces
        .iter()
        .filter(|f| f.name != chosen && N::addrs(f).iter().any(|a| a.net.ip() == addr.ip()))
        .map(|f| f.name.as_str())
        .collect();
    if !dups.is_empty() {
        w.push(format!(
            "address {} is also on {}: an address shared between interfaces (or nodes, like \
             nodelocaldns's) is a poor node address (calico#6910)",
            addr.ip(),
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
