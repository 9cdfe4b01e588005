//! Sockets for BGP sessions: the listener that admits only configured
//! peers, outgoing connections, TCP-MD5, and the framed reader and batched
//! writer a session runs over.

pub mod connect;
pub mod listener;
pub mod md5;
pub mod reader;
pub mod ttl;
pub mod writer;

pub use connect::{connect, ConnectOptions};
pub use listener::{Incoming, Listener};
pub use reader::{MessageReader, ReadError};
pub use writer::{spawn_writer, WriteQueue};
