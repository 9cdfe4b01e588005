//! A pod's network interface, as Calico's CNI plugin builds it: a veth pair
//! whose host end is `cali<11 hex>` with MAC `ee:ee:ee:ee:ee:ee` and whose
//! pod end (`CNI_IFNAME`, usually `eth0`) holds the pod's /32 and a default
//! route via `169.254.1.1` onlink. The host answers ARP for that gateway by
//! proxy ARP, so the pod needs no subnet and no real gateway.
//!
//! Why this writes kernel state outside the reconciler: the CNI contract
//! makes the plugin, invoked by the container runtime with the pod's netns,
//! responsible for building the pod's interface before the runtime starts
//! the pod; the node agent has no other way to learn that a netns exists.
//! So the split is by object: everything *inside* the pod netns and the
//! veth pair itself are written here, once per ADD/DEL; everything on the
//! host that must stay converged (the `<ip>/32 dev cali…` route with
//! protocol 81, `proxy_arp`/`forwarding` on the host end) stays with the
//! reconciler, which the CNI plugin tells about the workload through the
//! node's `Dataplane` service.

pub use crate::derive::{fmt_mac, host_veth_name, IFNAME_MAX};

use crate::netlink::links::{self, KernelLink};
use crate::netlink::routes::{self, RouteSpec, RouteTarget};
use crate::netlink::{NlError, NlSocket, Request};
use crate::netns::{self, NetnsError};
use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkUnspec, LinkVeth};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The host end's MAC: every pod sees the same gateway MAC, so a pod that
/// moves or restarts never needs its ARP entry refreshed.
pub const HOST_MAC: [u8; 6] = [0xee; 6];
/// The pod's gateway, answered by proxy ARP on the host end.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

#[derive(Debug, thiserror::Error)]
pub enum PodLinkError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{step}: {source}")]
    Netlink { step: String, source: NlError },
    #[error("opening a netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    /// CHECK found the interface not as ADD left it.
    #[error("{0}")]
    Mismatch(String),
}

fn nl(step: impl Into<String>) -> impl FnOnce(NlError) -> PodLinkError {
    let step = step.into();
    move |source| PodLinkError::Netlink { step, source }
}

/// What ADD builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLinkSpec {
    pub host_ifname: String,
    pub pod_ifname: String,
    /// `CNI_NETNS`: `/var/run/netns/NAME` or `/proc/PID/ns/net`.
    pub netns: PathBuf,
    /// The pod's IPv4 address; `None` for an IPv6-only pod, whose end gets
    /// no IPv4 address or routes (its IPv6 is added by
    /// [`crate::podlink6::add_ipv6`]).
    pub ip: Option<Ipv4Addr>,
    pub mtu: u32,
}

/// What ADD built, for the CNI result and the WorkloadEndpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    pub host_ifname: String,
    pub host_mac: [u8; 6],
    pub pod_ifname: String,
    pub pod_mac: [u8; 6],
}

fn check_ifname(what: &str, name: &str) -> Result<(), PodLinkError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name.contains(['/', ':']);
    if ok && !name.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(PodLinkError::Invalid(format!(
            "{what} {name:?} is not a valid interface name (1 to {IFNAME_MAX} characters, \
             no '/', ':' or whitespace)"
        )))
    }
}

fn find<'a>(links: &'a [KernelLink], name: &str) -> Option<&'a KernelLink> {
    links.iter().find(|l| l.name == name)
}

fn is_veth(l: &KernelLink) -> bool {
    l.kind == Some(InfoKind::Veth)
}

fn mac6(l: &KernelLink) -> [u8; 6] {
    let mut out = [0u8; 6];
    if let Some(m) = l.mac.as_deref().filter(|m| m.len() == 6) {
        out.copy_from_slice(m);
    }
    out
}

/// Routes inside the pod carry the protocol `ip route add` uses: they are
/// the pod's own configuration, not something Tabby's reconciler owns.
fn pod_route(spec: RouteSpec) -> Request {
    let mut req = routes::add_request(&spec, true);
    if let RouteNetlinkMessage::NewRoute(m) = &mut req.message {
        m.header.protocol = RouteProtocol::Boot;
    }
    req
}

/// Builds the pair and configures the pod end. Runs in the host netns (the
/// calling thread's); the pod netns is entered on a thread of its own. On
/// failure nothing is left behind.
pub fn setup(spec: &PodLinkSpec) -> Result<PodLink, PodLinkError> {
    check_ifname("host interface", &spec.host_ifname)?;
    check_ifname("CNI_IFNAME", &spec.pod_ifname)?;
    if !(68..=65535).contains(&spec.mtu) {
        return Err(PodLinkError::Invalid(format!(
            "mtu {} is out of range (68..=65535)",
            spec.mtu
        )));
    }
    let netns_file = File::open(&spec.netns).map_err(|source| NetnsError::Open {
        name: spec.netns.display().to_string(),
        path: spec.netns.clone(),
        source,
    })?;
    // A pod end already there means ADD was repeated without DEL: the host
    // end found below is then live, not stale, and must be left alone.
    if pod_end_exists(&spec.netns, &spec.pod_ifname)? {
        return Err(PodLinkError::Invalid(format!(
            "{} already exists in {} (ADD repeated without DEL?); nothing changed",
            spec.pod_ifname,
            spec.netns.display()
        )));
    }
    let mut sock = NlSocket::open()?;
    let host_links = links::dump_links(&mut sock).map_err(nl("reading host links"))?;
    if let Some(stale) = find(&host_links, &spec.host_ifname) {
        // Left by an earlier ADD for the same pod that the runtime gave up
        // on; the name is derived from the pod, so it can be no one else's.
        if !is_veth(stale) {
            return Err(PodLinkError::Invalid(format!(
                "host interface {} exists and is not a veth; refusing to touch it",
                spec.host_ifname
            )));
        }
        tracing::info!(ifname = %spec.host_ifname, "removing stale host veth");
        sock.execute(links::delete_link_request(stale.index).message, 0)
            .map_err(nl(format!("removing stale {}", spec.host_ifname)))?;
    }

    // The pod end is created directly inside the pod netns under its final
    // name (IFLA_NET_NS_FD on the peer), so it never exists in the host
    // netns where CNI_IFNAME ("eth0") could collide with a host interface.
    let peer = LinkUnspec::new_with_name(&spec.pod_ifname)
        .mtu(spec.mtu)
        .setns_by_fd(netns_file.as_raw_fd())
        .build();
    let mut msg = LinkVeth::new(&spec.host_ifname, &spec.pod_ifname)
        .mtu(spec.mtu)
        .address(HOST_MAC.to_vec())
        .up()
        .build();
    for attr in msg.attributes.iter_mut() {
        if let LinkAttribute::LinkInfo(infos) = attr {
            for info in infos.iter_mut() {
                if let netlink_packet_route::link::LinkInfo::Data(d) = info {
                    *d = InfoData::Veth(InfoVeth::Peer(peer.clone()));
                }
            }
        }
    }
    sock.execute(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
        .map_err(nl(format!(
            "creating veth {} <-> {} in {}",
            spec.host_ifname,
            spec.pod_ifname,
            spec.netns.display()
        )))?;
    drop(netns_file);

    let inside = spec.clone();
    let pod = netns::run_in_path(&spec.netns, move || configure_pod_end(&inside))
        .map_err(PodLinkError::from)
        .and_then(|r| r);
    let pod_mac = match pod {
        Ok(mac) => mac,
        Err(e) => {
            let _ = delete_host_end(&mut sock, &spec.host_ifname);
            return Err(e);
        }
    };
    let host_links = links::dump_links(&mut sock).map_err(nl("reading host links"))?;
    let host = find(&host_links, &spec.host_ifname).ok_or_else(|| {
        PodLinkError::Mismatch(format!(
            "{} vanished right after it was created",
            spec.host_ifname
        ))
    })?;
    Ok(PodLink {
        host_ifname: spec.host_ifname.clone(),
        host_mac: mac6(host),
        pod_ifname: spec.pod_ifname.clone(),
        pod_mac,
    })
}

/// Whether `ifname` exists in the namespace at `netns`.
pub fn pod_end_exists(netns: &Path, ifname: &str) -> Result<bool, PodLinkError> {
    check_ifname("CNI_IFNAME", ifname)?;
    let name = ifname.to_string();
    netns::run_in_path(netns, move || -> Result<bool, PodLinkError> {
        let mut sock = NlSocket::open()?;
        let pod_links = links::dump_links(&mut sock).map_err(nl("reading pod links"))?;
        Ok(find(&pod_links, &name).is_some())
    })?
}

/// Inside the pod netns: address, link up, the gateway route and the
/// default route (the link only, for an IPv6-only pod). Returns the pod end's MAC.
fn configure_pod_end(spec: &PodLinkSpec) -> Result<[u8; 6], PodLinkError> {
    let mut sock = NlSocket::open()?;
    let pod_links = links::dump_links(&mut sock).map_err(nl("reading pod links"))?;
    let link = find(&pod_links, &spec.pod_ifname).ok_or_else(|| {
        PodLinkError::Mismatch(format!(
            "{} is missing in {} right after it was created",
            spec.pod_ifname,
            spec.netns.display()
        ))
    })?;
    let index = link.index;
    let host_route = |dst: Ipv4Net, target| pod_route(RouteSpec { dst, target });
    let mut steps: Vec<(String, Request)> = Vec::new();
    if let Some(ip) = spec.ip {
        steps.push((
            format!("adding {ip}/32 to {}", spec.pod_ifname),
            links::add_addr_request(index, ip, 32),
        ));
    }
    steps.push((
        format!("setting {} up with mtu {}", spec.pod_ifname, spec.mtu),
        links::set_link_request(index, spec.mtu),
    ));
    if spec.ip.is_some() {
        steps.extend([
            (
                format!("adding route {GATEWAY} dev {} scope link", spec.pod_ifname),
                host_route(
                    Ipv4Net::new(GATEWAY, 32).expect("/32 is a valid prefix"),
                    RouteTarget::Link { oif: index },
                ),
            ),
            (
                format!(
                    "adding default via {GATEWAY} dev {} onlink",
                    spec.pod_ifname
                ),
                host_route(
                    Ipv4Net::default(),
                    RouteTarget::Gateway {
                        gateway: GATEWAY,
                        oif: index,
                        onlink: true,
                    },
                ),
            ),
        ]);
    }
    // One at a time: each step depends on the one before (a route on a
    // down link is refused).
    for (what, req) in steps {
        sock.execute(req.message, req.flags).map_err(nl(what))?;
    }
    Ok(mac6(link))
}

/// Deletes veth `name` from the socket's netns: `Some(true)` deleted,
/// `Some(false)` absent, `None` present but not a veth (left alone).
fn delete_veth(
    sock: &mut NlSocket,
    name: &str,
    where_: &str,
) -> Result<Option<bool>, PodLinkError> {
    let all = links::dump_links(sock).map_err(nl(format!("reading {where_} links")))?;
    match find(&all, name) {
        Some(l) if is_veth(l) => {
            match sock.execute(links::delete_link_request(l.index).message, 0) {
                Ok(()) => Ok(Some(true)),
                // Deleted meanwhile (its peer's netns went away): fine.
                Err(e) if e.errno() == Some(libc::ENODEV) => Ok(Some(false)),
                Err(e) => Err(nl(format!("deleting {name} in the {where_}"))(e)),
            }
        }
        Some(_) => Ok(None),
        None => Ok(Some(false)),
    }
}

fn delete_host_end(sock: &mut NlSocket, host_ifname: &str) -> Result<bool, PodLinkError> {
    delete_veth(sock, host_ifname, "host")?.ok_or_else(|| {
        PodLinkError::Invalid(format!(
            "host interface {host_ifname} is not a veth; refusing to delete it"
        ))
    })
}

/// What teardown found and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Teardown {
    pub removed_pod_end: bool,
    pub removed_host_end: bool,
}

/// DEL: removes the pair, from whichever end still exists. A missing netns,
/// missing interface or already-deleted pair is success (DEL is idempotent
/// and the runtime may call it after the netns is gone). Only veths are
/// ever deleted.
///
/// The pod end is found inside `netns_path`, so it belongs to that sandbox
/// only; `host_ifname` (derived from the pod's name, shared by every
/// sandbox the pod ever had) is deleted only when given, which the caller
/// does once it knows no newer sandbox of the pod owns it.
pub fn teardown(
    host_ifname: Option<&str>,
    netns_path: Option<&Path>,
    pod_ifname: &str,
) -> Result<Teardown, PodLinkError> {
    if let Some(h) = host_ifname {
        check_ifname("host interface", h)?;
    }
    let mut out = Teardown::default();
    if let Some(path) = netns_path.filter(|p| p.exists()) {
        check_ifname("CNI_IFNAME", pod_ifname)?;
        let name = pod_ifname.to_string();
        out.removed_pod_end = netns::run_in_path(path, move || -> Result<bool, PodLinkError> {
            let mut sock = NlSocket::open()?;
            // Not a veth: not ours to delete.
            Ok(delete_veth(&mut sock, &name, "pod")?.unwrap_or(false))
        })??;
    }
    if let Some(h) = host_ifname {
        let mut sock = NlSocket::open()?;
        out.removed_host_end = delete_host_end(&mut sock, h)?;
    }
    Ok(out)
}

/// CHECK: the pair is as ADD left it. The error names the first difference.
pub fn check(spec: &PodLinkSpec) -> Result<(), PodLinkError> {
    check_ifname("host interface", &spec.host_ifname)?;
    check_ifname("CNI_IFNAME", &spec.pod_ifname)?;
    let mut sock = NlSocket::open()?;
    let host_links = links::dump_links(&mut sock).map_err(nl("reading host links"))?;
    let host = find(&host_links, &spec.host_ifname).ok_or_else(|| {
        PodLinkError::Mismatch(format!("host interface {} is missing", spec.host_ifname))
    })?;
    let mismatch = |m: String| Err(PodLinkError::Mismatch(m));
    if !is_veth(host) {
        return mismatch(format!("{} is not a veth", spec.host_ifname));
    }
    if mac6(host) != HOST_MAC {
        return mismatch(format!(
            "{} has MAC {}, expected {}",
            spec.host_ifname,
            fmt_mac(&mac6(host)),
            fmt_mac(&HOST_MAC)
        ));
    }
    if host.mtu != spec.mtu {
        return mismatch(format!(
            "{} has mtu {}, expected {}",
            spec.host_ifname, host.mtu, spec.mtu
        ));
    }
    if !host.up {
        return mismatch(format!("{} is down", spec.host_ifname));
    }
    let inside = spec.clone();
    netns::run_in_path(&spec.netns, move || check_pod_end(&inside))?
}

fn check_pod_end(spec: &PodLinkSpec) -> Result<(), PodLinkError> {
    let name = &spec.pod_ifname;
    let mismatch = |m: String| Err(PodLinkError::Mismatch(m));
    let mut sock = NlSocket::open()?;
    let pod_links = links::dump_links(&mut sock).map_err(nl("reading pod links"))?;
    let Some(link) = find(&pod_links, name) else {
        return mismatch(format!("{name} is missing in {}", spec.netns.display()));
    };
    if !link.up {
        return mismatch(format!("{name} is down"));
    }
    if link.mtu != spec.mtu {
        return mismatch(format!(
            "{name} has mtu {}, expected {}",
            link.mtu, spec.mtu
        ));
    }
    // An IPv6-only pod: its half is podlink6::check_ipv6's.
    let Some(ip) = spec.ip else {
        return Ok(());
    };
    let addrs = links::dump_addrs(&mut sock).map_err(nl("reading pod addresses"))?;
    if !addrs
        .iter()
        .any(|a| a.index == link.index && a.ip == ip && a.prefix_len == 32)
    {
        return mismatch(format!("{name} does not hold {ip}/32"));
    }
    let rts = routes::dump(&mut sock).map_err(nl("reading pod routes"))?;
    let gw_route = rts
        .iter()
        .any(|r| r.dst == Ipv4Net::new(GATEWAY, 32).expect("/32") && r.oif == Some(link.index));
    if !gw_route {
        return mismatch(format!("route {GATEWAY} dev {name} scope link is missing"));
    }
    let default = rts.iter().any(|r| {
        r.dst.prefix_len() == 0 && r.gateway == Some(GATEWAY) && r.oif == Some(link.index)
    });
    if !default {
        return mismatch(format!("default via {GATEWAY} dev {name} is missing"));
    }
    Ok(())
}
