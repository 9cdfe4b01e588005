//! Per-peer RIB state: the Adj-RIB-In prefix sets, the Adj-RIB-Out, and
//! the export step that diffs one against the Loc-RIB.

use super::attrs::{family_of, Interner, RouteAttrs};
use super::changes::{Grouper, PeerExport};
use super::decision::{Path, Source};
use super::export::{rewrite, role_allows, Target};
use super::prefix_map::PrefixMap;
use crate::fsm::Negotiated;
use crate::peer_config::{LocalConfig, PeerConfig};
use crate::wire::Family;
use ipnet::IpNet;
use std::collections::HashMap;
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
    pub advertised: u64,
}

pub(crate) struct PeerRib {
    pub config: PeerConfig,
    pub source: Arc<Source>,
    pub session: Option<SessionInfo>,
    /// Paths from this peer in the Loc-RIB (its post-policy Adj-RIB-In
    /// lives there, not in a table of its own).
    pub accepted: usize,
    /// Prefixes the peer announces that import policy or loop checks rejected.
    pub rejected: PrefixMap<()>,
    /// Families whose paths are stale, waiting for End-of-RIB.
    pub stale: Vec<Family>,
    pub adj_out: PrefixMap<Arc<RouteAttrs>>,
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
            stale: Vec::new(),
            adj_out: PrefixMap::default(),
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
            advertised: self.adj_out.len() as u64,
        }
    }

    /// Brings the Adj-RIB-Out in line with the Loc-RIB's best paths for
    /// `prefixes`, returning the diff. Rewritten attribute sets are cached
    /// per (attributes, source, family) for the call and interned, so an
    /// UPDATE's worth of prefixes costs one rewrite and shares one `Arc`.
    pub fn export(
        &mut self,
        local: &LocalConfig,
        loc: &PrefixMap<Vec<Path>>,
        interner: &mut Interner,
        prefixes: impl Iterator<Item = IpNet>,
        grouper: &mut Grouper,
    ) -> PeerExport {
        let mut out = PeerExport::new(self.config.address);
        let Some(session) = &self.session else {
            return out;
        };
        let target = Target {
            config: &self.config,
            ibgp: session.negotiated.ibgp,
            next_hop_v4: session.next_hop_v4,
            next_hop_v6: session.next_hop_v6,
        };
        let families = &session.negotiated.families;
        let mut cache: HashMap<RewriteKey, Option<Arc<RouteAttrs>>> = HashMap::new();
        for prefix in prefixes {
            let family = family_of(&prefix);
            if !families.contains(&family) {
                continue;
            }
            let wanted = loc.get(&prefix).and_then(|v| v.first()).and_then(|best| {
                let allowed = role_allows(local, &best.source, &target)
                    && self.config.export.accepts(&prefix, best.source.is_local());
                if !allowed {
                    return None;
                }
                let key = (Arc::as_ptr(&best.attrs), Arc::as_ptr(&best.source), family);
                cache
                    .entry(key)
                    .or_insert_with(|| {
                        rewrite(local, best, family, &target).map(|a| interner.intern(a))
                    })
                    .clone()
            });
            match wanted {
                Some(attrs) => {
                    let unchanged = self
                        .adj_out
                        .get(&prefix)
                        .is_some_and(|old| Arc::ptr_eq(old, &attrs));
                    if !unchanged {
                        grouper.add(&mut out, &attrs, prefix);
                        self.adj_out.insert(prefix, attrs);
                    }
                }
                None => {
                    if self.adj_out.remove(&prefix).is_some() {
                        out.withdraw.push(prefix);
                    }
                }
            }
        }
        out
    }
}
