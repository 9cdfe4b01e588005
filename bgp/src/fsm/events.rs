//! The FSM's vocabulary: states, the events the transport feeds in, and the
//! actions it carries out.

use super::{LastError, Negotiated, TcpError};
use crate::wire::{Message, Notification, Open};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    ConnectRetry,
    Hold,
    Keepalive,
    /// Damping before an automatic restart after an error.
    IdleHold,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ManualStart,
    ManualStartPassive,
    ManualStop,
    AutomaticStart,
    ConnectRetryTimerExpires,
    HoldTimerExpires,
    KeepaliveTimerExpires,
    /// The peer connected to us (inbound accepted for this FSM).
    TcpConnectionConfirmed,
    /// Our outbound connection succeeded.
    TcpConnectionAcknowledged,
    /// Connect failed or the established connection broke, and why.
    TcpConnectionFails(TcpError),
    BgpOpen(Open),
    /// The codec rejected a message; the NOTIFICATION is what to send.
    MessageError(Notification),
    NotifMsg(Notification),
    KeepAliveMsg,
    UpdateMsg,
    RouteRefreshMsg,
    /// This connection lost a collision (§6.8).
    OpenCollisionDump,
    /// The peer's BFD session went from Up to Down (RFC 5882 §4.3): the
    /// path is gone, close the session without waiting for the hold time.
    BfdDown(tabby_bfd::Diag),
}

impl Event {
    /// The event a fired timer produces.
    pub fn timer_expired(kind: TimerKind) -> Event {
        match kind {
            TimerKind::ConnectRetry => Event::ConnectRetryTimerExpires,
            TimerKind::Hold => Event::HoldTimerExpires,
            TimerKind::Keepalive => Event::KeepaliveTimerExpires,
            TimerKind::IdleHold => Event::AutomaticStart,
        }
    }
}

// Actions live for one `handle` call; boxing the message would cost an
// allocation per KEEPALIVE for no memory gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open an outbound TCP connection to the peer.
    Connect,
    /// An inbound connection was adopted while an outbound attempt was
    /// pending: abandon the attempt.
    CancelConnect,
    /// Close this FSM's connection (after sending any queued message).
    Disconnect,
    Send(Message),
    /// (Re)start: a running timer of that kind is replaced.
    StartTimer(TimerKind, Duration),
    StopTimer(TimerKind),
    SessionUp(Negotiated),
    SessionDown(DownReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownReason {
    /// The same as [`super::Fsm::last_error`], or `AdminStopped`.
    pub error: LastError,
    /// Keep the peer's routes stale for this many seconds (RFC 4724) instead
    /// of withdrawing them: set when the peer negotiated graceful restart and
    /// the session died without a NOTIFICATION from either side, or by the
    /// hold timer (a peer whose host vanished looks exactly like that).
    pub graceful_restart_time: Option<u16>,
}

impl Event {
    /// How an unexpected event is named in the peer's last error.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Event::BgpOpen(_) => "OPEN",
            Event::NotifMsg(_) => "NOTIFICATION",
            Event::KeepAliveMsg => "KEEPALIVE",
            Event::UpdateMsg => "UPDATE",
            Event::RouteRefreshMsg => "ROUTE-REFRESH",
            Event::MessageError(_) => "malformed message",
            Event::OpenCollisionDump => "collision",
            _ => "event",
        }
    }
}
