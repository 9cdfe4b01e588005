//! Tabby's BFD (RFC 5880 asynchronous mode, RFC 5881 single hop).
//!
//! A library like `tabby-bgp`: [`packet`] is the control-packet codec,
//! [`session`] the I/O-free session state machine (it takes `(now, event)`
//! and returns actions), [`runtime`] the tokio side (UDP sockets, GTSM,
//! timers, demultiplexing) that the BGP speaker uses to learn quickly that
//! a directly connected peer is gone.

pub mod packet;
pub mod runtime;
pub mod session;

pub use packet::{ControlPacket, DecodeError, Diag, State};
pub use session::{Action, Event, Session, SessionConfig};
