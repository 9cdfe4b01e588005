//! Route attributes as the RIBs keep them: one family's next hop, no NLRI,
//! shared (`Arc`) between every prefix that carries the same set and
//! interned so equal sets are one allocation and compare by pointer.

use crate::wire::{
    AsSegment, Family, LargeCommunity, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
    Update,
};
use ipnet::{IpNet, Ipv4Net};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Default LOCAL_PREF when a path has none (RFC 4271 leaves it to policy;
/// every common implementation uses 100).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_PARTIAL: u8 = 0x20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub origin: Origin,
    pub as_path: Vec<AsSegment>,
    /// `None` for locally originated prefixes until export sets next-hop self.
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Unrecognised optional transitive attributes, Partial bit set.
    pub other: Vec<RawAttribute>,
}

impl RouteAttrs {
    /// A prefix this speaker originates.
    pub fn local(communities: &[u32]) -> Self {
        Self::local_with(communities, &[])
    }

    /// A prefix this speaker originates, with large communities too.
    pub fn local_with(communities: &[u32], large: &[LargeCommunity]) -> Self {
        let mut communities = communities.to_vec();
        communities.sort_unstable();
        communities.dedup();
        let mut large_communities = large.to_vec();
        large_communities.sort_unstable();
        large_communities.dedup();
        RouteAttrs {
            origin: Origin::Igp,
            as_path: Vec::new(),
            next_hop: None,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities,
            large_communities,
            originator_id: None,
            cluster_list: Vec::new(),
            other: Vec::new(),
        }
    }

    /// The attributes of an UPDATE for prefixes whose next hop is `next_hop`.
    /// Unrecognised non-transitive attributes are dropped here, since they
    /// must not be passed on (RFC 4271 §5).
    pub fn from_wire(a: &PathAttributes, next_hop: Option<IpAddr>) -> Self {
        RouteAttrs {
            // The codec treats a missing ORIGIN as withdraw (RFC 7606); this
            // is only a safe fallback.
            origin: a.origin.unwrap_or(Origin::Incomplete),
            as_path: a.as_path.clone(),
            next_hop,
            med: a.med,
            local_pref: a.local_pref,
            atomic_aggregate: a.atomic_aggregate,
            aggregator: a.aggregator,
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
            originator_id: a.originator_id,
            cluster_list: a.cluster_list.clone(),
            other: a
                .other
                .iter()
                .filter(|r| r.flags & FLAG_TRANSITIVE != 0)
                .map(|r| RawAttribute {
                    flags: r.flags | FLAG_PARTIAL,
                    code: r.code,
                    data: r.data.clone(),
                })
                .collect(),
        }
    }

    /// AS_PATH length for the decision process: an AS_SET counts as one.
    pub fn as_path_len(&self) -> usize {
        self.as_path
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(_) => 1,
            })
            .sum()
    }

    /// The AS the path was learned from (first AS of a leading sequence).
    pub fn neighbor_as(&self) -> Option<u32> {
        match self.as_path.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }

    pub fn contains_as(&self, asn: u32) -> bool {
        self.as_path.iter().any(|s| match s {
            AsSegment::Sequence(v) | AsSegment::Set(v) => v.contains(&asn),
        })
    }

    /// How many times `asn` appears in the AS_PATH (sets count once each).
    pub fn count_as(&self, asn: u32) -> usize {
        self.as_path
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.iter().filter(|a| **a == asn).count(),
                AsSegment::Set(v) => usize::from(v.contains(&asn)),
            })
            .sum()
    }

    pub fn prepend_as(&mut self, asn: u32) {
        match self.as_path.first_mut() {
            Some(AsSegment::Sequence(v)) if v.len() < 255 => v.insert(0, asn),
            _ => self.as_path.insert(0, AsSegment::Sequence(vec![asn])),
        }
    }

    pub fn effective_local_pref(&self) -> u32 {
        self.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }

    /// An UPDATE announcing `nlri` (all of `family`) with these attributes.
    /// The encoder still enforces the 4096-byte limit; see
    /// [`crate::rib::PeerExport::to_updates`] for chunking.
    pub fn to_update(&self, family: Family, nlri: Vec<IpNet>) -> Update {
        let mut attrs = PathAttributes {
            origin: Some(self.origin),
            as_path: self.as_path.clone(),
            next_hop: None,
            med: self.med,
            local_pref: self.local_pref,
            atomic_aggregate: self.atomic_aggregate,
            aggregator: self.aggregator,
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
            originator_id: self.originator_id,
            cluster_list: self.cluster_list.clone(),
            mp_reach: None,
            mp_unreach: None,
            other: self.other.clone(),
        };
        let mut update = Update::default();
        if family == Family::IPV4_UNICAST {
            if let Some(IpAddr::V4(nh)) = self.next_hop {
                attrs.next_hop = Some(nh);
            }
            update.nlri = nlri.into_iter().filter_map(v4).collect();
        } else {
            attrs.mp_reach = Some(MpReach {
                family,
                next_hops: self.next_hop.into_iter().collect(),
                nlri,
            });
        }
        update.attrs = attrs;
        update
    }

    /// Rough encoded size, for packing NLRI under the message limit.
    pub fn encoded_size_estimate(&self) -> usize {
        let path: usize = self
            .as_path
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) | AsSegment::Set(v) => 2 + 4 * v.len(),
            })
            .sum();
        let other: usize = self.other.iter().map(|r| 4 + r.data.len()).sum();
        // Header 4 bytes per attribute (extended length), generous next hop.
        4 * 10
            + 1
            + path
            + 4
            + 4
            + 4
            + 8
            + 4 * self.communities.len()
            + 4
            + 12 * self.large_communities.len()
            + 4
            + 4 * self.cluster_list.len()
            + other
            + 5
            + 2 * 16
    }
}

fn v4(n: IpNet) -> Option<Ipv4Net> {
    match n {
        IpNet::V4(n) => Some(n),
        IpNet::V6(_) => None,
    }
}

pub fn family_of(prefix: &IpNet) -> Family {
    match prefix {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    }
}

/// An UPDATE withdrawing `prefixes` (all of `family`).
pub fn withdraw_update(family: Family, prefixes: Vec<IpNet>) -> Update {
    let mut update = Update::default();
    if family == Family::IPV4_UNICAST {
        update.withdrawn = prefixes.into_iter().filter_map(v4).collect();
    } else {
        update.attrs.mp_unreach = Some(MpUnreach {
            family,
            withdrawn: prefixes,
        });
    }
    update
}

/// RFC 4724 End-of-RIB marker for `family`.
pub fn end_of_rib_update(family: Family) -> Update {
    if family == Family::IPV4_UNICAST {
        Update::default()
    } else {
        withdraw_update(family, Vec::new())
    }
}

/// Keeps one `Arc` per distinct attribute set. Entries nobody else holds
/// are swept when the set has doubled since the last sweep.
#[derive(Default)]
pub struct Interner {
    set: HashSet<Arc<RouteAttrs>>,
    sweep_at: usize,
}

impl Interner {
    pub fn intern(&mut self, attrs: RouteAttrs) -> Arc<RouteAttrs> {
        if let Some(found) = self.set.get(&attrs) {
            return found.clone();
        }
        if self.set.len() >= self.sweep_at.max(1024) {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.sweep_at = self.set.len() * 2;
        }
        let arc = Arc::new(attrs);
        self.set.insert(arc.clone());
        arc
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }
}
