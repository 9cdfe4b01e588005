//! The reconciler: the single writer of Tabby's kernel state.
//!
//! It runs on a thread of its own (optionally inside a named network
//! namespace) with a current-thread runtime, so its blocking netlink calls
//! never stall the agent's runtime. The agent talks to it through a
//! [`ReconcilerHandle`]: desired state in, [`Status`] out. A pass runs when
//! the desired state changes, when the kernel reports a change to routes,
//! links, addresses, `vxlan.calico`'s ARP/FDB entries or IPv4 forwarding
//! sysctls (so an external `ip route del` or `sysctl -w
//! net.ipv4.ip_forward=0` is repaired well within a second), and on a
//! fixed `resync_interval` schedule that no other pass postpones (Felix's
//! route refresh). The triggers are spelled out in `event_loop`.
//!
//! Steady state is incremental: a dump of every route, and planning and
//! labelling every desired route, were most of a pass with nothing to do
//! (100k routes: ~85 ms dump, ~75 ms plan and labels, ~20 ms diff). The
//! loop keeps (`memory`) a view of each family's main table, filled by a
//! dump and kept current from route notifications (its own writes' too),
//! and diffs against that (`view` says when it is not trusted: a lost
//! notification, a change it cannot follow, one after which the kernel
//! may have removed routes silently; then the next pass dumps). The first
//! pass, the resync schedule and [`ReconcilerHandle::resync`] always dump,
//! so whatever notifications missed is repaired within `resync_interval`;
//! an external `ip route del` is a notification, repaired at once. The
//! last route plan per family is reused while its inputs are unchanged;
//! labels are worded only for what is reported.
//!
//! nftables announces every committed change on `NETLINK_NETFILTER`
//! (protocol 12), group `NFNLGRP_NFTABLES` (7), not on rtnetlink.
//! Tabby subscribes to that, and uses it whenever the socket opens (it
//! needs `CAP_NET_ADMIN`, which a writer of routes has). Checking nftables means
//! spawning `nft`, so a pass checks it only when the pools change, after a
//! failed check, on the first pass and the resync schedule, and on such an
//! announcement: at once after a quiet spell, then at most once per
//! [`NFT_CHECK_GAP`] (2 s), so a flushed FORWARD accept is back in well
//! under a second, and within 2 s under constant nftables churn. Tabby's
//! own writes are announced too; the commits a pass made itself are
//! counted off, so they cause no further check (see `nft_events`).
//! [`Status::nft_events`] says which is in use: when that socket cannot be
//! opened (logged once at start) or fails later (logged), nftables is
//! checked on the schedule alone, as Felix's iptables refresh does.
//!
//! Sysctls are checked on every pass (reads of `/proc/sys`, a write only on
//! a difference, reported as an applied action), and between passes every
//! [`SYSCTL_CHECK_EVERY`] (5 s, or the resync interval if shorter), reads
//! only, a pass following when one drifted: `route_localnet`, `proxy_delay`
//! and `accept_ra` raise no notification.
//!
//! Ownership rules:
//! - Routes: only main-table routes with protocol 81 are ever replaced or
//!   deleted (deletes name protocol 81, so the kernel itself refuses to
//!   match anything else). A route of another protocol that holds a
//!   destination Tabby wants (same prefix, metric 0, TOS 0) is left alone:
//!   Tabby's route is not installed, the item is reported in
//!   [`Status`] naming the other protocol, and it is retried every pass, so
//!   it goes in once the other route is gone.
//! - Next hops: a native next hop that is the network or broadcast address
//!   of a desired block or of a subnet on the node interface is refused,
//!   naming the route. A VXLAN next hop is only checked against the
//!   subnets: Calico's tunnel IP is usually the remote block's first
//!   address, and `<block> via <that> dev vxlan.calico onlink` is its normal
//!   route.
//! - `vxlan.calico` and its ARP/FDB entries belong to Tabby entirely:
//!   permanent entries that match no VTEP are removed; entries the kernel
//!   learned itself are not.
//! - IPv6 follows the same rules (`pass6`, `plan6`, `vxlan6`): protocol 81
//!   routes only (at metric 1024, where the kernel puts IPv6 routes that
//!   name none), `vxlan-v6.calico` and its NDP/FDB entries, IPv6 sysctls,
//!   NAT66. IPv6 address, route and netconf notifications wake a pass too.

mod event_loop;
mod events;
mod memory;
mod neigh;
mod nft_events;
mod pass;
mod pass6;
pub mod plan;
pub mod plan6;
mod plan_vteps;
mod view;
mod vxlan;
mod vxlan6;
mod writes;

pub use event_loop::{NFT_CHECK_GAP, SYSCTL_CHECK_EVERY};

use crate::model::{DesiredState, Workload, Workload6};
use crate::netlink::NlSocket;
use crate::netns::{self, NetnsError};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, Notify};

/// How many applied actions a [`Status`] keeps word for word; the count is
/// always exact.
const APPLIED_KEPT: usize = 200;
const FAILURES_KEPT: usize = 1000;
/// How many pass durations a [`Status`] keeps: a reader polling once a
/// second sees every pass as long as fewer than this ran in between (the
/// debounce allows 20 a second).
pub const DURATIONS_KEPT: usize = 64;
/// How often the loop proves it is turning while it waits (see
/// [`ReconcilerHandle::heartbeat`]).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    /// Full re-read and repair, nftables included, even without events
    /// (Felix `RouteRefreshInterval`, 90 s). A fixed schedule counted from
    /// start: passes woken by events do not postpone it.
    pub resync_interval: Duration,
    /// Wait after the first trigger so a burst of changes is one pass.
    pub debounce: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resync_interval: Duration::from_secs(90),
            debounce: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("opening netlink sockets: {0}")]
    Socket(#[from] std::io::Error),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("the reconciler thread panicked")]
    Panicked,
}

/// One thing that could not be made to match, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub item: String,
    pub error: String,
}

impl ItemError {
    pub fn new(item: &str, error: impl Into<String>) -> Self {
        ItemError {
            item: item.to_string(),
            error: error.into(),
        }
    }
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.item, self.error)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Changes written (the first [`APPLIED_KEPT`]).
    pub applied: Vec<String>,
    pub applied_count: usize,
    /// Items left unconverged, each with its reason.
    pub failures: Vec<ItemError>,
    /// Problems that passes do not retry (the same write would fail the
    /// same way) until something changes: logged once when found, not in
    /// every pass's warnings, but kept here so the status shows them.
    /// Today: neighbour-table limits that could not be raised.
    pub standing: Vec<ItemError>,
    /// Desired routes (blocks and workloads) present in the kernel after the
    /// pass.
    pub routes_programmed: usize,
    /// MTU pods should use: `vxlan.calico`'s when VXLAN is on, else the node
    /// interface's; never more than `vxlan-v6.calico`'s when that is on.
    pub pod_mtu: Option<u32>,
    /// Netlink requests (dumps and writes) the kernel refused or that
    /// failed on the socket; a subset of `failures`, which also holds
    /// refusals decided here (foreign routes, edge next hops).
    pub netlink_errors: usize,
    /// Whether this pass checked nftables (which costs an `nft` spawn).
    pub nft_checked: bool,
    /// Route tables (IPv4, IPv6) this pass dumped (or tried to) instead of
    /// trusting its views of them (see `view`).
    pub routes_dumped: u8,
}

impl PassReport {
    pub(crate) fn applied(&mut self, what: String) {
        self.applied_with(|| what);
    }

    /// [`Self::applied`], wording the change only when it is kept or
    /// logged: a first pass writes 100k routes.
    pub(crate) fn applied_with(&mut self, what: impl FnOnce() -> String) {
        self.applied_count += 1;
        let keep = self.applied.len() < APPLIED_KEPT;
        if keep || tracing::enabled!(tracing::Level::DEBUG) {
            let what = what();
            tracing::debug!(%what, "applied");
            if keep {
                self.applied.push(what);
            }
        }
    }

    pub(crate) fn fail(&mut self, item: &str, error: String) {
        self.failures.push(ItemError::new(item, error));
    }

    /// Adds what `other` (a step run before this pass) did.
    pub(crate) fn absorb(&mut self, other: PassReport) {
        for a in other.applied {
            self.applied(a);
        }
        self.failures.extend(other.failures);
        self.standing.extend(other.standing);
        self.netlink_errors += other.netlink_errors;
    }

    /// A failure whose cause is a netlink request.
    pub(crate) fn netlink_fail(&mut self, item: &str, error: String) {
        self.netlink_errors += 1;
        self.fail(item, error);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Generation of the desired state the last pass worked from.
    pub generation: u64,
    pub passes: u64,
    pub last_sync: Option<SystemTime>,
    pub last_pass: PassReport,
    /// How long the most recent passes took, oldest first, the last one
    /// being pass number `passes` (at most [`DURATIONS_KEPT`]).
    pub recent_durations: Vec<Duration>,
    /// Netlink errors over every pass since start.
    pub netlink_errors: u64,
    /// Passes the fixed resync schedule started (requested resyncs not
    /// counted): about one per `resync_interval` since start, however busy
    /// the kernel's notifications keep the loop.
    pub scheduled_resyncs: u64,
    /// Whether nftables change notifications are followed; false means
    /// nftables is checked on the resync schedule only.
    pub nft_events: bool,
}

#[derive(Debug, Clone, Default)]
struct Input {
    generation: u64,
    /// Shared with the loop, which takes it for each pass without copying
    /// 100k routes, and knows it unchanged when it is the same.
    state: Arc<DesiredState>,
    /// Added one by one (CNI ADD) on top of `state.workloads`.
    workloads: BTreeMap<Ipv4Addr, Workload>,
    /// The same for `state.workloads6`.
    workloads6: BTreeMap<Ipv6Addr, Workload6>,
}

impl Input {
    fn workloads(&self) -> Vec<Workload> {
        let mut all: BTreeMap<Ipv4Addr, Workload> = self
            .state
            .workloads
            .iter()
            .map(|w| (w.ip, w.clone()))
            .collect();
        all.extend(self.workloads.iter().map(|(k, v)| (*k, v.clone())));
        all.into_values().collect()
    }

    fn workloads6(&self) -> Vec<Workload6> {
        let mut all: BTreeMap<Ipv6Addr, Workload6> = self
            .state
            .workloads6
            .iter()
            .map(|w| (w.ip, w.clone()))
            .collect();
        all.extend(self.workloads6.iter().map(|(k, v)| (*k, v.clone())));
        all.into_values().collect()
    }
}

/// The agent's side of the reconciler. Cheap to clone.
#[derive(Clone)]
pub struct ReconcilerHandle {
    input: Arc<watch::Sender<Input>>,
    status: watch::Receiver<Status>,
    resync: Arc<Notify>,
    heartbeat: Arc<Mutex<Instant>>,
}

impl ReconcilerHandle {
    fn update(&self, f: impl FnOnce(&mut Input)) -> u64 {
        let mut generation = 0;
        self.input.send_modify(|i| {
            f(i);
            i.generation += 1;
            generation = i.generation;
        });
        generation
    }

    /// Replaces the whole desired state; returns its generation.
    pub fn set_desired(&self, state: DesiredState) -> u64 {
        self.update(|i| i.state = Arc::new(state))
    }

    /// Adds (or replaces) one workload route on top of the desired state.
    pub fn add_workload(&self, workload: Workload) -> u64 {
        self.update(|i| {
            i.workloads.insert(workload.ip, workload);
        })
    }

    /// Removes a workload, whether it came from `add_workload` or the
    /// desired state.
    pub fn remove_workload(&self, ip: Ipv4Addr) -> u64 {
        self.update(|i| {
            i.workloads.remove(&ip);
            if i.state.workloads.iter().any(|w| w.ip == ip) {
                Arc::make_mut(&mut i.state).workloads.retain(|w| w.ip != ip);
            }
        })
    }

    /// Adds (or replaces) one IPv6 workload route on top of the desired
    /// state.
    pub fn add_workload6(&self, workload: Workload6) -> u64 {
        self.update(|i| {
            i.workloads6.insert(workload.ip, workload);
        })
    }

    pub fn remove_workload6(&self, ip: Ipv6Addr) -> u64 {
        self.update(|i| {
            i.workloads6.remove(&ip);
            if i.state.workloads6.iter().any(|w| w.ip == ip) {
                Arc::make_mut(&mut i.state)
                    .workloads6
                    .retain(|w| w.ip != ip);
            }
        })
    }

    /// Asks for a full pass now.
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// When the loop last showed it was turning: it stamps this every
    /// [`HEARTBEAT_EVERY`] while it waits and after every pass, so a pass
    /// stuck in the kernel (or a dead thread) leaves it behind.
    pub fn heartbeat(&self) -> Instant {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a pass that worked from `generation` or later.
    pub async fn wait_for_generation(&self, generation: u64) -> Option<Status> {
        let mut rx = self.status.clone();
        rx.wait_for(|s| s.generation >= generation)
            .await
            .ok()
            .map(|s| s.clone())
    }
}

/// The running reconciler; stops (and joins its thread) on drop.
pub struct Reconciler {
    handle: ReconcilerHandle,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl Reconciler {
    /// Starts in the caller's network namespace.
    pub fn start(config: Config) -> Result<Reconciler, ReconcileError> {
        Self::spawn(None, config)
    }

    /// Starts inside the named namespace (`ip netns add NAME`).
    pub fn start_in_netns(name: &str, config: Config) -> Result<Reconciler, ReconcileError> {
        Self::spawn(Some(name.to_string()), config)
    }

    fn spawn(netns_name: Option<String>, config: Config) -> Result<Reconciler, ReconcileError> {
        let (input_tx, input_rx) = watch::channel(Input::default());
        let (status_tx, status_rx) = watch::channel(Status::default());
        let stop = Arc::new(Notify::new());
        let resync = Arc::new(Notify::new());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let heartbeat = Arc::new(Mutex::new(Instant::now()));
        let (stop2, resync2, heartbeat2) = (stop.clone(), resync.clone(), heartbeat.clone());
        let thread = std::thread::Builder::new()
            .name("tabby-reconciler".into())
            .spawn(move || {
                if let Some(name) = &netns_name {
                    if let Err(e) = netns::enter_current_thread(name) {
                        let _ = ready_tx.send(Err(ReconcileError::from(e)));
                        return;
                    }
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let opened = NlSocket::open().and_then(|s| Ok((s, events::Events::open()?)));
                    let (sock, events) = match opened {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let nft = nft_events::NftEvents::open()
                        .inspect_err(|e| {
                            tracing::warn!(error = %e, "cannot subscribe to nftables notifications (NETLINK_NETFILTER, NFNLGRP_NFTABLES); nftables is checked on the resync schedule only");
                        })
                        .ok();
                    let _ = ready_tx.send(Ok(()));
                    let ctx = event_loop::LoopCtx {
                        sock,
                        events,
                        nft,
                        input: input_rx,
                        status: status_tx,
                        stop: stop2,
                        resync: resync2,
                        heartbeat: heartbeat2,
                        config,
                    };
                    ctx.run().await;
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(ReconcileError::Panicked);
            }
        }
        Ok(Reconciler {
            handle: ReconcilerHandle {
                input: Arc::new(input_tx),
                status: status_rx,
                resync,
                heartbeat,
            },
            stop,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> ReconcilerHandle {
        self.handle.clone()
    }

    /// Stops the loop and waits for its thread.
    pub fn stop(mut self) -> Result<(), ReconcileError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ReconcileError> {
        self.stop.notify_one();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ReconcileError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
