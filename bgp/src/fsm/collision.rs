//! Connection collision detection (RFC 4271 §6.8). Each TCP connection
//! runs its own [`Fsm`]; when a connection for a peer receives an OPEN
//! while another one for it is running, the transport asks
//! [`resolve_collision`] which one survives and feeds
//! [`OpenCollisionDump`](super::Event::OpenCollisionDump) to the loser, which answers with Cease 6/7
//! and closes.

use super::{Fsm, State};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We initiated the connection.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    Existing,
    New,
    /// No collision yet: the existing connection has no OPEN from the
    /// peer, so both go on and the later OPEN decides.
    Both,
}

/// §6.8: the connection initiated by the speaker with the higher BGP
/// identifier survives. Identifiers compare as 32-bit unsigned integers,
/// which is the octet order `Ipv4Addr` sorts by.
pub fn surviving_direction(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> Direction {
    if local_id < remote_id {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

/// Decides between the existing session's connection and a new one whose
/// OPEN carried `remote_id`.
///
/// - Existing in Idle/Connect/Active: no session to protect, the new one wins.
/// - Existing in OpenSent: its OPEN has not come, so its identifier is
///   unknown and §6.8 has nothing to compare: both go on, and whichever
///   OPEN comes second decides against the one then in OpenConfirm. Anyone
///   can open a TCP connection from the peer's address; one that never
///   sends an OPEN must not make the real peer's connection lose.
/// - Existing in OpenConfirm: by BGP identifier when the two run in
///   opposite directions; two from the same side (two inbound ones, in
///   practice) cannot be told apart by identifier, and a peer keeps only
///   its latest attempt, so the new one wins.
/// - Existing Established: the new one loses, unless graceful restart was
///   negotiated, in which case a new OPEN means the peer restarted
///   (RFC 4724 §4.2): the transport then feeds
///   `Event::TcpConnectionFails` to the existing FSM, which keeps the
///   peer's routes stale, and carries on with the new connection.
pub fn resolve_collision(
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    existing: &Fsm,
    existing_direction: Direction,
    new_direction: Direction,
) -> Survivor {
    match existing.state() {
        State::Idle | State::Connect | State::Active => Survivor::New,
        State::OpenSent => Survivor::Both,
        State::OpenConfirm if existing_direction == new_direction => Survivor::New,
        State::OpenConfirm => {
            if surviving_direction(local_id, remote_id) == existing_direction {
                Survivor::Existing
            } else {
                Survivor::New
            }
        }
        State::Established => {
            let gr = existing
                .negotiated()
                .is_some_and(|n| n.peer_graceful_restart.is_some());
            if gr {
                Survivor::New
            } else {
                Survivor::Existing
            }
        }
    }
}
