//! Putting the kernel's TCP-MD5 drops down to peers. A mismatched
//! password leaves no trace in a session: the kernel drops the SYN (ours
//! at the peer, the peer's here) before any socket sees it, so the FSM
//! only ever shows "Active" or a connect timeout. The kernel does count
//! the drops, per namespace; a rise while a session is down is put down
//! to the down peers it can concern (`Core::check_md5`), logged, and
//! shown in their status. This file holds the reading; the core, which
//! owns the peers, the attribution.

use crate::transport::md5::{kernel_counters, Md5Counters};
use std::time::{Duration, Instant};

/// The counters are read at most this often (a file read, but asked for
/// on every timer and every status query).
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct Md5Watch {
    last: Option<Md5Counters>,
    checked: Option<Instant>,
}

impl Md5Watch {
    /// Takes the baseline now, so drops from before the speaker started
    /// are not put down to its peers.
    pub fn new() -> Self {
        Md5Watch {
            last: kernel_counters().ok(),
            checked: None,
        }
    }
}

impl Md5Watch {
    /// The rise since the last read (see [`CHECK_EVERY`]), as the drops
    /// that concern peers with a password (a wrong or missing signature
    /// where a key is set) and those without (a signature where none is).
    /// None when there is nothing new to attribute.
    pub fn rise(&mut self) -> Option<(u64, u64)> {
        let now = Instant::now();
        if self
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < CHECK_EVERY)
        {
            return None;
        }
        self.checked = Some(now);
        let c = kernel_counters().ok()?;
        let prev = self.last.replace(c)?;
        let keyed = (c.failure + c.not_found).saturating_sub(prev.failure + prev.not_found);
        let unkeyed = c.unexpected.saturating_sub(prev.unexpected);
        (keyed > 0 || unkeyed > 0).then_some((keyed, unkeyed))
    }
}
