//! The speaker's event streams: a snapshot of the Loc-RIB followed by
//! best-path changes, and a snapshot of every peer followed by its state
//! changes, so a consumer never polls.
//!
//! Changes go out on a broadcast channel in batches (one per RIB
//! operation). A consumer that falls behind by more than the channel holds
//! gets `Lagged` and resumes by asking for a fresh snapshot, so it never
//! misses the final state of any prefix.

use super::status::PeerStatus;
use crate::rib::{BestChange, Path};
use crate::wire::{AsSegment, LargeCommunity};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestPath {
    pub prefix: IpNet,
    /// `None` for prefixes this speaker originates.
    pub next_hop: Option<IpAddr>,
    /// `None` for prefixes this speaker originates.
    pub from_peer: Option<IpAddr>,
    /// Flattened AS path (sets included in order).
    pub as_path: Vec<u32>,
    pub local_pref: u32,
    pub med: Option<u32>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
    /// Kept from a peer that is restarting (RFC 4724), not yet refreshed.
    pub stale: bool,
}

impl BestPath {
    pub fn from_path(prefix: IpNet, path: &Path) -> Self {
        let a = &path.attrs;
        BestPath {
            prefix,
            next_hop: a.next_hop,
            from_peer: path.source.peer,
            as_path: a
                .as_path
                .iter()
                .flat_map(|s| match s {
                    AsSegment::Sequence(v) | AsSegment::Set(v) => v.iter().copied(),
                })
                .collect(),
            local_pref: a.effective_local_pref(),
            med: a.med,
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
            stale: path.stale,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BestPathEvent {
    Updated(BestPath),
    Withdrawn(IpNet),
}

impl BestPathEvent {
    pub fn from_change(c: &BestChange) -> Self {
        match c {
            BestChange::Updated { prefix, path } => {
                BestPathEvent::Updated(BestPath::from_path(*prefix, path))
            }
            BestChange::Withdrawn(p) => BestPathEvent::Withdrawn(*p),
        }
    }
}

/// A peer's state or latest error changed (or it was just added), or it
/// was removed.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    Changed(Box<PeerStatus>),
    Removed(IpAddr),
}

/// Batches of changes held for slow consumers before they lag.
pub(crate) const CHANNEL_BATCHES: usize = 4096;
/// Peer events held for slow consumers before they lag.
pub(crate) const PEER_EVENTS: usize = 1024;

pub struct BestPathWatch {
    pub snapshot: Vec<BestPath>,
    /// Changes after the snapshot; on `RecvError::Lagged` ask for a new
    /// watch (snapshot) to resume.
    pub changes: broadcast::Receiver<Arc<Vec<BestPathEvent>>>,
    /// Every peer as of the snapshot.
    pub peers: Vec<PeerStatus>,
    /// Peer changes after `peers`; lagging is handled like `changes`.
    pub peer_changes: broadcast::Receiver<PeerEvent>,
}
