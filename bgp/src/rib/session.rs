//! Session lifecycle in the RIB: a peer coming up gets the whole Loc-RIB;
//! a peer going down is flushed, or with graceful restart (RFC 4724) has its
//! paths kept stale until End-of-RIB per negotiated family or the restart
//! timer.

use super::peer::PeerRib;
use super::{family_of, mark_stale, remove, Rib, RibChanges, SessionInfo, Touched};
use crate::wire::Family;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

impl Rib {
    /// The session reached Established: export the whole Loc-RIB to the
    /// peer (ending with End-of-RIB per family), and stop waiting for
    /// End-of-RIB on families the new session did not negotiate or whose
    /// forwarding state the peer did not preserve (RFC 4724 §4.2).
    pub fn session_up(&mut self, peer: IpAddr, session: SessionInfo) -> RibChanges {
        let Some(p) = self.peers.get_mut(&peer) else {
            return RibChanges::default();
        };
        p.source = Arc::new(PeerRib::source_for(&p.config, &self.local, &session));
        let give_up: Vec<Family> = p
            .stale
            .iter()
            .copied()
            .filter(|f| {
                let negotiated = session.negotiated.families.contains(f);
                let preserved = session
                    .negotiated
                    .peer_graceful_restart
                    .as_ref()
                    .is_some_and(|gr| gr.preserved(*f));
                !(negotiated && preserved)
            })
            .collect();
        p.advertised = 0;
        p.session = Some(session);
        let mut t = Touched::default();
        self.sweep_stale(peer, &give_up, &mut t);
        let mut changes = self.finish(t);
        changes.exports.retain(|e| e.peer != peer);
        changes.exports.extend(self.export_all_to(peer, None, true));
        changes
    }

    /// The session ended. With `graceful_restart_time` (from
    /// `fsm::DownReason`) the peer's paths in its graceful-restart families
    /// stay, marked stale, until End-of-RIB or [`Rib::restart_timer_expired`];
    /// everything else it sent is withdrawn.
    pub fn session_down(&mut self, peer: IpAddr, graceful_restart_time: Option<u16>) -> RibChanges {
        let Some(p) = self.peers.get_mut(&peer) else {
            return RibChanges::default();
        };
        let keep: Vec<Family> = match (graceful_restart_time, p.session.as_ref()) {
            (Some(_), Some(s)) => s
                .negotiated
                .peer_graceful_restart
                .iter()
                .flat_map(|gr| gr.families.iter().map(|f| f.family))
                .collect(),
            _ => Vec::new(),
        };
        p.session = None;
        p.advertised = 0;
        p.forget_rejected();
        p.stale = keep.clone();
        if p.accepted == 0 {
            return RibChanges::default();
        }
        // A walk of the whole Loc-RIB, as BIRD does on a flush: cheaper
        // than keeping a per-peer prefix index for every route.
        let mut t = Touched::default();
        let mut gone = Vec::new();
        for (prefix, paths) in self.loc.iter() {
            if paths.iter().any(|x| x.source.peer == Some(peer)) {
                gone.push(prefix);
            }
        }
        for prefix in gone {
            if keep.contains(&family_of(&prefix)) {
                mark_stale(&mut self.loc, prefix, peer, &mut t);
            } else if remove(&mut self.loc, prefix, Some(peer), &mut t) {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.accepted = p.accepted.saturating_sub(1);
                }
            }
        }
        self.finish(t)
    }

    /// The peer's restart timer ran out: drop whatever is still stale.
    pub fn restart_timer_expired(&mut self, peer: IpAddr) -> RibChanges {
        let families = self
            .peers
            .get(&peer)
            .map(|p| p.stale.clone())
            .unwrap_or_default();
        let mut t = Touched::default();
        self.sweep_stale(peer, &families, &mut t);
        self.finish(t)
    }

    /// Families of `peer` still waiting for End-of-RIB or the restart timer.
    pub fn stale_families(&self, peer: IpAddr) -> &[Family] {
        self.peers
            .get(&peer)
            .map(|p| p.stale.as_slice())
            .unwrap_or(&[])
    }

    pub(super) fn sweep_stale(&mut self, peer: IpAddr, families: &[Family], t: &mut Touched) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.stale.retain(|f| !families.contains(f));
        if families.is_empty() || p.accepted == 0 {
            return;
        }
        let gone: Vec<IpNet> = self
            .loc
            .iter()
            .filter(|(prefix, _)| families.contains(&family_of(prefix)))
            .filter(|(_, paths)| paths.iter().any(|x| x.source.peer == Some(peer) && x.stale))
            .map(|(prefix, _)| prefix)
            .collect();
        for prefix in gone {
            self.withdraw_from(peer, prefix, t);
        }
    }
}
