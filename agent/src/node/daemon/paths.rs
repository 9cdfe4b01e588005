//! What the route calculation's BGP rules need from the kernel: the native
//! routes a previous run left (so a restart keeps them for a hold time
//! while the ToR session comes back) and the gateway towards a learned
//! next hop that is not on a connected subnet (recursive resolution, as
//! BIRD's `gateway recursive`).

use crate::node::routes::{is_connected_to, Inputs, LastPath};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use tabby_felix_lite::autodetect::host;
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::model::VXLAN_DEVICE;

/// Tabby's native routes to remote blocks as the kernel holds them now.
pub(super) fn kernel_last_paths(
    affinities: &[(IpNet, String)],
    me: &str,
) -> HashMap<IpNet, LastPath> {
    let snap = match KernelSnapshot::read() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "reading the kernel's routes at start");
            return HashMap::new();
        }
    };
    let vxlan = snap.link(VXLAN_DEVICE).map(|l| l.index);
    snap.routes
        .iter()
        .filter(|r| r.is_tabbys() && r.oif.is_some() && r.oif != vxlan)
        .filter(|r| {
            affinities
                .iter()
                .any(|(b, n)| *b == IpNet::V4(r.dst) && n != me)
        })
        .filter_map(|r| {
            Some((
                IpNet::V4(r.dst),
                LastPath {
                    gateway: IpAddr::V4(r.gateway?),
                    peer: None,
                },
            ))
        })
        .collect()
}

/// The kernel's gateway towards each learned next hop of a non-mesh peer
/// that is not on a connected subnet. `known` (the last answers) are kept
/// as they are unless `fresh`: a burst of BGP updates costs one lookup
/// per new next hop, and the periodic pass re-reads them all.
pub(super) async fn resolve_next_hops(
    inp: &Inputs,
    known: &HashMap<IpAddr, IpAddr>,
    fresh: bool,
) -> HashMap<IpAddr, IpAddr> {
    let mut out = HashMap::new();
    for l in &inp.learned {
        let (Some(from), Some(nh)) = (l.from_peer, l.next_hop) else {
            continue;
        };
        if !inp.peers.contains_key(&from)
            || out.contains_key(&nh)
            || is_connected_to(&inp.local.connected, nh)
        {
            continue;
        }
        if !fresh {
            if let Some(gw) = known.get(&nh) {
                out.insert(nh, *gw);
                continue;
            }
        }
        // IPv4 next hops only: felix-lite's route lookup is IPv4.
        let IpAddr::V4(nh4) = nh else { continue };
        match host::route_get(nh4).await {
            Ok(Some(host::RouteLookup {
                gateway: Some(gw), ..
            })) => {
                out.insert(nh, IpAddr::V4(gw));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(next_hop = %nh, error = %e, "resolving a BGP next hop"),
        }
    }
    out
}
