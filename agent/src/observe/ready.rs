//! The probe rules, as pure functions of what the node knows and the time,
//! so the clock is the caller's (tests pass their own instants).
//!
//! Readiness is calico-node's (`node/pkg/health`): Felix's part — the
//! datastore in sync and the first dataplane apply done — and BIRD's part:
//! no BGP peers → ready; within [`BGP_GRACE`] of start every peer must be
//! Established; after that at least one Established peer suffices.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// calico-node's bird-ready grace: while the node is this young, every
/// peer must be Established for it to be ready.
pub const BGP_GRACE: Duration = Duration::from_secs(30);

/// A loop whose watchdog has not moved for this long is not live. The
/// loops stamp theirs every second; the kubelet's probe (period 10 s,
/// failure threshold 6 in calico-node's manifest) then restarts a node
/// stuck for a minute or more.
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(20);

/// One BGP peer as readiness sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub address: IpAddr,
    pub established: bool,
    /// What `node status` shows in INFO: the state, or the last failure.
    pub info: String,
}

/// BIRD's part of readiness, `age` being the time since the node started.
/// The error names every peer that is not Established, with its INFO.
pub fn bgp_ready(peers: &[PeerState], age: Duration) -> Result<(), String> {
    if peers.is_empty() {
        return Ok(());
    }
    let down: Vec<String> = peers
        .iter()
        .filter(|p| !p.established)
        .map(|p| format!("{} ({})", p.address, p.info))
        .collect();
    if down.is_empty() {
        return Ok(());
    }
    if age < BGP_GRACE {
        return Err(format!(
            "BGP not established with {} (within {} s of start every peer must be)",
            down.join(", "),
            BGP_GRACE.as_secs()
        ));
    }
    if down.len() == peers.len() {
        return Err(format!(
            "BGP not established with any peer: {}",
            down.join(", ")
        ));
    }
    Ok(())
}

/// Everything readiness looks at, gathered by the caller.
#[derive(Debug, Clone)]
pub struct ReadyInputs {
    /// Kinds of the cluster cache not yet listed and watched.
    pub unsynced_kinds: Vec<String>,
    /// Set while the datastore does not answer (the cluster cache's
    /// stall, as text): it makes every kind unsynced, and says why.
    pub datastore_stalled: Option<String>,
    /// Reconcile passes done so far.
    pub dataplane_passes: u64,
    /// None when the node runs no BGP.
    pub peers: Option<Result<Vec<PeerState>, String>>,
    pub started: Instant,
}

/// The node's readiness at `now`: Ok, or every reason it is not ready,
/// joined by "; ".
pub fn ready(i: &ReadyInputs, now: Instant) -> Result<(), String> {
    let mut why = Vec::new();
    if let Some(stall) = &i.datastore_stalled {
        why.push(stall.clone());
    } else if !i.unsynced_kinds.is_empty() {
        why.push(format!(
            "datastore not in sync ({} not listed and watched)",
            i.unsynced_kinds.join(", ")
        ));
    }
    if i.dataplane_passes == 0 {
        why.push("dataplane: first apply not done".to_string());
    }
    match &i.peers {
        None => {}
        Some(Err(e)) => why.push(format!("BGP speaker not answering: {e}")),
        Some(Ok(peers)) => {
            if let Err(e) = bgp_ready(peers, now.saturating_duration_since(i.started)) {
                why.push(e);
            }
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}

/// Liveness: every loop's watchdog (its name, its last stamp) moved within
/// [`LIVENESS_TIMEOUT`] of `now`.
pub fn live(watchdogs: &[(&str, Instant)], now: Instant) -> Result<(), String> {
    let stuck: Vec<String> = watchdogs
        .iter()
        .filter_map(|(name, t)| {
            let idle = now.saturating_duration_since(*t);
            (idle > LIVENESS_TIMEOUT)
                .then(|| format!("{name} has not turned for {} s", idle.as_secs()))
        })
        .collect();
    if stuck.is_empty() {
        Ok(())
    } else {
        Err(stuck.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8, established: bool) -> PeerState {
        PeerState {
            address: IpAddr::from([10, 0, 0, last]),
            established,
            info: if established { "Established" } else { "Active" }.into(),
        }
    }

    const EARLY: Duration = Duration::from_secs(29);
    const LATE: Duration = Duration::from_secs(31);

    #[test]
    fn no_peers_is_ready_at_any_age() {
        assert_eq!(bgp_ready(&[], Duration::ZERO), Ok(()));
        assert_eq!(bgp_ready(&[], LATE), Ok(()));
    }

    #[test]
    fn within_the_grace_every_peer_must_be_established() {
        assert_eq!(bgp_ready(&[peer(2, true), peer(3, true)], EARLY), Ok(()));
        let e = bgp_ready(&[peer(2, true), peer(3, false)], EARLY).unwrap_err();
        assert!(e.contains("10.0.0.3 (Active)"), "{e}");
        assert!(!e.contains("10.0.0.2"), "{e}");
    }

    #[test]
    fn after_the_grace_one_established_peer_suffices() {
        assert_eq!(bgp_ready(&[peer(2, true), peer(3, false)], LATE), Ok(()));
        let e = bgp_ready(&[peer(2, false), peer(3, false)], LATE).unwrap_err();
        assert_eq!(
            e,
            "BGP not established with any peer: 10.0.0.2 (Active), 10.0.0.3 (Active)"
        );
    }

    #[test]
    fn the_grace_is_measured_from_start_with_the_callers_clock() {
        let started = Instant::now();
        let mut i = ReadyInputs {
            unsynced_kinds: vec![],
            datastore_stalled: None,
            dataplane_passes: 1,
            peers: Some(Ok(vec![peer(2, true), peer(3, false)])),
            started,
        };
        assert!(ready(&i, started + EARLY).is_err());
        assert_eq!(ready(&i, started + LATE), Ok(()));
        i.peers = Some(Ok(vec![peer(3, false)]));
        assert!(ready(&i, started + LATE).is_err());
    }

    #[test]
    fn every_reason_is_named() {
        let started = Instant::now();
        let i = ReadyInputs {
            unsynced_kinds: vec!["IPPool".into()],
            datastore_stalled: None,
            dataplane_passes: 0,
            peers: Some(Err("timed out".into())),
            started,
        };
        let e = ready(&i, started).unwrap_err();
        assert_eq!(
            e,
            "datastore not in sync (IPPool not listed and watched); \
             dataplane: first apply not done; BGP speaker not answering: timed out"
        );
        let stalled = ReadyInputs {
            unsynced_kinds: vec!["IPPool".into(), "Node".into()],
            datastore_stalled: Some(
                "datastore not responding for 7 s: etcdv3 did not answer within 5 s".into(),
            ),
            peers: None,
            dataplane_passes: 1,
            ..i
        };
        assert_eq!(
            ready(&stalled, started).unwrap_err(),
            "datastore not responding for 7 s: etcdv3 did not answer within 5 s"
        );
    }

    #[test]
    fn a_stuck_loop_is_not_live() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        assert_eq!(
            live(&[("main loop", now), ("reconciler", now)], now),
            Ok(())
        );
        let e = live(&[("main loop", now), ("reconciler", t0)], now).unwrap_err();
        assert_eq!(e, "reconciler has not turned for 60 s");
        assert_eq!(live(&[("reconciler", now - LIVENESS_TIMEOUT)], now), Ok(()));
    }
}
