//! What `ListPeers` shows for one peer.

use crate::fsm::{LastError, State};
use crate::peer_config::PeerConfig;
use crate::wire::Family;
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub config: PeerConfig,
    pub state: State,
    /// When `state` was entered.
    pub since: SystemTime,
    /// The last error or NOTIFICATION (sent or received), with the state
    /// it happened in; kept after the session recovers.
    pub last_error: Option<LastError>,
    /// The AS number in the peer's last OPEN, accepted or refused.
    pub peer_open_as: Option<u32>,
    /// The AS this speaker announces.
    pub local_as: u32,
    /// Prefixes in the peer's Adj-RIB-In (after RFC 7606 handling).
    pub prefixes_received: u64,
    /// Of those, the ones import policy accepted.
    pub prefixes_accepted: u64,
    /// Prefixes in the peer's Adj-RIB-Out.
    pub prefixes_advertised: u64,
    /// Of the received, martians (never accepted).
    pub prefixes_martian: u64,
    /// While the peer is restarting (RFC 4724 helper): when its stale
    /// routes are dropped unless End-of-RIB refreshes them first.
    pub graceful_restart_until: Option<SystemTime>,
    /// Connections from the peer refused because both of its slots were
    /// taken (logged at most once a window, counted always).
    pub connections_refused: u64,
    /// UPDATEs handled as withdraw under RFC 7606 (likewise).
    pub updates_treated_as_withdraw: u64,
    /// Segments from or to the peer the kernel dropped for a TCP-MD5
    /// mismatch (RFC 2385: wrong or missing signature), as far as the
    /// kernel's namespace-wide counters can be put down to this peer:
    /// only peers whose session is down, and only those the failing
    /// counter can concern (a peer with a password for a wrong or missing
    /// signature, one without for an unexpected one).
    pub md5_mismatches: u64,
    /// While the session is down: when a mismatch was first put down to
    /// this peer (cleared once it is Established), for `node status`.
    pub md5_mismatch_since: Option<SystemTime>,
    /// The peer's BFD session (None: BFD off, or not started yet because
    /// the session's local address is not known).
    pub bfd: Option<tabby_bfd::runtime::SessionStatus>,
    /// The families the Established session runs (both sides offered
    /// them); empty while it is not Established.
    pub families: Vec<Family>,
}

impl PeerStatus {
    /// A peer in `state` since `since` that has seen nothing yet: no
    /// error, no prefixes, no counters (what a status starts from).
    pub fn new(config: PeerConfig, state: State, since: SystemTime) -> PeerStatus {
        PeerStatus {
            config,
            state,
            since,
            last_error: None,
            peer_open_as: None,
            local_as: 0,
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            prefixes_martian: 0,
            graceful_restart_until: None,
            connections_refused: 0,
            updates_treated_as_withdraw: 0,
            md5_mismatches: 0,
            md5_mismatch_since: None,
            bfd: None,
            families: Vec::new(),
        }
    }

    /// The negotiated families of `conns`' Established connection.
    pub(crate) fn families_of(conns: &[super::conn::Conn]) -> Vec<Family> {
        conns
            .iter()
            .filter(|c| c.fsm.state() == State::Established)
            .find_map(|c| c.fsm.negotiated())
            .map(|n| n.families.clone())
            .unwrap_or_default()
    }
}
