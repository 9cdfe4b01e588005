//! Per-peer RIB state: the Adj-RIB-In prefix sets, the Adj-RIB-Out, and
//! the export step that diffs one against the Loc-RIB.

use super::attrs::{family_of, Interner, RouteAttrs};
use super::changes::{Grouper, PeerExport};
use super::decision::{Path, Source};
use super::export::{rewrite, role_allows, Target};
use super::fast_hash::FastMap;
use super::prefix_map::PrefixMap;
use crate::fsm::Negotiated;
use crate::peer_config::{LocalConfig, PeerConfig};
use crate::wire::Family;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// What the transport tells the RIB when a session comes up.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub negotiated: Negotiated,
    /// Our addresses for next-hop self: the session's local address for
    /// its own family, and a configured address of the other family for
    /// MP-BGP (no IPv6 next hop means no IPv6 export on an IPv4 session).
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCounts {
    /// Prefixes the peer currently announces, before import policy.
    pub received: u64,
    pub accepted: u64,
    /// Of the received, the martians (RFC 4271 §6.3 / BCP: unusable
    /// addresses such as 127/8 or fe80::/10): never accepted.
    pub martians: u64,
    pub advertised: u64,
}

pub(crate) struct PeerRib {
    pub config: PeerConfig,
    pub source: Arc<Source>,
    pub session: Option<SessionInfo>,
    /// Paths from this peer in the Loc-RIB (its post-policy Adj-RIB-In
    /// lives there, not in a table of its own).
    pub accepted: usize,
    /// Prefixes the peer announces that import policy, loop, next-hop or
    /// martian checks rejected; `true` for martians.
    pub rejected: PrefixMap<bool>,
    /// How many of `rejected` are martians.
    pub martians: usize,
    /// Prefixes in the peer's Adj-RIB-Out.
    pub advertised: usize,
    /// Families whose paths are stale, waiting for End-of-RIB.
    pub stale: Vec<Family>,
}

type RewriteKey = (*const RouteAttrs, *const Source, Family);

impl PeerRib {
    pub fn new(config: PeerConfig, local: &LocalConfig) -> Self {
        let source = Arc::new(Source {
            peer: Some(config.address),
            router_id: Ipv4Addr::UNSPECIFIED,
            asn: config.remote_as,
            ibgp: config.is_ibgp(local),
            rr_client: config.route_reflector_client,
            weight: config.weight,
        });
        PeerRib {
            config,
            source,
            session: None,
            accepted: 0,
            rejected: PrefixMap::default(),
            martians: 0,
            stale: Vec::new(),
            advertised: 0,
        }
    }

    pub fn source_for(config: &PeerConfig, local: &LocalConfig, s: &SessionInfo) -> Source {
        Source {
            peer: Some(config.address),
            router_id: s.negotiated.peer_id,
            asn: s.negotiated.peer_as,
            ibgp: s.negotiated.peer_as == local.asn,
            rr_client: config.route_reflector_client,
            weight: config.weight,
        }
    }

    pub fn counts(&self) -> PeerCounts {
        PeerCounts {
            received: (self.accepted + self.rejected.len()) as u64,
            accepted: self.accepted as u64,
            martians: self.martians as u64,
            advertised: self.advertised as u64,
        }
    }

    /// Records `prefix` as received but not accepted.
    pub fn reject(&mut self, prefix: IpNet, martian: bool) {
        if self.rejected.insert(prefix, martian).is_none() && martian {
            self.martians += 1;
        }
    }

    /// `prefix` is no longer announced as a rejected route (withdrawn, or
    /// announced again and accepted).
    pub fn unreject(&mut self, prefix: &IpNet) {
        if self.rejected.is_empty() {
            return;
        }
        if self.rejected.remove(prefix) == Some(true) {
            self.martians = self.martians.saturating_sub(1);
        }
    }

    /// The session ended: nothing it announced is held any more.
    pub fn forget_rejected(&mut self) {
        self.rejected.clear();
        self.martians = 0;
    }

    /// The diff for `items`, each a prefix with its best path before and
    /// now. The Adj-RIB-Out is not stored: what was sent for the old best
    /// path is recomputed (with `old_config` when the peer was just
    /// reconfigured), which is exact because the rewrite depends only on
    /// the path, the peer's config and its session, and saves a
    /// prefix-keyed table per peer.
    pub fn export<'p>(
        &mut self,
        local: &LocalConfig,
        interner: &mut Interner,
        items: impl Iterator<Item = (IpNet, Option<&'p Path>, Option<&'p Path>)>,
        old_config: Option<&PeerConfig>,
    ) -> PeerExport {
        let mut out = PeerExport::new(self.config.address);
        let Some(session) = &self.session else {
            return out;
        };
        let mut now_x = Exporter::new(local, &self.config, session);
        let mut old_x = old_config.map(|c| Exporter::new(local, c, session));
        let mut grouper = Grouper::default();
        let mut delta: isize = 0;
        for (prefix, before, now) in items {
            let old = match old_x.as_mut() {
                Some(x) => x.attrs_for(interner, prefix, before),
                None => now_x.attrs_for(interner, prefix, before),
            };
            let new = now_x.attrs_for(interner, prefix, now);
            match (old, new) {
                (Some(o), Some(n)) if Arc::ptr_eq(&o, &n) => {}
                (o, Some(n)) => {
                    if o.is_none() {
                        delta += 1;
                    }
                    grouper.add(&mut out, &n, prefix);
                }
                (Some(_), None) => {
                    delta -= 1;
                    out.withdraw.push(prefix);
                }
                (None, None) => {}
            }
        }
        self.advertised = self.advertised.saturating_add_signed(delta);
        out
    }

    /// What this peer is sent for `best` now, without interning (for
    /// inspection).
    pub fn preview(&self, local: &LocalConfig, prefix: IpNet, best: &Path) -> Option<RouteAttrs> {
        let session = self.session.as_ref()?;
        let x = Exporter::new(local, &self.config, session);
        x.allowed(prefix, best)?;
        rewrite(local, best, family_of(&prefix), &x.target)
    }
}

/// Computes what one peer is sent for a best path. Rewritten attribute
/// sets are cached per (attributes, source, family) and interned, so an
/// UPDATE's worth of prefixes costs one rewrite and shares one `Arc`. The
/// cache keys are pointers: valid because every path looked up is held
/// (in the Loc-RIB or the caller's list of old best paths) for the
/// exporter's lifetime.
struct Exporter<'a> {
    local: &'a LocalConfig,
    config: &'a PeerConfig,
    target: Target<'a>,
    families: &'a [Family],
    cache: FastMap<RewriteKey, Option<Arc<RouteAttrs>>>,
    /// Consecutive prefixes usually share one path's attributes.
    last: Option<(RewriteKey, Option<Arc<RouteAttrs>>)>,
}

impl<'a> Exporter<'a> {
    fn new(local: &'a LocalConfig, config: &'a PeerConfig, session: &'a SessionInfo) -> Self {
        Exporter {
            local,
            config,
            target: Target {
                config,
                ibgp: session.negotiated.ibgp,
                next_hop_v4: session.next_hop_v4,
                next_hop_v6: session.next_hop_v6,
            },
            families: &session.negotiated.families,
            cache: FastMap::default(),
            last: None,
        }
    }

    fn allowed(&self, prefix: IpNet, best: &Path) -> Option<Family> {
        let family = family_of(&prefix);
        let ok = self.families.contains(&family)
            && role_allows(self.local, &best.source, &self.target)
            && self.config.export.accepts(&prefix, best.source.is_local());
        ok.then_some(family)
    }

    fn attrs_for(
        &mut self,
        interner: &mut Interner,
        prefix: IpNet,
        best: Option<&Path>,
    ) -> Option<Arc<RouteAttrs>> {
        let best = best?;
        let family = self.allowed(prefix, best)?;
        let key = (Arc::as_ptr(&best.attrs), Arc::as_ptr(&best.source), family);
        if let Some((k, v)) = &self.last {
            if *k == key {
                return v.clone();
            }
        }
        let (local, target) = (self.local, &self.target);
        let v = self
            .cache
            .entry(key)
            .or_insert_with(|| rewrite(local, best, family, target).map(|a| interner.intern(a)))
            .clone();
        self.last = Some((key, v.clone()));
        v
    }
}
