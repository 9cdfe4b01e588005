//! Paths, where they came from, and the decision process that orders them.

use super::attrs::RouteAttrs;
use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// Where a path came from, shared by all paths of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `None` for prefixes this speaker originates.
    pub peer: Option<IpAddr>,
    /// The peer's BGP identifier (ours for local paths).
    pub router_id: Ipv4Addr,
    pub asn: u32,
    pub ibgp: bool,
    pub rr_client: bool,
    pub weight: u32,
}

impl Source {
    pub fn is_local(&self) -> bool {
        self.peer.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Path {
    pub source: Arc<Source>,
    pub attrs: Arc<RouteAttrs>,
    /// Kept across the peer's graceful restart, waiting for a refresh.
    pub stale: bool,
}

impl Path {
    /// Same source, same attribute set, same staleness: nothing to tell
    /// anyone.
    pub fn same(&self, other: &Path) -> bool {
        Arc::ptr_eq(&self.source, &other.source)
            && Arc::ptr_eq(&self.attrs, &other.attrs)
            && self.stale == other.stale
    }

    fn router_id(&self) -> Ipv4Addr {
        self.attrs.originator_id.unwrap_or(self.source.router_id)
    }
}

/// The decision process: `Less` means `a` is preferred.
///
/// 1. highest weight
/// 2. highest LOCAL_PREF (default 100)
/// 3. locally originated
/// 4. shortest AS_PATH (a set counts 1)
/// 5. lowest ORIGIN
/// 6. lowest MED, only between paths from the same neighbour AS (missing
///    MED is 0, RFC 4271 §9.1.2.2)
/// 7. eBGP over iBGP
/// 8. lowest router id (ORIGINATOR_ID when present)
/// 9. lowest peer address
pub fn compare(a: &Path, b: &Path) -> Ordering {
    let (x, y) = (&a.attrs, &b.attrs);
    b.source
        .weight
        .cmp(&a.source.weight)
        .then_with(|| y.effective_local_pref().cmp(&x.effective_local_pref()))
        .then_with(|| b.source.is_local().cmp(&a.source.is_local()))
        .then_with(|| x.as_path_len().cmp(&y.as_path_len()))
        .then_with(|| x.origin.cmp(&y.origin))
        .then_with(|| {
            if x.neighbor_as() == y.neighbor_as() {
                x.med.unwrap_or(0).cmp(&y.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| a.source.ibgp.cmp(&b.source.ibgp))
        .then_with(|| a.router_id().cmp(&b.router_id()))
        .then_with(|| a.source.peer.cmp(&b.source.peer))
}

/// Moves the best path to index 0.
pub fn select_best(paths: &mut [Path]) {
    let mut best = 0;
    for i in 1..paths.len() {
        if compare(&paths[i], &paths[best]) == Ordering::Less {
            best = i;
        }
    }
    paths.swap(0, best);
}
