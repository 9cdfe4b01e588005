//! A read-only snapshot of the kernel state the dataplane cares about, for
//! `tabbyctl node doctor`: it reads, never writes, so it can run while the
//! reconciler is down (or from a second process next to it).

use crate::model::{VXLAN_DEVICE, VXLAN_V6_DEVICE};
use crate::netlink::links::{self, KernelAddr, KernelAddr6, KernelLink};
use crate::netlink::neigh::{self, KernelFdb, KernelNeigh};
use crate::netlink::routes::{self, KernelRoute, KernelRoute6};
use crate::netlink::{NlError, NlSocket};
use std::net::Ipv6Addr;

/// Links, addresses, main-table IPv4 routes of every protocol, and
/// `vxlan.calico`'s neighbour and FDB entries (empty without the device);
/// the same for IPv6 and `vxlan-v6.calico` in the `*6` fields (empty on a
/// host without IPv6).
#[derive(Debug, Clone, Default)]
pub struct KernelSnapshot {
    pub links: Vec<KernelLink>,
    pub addrs: Vec<KernelAddr>,
    pub routes: Vec<KernelRoute>,
    pub vxlan_neighbours: Vec<KernelNeigh>,
    pub vxlan_fdb: Vec<KernelFdb>,
    pub addrs6: Vec<KernelAddr6>,
    pub routes6: Vec<KernelRoute6>,
    pub vxlan6_neighbours: Vec<KernelNeigh<Ipv6Addr>>,
    pub vxlan6_fdb: Vec<KernelFdb<Ipv6Addr>>,
}

impl KernelSnapshot {
    /// Reads the calling thread's network namespace.
    pub fn read() -> Result<KernelSnapshot, NlError> {
        let mut sock = NlSocket::open().map_err(NlError::Io)?;
        let links = links::dump_links(&mut sock)?;
        let addrs = links::dump_addrs(&mut sock)?;
        let routes = routes::dump(&mut sock)?;
        let (vxlan_neighbours, vxlan_fdb) = match links.iter().find(|l| l.name == VXLAN_DEVICE) {
            Some(v) => (
                neigh::dump_neighbours(&mut sock, v.index)?,
                neigh::dump_fdb(&mut sock, v.index)?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        // A kernel without IPv6 refuses AF_INET6 dumps: nothing to show.
        let addrs6 = links::dump_addrs6(&mut sock).unwrap_or_default();
        let routes6 = routes::dump6(&mut sock).unwrap_or_default();
        let (vxlan6_neighbours, vxlan6_fdb) = match links.iter().find(|l| l.name == VXLAN_V6_DEVICE)
        {
            Some(v) => (
                neigh::dump_neighbours6(&mut sock, v.index)?,
                neigh::dump_fdb6(&mut sock, v.index)?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        Ok(KernelSnapshot {
            links,
            addrs,
            routes,
            vxlan_neighbours,
            vxlan_fdb,
            addrs6,
            routes6,
            vxlan6_neighbours,
            vxlan6_fdb,
        })
    }

    pub fn link(&self, name: &str) -> Option<&KernelLink> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn link_by_index(&self, index: u32) -> Option<&KernelLink> {
        self.links.iter().find(|l| l.index == index)
    }

    /// An interface index as a person reads it: `eth0 (ifindex 2)`.
    pub fn ifname(&self, index: u32) -> String {
        match self.link_by_index(index) {
            Some(l) => l.name.clone(),
            None => format!("ifindex {index}"),
        }
    }

    /// The IPv6 addresses on interface `index`.
    pub fn addrs6_of(&self, index: u32) -> impl Iterator<Item = &KernelAddr6> {
        self.addrs6.iter().filter(move |a| a.index == index)
    }

    /// The addresses on interface `index`.
    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = &KernelAddr> {
        self.addrs.iter().filter(move |a| a.index == index)
    }
}
