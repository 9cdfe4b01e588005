//! Adj-RIB-In, Loc-RIB and Adj-RIB-Out for the whole speaker.
//!
//! One [`Rib`] holds every peer. Accepted paths live once, in the Loc-RIB
//! (a map from prefix to its candidate paths, best first); a peer's
//! post-policy Adj-RIB-In is its paths there, plus the set of prefixes its
//! import policy rejected (for the "received" count), which is what BIRD
//! keeps too. Attribute sets are interned `Arc`s, so the prefixes of one
//! UPDATE share one allocation and exports group by pointer. A peer's
//! Adj-RIB-Out is recomputed rather than stored (see `PeerRib::export`),
//! and every operation returns exact diffs ([`RibChanges`]).

mod attrs;
mod changes;
mod decision;
mod export;
mod fast_hash;
mod martian;
mod paths;
mod peer;
mod prefix_map;
mod session;
mod sharded;

pub use attrs::{end_of_rib_update, family_of, withdraw_update, RouteAttrs, DEFAULT_LOCAL_PREF};
pub use changes::{BestChange, PeerExport, RibChanges};
pub use decision::{compare, Path, Source};
pub use export::{import_loop, rewrite, role_allows, Target};
pub use martian::is_martian;
pub use peer::{PeerCounts, SessionInfo};

use crate::peer_config::{LocalConfig, PeerConfig};
use crate::wire::{Family, LargeCommunity, Update};
use attrs::Interner;
use decision::select_best;
use fast_hash::FastMap;
use ipnet::IpNet;
use martian::is_own_next_hop;
use paths::Paths;
use peer::PeerRib;
use prefix_map::PrefixMap;
use std::net::IpAddr;
use std::sync::Arc;

pub struct Rib {
    local: LocalConfig,
    local_source: Arc<Source>,
    /// One path inline, more boxed (see `paths`).
    loc: PrefixMap<Paths>,
    peers: FastMap<IpAddr, PeerRib>,
    interner: Interner,
}

/// Per-operation accumulator of changed prefixes and best-path events.
#[derive(Default)]
pub(crate) struct Touched {
    /// Each changed prefix once, with its best path before the operation.
    changed: Vec<(IpNet, Option<Path>)>,
    seen: PrefixMap<()>,
    best: Vec<BestChange>,
}

impl Rib {
    pub fn new(local: LocalConfig) -> Self {
        let local_source = Arc::new(Source {
            peer: None,
            router_id: local.router_id,
            asn: local.asn,
            ibgp: false,
            rr_client: false,
            weight: 0,
        });
        Rib {
            local,
            local_source,
            loc: PrefixMap::default(),
            peers: FastMap::default(),
            interner: Interner::default(),
        }
    }

    pub fn local(&self) -> &LocalConfig {
        &self.local
    }

    /// Adds or reconfigures a peer. A reconfigured peer with a session gets
    /// its Adj-RIB-Out recomputed (export policy may have changed); a new
    /// import policy only applies to what the peer sends next, so the
    /// transport should also send it a ROUTE-REFRESH.
    pub fn set_peer(&mut self, config: PeerConfig) -> RibChanges {
        let address = config.address;
        match self.peers.get_mut(&address) {
            Some(existing) => {
                let old = std::mem::replace(&mut existing.config, config);
                let exports = self.export_all_to(address, Some(&old), false);
                RibChanges {
                    exports,
                    ..RibChanges::default()
                }
            }
            None => {
                self.peers
                    .insert(address, PeerRib::new(config, &self.local));
                RibChanges::default()
            }
        }
    }

    /// Forgets the peer and withdraws everything learned from it.
    pub fn remove_peer(&mut self, peer: IpAddr) -> RibChanges {
        let changes = self.session_down(peer, None);
        self.peers.remove(&peer);
        changes
    }

    pub fn peer_counts(&self, peer: IpAddr) -> Option<PeerCounts> {
        self.peers.get(&peer).map(PeerRib::counts)
    }

    /// The Loc-RIB's best paths (the WatchBestPaths snapshot).
    pub fn best_paths(&self) -> impl Iterator<Item = (IpNet, &Path)> {
        self.loc
            .iter()
            .filter_map(|(p, v)| v.first().map(|b| (p, b)))
    }

    /// All candidate paths for a prefix, best first.
    pub fn paths(&self, prefix: &IpNet) -> &[Path] {
        self.loc.get(prefix).map(|b| &b[..]).unwrap_or(&[])
    }

    /// Distinct attribute sets held (interned), for memory accounting.
    pub fn attribute_sets(&self) -> usize {
        self.interner.len()
    }

    pub fn len(&self) -> usize {
        self.loc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.loc.is_empty()
    }

    /// What `peer` has been sent for `prefix` (its Adj-RIB-Out entry, recomputed
    /// from the best path; the diffs returned so far add up to exactly this).
    pub fn advertised(&self, peer: IpAddr, prefix: &IpNet) -> Option<RouteAttrs> {
        let best = self.loc.get(prefix)?.first()?;
        self.peers.get(&peer)?.preview(&self.local, *prefix, best)
    }

    /// The peer sent ROUTE-REFRESH: everything exported to it, again.
    pub fn route_refresh(&mut self, peer: IpAddr) -> RibChanges {
        let Some(p) = self.peers.get_mut(&peer) else {
            return RibChanges::default();
        };
        let advertised = std::mem::take(&mut p.advertised);
        let exports = self.export_all_to(peer, None, false);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.advertised = advertised;
        }
        RibChanges {
            exports,
            ..RibChanges::default()
        }
    }

    /// Originates (or re-originates with new communities) local prefixes.
    pub fn originate(&mut self, prefixes: &[IpNet], communities: &[u32]) -> RibChanges {
        self.originate_with(prefixes, communities, &[])
    }

    /// [`Rib::originate`] with RFC 8092 large communities as well.
    pub fn originate_with(
        &mut self,
        prefixes: &[IpNet],
        communities: &[u32],
        large: &[LargeCommunity],
    ) -> RibChanges {
        let attrs = self
            .interner
            .intern(RouteAttrs::local_with(communities, large));
        let mut t = Touched::default();
        for prefix in prefixes {
            let path = Path {
                source: self.local_source.clone(),
                attrs: attrs.clone(),
                stale: false,
            };
            upsert(&mut self.loc, prefix.trunc(), path, &mut t);
        }
        self.finish(t)
    }

    pub fn withdraw_local(&mut self, prefixes: &[IpNet]) -> RibChanges {
        let mut t = Touched::default();
        for prefix in prefixes {
            remove(&mut self.loc, prefix.trunc(), None, &mut t);
        }
        self.finish(t)
    }

    /// Applies one UPDATE from an Established peer: withdrawals, RFC 7606
    /// treat-as-withdraw, loop checks, import policy, End-of-RIB.
    pub fn apply_update(&mut self, peer: IpAddr, update: &Update) -> RibChanges {
        let Some(p) = self.peers.get(&peer) else {
            return RibChanges::default();
        };
        let Some(session) = p.session.as_ref() else {
            return RibChanges::default();
        };
        if let Some(family) = update.end_of_rib() {
            let mut t = Touched::default();
            if let Some(p) = self.peers.get_mut(&peer) {
                p.stale.retain(|f| *f != family);
            }
            self.sweep_stale(peer, &[family], &mut t);
            return self.finish(t);
        }
        let families = session.negotiated.families.clone();
        let source = p.source.clone();
        let allow_local_as = p.config.allow_local_as;
        let mut withdrawn: Vec<IpNet> = update.withdrawn.iter().map(|n| IpNet::V4(*n)).collect();
        if let Some(u) = &update.attrs.mp_unreach {
            if families.contains(&u.family) {
                withdrawn.extend(u.withdrawn.iter().copied());
            }
        }
        let mut announced: Vec<(Option<IpAddr>, Vec<IpNet>)> = Vec::new();
        if !update.nlri.is_empty() && families.contains(&Family::IPV4_UNICAST) {
            let nh = update.attrs.next_hop.map(IpAddr::V4);
            announced.push((nh, update.nlri.iter().map(|n| IpNet::V4(*n)).collect()));
        }
        if let Some(r) = &update.attrs.mp_reach {
            if families.contains(&r.family) && !r.nlri.is_empty() {
                announced.push((r.next_hops.first().copied(), r.nlri.clone()));
            }
        }
        // RFC 4271 §6.3: a NEXT_HOP that is our own address is semantically
        // incorrect; such routes are ignored.
        let own_next_hop: Vec<bool> = announced
            .iter()
            .map(|(nh, _)| nh.is_some_and(|nh| is_own_next_hop(nh, &self.local, session)))
            .collect();

        let mut t = Touched::default();
        for prefix in withdrawn {
            let prefix = prefix.trunc();
            if let Some(p) = self.peers.get_mut(&peer) {
                p.unreject(&prefix);
            }
            self.withdraw_from(peer, prefix, &mut t);
        }
        for ((next_hop, nlri), own_next_hop) in announced.into_iter().zip(own_next_hop) {
            let mut attrs = RouteAttrs::from_wire(&update.attrs, next_hop);
            if !source.ibgp {
                // RFC 4271 §5.1.5: LOCAL_PREF from another AS is ignored.
                attrs.local_pref = None;
            }
            let as_withdraw = update.treat_as_withdraw.is_some();
            let rejected_all = next_hop.is_none()
                || own_next_hop
                || import_loop(&self.local, &attrs, allow_local_as);
            let attrs = self.interner.intern(attrs);
            for prefix in nlri {
                let prefix = prefix.trunc();
                let Some(p) = self.peers.get_mut(&peer) else {
                    break;
                };
                if as_withdraw {
                    p.unreject(&prefix);
                    self.withdraw_from(peer, prefix, &mut t);
                } else if is_martian(&prefix) {
                    p.reject(prefix, true);
                    self.withdraw_from(peer, prefix, &mut t);
                } else if rejected_all || !p.config.import.filter.accepts(&prefix) {
                    p.reject(prefix, false);
                    self.withdraw_from(peer, prefix, &mut t);
                } else {
                    p.unreject(&prefix);
                    let path = Path {
                        source: source.clone(),
                        attrs: attrs.clone(),
                        stale: false,
                    };
                    if upsert(&mut self.loc, prefix, path, &mut t) {
                        p.accepted += 1;
                    }
                }
            }
        }
        let mut changes = self.finish(t);
        if let Some(p) = self.peers.get(&peer) {
            let max = p.config.max_prefixes;
            if max > 0 && p.accepted > max as usize {
                changes.max_prefix_exceeded = Some(max);
            }
        }
        changes
    }

    /// Removes `peer`'s path for `prefix` (a withdrawal, or a rejected
    /// re-announcement that replaces an accepted one).
    pub(crate) fn withdraw_from(&mut self, peer: IpAddr, prefix: IpNet, t: &mut Touched) {
        if remove(&mut self.loc, prefix, Some(peer), t) {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.accepted = p.accepted.saturating_sub(1);
            }
        }
    }

    /// Ends an operation: exports every changed prefix to every
    /// Established peer.
    pub(crate) fn finish(&mut self, t: Touched) -> RibChanges {
        let mut exports = Vec::new();
        if !t.changed.is_empty() {
            let Rib {
                local,
                loc,
                peers,
                interner,
                ..
            } = self;
            // One Loc-RIB lookup per prefix, whatever the number of peers.
            let now: Vec<Option<&Path>> = t
                .changed
                .iter()
                .map(|(prefix, _)| loc.get(prefix).and_then(|v| v.first()))
                .collect();
            for p in peers.values_mut() {
                let items = t
                    .changed
                    .iter()
                    .zip(&now)
                    .map(|((prefix, before), now)| (*prefix, before.as_ref(), *now));
                let e = p.export(local, interner, items, None);
                if !e.is_empty() {
                    exports.push(e);
                }
            }
        }
        RibChanges {
            best: t.best,
            exports,
            max_prefix_exceeded: None,
        }
    }

    /// Exports the whole Loc-RIB to `peer`: as news (`old_config` `None`,
    /// a fresh session or a refresh), or as the diff a config change makes.
    pub(crate) fn export_all_to(
        &mut self,
        peer: IpAddr,
        old_config: Option<&PeerConfig>,
        end_of_rib: bool,
    ) -> Vec<PeerExport> {
        let Rib {
            local,
            loc,
            peers,
            interner,
            ..
        } = self;
        let Some(p) = peers.get_mut(&peer) else {
            return Vec::new();
        };
        let items = loc.iter().map(|(prefix, paths)| {
            let best = paths.first();
            (prefix, if old_config.is_some() { best } else { None }, best)
        });
        let mut e = p.export(local, interner, items, old_config);
        if end_of_rib {
            if let Some(s) = &p.session {
                e.end_of_rib = s.negotiated.families.clone();
            }
        }
        if e.is_empty() {
            Vec::new()
        } else {
            vec![e]
        }
    }
}

/// Adds or replaces the path of `path`'s source; true when it is new.
pub(crate) fn upsert(
    loc: &mut PrefixMap<Paths>,
    prefix: IpNet,
    path: Path,
    t: &mut Touched,
) -> bool {
    let paths = loc.get_or_default(prefix);
    let old = paths.first().cloned();
    let added = match paths.iter().position(|x| x.source.peer == path.source.peer) {
        Some(i) => {
            paths[i] = path;
            false
        }
        None => {
            paths.push(path);
            true
        }
    };
    select_best(paths);
    note(prefix, old, paths.first(), t);
    added
}

/// Removes the path from `peer` (`None`: local); true when there was one.
pub(crate) fn remove(
    loc: &mut PrefixMap<Paths>,
    prefix: IpNet,
    peer: Option<IpAddr>,
    t: &mut Touched,
) -> bool {
    let Some(paths) = loc.get_mut(&prefix) else {
        return false;
    };
    let Some(i) = paths.iter().position(|x| x.source.peer == peer) else {
        return false;
    };
    let old = paths.first().cloned();
    paths.swap_remove(i);
    if paths.is_empty() {
        loc.remove(&prefix);
        note(prefix, old, None, t);
    } else {
        select_best(paths);
        let new = paths.first().cloned();
        note(prefix, old, new.as_ref(), t);
    }
    true
}

pub(crate) fn mark_stale(loc: &mut PrefixMap<Paths>, prefix: IpNet, peer: IpAddr, t: &mut Touched) {
    let Some(paths) = loc.get_mut(&prefix) else {
        return;
    };
    let old = paths.first().cloned();
    for x in paths.iter_mut().filter(|x| x.source.peer == Some(peer)) {
        x.stale = true;
    }
    note(prefix, old, paths.first(), t);
}

fn note(prefix: IpNet, old: Option<Path>, new: Option<&Path>, t: &mut Touched) {
    match (old, new) {
        (Some(o), Some(n)) if o.same(n) => {}
        (None, None) => {}
        (old, Some(n)) => {
            if t.seen.insert(prefix, ()).is_none() {
                t.changed.push((prefix, old));
            }
            t.best.push(BestChange::Updated {
                prefix,
                path: n.clone(),
            });
        }
        (Some(o), None) => {
            if t.seen.insert(prefix, ()).is_none() {
                t.changed.push((prefix, Some(o)));
            }
            t.best.push(BestChange::Withdrawn(prefix));
        }
    }
}
