//! What tabby-node shows the outside world besides its socket: calico-node's
//! probes (`/liveness`, `/readiness` on `FELIX_HEALTHPORT`) and Prometheus
//! metrics (`/metrics` on `FELIX_PROMETHEUSMETRICSPORT`), served by one
//! small HTTP server (`http.rs`), and the exec form `tabby-node health`
//! (`probe.rs`), which asks that same endpoint so the kubelet's HTTP probe
//! and the exec probe can never disagree.
//!
//! The [`Observer`] reads what the node already keeps — the cluster
//! cache's readiness, felix-lite's [`Status`] and heartbeat, the speaker's
//! peer listing and the `node status` [`Snapshot`] — and computes nothing
//! of its own but the rules in `ready.rs`.
//!
//! [`Status`]: tabby_felix_lite::reconcile::Status

mod http;
pub mod metrics;
pub mod probe;
pub mod ready;

use crate::cache::ClusterCache;
use crate::grpc::node::{peer_row, Snapshot};
use crate::resources::{Kind, Resource};
use metrics::{IpamUse, Metrics};
use ready::{PeerState, ReadyInputs};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tabby_bgp::fsm::State;
use tabby_bgp::speaker::{PeerStatus, Speaker};
use tabby_felix_lite::reconcile::ReconcilerHandle;

pub use http::Routes;

/// How long a probe waits for the speaker's core to list its peers.
const SPEAKER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("{var}: cannot listen on {addr}: {source}")]
    Bind {
        var: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the node hands over for its probes and metrics.
pub struct Parts {
    pub node_name: String,
    pub cache: Arc<ClusterCache>,
    /// The kinds start-up waited for: the datastore is in sync when every
    /// one is listed and watched.
    pub kinds: Vec<Kind>,
    pub dataplane: ReconcilerHandle,
    /// The running speaker, swapped when an Installation switches the
    /// backend live (None: no BGP, nothing to answer for).
    pub speaker: Arc<RwLock<Option<Speaker>>>,
    pub snapshot: Arc<RwLock<Snapshot>>,
}

/// Cheap to clone; shared by the HTTP tasks and the main loop.
#[derive(Clone)]
pub struct Observer(Arc<Inner>);

struct Inner {
    parts: Parts,
    started: Instant,
    /// The main loop's watchdog, stamped on every tick.
    main_loop: Mutex<Instant>,
    metrics: Mutex<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a plain assignment or a metrics update
    // that leaves the registry consistent: a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Observer {
    pub fn new(parts: Parts, started: Instant) -> Observer {
        Observer(Arc::new(Inner {
            parts,
            started,
            main_loop: Mutex::new(Instant::now()),
            metrics: Mutex::new(Metrics::new()),
        }))
    }

    /// Binds the enabled endpoints (one listener when both share an
    /// address) and serves them on tasks of their own.
    #[tracing::instrument(skip(self))]
    pub async fn serve(
        &self,
        health: Option<SocketAddr>,
        metrics: Option<SocketAddr>,
    ) -> Result<(), ObserveError> {
        let mut listeners: Vec<(SocketAddr, Routes, &'static str)> = Vec::new();
        if let Some(a) = health {
            listeners.push((
                a,
                Routes {
                    health: true,
                    metrics: false,
                },
                "FELIX_HEALTHPORT",
            ));
        }
        if let Some(a) = metrics {
            match listeners.iter_mut().find(|(h, _, _)| *h == a) {
                Some(l) => l.1.metrics = true,
                None => listeners.push((
                    a,
                    Routes {
                        health: false,
                        metrics: true,
                    },
                    "FELIX_PROMETHEUSMETRICSPORT",
                )),
            }
        }
        for (addr, routes, var) in listeners {
            http::serve(addr, routes, self.clone())
                .await
                .map_err(|source| ObserveError::Bind { var, addr, source })?;
            tracing::info!(%addr, health = routes.health, metrics = routes.metrics, "serving HTTP");
        }
        Ok(())
    }

    /// The main loop turned: stamp its watchdog and fold the passes since
    /// the last tick into the duration histogram (felix-lite keeps only
    /// the recent ones, so this must run more often than a scrape).
    pub fn tick(&self) {
        *lock(&self.0.main_loop) = Instant::now();
        lock(&self.0.metrics).observe_dataplane(&self.0.parts.dataplane.status());
    }

    async fn peers(&self) -> Option<Result<Vec<PeerStatus>, String>> {
        // Cloned out: the lock is never held across the await.
        let s = self.0.parts.speaker.read().ok()?.clone()?;
        Some(
            match tokio::time::timeout(SPEAKER_TIMEOUT, s.peers()).await {
                Ok(Ok(p)) => Ok(p),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {} s", SPEAKER_TIMEOUT.as_secs())),
            },
        )
    }

    /// Live when the main loop and the reconciler's loop have turned
    /// recently and the speaker's core answers (calico-node's bird-live:
    /// BIRD answering).
    #[tracing::instrument(skip(self))]
    pub async fn live(&self) -> Result<(), String> {
        let now = Instant::now();
        let main = *lock(&self.0.main_loop);
        let dp = self.0.parts.dataplane.heartbeat();
        let mut why: Vec<String> = ready::live(&[("main loop", main), ("reconciler", dp)], now)
            .err()
            .into_iter()
            .collect();
        if let Some(Err(e)) = self.peers().await {
            why.push(format!("BGP speaker not answering: {e}"));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }

    #[tracing::instrument(skip(self))]
    pub async fn ready(&self) -> Result<(), String> {
        let p = &self.0.parts;
        let unsynced_kinds = p
            .kinds
            .iter()
            .filter(|k| !p.cache.ready(&[**k]))
            .map(|k| k.as_str().to_string())
            .collect();
        let types = read_snapshot(&p.snapshot).peer_types;
        let wall = SystemTime::now();
        let peers = self.peers().await.map(|r| {
            r.map(|ps| {
                ps.iter()
                    .map(|s| PeerState {
                        address: s.config.address,
                        established: s.state == State::Established,
                        // INFO exactly as `node status` prints it.
                        info: peer_row(s, types.get(&s.config.address).copied(), wall).info,
                    })
                    .collect()
            })
        });
        let inputs = ReadyInputs {
            unsynced_kinds,
            datastore_stalled: p.cache.stall().map(|s| s.to_string()),
            dataplane_passes: p.dataplane.status().passes,
            peers,
            started: self.0.started,
        };
        ready::ready(&inputs, Instant::now())
    }

    /// `/metrics`: one consistent view of the peers, the snapshot, the
    /// dataplane and IPAM, encoded.
    #[tracing::instrument(skip(self))]
    pub async fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        let p = &self.0.parts;
        let peers = match self.peers().await {
            Some(Ok(peers)) => peers,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "metrics: BGP speaker not answering; no peer series");
                Vec::new()
            }
            None => Vec::new(),
        };
        let refused = p
            .speaker
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(Speaker::refused_connections))
            .unwrap_or(0);
        let snap = read_snapshot(&p.snapshot);
        let ipam = ipam_use(&p.cache, &p.node_name);
        let dataplane = p.dataplane.status();
        lock(&self.0.metrics).render(&peers, refused, &snap, &dataplane, ipam)
    }
}

fn read_snapshot(s: &RwLock<Snapshot>) -> Snapshot {
    s.read().map(|s| s.clone()).unwrap_or_default()
}

/// Blocks affine to `node` (Calico's `host:<node>`) and the addresses
/// allocated in them.
fn ipam_use(cache: &ClusterCache, node: &str) -> IpamUse {
    let host = format!("host:{node}");
    let mut u = IpamUse::default();
    for r in cache.list(Kind::IpamBlock) {
        if let Resource::IpamBlock(b) = &*r {
            if b.spec.deleted || b.spec.affinity.as_deref() != Some(host.as_str()) {
                continue;
            }
            u.blocks += 1;
            u.addresses += b.spec.allocations.iter().filter(|a| a.is_some()).count() as i64;
        }
    }
    u
}
