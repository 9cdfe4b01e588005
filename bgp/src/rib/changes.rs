//! What one RIB operation changed: best-path events for the WatchBestPaths
//! stream and, per peer, the Adj-RIB-Out diff grouped by attribute set so
//! the encoder packs many NLRI per UPDATE.

use super::attrs::{end_of_rib_update, family_of, withdraw_update, RouteAttrs};
use super::decision::Path;
use super::fast_hash::FastMap;
use crate::wire::{Family, Update, HEADER_LEN, MAX_MESSAGE_LEN};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum BestChange {
    /// New or changed best path (including a change of its stale flag).
    Updated { prefix: IpNet, path: Path },
    /// No path left for the prefix.
    Withdrawn(IpNet),
}

#[derive(Debug, Default)]
pub struct RibChanges {
    pub best: Vec<BestChange>,
    /// One entry per peer that has something to send.
    pub exports: Vec<PeerExport>,
    /// Set by `apply_update` when the peer's accepted prefixes now exceed
    /// its `max_prefixes`: the session must end with Cease 6/1
    /// (`fsm::notify::max_prefixes_cease`).
    pub max_prefix_exceeded: Option<u32>,
}

impl RibChanges {
    pub fn is_empty(&self) -> bool {
        self.best.is_empty() && self.exports.is_empty() && self.max_prefix_exceeded.is_none()
    }

    /// The export for one peer, if any.
    pub fn export_for(&self, peer: IpAddr) -> Option<&PeerExport> {
        self.exports.iter().find(|e| e.peer == peer)
    }
}

/// Adj-RIB-Out diff for one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerExport {
    pub peer: IpAddr,
    /// Each attribute set (one family each: the next hop fixes it) with the
    /// prefixes announced with it.
    pub announce: Vec<(Arc<RouteAttrs>, Vec<IpNet>)>,
    pub withdraw: Vec<IpNet>,
    /// Send End-of-RIB for these families after the rest (initial dump).
    pub end_of_rib: Vec<Family>,
}

impl PeerExport {
    pub(crate) fn new(peer: IpAddr) -> Self {
        PeerExport {
            peer,
            announce: Vec::new(),
            withdraw: Vec::new(),
            end_of_rib: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty() && self.end_of_rib.is_empty()
    }

    pub fn announced_count(&self) -> usize {
        self.announce.iter().map(|(_, n)| n.len()).sum()
    }

    /// UPDATE messages for this diff: withdrawals first, then announcements
    /// packed per attribute set, then End-of-RIB markers. NLRI are chunked
    /// by an estimate of the encoded size that stays under 4096 bytes.
    pub fn to_updates(&self) -> Vec<Update> {
        let mut out = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            let prefixes: Vec<IpNet> = self
                .withdraw
                .iter()
                .filter(|p| family_of(p) == family)
                .copied()
                .collect();
            for chunk in chunks(&prefixes, 64) {
                out.push(withdraw_update(family, chunk));
            }
        }
        for (attrs, prefixes) in &self.announce {
            let Some(first) = prefixes.first() else {
                continue;
            };
            let family = family_of(first);
            for chunk in chunks(prefixes, attrs.encoded_size_estimate()) {
                out.push(attrs.to_update(family, chunk));
            }
        }
        for family in &self.end_of_rib {
            out.push(end_of_rib_update(*family));
        }
        out
    }
}

/// Splits prefixes so each message's NLRI fit beside `overhead` bytes.
fn chunks(prefixes: &[IpNet], overhead: usize) -> Vec<Vec<IpNet>> {
    let budget = MAX_MESSAGE_LEN - HEADER_LEN - 4 - overhead.min(MAX_MESSAGE_LEN / 2);
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let size = 1 + usize::from(p.prefix_len()).div_ceil(8);
        if used + size > budget && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used += size;
        current.push(*p);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Groups announcements by attribute-set identity while a diff is built.
#[derive(Default)]
pub(crate) struct Grouper {
    index: FastMap<*const RouteAttrs, usize>,
    last: Option<(*const RouteAttrs, usize)>,
}

impl Grouper {
    pub fn add(&mut self, export: &mut PeerExport, attrs: &Arc<RouteAttrs>, prefix: IpNet) {
        let key = Arc::as_ptr(attrs);
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let i = *self.index.entry(key).or_insert_with(|| {
                    export.announce.push((attrs.clone(), Vec::new()));
                    export.announce.len() - 1
                });
                self.last = Some((key, i));
                i
            }
        };
        export.announce[i].1.push(prefix);
    }
}
