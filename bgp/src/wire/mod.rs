//! Tabby's own BGP wire codec. It never touches sockets: bytes in, typed
//! messages or typed errors (each mapping to a NOTIFICATION or an RFC 7606
//! action) out.

pub mod types;

pub use types::*;
