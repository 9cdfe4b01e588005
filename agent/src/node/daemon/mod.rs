//! tabby-node's main loop. After start-up (`start.rs`) one [`Daemon`]
//! owns everything the node runs and turns on three inputs:
//!
//! ```text
//!  ClusterCache ──changed()──► on_cluster: cluster view, VTEP, BGP peers/blocks ─┐
//!  Speaker ─best paths, peer events─► on_bgp: mesh health, learned routes ──────┤
//!  1 s ticker ──► on_tick: the fallback clock, connected subnets (every 10 s) ──┤
//!                                                                               ▼
//!                    publish: routes::calculate → felix-lite (if changed) + status snapshot
//! ```
//!
//! On SIGTERM the speaker sends Cease to every peer (returning once it is on
//! the wire) and the process exits; kernel routes, `vxlan.calico` and
//! workload routes stay as they are, so pods keep working and the next
//! start converges from there without a gap (its first desired state
//! already holds every block).

mod installation;
mod paths;
mod start;

use super::bgp::Bgp;
use super::cluster::{Cluster, KINDS as CLUSTER_KINDS};
use super::config::NodeConfig;
use super::routes::{self, Inputs};
use super::tunnel::Tunnel;
use super::vtep;
use crate::cache::{ClusterCache, Reflectors};
use crate::datastore::Datastore;
use crate::grpc::node::Snapshot;
use crate::ipam::DatastoreIpam;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tabby_felix_lite::autodetect::host;
use tabby_felix_lite::model::DesiredState;
use tabby_felix_lite::reconcile::{Reconciler, ReconcilerHandle};
use tabby_ipam::allocator::Ipam;
use tokio::sync::watch;

pub use start::run;

/// Hands the heap's free pages back to the kernel. glibc keeps what a
/// burst freed (decoding a table of UPDATEs, a route calculation over
/// thousands of routes, the status rows) for reuse, and a node's idle RSS
/// stayed at its peak: 6.5 MB of a 37 MB node with 10k learned routes
/// (`tests/bench-idle.sh`). Called at most every 10 s, and only after the
/// desired state changed, so an idle node never pays for it.
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and releases the allocator's own free
    // lists; it takes the allocator's locks like any malloc call.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How often connected subnets are read again, in ticks (seconds).
const CONNECTED_EVERY: u64 = 10;

pub(crate) struct Daemon {
    /// The configuration from the environment alone; `cfg` is it with the
    /// Installation's per-node settings laid over.
    base_cfg: NodeConfig,
    cfg: NodeConfig,
    /// The cache generations (Installation, IPPool) last applied at.
    installation_gen: Option<(u64, u64)>,
    /// The last Installation pass failed on the datastore: try again.
    installation_retry: bool,
    /// This node's VXLAN MTU, for the Installation's `status.mtu`.
    node_mtu: Option<u32>,
    ds: Arc<dyn Datastore>,
    cache: Arc<ClusterCache>,
    cache_rx: watch::Receiver<u64>,
    /// Per followed kind, the cache generation the cluster view was built at.
    seen: HashMap<crate::resources::Kind, u64>,
    _reflectors: Reflectors,
    ipam: Arc<Ipam<DatastoreIpam>>,
    cluster: Cluster,
    node_ip: Option<Ipv4Net>,
    tunnel: Tunnel,
    bgp: Option<Bgp>,
    dataplane: ReconcilerHandle,
    _reconciler: Reconciler,
    inputs: Inputs,
    last: Option<DesiredState>,
    snapshot: Arc<RwLock<Snapshot>>,
    /// The speaker `node status` reads, shared with the Node service.
    speaker: Arc<RwLock<Option<tabby_bgp::speaker::Speaker>>>,
    observer: crate::observe::Observer,
    /// Blocks on the fallback path at the last publish, and how many
    /// times a block moved onto it.
    on_fallback: std::collections::HashSet<IpNet>,
    fallback_activations: u64,
    /// The desired state changed since the heap was last trimmed.
    trim_due: bool,
    ticks: u64,
    started: Instant,
}

impl Daemon {
    /// Runs until SIGTERM or Ctrl-C, then stops BGP cleanly.
    async fn run(mut self) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Only what can change the routes publishes: an IPAM block write
        // anywhere in the cluster wakes the cache receiver too, and must not
        // cost every node a route calculation.
        let mut changed = true;
        loop {
            if changed {
                self.publish();
            }
            changed = tokio::select! {
                r = self.cache_rx.changed() => {
                    if r.is_err() {
                        anyhow::bail!("the cluster cache stopped");
                    }
                    self.on_cluster().await
                }
                _ = next_bgp_change(&mut self.bgp) => self.on_bgp().await,
                _ = ticker.tick() => self.on_tick().await,
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            };
        }
        self.stop().await;
        Ok(())
    }

    /// Each followed kind's cache generation, read *before* the view is
    /// built from the cache: a change that lands in between is in the view
    /// and still counts as new next time (a harmless rebuild), never the
    /// other way round (a change seen but missing from the view).
    fn generations(cache: &ClusterCache) -> HashMap<crate::resources::Kind, u64> {
        CLUSTER_KINDS
            .iter()
            .map(|k| (*k, cache.generation(*k)))
            .collect()
    }

    /// The datastore changed: rebuild the cluster view and bring the VTEP,
    /// the BGP peers and originated blocks, and the route inputs in line.
    /// False when no kind the view holds changed.
    async fn on_cluster(&mut self) -> bool {
        self.cache_rx.borrow_and_update();
        let inst_changed = self.on_installation().await;
        let now = Self::generations(&self.cache);
        if now == self.seen {
            // IPAM blocks or readiness only: nothing routes on them.
            return inst_changed;
        }
        let changed: Vec<crate::resources::Kind> = CLUSTER_KINDS
            .iter()
            .copied()
            .filter(|k| self.seen.get(k) != now.get(k))
            .collect();
        self.seen = now;
        let pools_before = pool_cidrs(&self.cluster);
        self.cluster.refresh(&self.cache, &changed);
        self.tunnel
            .on_cluster(&*self.ds, &self.ipam, &self.cfg, &self.cluster)
            .await;
        if pool_cidrs(&self.cluster) != pools_before {
            // After the tunnel moved off a deleted pool's block.
            self.release_orphan_blocks().await;
        }
        if self
            .bgp
            .as_ref()
            .is_some_and(|b| b.needs_restart(&self.cluster))
        {
            // A new AS (or port, bind address) cannot be applied to running
            // sessions: peers would see the old AS in our OPEN.
            tracing::info!("BGP AS, port or bind address changed: restarting the speaker");
            self.switch_backend(self.cfg.backend).await;
        }
        if let Some(b) = self.bgp.as_mut() {
            b.sync(&self.cluster).await;
        }
        self.inputs.nodes = self.cluster.node_infos();
        self.inputs.affinities = self.cluster.confirmed_affinities();
        self.inputs.pools = self.cluster.pool_infos();
        self.refresh_bgp_inputs().await;
        true
    }

    /// The speaker reported best-path or peer changes.
    async fn on_bgp(&mut self) -> bool {
        self.refresh_bgp_inputs().await;
        true
    }

    async fn refresh_bgp_inputs(&mut self) {
        if let Some(b) = &self.bgp {
            self.inputs.mesh = b.mesh_health();
            self.inputs.learned = b.learned();
            self.inputs.peers = b.peer_infos();
            self.inputs.resolved =
                paths::resolve_next_hops(&self.inputs, &self.inputs.resolved, false).await;
        }
    }

    /// The fallback clock moves on (so the routes are recalculated while
    /// that can change them: a peer may just have been down for a hold
    /// time); connected subnets are re-read now and then (a NIC can gain
    /// an address after start). True only when something the calculation
    /// reads changed or the clock matters: an idle node's tick costs no
    /// recalculation.
    async fn on_tick(&mut self) -> bool {
        self.ticks += 1;
        self.observer.tick();
        let mut changed = super::routes_bgp::clock_matters(&self.inputs);
        if self.ticks.is_multiple_of(CONNECTED_EVERY) {
            let connected = connected_subnets(self.node_ip, self.inputs.local.ip6).await;
            changed |= connected != self.inputs.local.connected;
            self.inputs.local.connected = connected;
            // The kernel's way to a recursive next hop can change too.
            let resolved =
                paths::resolve_next_hops(&self.inputs, &self.inputs.resolved, true).await;
            changed |= resolved != self.inputs.resolved;
            self.inputs.resolved = resolved;
            // A tunnel update that failed (IPAM's view may lag) is retried
            // here; otherwise this returns at once.
            let vteps = (self.tunnel.vtep, self.tunnel.vtep6);
            self.tunnel
                .on_cluster(&*self.ds, &self.ipam, &self.cfg, &self.cluster)
                .await;
            changed |= vteps != (self.tunnel.vtep, self.tunnel.vtep6);
            if std::mem::take(&mut self.trim_due) {
                trim_heap();
            }
            if self.installation_retry {
                self.installation_gen = None;
                changed |= self.on_installation().await;
            }
        }
        changed
    }

    /// Computes the routes, hands them to felix-lite when they changed, and
    /// publishes what `node status` shows.
    fn publish(&mut self) {
        self.inputs.local.vtep = self.tunnel.vtep;
        self.inputs.local.vtep6 = self.tunnel.vtep6;
        self.inputs.now = Instant::now();
        let out = routes::calculate(&self.inputs);
        let (last, lost) = super::routes_bgp::remember(&self.inputs, &out);
        self.inputs.last = last;
        self.inputs.lost_since = lost;
        if self.last.as_ref() != Some(&out.desired) {
            tracing::debug!(
                routes = out.desired.routes.len(),
                vteps = out.desired.vteps.len(),
                "new desired state"
            );
            for r in &out.rows {
                tracing::debug!(block = %r.block, node = %r.node, path = %r.path, via = %r.via, reason = %r.reason, "block path");
            }
            self.dataplane.set_desired(out.desired.clone());
            self.last = Some(out.desired);
            self.trim_due = true;
        }
        let fallback: std::collections::HashSet<IpNet> = out
            .rows
            .iter()
            .filter(|r| r.path == "vxlan-fallback")
            .map(|r| r.block)
            .collect();
        let newly = fallback.difference(&self.on_fallback).count() as u64;
        if newly > 0 {
            tracing::info!(blocks = newly, "blocks moved to the VXLAN fallback path");
        }
        self.fallback_activations += newly;
        self.on_fallback = fallback;
        let vtep = self.tunnel.vtep;
        let snap = Snapshot {
            node_ip: self.node_ip.map(|n| n.to_string()).unwrap_or_default(),
            interface: self.inputs.local.interface.clone(),
            as_number: super::peers::node_as(&self.cluster, &self.cfg.node_name),
            tunnel: vtep.map(|v| v.0.to_string()).unwrap_or_default(),
            mac: vtep.map(|v| vtep::format_mac(&v.1)).unwrap_or_default(),
            rows: out.rows,
            peer_types: self
                .bgp
                .as_ref()
                .map(|b| b.peer_types())
                .unwrap_or_default(),
            backend: Some(self.cfg.backend.as_str()),
            flaps: self.bgp.as_ref().map(|b| b.flaps()).unwrap_or_default(),
            bgp_errors: self.bgp.as_ref().map(|b| b.errors()).unwrap_or_default(),
            fallback_activations: self.fallback_activations,
            other_family_addr: self
                .inputs
                .nodes
                .values()
                .filter_map(|n| {
                    let (a4, a6) = (n.ip?.addr(), n.ip6?.addr());
                    Some([(a4.into(), a6.into()), (a6.into(), a4.into())])
                })
                .flatten()
                .collect(),
        };
        if let Ok(mut s) = self.snapshot.write() {
            *s = snap;
        }
    }

    /// A pool went: this node's empty blocks in no pool go with it, as
    /// Calico's pool deletion releases them (busy ones stay until their
    /// last address is released, which deletes them then).
    async fn release_orphan_blocks(&self) {
        match self.ipam.release_orphan_blocks(&self.cfg.node_name).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(blocks = ?gone, "released this node's empty blocks of deleted pools")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "releasing empty blocks of deleted pools"),
        }
    }

    async fn stop(self) {
        tracing::info!(
            uptime_s = self.started.elapsed().as_secs(),
            "stopping: Cease to every BGP peer; kernel routes stay"
        );
        if let Some(b) = &self.bgp {
            b.shutdown().await;
        }
        let me = &self.cfg.node_name;
        if let Err(e) = self.ds.report_node_network(me, false).await {
            tracing::warn!(error = %e, "setting the Node's NetworkUnavailable condition");
        }
        let _ = std::fs::remove_file(self.cfg.socket_path());
    }
}

fn pool_cidrs(c: &Cluster) -> std::collections::BTreeSet<String> {
    c.pools.values().map(|p| p.spec.cidr.clone()).collect()
}

async fn next_bgp_change(bgp: &mut Option<Bgp>) {
    match bgp {
        Some(b) => b.next_change().await,
        None => std::future::pending().await,
    }
}

/// Subnets on this host that can hold a native next hop.
async fn connected_subnets(node: Option<Ipv4Net>, node6: Option<Ipv6Net>) -> Vec<IpNet> {
    let v4 = match host::interfaces().await {
        Ok(ifaces) => tabby_felix_lite::autodetect::connected_subnets(node, &ifaces),
        Err(e) => {
            tracing::warn!(error = %e, "listing interfaces for connected subnets");
            node.into_iter().map(|n| n.trunc()).collect()
        }
    };
    let mut out: Vec<IpNet> = v4.into_iter().map(IpNet::V4).collect();
    out.extend(node6.map(|n| IpNet::V6(n.trunc())));
    if node6.is_some() {
        match tokio::task::spawn_blocking(connected6).await {
            Ok(Ok(nets)) => out.extend(nets.into_iter().map(IpNet::V6)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "listing IPv6 addresses for connected subnets")
            }
            Err(e) => tracing::warn!(error = %e, "listing IPv6 addresses for connected subnets"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The IPv6 subnets on this host's interfaces: global addresses with a
/// prefix (link-local ones are on every interface, pod host ends included,
/// and a /128 such as the tunnel address is no subnet).
fn connected6() -> anyhow::Result<Vec<Ipv6Net>> {
    let mut sock = tabby_felix_lite::netlink::NlSocket::open()?;
    let addrs = tabby_felix_lite::netlink::links::dump_addrs6(&mut sock)?;
    Ok(addrs
        .iter()
        .filter(|a| !a.is_link_local() && a.prefix_len < 128)
        .filter_map(|a| Ipv6Net::new(a.ip, a.prefix_len).ok().map(|n| n.trunc()))
        .collect())
}
