//! Why a session is not up, as a value: the FSM records one, the speaker
//! keeps the latest per peer, and the agent acts on its variant (a hold
//! timer expiry starts VXLAN fallback at once) instead of matching text.
//! `Display` gives the status table's wording, e.g.
//! `OpenSent: NOTIFICATION received: bad peer AS (2/2)`.

use super::notify::{describe, HOLD_TIMER_EXPIRED};
use super::State;
use crate::wire::Notification;
use std::fmt;
use std::io;

/// What went wrong with a TCP connection, classified from the OS error so
/// callers can tell "nothing listens" from "nothing answers".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpErrorKind {
    /// RST to our SYN: the peer is up but nothing listens on the port.
    Refused,
    /// No answer within the connect timeout (a filtered port looks so).
    TimedOut,
    /// The peer closed the connection (FIN).
    Closed,
    /// The connection was reset (RST) after it was up.
    Reset,
    /// No route to the peer, or the network is down.
    Unreachable,
    /// The peer opened a new connection over a live one (RFC 4724 §4.2).
    PeerRestarted,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpError {
    pub kind: TcpErrorKind,
    /// The OS's wording, kept for the status table.
    pub detail: String,
}

impl TcpError {
    pub fn new(kind: TcpErrorKind, detail: impl Into<String>) -> Self {
        TcpError {
            kind,
            detail: detail.into(),
        }
    }

    pub fn closed_by_peer() -> Self {
        TcpError::new(TcpErrorKind::Closed, "connection closed by peer")
    }
}

impl From<&io::Error> for TcpError {
    fn from(e: &io::Error) -> Self {
        use io::ErrorKind as K;
        let kind = match e.kind() {
            K::ConnectionRefused => TcpErrorKind::Refused,
            K::TimedOut => TcpErrorKind::TimedOut,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => TcpErrorKind::Reset,
            K::UnexpectedEof => TcpErrorKind::Closed,
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => {
                TcpErrorKind::Unreachable
            }
            _ => TcpErrorKind::Other,
        };
        TcpError::new(kind, e.to_string())
    }
}

/// Tests and fuzzers feed plain reasons; they classify as `Other`.
impl From<&str> for TcpError {
    fn from(s: &str) -> Self {
        TcpError::new(TcpErrorKind::Other, s)
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// One failure of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// We sent this NOTIFICATION and closed (a hold timer expiry is 4/0).
    NotificationSent(Notification),
    NotificationReceived(Notification),
    Tcp(TcpError),
    /// A message arrived on a connection in a state that expects none.
    Unexpected(&'static str),
    /// This connection lost a collision (RFC 4271 §6.8); the other goes on.
    CollisionLost,
    /// Stopped by configuration (peer removed, speaker shut down).
    AdminStopped,
    /// BFD declared the peer down, with the BFD session's diagnostic.
    BfdDown(tabby_bfd::Diag),
}

impl PeerError {
    /// The peer was silent for a whole hold time.
    pub fn is_hold_timer_expired(&self) -> bool {
        matches!(self, PeerError::NotificationSent(n) | PeerError::NotificationReceived(n)
            if n.code == HOLD_TIMER_EXPIRED)
    }

    /// A failure detector (BFD) said the peer is gone: no grace period.
    pub fn is_bfd_down(&self) -> bool {
        matches!(self, PeerError::BfdDown(_))
    }

    /// The NOTIFICATION sent or received, if the failure was one.
    pub fn notification(&self) -> Option<(&Notification, bool)> {
        match self {
            PeerError::NotificationSent(n) => Some((n, true)),
            PeerError::NotificationReceived(n) => Some((n, false)),
            _ => None,
        }
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::NotificationSent(n) => write!(f, "NOTIFICATION sent: {}", describe(n)),
            PeerError::NotificationReceived(n) => {
                write!(f, "NOTIFICATION received: {}", describe(n))
            }
            PeerError::Tcp(e) => e.fmt(f),
            PeerError::Unexpected(what) => write!(f, "unexpected {what}"),
            PeerError::CollisionLost => f.write_str("connection collision: closed this connection"),
            PeerError::AdminStopped => f.write_str("administratively stopped"),
            PeerError::BfdDown(d) => write!(f, "BFD session down ({d})"),
        }
    }
}

/// A failure and the state the session was in when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub state: State,
    pub error: PeerError,
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            // A manual stop is not an error of any state.
            PeerError::AdminStopped => self.error.fmt(f),
            _ => write!(f, "{}: {}", self.state, self.error),
        }
    }
}

/// Lets tests compare with the status table's text directly.
impl PartialEq<&str> for LastError {
    fn eq(&self, other: &&str) -> bool {
        // Test-only convenience; the allocation does not matter.
        *other == self.to_string().as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_classified() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(TcpError::from(&refused).kind, TcpErrorKind::Refused);
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        let e = TcpError::from(&timed_out);
        assert_eq!(e.kind, TcpErrorKind::TimedOut);
        assert_eq!(e.to_string(), "connect timed out");
    }

    #[test]
    fn hold_timer_expiry_is_recognised_either_way() {
        let n = Notification {
            code: HOLD_TIMER_EXPIRED,
            subcode: 0,
            data: vec![],
        };
        assert!(PeerError::NotificationSent(n.clone()).is_hold_timer_expired());
        assert!(PeerError::NotificationReceived(n).is_hold_timer_expired());
        let cease = Notification {
            code: 6,
            subcode: 2,
            data: vec![],
        };
        assert!(!PeerError::NotificationReceived(cease).is_hold_timer_expired());
        assert!(!PeerError::Tcp("connection reset".into()).is_hold_timer_expired());
    }

    #[test]
    fn status_text_keeps_the_state_except_for_a_manual_stop() {
        let e = LastError {
            state: State::Connect,
            error: PeerError::Tcp("connection refused".into()),
        };
        assert_eq!(e, "Connect: connection refused");
        let stop = LastError {
            state: State::Established,
            error: PeerError::AdminStopped,
        };
        assert_eq!(stop, "administratively stopped");
    }
}
