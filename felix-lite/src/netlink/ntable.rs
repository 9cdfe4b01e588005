//! The kernel's neighbour tables themselves (`RTM_GETNEIGHTBL`, what `ip
//! -s ntable show` prints): their garbage-collection thresholds, how many
//! entries they hold and how often they were full.
//!
//! Read over netlink rather than from `/proc/sys/net/ipv4/neigh/default`
//! and `/proc/net/stat/arp_cache` because both of those exist only in the
//! host's (initial) network namespace, while the table dump answers in
//! every namespace with the same, host-wide, figures (measured on 6.18:
//! inside `ip netns exec` the two files are missing and `ip ntable show`
//! prints the host's thresholds and entry count).

use super::socket::{NlError, NlSocket};
use netlink_packet_route::neighbour_table::{NeighbourTableAttribute, NeighbourTableMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// One table (`arp_cache` for IPv4, `ndisc_cache` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighTable {
    /// True for `ndisc_cache`.
    pub ipv6: bool,
    pub name: String,
    pub gc_thresh1: u32,
    pub gc_thresh2: u32,
    pub gc_thresh3: u32,
    /// Entries in the table now, over every network namespace, permanent
    /// ones included.
    pub entries: u32,
    /// How many times an entry could not be created because the table was
    /// full (summed over CPUs), since boot.
    pub table_fulls: u64,
}

/// Every IPv4 and IPv6 neighbour table the kernel has (none for IPv6 when
/// it is disabled).
pub fn dump_tables(sock: &mut NlSocket) -> Result<Vec<NeighTable>, NlError> {
    let req = NeighbourTableMessage::default();
    let msgs = sock.dump(RouteNetlinkMessage::GetNeighbourTable(req))?;
    Ok(msgs.iter().filter_map(table_of).collect())
}

/// The table-wide message of a dump; the per-device ones (parameters
/// only, no thresholds) give None.
fn table_of(m: &RouteNetlinkMessage) -> Option<NeighTable> {
    let RouteNetlinkMessage::NewNeighbourTable(t) = m else {
        return None;
    };
    let ipv6 = match t.header.family {
        AddressFamily::Inet => false,
        AddressFamily::Inet6 => true,
        _ => return None,
    };
    let (mut name, mut th) = (String::new(), [None; 3]);
    let (mut entries, mut table_fulls) = (0, 0);
    for a in &t.attributes {
        match a {
            NeighbourTableAttribute::Name(n) => name = n.clone(),
            NeighbourTableAttribute::Threshold1(v) => th[0] = Some(*v),
            NeighbourTableAttribute::Threshold2(v) => th[1] = Some(*v),
            NeighbourTableAttribute::Threshold3(v) => th[2] = Some(*v),
            NeighbourTableAttribute::Config(c) => entries = c.entries,
            NeighbourTableAttribute::Stats(s) => table_fulls = s.table_fulls,
            _ => {}
        }
    }
    let [Some(gc_thresh1), Some(gc_thresh2), Some(gc_thresh3)] = th else {
        return None;
    };
    Some(NeighTable {
        ipv6,
        name,
        gc_thresh1,
        gc_thresh2,
        gc_thresh3,
        entries,
        table_fulls,
    })
}
