//! The reconciler's loop: what starts a pass, and what each pass checks.
//!
//! A pass starts when one of the triggers below fires: at once after a
//! quiet spell (no pass ended within [`Config::debounce`]), so a sparse
//! change (one block route learned over BGP) costs no wait; otherwise
//! `debounce` after the last pass ended, so a burst of triggers, or the
//! notifications of a pass's own writes, fold into one pass (at most one
//! per `debounce` while they keep coming; see [`debounce_wait`]). The
//! triggers:
//! - the desired state changed;
//! - rtnetlink reported a change (see `events`);
//! - the resync schedule ticks: a `tokio::time::interval` created once, at
//!   start, with `MissedTickBehavior::Delay`, so it ticks every
//!   `resync_interval` however many other passes ran in between. It used to
//!   be a sleep re-armed after every pass, and a node with one harmless
//!   netlink event every 20 s never reached its 90 s resync: a flushed
//!   FORWARD accept stayed broken (seen for 168 s and counting);
//! - [`ReconcilerHandle::resync`](super::ReconcilerHandle::resync) asks;
//! - nftables announced a change (see `nft_events`), at most one such
//!   check per [`NFT_CHECK_GAP`];
//! - the sysctl timer (every [`SYSCTL_CHECK_EVERY`], or the resync interval
//!   if shorter) read a sysctl that differs from what a pass sets. Writes of
//!   `route_localnet`, `proxy_delay` and `accept_ra` raise no notification;
//!   reading them is a few `/proc/sys` reads, so it is done often instead of
//!   waiting up to a whole resync interval.
//!
//! Every pass checks links, addresses, routes, ARP/FDB and the sysctls.
//! Routes are diffed against the loop's views of the main tables, kept
//! from route notifications (see `view`): a full pass (the first, the
//! schedule's, a requested one) and any doubt about a view (a lost
//! notification, routes the kernel may have removed silently) dump the
//! family instead. nftables (an `nft` spawn) only on the first pass, on
//! the schedule or on request, when the pools changed, after a failed
//! check, and when it announced a change.

use super::memory::Memory;
use super::{events, neigh, nft_events, pass, pass6, Config, Input, PassReport, Status};
use super::{DURATIONS_KEPT, FAILURES_KEPT, HEARTBEAT_EVERY};
use crate::model::{Pool, Pool6};
use crate::neigh_limits::{demand4, demand6, Family};
use crate::netlink::NlSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, Notify};
use tokio::time::{interval, interval_at, MissedTickBehavior};

/// The most often change notifications from nftables make a pass check
/// it: kube-proxy's nftables mode commits on every Service change, and each
/// check lists the whole ruleset. The first change after a quiet spell is
/// checked at once; a flushed rule is back within this (plus a pass) of the
/// flush even under constant nftables churn.
pub const NFT_CHECK_GAP: Duration = Duration::from_secs(2);
/// How often the wanted sysctls are read between passes.
pub const SYSCTL_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How many applied items the INFO `reconcile pass` line spells out.
const WHAT_NAMED: usize = 4;

/// How long a pass woken at `now` waits before it starts: not at all after
/// a quiet spell (no pass ended within `debounce`), else until `debounce`
/// after the last one ended. The first pass waits a whole `debounce`: at
/// start the agent hands over the restored workloads and then its first
/// full desired state, and a pass between the two would tear down what the
/// node had (the VXLAN device, the blocks' routes) until the next one. Triggers that come during the
/// wait or the pass are covered by it (it reads everything afresh), so
/// under a stream of triggers passes are `debounce` apart.
pub(super) fn debounce_wait(
    last_end: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
    debounce: Duration,
) -> Duration {
    last_end.map_or(debounce, |end| {
        (end + debounce).saturating_duration_since(now)
    })
}

pub(super) struct LoopCtx {
    pub sock: NlSocket,
    pub events: events::Events,
    /// None when the nftables socket could not be opened (already logged).
    pub nft: Option<nft_events::NftEvents>,
    pub input: watch::Receiver<Input>,
    pub status: watch::Sender<Status>,
    pub stop: Arc<Notify>,
    pub resync: Arc<Notify>,
    pub heartbeat: Arc<Mutex<Instant>>,
    pub config: Config,
}

impl LoopCtx {
    pub async fn run(self) {
        let LoopCtx {
            mut sock,
            mut events,
            mut nft,
            mut input,
            status,
            stop,
            resync,
            heartbeat,
            config,
        } = self;
        let beat = || *heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let mut beats = interval(HEARTBEAT_EVERY);
        // Nothing is written before the agent's first desired state: an
        // empty default would tear down a working dataplane on restart.
        while input.borrow().generation == 0 {
            tokio::select! {
                changed = input.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = beats.tick() => beat(),
                _ = stop.notified() => return,
            }
        }
        // Both created once, here: no pass moves them.
        let start = tokio::time::Instant::now();
        let mut schedule = interval_at(start + config.resync_interval, config.resync_interval);
        schedule.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let sysctl_every = SYSCTL_CHECK_EVERY.min(config.resync_interval);
        let mut sysctl_timer = interval_at(start + sysctl_every, sysctl_every);
        sysctl_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let mut vxlan_index = None;
        let mut vxlan6_index = None;
        let mut events_ok = true;
        // Pools nftables last matched; None until a check succeeds.
        let mut nft_synced: Option<(Vec<Pool>, Vec<Pool6>)> = None;
        // nftables announced a change no check has looked at yet.
        let mut nft_dirty = false;
        // When a check last ran for an announcement (the rate limit's
        // clock: checks for other reasons do not delay one).
        let mut last_nft_check: Option<tokio::time::Instant> = None;
        let mut sysctl_stuck;
        let mut neigh_limits = neigh::NeighLimits::default();
        let mut mem = Memory::default();
        let mut last_end = None;
        // The first pass is a full one.
        let (mut full, mut scheduled) = (true, false);
        loop {
            let wait = debounce_wait(last_end, tokio::time::Instant::now(), config.debounce);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if events_ok {
                if let Err(e) = events.drain([vxlan_index, vxlan6_index], &mut mem.views) {
                    tracing::warn!(error = %e, "reading netlink notifications");
                }
            }
            // Without notifications nothing keeps the views current.
            if full || !events_ok {
                mem.views.invalidate();
            }
            nft_dirty |= drain_nft(&mut nft).any();
            let input_now = input.borrow_and_update().clone();
            let pools = (
                input_now.state.pools.clone(),
                input_now.state.pools6.clone(),
            );
            let nft_due = last_nft_check.is_none_or(|t| t.elapsed() >= NFT_CHECK_GAP);
            let check_nft = full || nft_synced.as_ref() != Some(&pools) || (nft_dirty && nft_due);
            let started = std::time::Instant::now();
            let (workloads, workloads6) = (input_now.workloads(), input_now.workloads6());
            // Before the pass writes its permanent ARP/NDP entries.
            let mut limits = PassReport::default();
            let demand = [
                (Family::V4, demand4(&input_now.state, workloads.len())),
                (Family::V6, demand6(&input_now.state, workloads6.len())),
            ];
            neigh_limits.reconcile(&mut sock, demand, full, &mut limits);
            let (mut report, outcome) = pass::run(
                &mut sock,
                &input_now.state,
                &workloads,
                &workloads6,
                check_nft,
                &mut mem,
            );
            report.absorb(limits);
            vxlan_index = outcome.vxlan_index;
            vxlan6_index = outcome.vxlan6_index;
            sysctl_stuck = outcome.sysctl_failed;
            if check_nft {
                nft_synced = outcome.nft_ok.then(|| pools.clone());
                if nft_dirty {
                    last_nft_check = Some(tokio::time::Instant::now());
                }
                // What this pass's own write announced is queued by now;
                // only a commit beyond it is someone else's.
                nft_dirty = drain_nft(&mut nft).foreign(outcome.nft_commits);
            }
            let took = started.elapsed();
            log_pass(&report, took);
            status.send_modify(|s| {
                s.generation = input_now.generation;
                s.passes += 1;
                s.scheduled_resyncs += u64::from(scheduled);
                s.nft_events = nft.is_some();
                s.last_sync = Some(SystemTime::now());
                s.netlink_errors += report.netlink_errors as u64;
                s.last_pass = report;
                if s.recent_durations.len() == DURATIONS_KEPT {
                    s.recent_durations.remove(0);
                }
                s.recent_durations.push(took);
            });
            beat();
            last_end = Some(tokio::time::Instant::now());
            (full, scheduled) = (false, false);
            // The heartbeat, nftables-notification and undrifted sysctl
            // arms loop without a pass; every other arm ends the wait.
            loop {
                let kernel_changed = async {
                    if !events_ok {
                        return std::future::pending().await;
                    }
                    events
                        .changed([vxlan_index, vxlan6_index], &mut mem.views)
                        .await
                };
                let nft_changed = async {
                    match nft.as_mut() {
                        Some(n) => n.changed().await,
                        None => std::future::pending().await,
                    }
                };
                let nft_check_due = async {
                    match (nft_dirty, last_nft_check) {
                        (true, Some(t)) => tokio::time::sleep_until(t + NFT_CHECK_GAP).await,
                        (true, None) => {}
                        (false, _) => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = input.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    res = kernel_changed => {
                        if let Err(e) = res {
                            tracing::warn!(error = %e, "netlink notifications failed; relying on the periodic resync");
                            events_ok = false;
                        }
                    }
                    seen = nft_changed => {
                        match seen {
                            Ok(_) => nft_dirty = true,
                            Err(e) => nft_failed(&mut nft, &e),
                        }
                        continue;
                    }
                    _ = nft_check_due => {}
                    _ = schedule.tick() => (full, scheduled) = (true, true),
                    _ = resync.notified() => full = true,
                    _ = sysctl_timer.tick() => {
                        // A write that failed last pass would fail again:
                        // the schedule retries it, not this timer.
                        let drifted = {
                            let i = input.borrow();
                            pass::sysctls_drifted(&i.workloads())
                                || pass6::sysctls_drifted6(&i.state, &i.workloads6())
                        };
                        if sysctl_stuck || !drifted {
                            continue;
                        }
                    }
                    _ = beats.tick() => {
                        beat();
                        continue;
                    }
                    _ = stop.notified() => return,
                }
                break;
            }
        }
    }
}

/// Everything queued on the nftables socket (nothing when there is none).
fn drain_nft(nft: &mut Option<nft_events::NftEvents>) -> nft_events::Seen {
    let Some(n) = nft.as_mut() else {
        return nft_events::Seen::default();
    };
    match n.drain() {
        Ok(seen) => seen,
        Err(e) => {
            nft_failed(nft, &e);
            // Something may have been missed.
            nft_events::Seen {
                lost: true,
                ..Default::default()
            }
        }
    }
}

fn nft_failed(nft: &mut Option<nft_events::NftEvents>, e: &std::io::Error) {
    tracing::warn!(error = %e, "nftables notifications failed; nftables is now checked on the resync schedule only");
    *nft = None;
}

fn log_pass(report: &PassReport, took: Duration) {
    for f in report.failures.iter().take(FAILURES_KEPT) {
        tracing::warn!(item = %f.item, error = %f.error, "not converged");
    }
    if report.applied_count > 0 || !report.failures.is_empty() {
        tracing::info!(
            applied = report.applied_count,
            what = %what_applied(report),
            failed = report.failures.len(),
            routes = report.routes_programmed,
            nft_checked = report.nft_checked,
            took_ms = took.as_millis() as u64,
            "reconcile pass"
        );
    }
}

/// The first few applied items, `; `-separated, and how many more.
pub(super) fn what_applied(report: &PassReport) -> String {
    let mut what = report
        .applied
        .iter()
        .take(WHAT_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    let more = report.applied_count.saturating_sub(WHAT_NAMED);
    if more > 0 {
        what.push_str(&format!("; and {more} more"));
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_after_a_quiet_spell_runs_at_once_a_burst_waits() {
        let debounce = Duration::from_millis(50);
        let t0 = tokio::time::Instant::now();
        let ms = Duration::from_millis;
        // No pass yet: the first runs at once.
        // The first pass folds the agent's start-up hand-over.
        assert_eq!(debounce_wait(None, t0, debounce), debounce);
        // The last pass ended longer ago than the debounce: at once.
        assert_eq!(
            debounce_wait(Some(t0), t0 + ms(50), debounce),
            Duration::ZERO
        );
        assert_eq!(
            debounce_wait(Some(t0), t0 + ms(900), debounce),
            Duration::ZERO
        );
        // Right after a pass (its own writes' notifications, a burst):
        // the rest of the debounce.
        assert_eq!(debounce_wait(Some(t0), t0, debounce), ms(50));
        assert_eq!(debounce_wait(Some(t0), t0 + ms(20), debounce), ms(30));

        // A burst of 100 triggers 1 ms apart, each pass taking 5 ms: the
        // loop's own rule, simulated, runs one pass per debounce at most.
        let mut passes = Vec::new();
        // A pass ran long before the burst.
        let mut last_end = Some(t0 - ms(1000));
        let mut pending: Option<tokio::time::Instant> = None;
        for i in 0..100u64 {
            let now = t0 + ms(i);
            pending.get_or_insert(now);
            let woke = pending.expect("set");
            let start = woke + debounce_wait(last_end, woke, debounce);
            if start <= now {
                passes.push(start);
                last_end = Some(start + ms(5));
                pending = None;
            }
        }
        assert_eq!(passes[0], t0, "the first trigger ran at once");
        assert!(
            passes.len() <= 3,
            "{} passes for 100 triggers",
            passes.len()
        );
        for pair in passes.windows(2) {
            assert!(pair[1] - pair[0] >= debounce, "{pair:?}");
        }
    }

    #[test]
    fn the_info_line_names_the_first_items_and_counts_the_rest() {
        let mut r = PassReport::default();
        assert_eq!(what_applied(&r), "");
        r.applied("route 10.0.0.0/26 via 10.0.0.2 dev eth0".into());
        r.applied("sysctl net.ipv4.ip_forward=1 (was 0)".into());
        assert_eq!(
            what_applied(&r),
            "route 10.0.0.0/26 via 10.0.0.2 dev eth0; sysctl net.ipv4.ip_forward=1 (was 0)"
        );
        for i in 0..5 {
            r.applied(format!("item {i}"));
        }
        let what = what_applied(&r);
        assert!(what.ends_with("; item 1; and 3 more"), "{what}");
        assert_eq!(what.matches("; ").count(), 4, "{what}");
    }
}
