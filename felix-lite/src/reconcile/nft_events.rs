//! nftables change notifications, so a flushed FORWARD accept comes back
//! within seconds rather than at the next resync.
//!
//! nftables sends nothing on rtnetlink. Every committed nf_tables
//! transaction is announced on `NETLINK_NETFILTER` (protocol 12), multicast
//! group `NFNLGRP_NFTABLES` (7): one message per table, chain, rule, set or
//! element added or deleted, then an `NFT_MSG_NEWGEN` carrying the new
//! generation. The kernel queues them in every subscriber's socket before
//! the committing process gets its answer, so by the time Tabby's own `nft`
//! child has exited, the messages its write caused are already here; reads
//! (`nft list`) announce nothing. Subscribing needs `CAP_NET_ADMIN` in the
//! namespace, which the writer of the ruleset has anyway.
//!
//! Like rtnetlink events, a message only says "look again": the reconciler
//! re-reads the whole ruleset, so what changed is never decoded. The one
//! thing counted is commits (`NFT_MSG_NEWGEN`), to tell Tabby's own write
//! apart from someone else's made at the same time (see [`Seen::foreign`]).

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::io;
use tokio::io::unix::AsyncFd;

/// Bit (group - 1) of the legacy bind mask for NFNLGRP_NFTABLES (7).
const GROUPS: u32 = 1 << 6;
/// `(NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN`: one per commit.
const NEWGEN: u16 = (10 << 8) | 15;
/// A firewall reload can announce thousands of rules in one commit; what
/// overflows is only "lost", which counts as a change anyway.
const RCVBUF: usize = 1 << 20;

/// What was read from the socket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub messages: usize,
    /// `NFT_MSG_NEWGEN` messages: committed transactions.
    pub commits: usize,
    /// The socket overflowed (ENOBUFS): messages were dropped.
    pub lost: bool,
}

impl Seen {
    /// Whether anything at all happened.
    pub fn any(&self) -> bool {
        self.messages > 0 || self.lost
    }

    /// Read just after a pass that committed `ours` transactions: whether
    /// someone else changed nftables too (then the pass may have read the
    /// ruleset before their change, and it must be looked at again). Only
    /// counting commits, not messages, lets Tabby's own write pass without
    /// another check, and so without another `nft` spawn.
    pub fn foreign(&self, ours: usize) -> bool {
        self.lost || self.commits > ours || (self.messages > 0 && self.commits == 0)
    }
}

pub struct NftEvents {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
}

impl NftEvents {
    /// Subscribes in the calling thread's network namespace; must be called
    /// inside a tokio runtime.
    pub fn open() -> io::Result<NftEvents> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind(&SocketAddr::new(0, GROUPS))?;
        sock.set_non_blocking(true)?;
        // Best effort: the default buffer only risks ENOBUFS, handled above.
        let _ = sock.set_rx_buf_sz(RCVBUF);
        Ok(NftEvents {
            // SAFETY: the socket is moved into the AsyncFd and its fd stays
            // open and owned by it until the AsyncFd is dropped.
            fd: unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// Waits until something is queued, then consumes all of it.
    pub async fn changed(&mut self) -> io::Result<Seen> {
        loop {
            self.fd.readable().await?.clear_ready();
            // Readiness was just cleared; anything arriving from here on
            // marks the fd ready again, so nothing is missed.
            let seen = self.drain()?;
            if seen.any() {
                return Ok(seen);
            }
        }
    }

    /// Reads everything queued without waiting.
    pub fn drain(&mut self) -> io::Result<Seen> {
        let mut seen = Seen::default();
        loop {
            self.buf.clear();
            match self.fd.get_ref().recv(&mut self.buf, libc::MSG_DONTWAIT) {
                Ok(_) => count(&self.buf, &mut seen),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(seen),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => seen.lost = true,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Counts the netlink messages of one datagram and the commits among them.
fn count(buf: &[u8], seen: &mut Seen) {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        if len < 16 || off + len > buf.len() {
            // A datagram we cannot walk still says "changed".
            seen.lost = true;
            return;
        }
        seen.messages += 1;
        if u16::from_ne_bytes([buf[off + 4], buf[off + 5]]) == NEWGEN {
            seen.commits += 1;
        }
        off += (len + 3) & !3;
    }
}
