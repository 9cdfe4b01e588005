//! What the speaker's tasks post to the core: commands from [`super::Speaker`]
//! handles, accepted connections, connect outcomes, decoded messages and
//! fired timers. Its own module so that the connection code (`conn.rs`)
//! and the core (`core.rs`) both depend on it without depending on each
//! other.

use super::Command;
use crate::fsm::TimerKind;
use crate::transport::{Incoming, ReadError};
use crate::wire::Message;
use std::io;
use std::net::IpAddr;
use tokio::net::TcpStream;

pub(crate) enum CoreMsg {
    Command(Command),
    Incoming(Incoming),
    Connected {
        peer: IpAddr,
        link: u64,
        result: io::Result<TcpStream>,
    },
    Read {
        peer: IpAddr,
        link: u64,
        msgs: Vec<Message>,
        end: Option<ReadError>,
    },
    Timer {
        peer: IpAddr,
        conn: u64,
        kind: TimerKind,
        gen: u64,
    },
    /// A peer's graceful-restart time ran out (RFC 4724 helper).
    RestartTimer {
        peer: IpAddr,
        gen: u64,
    },
    /// A BFD session of a peer changed state (`bfd.rs`).
    Bfd(tabby_bfd::runtime::StateChange),
    /// Start a fresh FSM for a peer left without a running one.
    Restart {
        peer: IpAddr,
        conn: u64,
    },
}
