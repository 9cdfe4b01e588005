//! Rate-limiting repeated log lines per key (a source address, a peer, an
//! error text), with a count of what was left out.
//!
//! A fuzzing or misconfigured peer can make the same warning happen
//! thousands of times a second, and a datastore outage makes every retry
//! fail the same way: one line per occurrence buries everything else and
//! fills disks. The first occurrence of a key is logged at once; later ones
//! within the window are only counted, and the next one after the window is
//! logged with how many were suppressed, so nothing is hidden, only folded.
//! The totals are kept for metrics whether a line was logged or not.
//!
//! It lives in `tabby-bgp` because the speaker needs it and knows nothing
//! of the agent; the agent, which depends on this crate, uses it too.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many distinct keys are tracked. Keys come from the network (source
/// addresses), so their number must be bounded; past this, keys not seen
/// for a window are forgotten, and if none is, new keys share one
/// overflow entry (still logged, at the same rate).
pub const MAX_KEYS: usize = 4096;

/// The speaker's window: a flood shows as one line per source every 10 s.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
    total: u64,
}

/// What [`LogLimiter::check`] decided for one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` occurrences were folded since the last line.
    Log { suppressed: u64 },
    /// Counted only.
    Suppress,
}

/// Per-key rate limiter for log lines. Not thread-safe by itself: the
/// speaker's core owns one; shared users wrap it in a mutex.
#[derive(Debug)]
pub struct LogLimiter<K> {
    window: Duration,
    entries: HashMap<K, Entry>,
    /// Keys that found the table full share this entry.
    overflow: Option<Entry>,
}

impl<K: Eq + Hash + Clone> LogLimiter<K> {
    /// At most one line per key per `window`.
    pub fn new(window: Duration) -> Self {
        LogLimiter {
            window,
            entries: HashMap::new(),
            overflow: None,
        }
    }

    /// Records one occurrence of `key` at `now`.
    pub fn check(&mut self, key: &K, now: Instant) -> Verdict {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_KEYS {
            let window = self.window;
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.logged_at) < window);
        }
        let window = self.window;
        if let Some(e) = self.entries.get_mut(key) {
            return step(e, now, window);
        }
        if self.entries.len() < MAX_KEYS {
            self.entries.insert(
                key.clone(),
                Entry {
                    logged_at: now,
                    suppressed: 0,
                    total: 1,
                },
            );
            return Verdict::Log { suppressed: 0 };
        }
        let entry = self.overflow.get_or_insert(Entry {
            logged_at: now.checked_sub(window).unwrap_or(now),
            suppressed: 0,
            total: 0,
        });
        step(entry, now, window)
    }

    /// Occurrences of `key` since it was first seen (or last forgotten).
    pub fn total(&self, key: &K) -> u64 {
        self.entries.get(key).map_or(0, |e| e.total)
    }
}

fn step(e: &mut Entry, now: Instant, window: Duration) -> Verdict {
    e.total += 1;
    if e.total > 1 && now.saturating_duration_since(e.logged_at) < window {
        e.suppressed += 1;
        return Verdict::Suppress;
    }
    e.logged_at = now;
    Verdict::Log {
        suppressed: std::mem::take(&mut e.suppressed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_the_count_of_what_was_folded() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.check(&"a", t0), Verdict::Log { suppressed: 0 });
        for i in 1..=99 {
            assert_eq!(
                l.check(&"a", t0 + Duration::from_millis(i)),
                Verdict::Suppress
            );
        }
        // Another key is not held back by the first.
        assert_eq!(l.check(&"b", t0), Verdict::Log { suppressed: 0 });
        assert_eq!(
            l.check(&"a", t0 + Duration::from_secs(10)),
            Verdict::Log { suppressed: 99 }
        );
        assert_eq!(l.total(&"a"), 101);
        assert_eq!(
            l.check(&"a", t0 + Duration::from_secs(21)),
            Verdict::Log { suppressed: 0 }
        );
    }

    #[test]
    fn keys_from_the_network_are_bounded() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        for k in 0..MAX_KEYS as u32 {
            assert_eq!(l.check(&k, t0), Verdict::Log { suppressed: 0 });
        }
        // Full and nothing stale: new keys share one limited entry.
        let mut logged = 0;
        for k in MAX_KEYS as u32..MAX_KEYS as u32 * 2 {
            if l.check(&k, t0) != Verdict::Suppress {
                logged += 1;
            }
        }
        assert_eq!(logged, 1);
        assert_eq!(l.entries.len(), MAX_KEYS);
        // A window later the stale keys make room again.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(l.check(&u32::MAX, later), Verdict::Log { suppressed: 0 });
        assert!(l.entries.len() <= MAX_KEYS);
    }
}
