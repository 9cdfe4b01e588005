//! Putting the kernel's TCP-MD5 drops down to peers. A mismatched
//! password leaves no trace in a session: the kernel drops the SYN (ours
//! at the peer, the peer's here) before any socket sees it, so the FSM
//! only ever shows "Active" or a connect timeout. The kernel does count
//! the drops, per namespace; a rise while a session is down is put down
//! to the down peers it can concern, logged, and shown in their status.

use super::core::Core;
use crate::fsm::State;
use crate::transport::md5::{kernel_counters, Md5Counters};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

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

impl Core {
    /// Reads the counters (see [`CHECK_EVERY`]) and attributes any rise.
    pub(crate) fn check_md5(&mut self) {
        let now = Instant::now();
        if self
            .md5
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < CHECK_EVERY)
        {
            return;
        }
        self.md5.checked = Some(now);
        let Ok(c) = kernel_counters() else {
            return;
        };
        let Some(prev) = self.md5.last.replace(c) else {
            return;
        };
        // A key is set for the source, and the signature is wrong or
        // missing: a peer with a password. A signature where no key is
        // set: a peer without one.
        let keyed = (c.failure + c.not_found).saturating_sub(prev.failure + prev.not_found);
        let unkeyed = c.unexpected.saturating_sub(prev.unexpected);
        if keyed == 0 && unkeyed == 0 {
            return;
        }
        let wall = SystemTime::now();
        let mut blamed: Vec<(IpAddr, u64, &'static str)> = Vec::new();
        for (addr, p) in self.peers.iter_mut() {
            if p.state == State::Established {
                continue;
            }
            let (n, why) = if p.config.password.is_some() {
                (keyed, "wrong or missing signature from the peer")
            } else {
                (unkeyed, "the peer signs, but no password is set here")
            };
            if n == 0 {
                continue;
            }
            p.md5_mismatches += n;
            p.md5_mismatch_since.get_or_insert(wall);
            blamed.push((*addr, n, why));
        }
        for (peer, dropped, why) in blamed {
            if let Some(suppressed) = self.limited(peer, "md5") {
                tracing::warn!(
                    %peer,
                    dropped,
                    suppressed,
                    "TCP-MD5 signature mismatch ({why}): the kernel drops the session's segments; check the BGP password on both sides"
                );
            }
            self.peer_changed(peer);
        }
    }
}
