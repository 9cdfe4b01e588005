//! When a leak is confirmed. Calico tracks, in memory, when each
//! allocation was first seen as a leak candidate and confirms it once it
//! has been one for the whole grace period; an allocation that is seen in
//! use again starts over. A one-shot check (`tabbyctl ipam check`) has no
//! memory, and judges by the allocation's `timestamp` attribute instead.

use super::{AllocKey, Allocation, Verdict};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Leak candidates across GC passes: when each was first seen as one.
#[derive(Debug, Default)]
pub struct Candidates {
    since: HashMap<AllocKey, Instant>,
}

impl Candidates {
    pub fn new() -> Candidates {
        Candidates::default()
    }

    /// Records one pass's verdicts at `now` and says, per allocation,
    /// whether its leak is confirmed: at once when its node is gone,
    /// otherwise once it has been a candidate for `grace`. A zero `grace`
    /// turns confirmation of candidates off (Calico's leakGracePeriod 0).
    /// Allocations that are no longer leaks, or no longer exist, are
    /// forgotten.
    pub fn observe(
        &mut self,
        allocs: &[Allocation],
        verdicts: &[Verdict],
        now: Instant,
        grace: Duration,
    ) -> Vec<bool> {
        let mut next = HashMap::new();
        let confirmed = allocs
            .iter()
            .zip(verdicts)
            .map(|(a, v)| match v {
                Verdict::Leak {
                    node_gone: true, ..
                } => true,
                Verdict::Leak { .. } => {
                    let since = self.since.get(&a.key()).copied().unwrap_or(now);
                    next.insert(a.key(), since);
                    !grace.is_zero() && now.saturating_duration_since(since) >= grace
                }
                _ => false,
            })
            .collect();
        self.since = next;
        confirmed
    }

    /// Forgets a candidate that turned out to be in use after all (the
    /// re-check before release found it live).
    pub fn forget(&mut self, key: &AllocKey) {
        self.since.remove(key);
    }

    /// How many candidates are waiting out the grace period.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

/// The one-shot confirmation: a leak is confirmed when its node is gone,
/// or when the allocation is older than `grace` by its `timestamp`
/// attribute. One without a readable timestamp is judged by liveness
/// alone, as calicoctl does; a zero `grace` confirms every leak.
pub fn confirmed_by_age(
    allocs: &[Allocation],
    verdicts: &[Verdict],
    grace: Duration,
    now: SystemTime,
) -> Vec<bool> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .ok();
    allocs
        .iter()
        .zip(verdicts)
        .map(|(a, v)| match v {
            Verdict::Leak {
                node_gone: true, ..
            } => true,
            Verdict::Leak { .. } => match (a.timestamp, now) {
                (Some(at), Some(now)) => now.saturating_sub(at) >= grace.as_secs() as i64,
                (None, _) => true,
                // A clock before 1970 can't tell an age: keep it.
                (Some(_), None) => false,
            },
            _ => false,
        })
        .collect()
}
