//! BFD for BGP peers (RFC 5882): a peer whose configuration asks for BFD
//! gets a BFD session from the BGP session's local address (or its
//! configured source address) as soon as that is known, kept for as long
//! as the peer is configured — across BGP session flaps, so BFD is there
//! when the session comes back. When BFD goes from Up to Down for a path
//! failure, every connection of the peer gets [`Event::BfdDown`]: the
//! session closes at once, its routes are withdrawn (no graceful-restart
//! retention: the peer is gone, not restarting) and it re-establishes
//! through the usual error wait and connect retry.

use super::core::Core;
use super::msg::CoreMsg;
use crate::fsm::Event;
use std::net::IpAddr;
use tabby_bfd::runtime::{Bfd, SessionKey, StateChange};
use tabby_bfd::session::SessionConfig;
use tokio::sync::broadcast::error::RecvError;

impl Core {
    /// Starts the peer's BFD session once its local address is known.
    pub(crate) fn bfd_settle(&mut self, peer: IpAddr) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let Some(settings) = p.config.bfd else {
            return;
        };
        let local = p
            .config
            .source_address
            .or_else(|| {
                p.conns
                    .iter()
                    .find_map(|c| c.link.as_ref().map(|l| l.local.ip().to_canonical()))
            })
            .filter(|a| !a.is_unspecified());
        let Some(local) = local else {
            return;
        };
        if p.bfd.as_ref().is_some_and(|h| h.key.local == local) {
            return;
        }
        let Some(rt) = self.bfd_runtime() else {
            return;
        };
        let config = SessionConfig {
            desired_min_tx: settings.min_tx,
            required_min_rx: settings.min_rx,
            detect_mult: settings.multiplier,
        };
        let result = rt.add(SessionKey { peer, local }, config);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        // The old session (another local address) ends with AdminDown.
        p.bfd = None;
        match result {
            Ok(h) => {
                tracing::info!(%peer, %local, "BFD session configured");
                p.bfd = Some(h);
                self.peer_changed(peer);
            }
            Err(e) => {
                if self.limited(peer, "bfd").is_some() {
                    tracing::warn!(%peer, error = %e, "cannot start BFD for this peer");
                }
            }
        }
    }

    /// The namespace's BFD runtime, started on first use.
    fn bfd_runtime(&mut self) -> Option<Bfd> {
        if let Some(b) = &self.bfd {
            return Some(b.clone());
        }
        match Bfd::start() {
            Ok(b) => {
                let mut changes = b.subscribe();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            c = changes.recv() => match c {
                                Ok(c) => if tx.send(CoreMsg::Bfd(c)).is_err() { break },
                                Err(RecvError::Lagged(n)) => {
                                    tracing::warn!(missed = n, "BFD state changes were missed");
                                }
                                Err(RecvError::Closed) => break,
                            },
                            _ = tx.closed() => break,
                        }
                    }
                });
                self.bfd = Some(b.clone());
                Some(b)
            }
            Err(e) => {
                // Retried at the next FSM step (a previous speaker in this
                // namespace may still be releasing the port).
                let any = IpAddr::from([0, 0, 0, 0]);
                if self.limited(any, "bfd-listen").is_some() {
                    tracing::warn!(error = %e, "BFD unavailable");
                }
                None
            }
        }
    }

    pub(crate) fn bfd_changed(&mut self, change: StateChange) {
        let peer = change.key.peer;
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        if !p.bfd.as_ref().is_some_and(|h| h.key == change.key) {
            return;
        }
        let ids: Vec<u64> = p.conns.iter().map(|c| c.id).collect();
        if change.is_failure() {
            tracing::warn!(
                %peer,
                diag = %change.diag,
                "BFD session down: closing the BGP session"
            );
            for id in ids {
                self.drive(peer, id, Event::BfdDown(change.diag));
            }
        }
        self.peer_changed(peer);
    }
}
