//! The reconciler: the single writer of Tabby's kernel state.
//!
//! It runs on a thread of its own (optionally inside a named network
//! namespace) with a current-thread runtime, so its blocking netlink calls
//! never stall the agent's runtime. The agent talks to it through a
//! [`ReconcilerHandle`]: desired state in, [`Status`] out. A pass runs when
//! the desired state changes, when the kernel reports a change to routes,
//! links, addresses or `vxlan.calico`'s ARP/FDB entries (so an external
//! `ip route del` is repaired well within a second), and every
//! `resync_interval` regardless (Felix's route refresh).
//!
//! nftables sends no rtnetlink event, and checking it means spawning `nft`,
//! so a pass woken by the kernel skips it: it is checked when the pools
//! change, after a failed check, and on the periodic or requested resync
//! (like Felix's iptables refresh, an external flush is repaired then).
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

mod events;
mod pass;
pub mod plan;
mod vxlan;

use crate::model::{DesiredState, Pool, Workload};
use crate::netlink::NlSocket;
use crate::netns::{self, NetnsError};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
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
    /// Full re-read and repair even without events (Felix
    /// `RouteRefreshInterval`, 90 s).
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
    /// Desired routes (blocks and workloads) present in the kernel after the
    /// pass.
    pub routes_programmed: usize,
    /// MTU pods should use: `vxlan.calico`'s when VXLAN is on, else the node
    /// interface's.
    pub pod_mtu: Option<u32>,
    /// Netlink requests (dumps and writes) the kernel refused or that
    /// failed on the socket; a subset of `failures`, which also holds
    /// refusals decided here (foreign routes, edge next hops).
    pub netlink_errors: usize,
}

impl PassReport {
    pub(crate) fn applied(&mut self, what: String) {
        tracing::debug!(%what, "applied");
        self.applied_count += 1;
        if self.applied.len() < APPLIED_KEPT {
            self.applied.push(what);
        }
    }

    pub(crate) fn fail(&mut self, item: &str, error: String) {
        self.failures.push(ItemError::new(item, error));
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
}

#[derive(Debug, Clone, Default)]
struct Input {
    generation: u64,
    state: DesiredState,
    /// Added one by one (CNI ADD) on top of `state.workloads`.
    workloads: BTreeMap<Ipv4Addr, Workload>,
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
        self.update(|i| i.state = state)
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
            i.state.workloads.retain(|w| w.ip != ip);
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
                    let _ = ready_tx.send(Ok(()));
                    let ctx = LoopCtx {
                        sock,
                        events,
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

struct LoopCtx {
    sock: NlSocket,
    events: events::Events,
    input: watch::Receiver<Input>,
    status: watch::Sender<Status>,
    stop: Arc<Notify>,
    resync: Arc<Notify>,
    heartbeat: Arc<Mutex<Instant>>,
    config: Config,
}

impl LoopCtx {
    fn beat(&self) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    async fn run(mut self) {
        let mut beats = tokio::time::interval(HEARTBEAT_EVERY);
        // Nothing is written before the agent's first desired state: an
        // empty default would tear down a working dataplane on restart.
        while self.input.borrow().generation == 0 {
            tokio::select! {
                changed = self.input.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = beats.tick() => self.beat(),
                _ = self.stop.notified() => return,
            }
        }
        let mut vxlan_index = None;
        let mut events_ok = true;
        // Pools nftables last matched; None until a check succeeds.
        let mut nft_synced: Option<Vec<Pool>> = None;
        let mut periodic = true;
        loop {
            // Let a burst of triggers settle; what queued meanwhile is
            // covered by the pass, which reads the kernel afresh.
            tokio::time::sleep(self.config.debounce).await;
            if events_ok {
                if let Err(e) = self.events.drain(vxlan_index) {
                    tracing::warn!(error = %e, "reading netlink notifications");
                }
            }
            let input = self.input.borrow_and_update().clone();
            let started = std::time::Instant::now();
            let check_nft = periodic || nft_synced.as_deref() != Some(input.state.pools.as_slice());
            let (report, outcome) =
                pass::run(&mut self.sock, &input.state, &input.workloads(), check_nft);
            vxlan_index = outcome.vxlan_index;
            if check_nft {
                nft_synced = outcome.nft_ok.then(|| input.state.pools.clone());
            }
            let took = started.elapsed();
            log_pass(&report, took);
            self.status.send_modify(|s| {
                s.generation = input.generation;
                s.passes += 1;
                s.last_sync = Some(SystemTime::now());
                s.netlink_errors += report.netlink_errors as u64;
                s.last_pass = report;
                if s.recent_durations.len() == DURATIONS_KEPT {
                    s.recent_durations.remove(0);
                }
                s.recent_durations.push(took);
            });
            self.beat();
            let next_resync = tokio::time::sleep(self.config.resync_interval);
            tokio::pin!(next_resync);
            periodic = false;
            // The heartbeat arm loops without a pass; every other arm ends
            // the wait.
            loop {
                let kernel_changed = async {
                    if !events_ok {
                        return std::future::pending().await;
                    }
                    self.events.changed(vxlan_index).await
                };
                tokio::select! {
                    changed = self.input.changed() => {
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
                    _ = &mut next_resync => periodic = true,
                    _ = self.resync.notified() => periodic = true,
                    _ = beats.tick() => {
                        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                        continue;
                    }
                    _ = self.stop.notified() => return,
                }
                break;
            }
        }
    }
}

fn log_pass(report: &PassReport, took: Duration) {
    for f in report.failures.iter().take(FAILURES_KEPT) {
        tracing::warn!(item = %f.item, error = %f.error, "not converged");
    }
    if report.applied_count > 0 || !report.failures.is_empty() {
        tracing::info!(
            applied = report.applied_count,
            failed = report.failures.len(),
            routes = report.routes_programmed,
            took_ms = took.as_millis() as u64,
            "reconcile pass"
        );
    }
}
