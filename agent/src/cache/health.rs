//! Whether the datastore answers at all. A watch on a quiet cluster
//! delivers nothing, so a hung etcd (SIGSTOP, a dead disk) or a SQLite
//! write lock someone sits on looks exactly like a cluster where nothing
//! changes: the reflectors alone cannot tell. One monitor per cache pings
//! the store ([`Datastore::ping`]) every [`PING_EVERY`]; no answer within
//! [`PING_TIMEOUT`] is a stall. While stalled, no kind is ready (so
//! readiness fails and `node status` says why), the node keeps its last
//! state, and the outage is logged twice in all: once when lost, once
//! when back, with how long it was gone and the revision the watches
//! resumed from.
//!
//! The retry policy of the reflectors lives here too: Calico's 5 s → 30 s
//! (BIRD's `error wait time 5,30`), with jitter so that every node of a
//! cluster does not hit a recovering datastore in the same second.

use super::ClusterCache;
use crate::datastore::Datastore;
use crate::resources::Kind;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tabby_bgp::log_limit::Verdict;

pub(super) const PING_EVERY: Duration = Duration::from_secs(2);
pub(super) const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// A reflector warning repeated with the same text is logged once a
/// minute, with the count of what was folded.
pub(super) const WARN_WINDOW: Duration = Duration::from_secs(60);
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(5);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long the "back" line waits for every watch to resume.
const RESUME_WAIT: Duration = Duration::from_secs(40);

/// The datastore stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub since: SystemTime,
    /// The ping's error, or that it did not answer in time.
    pub reason: String,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = SystemTime::now()
            .duration_since(self.since)
            .unwrap_or_default()
            .as_secs();
        write!(f, "datastore not responding for {secs} s: {}", self.reason)
    }
}

/// The wait before retry number `attempt` (0 first): 5 s doubling to
/// 30 s, scaled by 0.8–1.2 with `jitter` in [0, 1).
pub(super) fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = RETRY_FIRST
        .saturating_mul(1u32 << attempt.min(8))
        .min(RETRY_MAX);
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

/// A number in [0, 1) that differs between processes and calls (std's
/// per-instance random hasher keys: no RNG crate for one number).
pub(super) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let h = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl ClusterCache {
    fn set_stall(&self, stall: Option<Stall>) {
        let changed = {
            let mut s = self.stall.write().unwrap_or_else(|p| p.into_inner());
            let changed = *s != stall;
            *s = stall;
            changed
        };
        if changed {
            self.notify();
        }
    }

    /// Whether a reflector's warning `key` (its message and error) is to
    /// be logged now, and how many like it were folded. None while the
    /// datastore is stalled: the monitor has said so once already.
    pub(super) fn warn_now(&self, key: String) -> Option<u64> {
        if self.stall().is_some() {
            return None;
        }
        let mut l = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        match l.check(&key, Instant::now()) {
            Verdict::Log { suppressed } => Some(suppressed),
            Verdict::Suppress => None,
        }
    }

    /// Sleeps `d`, or less if the datastore comes back meanwhile.
    pub(super) async fn retry_after(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.recovered.notified() => {}
        }
    }
}

/// Pings the store until the cache is dropped (the task is aborted with
/// the reflectors).
pub(super) async fn monitor(ds: Arc<dyn Datastore>, cache: Arc<ClusterCache>) {
    let kinds: Vec<Kind> = cache.kinds().collect();
    let backend = ds.backend();
    let mut lost: Option<(Instant, SystemTime)> = None;
    loop {
        let why = match tokio::time::timeout(PING_TIMEOUT, ds.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "{backend} did not answer within {} s",
                PING_TIMEOUT.as_secs()
            )),
        };
        match (why, lost) {
            (Some(reason), None) => {
                let since = SystemTime::now();
                lost = Some((Instant::now(), since));
                // The span names the backend.
                tracing::warn!(
                    revision = cache.revision(),
                    %reason,
                    "datastore not responding; keeping the last state and retrying"
                );
                cache.set_stall(Some(Stall { since, reason }));
            }
            (Some(reason), Some((_, since))) => cache.set_stall(Some(Stall { since, reason })),
            (None, Some((t0, _))) => {
                lost = None;
                // Nothing arrives while the store is gone: what the cache
                // holds now is where every watch resumes.
                let from = cache.revision();
                cache.set_stall(None);
                cache.recovered.notify_waiters();
                let resumed = cache.wait_ready(&kinds, RESUME_WAIT).await;
                let gone_secs = t0.elapsed().as_secs();
                if resumed {
                    tracing::info!(
                        gone_secs,
                        revision = from,
                        "datastore back after {gone_secs} s; the watch resumed from revision {from}"
                    );
                } else {
                    tracing::warn!(
                        gone_secs,
                        revision = from,
                        "datastore back after {gone_secs} s, but the watch has not resumed within {} s",
                        RESUME_WAIT.as_secs()
                    );
                }
            }
            (None, None) => {}
        }
        tokio::time::sleep(PING_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_5_to_30_seconds_with_jitter() {
        let mid: Vec<u64> = (0..6).map(|a| backoff(a, 0.5).as_secs()).collect();
        assert_eq!(mid, [5, 10, 20, 30, 30, 30]);
        assert_eq!(backoff(0, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(9, 1.0), Duration::from_secs(36));
        assert_eq!(backoff(u32::MAX, 0.5), RETRY_MAX);
        let j: Vec<f64> = (0..8).map(|_| jitter()).collect();
        assert!(j.iter().all(|x| (0.0..1.0).contains(x)), "{j:?}");
        assert!(j.windows(2).any(|w| w[0] != w[1]), "{j:?}");
    }

    #[test]
    fn a_stall_names_its_age_and_reason() {
        let s = Stall {
            since: SystemTime::now() - Duration::from_secs(12),
            reason: "etcdv3 did not answer within 5 s".into(),
        };
        assert_eq!(
            s.to_string(),
            "datastore not responding for 12 s: etcdv3 did not answer within 5 s"
        );
    }
}
