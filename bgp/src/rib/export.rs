//! What a best path becomes when sent to one peer: the peer-role rules
//! (iBGP split horizon, RFC 4456 reflection) and the attribute rewriting
//! for eBGP and iBGP.

use super::attrs::RouteAttrs;
use super::decision::{Path, Source};
use crate::peer_config::{LocalConfig, PeerConfig};
use crate::wire::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the export step needs to know about the target peer's session.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub config: &'a PeerConfig,
    pub ibgp: bool,
    /// Our address on the session, used for next-hop self.
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// Whether the role rules let a path from `source` go to `target`.
pub fn role_allows(local: &LocalConfig, source: &Source, target: &Target<'_>) -> bool {
    if source.peer == Some(target.config.address) {
        // Never back to where it came from.
        return false;
    }
    if source.is_local() || !source.ibgp || !target.ibgp {
        return true;
    }
    // iBGP to iBGP: only a route reflector passes it on, client routes to
    // everyone, non-client routes to clients only (RFC 4456 §6).
    local.cluster_id.is_some() && (source.rr_client || target.config.route_reflector_client)
}

/// The attributes sent to `target` for `path`, before interning. `None`
/// when no next hop of the prefix's family is available on that session.
pub fn rewrite(
    local: &LocalConfig,
    path: &Path,
    family: Family,
    target: &Target<'_>,
) -> Option<RouteAttrs> {
    let source = &path.source;
    let mut a = RouteAttrs::clone(&path.attrs);
    let next_hop_self = if family == Family::IPV4_UNICAST {
        target.next_hop_v4.map(IpAddr::V4)
    } else {
        target.next_hop_v6.map(IpAddr::V6)
    };
    let same_family = |nh: &IpAddr| nh.is_ipv4() == (family == Family::IPV4_UNICAST);
    let learned_next_hop = a
        .next_hop
        .filter(same_family)
        .filter(|_| !source.is_local());

    if target.ibgp {
        a.local_pref = Some(a.effective_local_pref());
        // Learned routes keep their next hop over iBGP (that includes
        // reflected ones); our own prefixes point at us.
        a.next_hop = learned_next_hop.or(next_hop_self);
        if source.ibgp && !source.is_local() {
            if let Some(cluster_id) = local.cluster_id {
                a.originator_id.get_or_insert(source.router_id);
                a.cluster_list.insert(0, cluster_id);
            }
        }
    } else {
        a.prepend_as(local.asn);
        a.next_hop = if target.config.keep_original_next_hop {
            learned_next_hop.or(next_hop_self)
        } else {
            next_hop_self
        };
        a.local_pref = None;
        // A MED learned from another AS must not leak to a third (RFC 4271
        // §5.1.4); our own prefixes carry none unless policy adds one.
        if !source.is_local() {
            a.med = None;
        }
        a.originator_id = None;
        a.cluster_list.clear();
    }
    a.next_hop?;
    let extra = &target.config.export.add_communities;
    if !extra.is_empty() {
        a.communities.extend_from_slice(extra);
        a.communities.sort_unstable();
        a.communities.dedup();
    }
    Some(a)
}

/// RFC 4271 §9.1.2 loop detection and RFC 4456 §8 reflection loops, on
/// import. `allow_local_as`: how many times our AS may appear (allowas-in).
pub fn import_loop(local: &LocalConfig, attrs: &RouteAttrs, allow_local_as: u8) -> bool {
    if attrs.count_as(local.asn) > usize::from(allow_local_as) {
        return true;
    }
    if attrs.originator_id == Some(local.router_id) {
        return true;
    }
    match local.cluster_id {
        Some(id) => attrs.cluster_list.contains(&id),
        None => false,
    }
}
