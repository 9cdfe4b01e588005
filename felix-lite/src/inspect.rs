//! A read-only snapshot of the kernel state the dataplane cares about, for
//! `tabbyctl node doctor`: it reads, never writes, so it can run while the
//! reconciler is down (or from a second process next to it).

use crate::model::VXLAN_DEVICE;
use crate::netlink::links::{self, KernelAddr, KernelLink};
use crate::netlink::neigh::{self, KernelFdb, KernelNeigh};
use crate::netlink::routes::{self, KernelRoute};
use crate::netlink::{NlError, NlSocket};

/// Links, addresses, main-table IPv4 routes of every protocol, and
/// `vxlan.calico`'s neighbour and FDB entries (empty without the device).
#[derive(Debug, Clone, Default)]
pub struct KernelSnapshot {
    pub links: Vec<KernelLink>,
    pub addrs: Vec<KernelAddr>,
    pub routes: Vec<KernelRoute>,
    pub vxlan_neighbours: Vec<KernelNeigh>,
    pub vxlan_fdb: Vec<KernelFdb>,
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
        Ok(KernelSnapshot {
            links,
            addrs,
            routes,
            vxlan_neighbours,
            vxlan_fdb,
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

    /// The addresses on interface `index`.
    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = &KernelAddr> {
        self.addrs.iter().filter(move |a| a.index == index)
    }
}
