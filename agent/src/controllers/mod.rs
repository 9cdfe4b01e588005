//! `tabby-node controllers`: what calico-kube-controllers does for a
//! Calico cluster, as far as Tabby needs it — today the node controller's
//! IPAM garbage collection ([`gc`]): leaked pod addresses released after
//! the grace period, deleted nodes' tunnel addresses and empty blocks
//! released.
//!
//! In the Kubernetes datastore only the replica holding the Lease
//! ([`lease`]) collects, so the controllers can run as a Deployment with
//! several replicas; with SQLite or etcd there is no Lease and it runs
//! unelected (run one).
//!
//! Tasks and channels:
//!
//! ```text
//!  elector (Lease rounds every renew period) ──leader: watch<bool>──► GC loop
//!  signal (SIGTERM/SIGINT) ─drops─► stop_gc ──────────────────────────► GC loop ends
//!                          then ──► stop_elector ──► elector releases the Lease
//! ```
//!
//! The GC loop runs a pass every sync period while leading; it is stopped
//! and awaited before the Lease is released, so a successor never collects
//! alongside it.

pub mod config;
pub mod gc;
pub mod lease;

pub use config::{ConfigError, ControllersArgs, ControllersConfig};

use crate::datastore::Datastore;
use crate::ipam::workloads::live_workloads;
use gc::IpamGc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum ControllersError {
    #[error(transparent)]
    Datastore(#[from] crate::datastore::Error),
    #[error("installing the signal handler: {0}")]
    Signal(#[from] std::io::Error),
}

/// Runs the controllers until SIGTERM or SIGINT.
pub async fn run(cfg: ControllersConfig) -> Result<(), ControllersError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ds: Arc<dyn Datastore> = crate::datastore::connect(&cfg.datastore).await?;
    let workloads = live_workloads(ds.clone());
    let period = cfg.sync_period();
    if cfg.leak_grace_period.is_zero() {
        info!(
            "leak grace period 0: pod addresses on live nodes are not garbage collected; \
             deleted nodes are still cleaned up every {period:?}"
        );
    } else {
        info!(grace = ?cfg.leak_grace_period, "will run periodic IPAM sync every {period:?}");
    }

    let (stop_elector_tx, stop_elector_rx) = watch::channel(());
    let (leader_tx, leader_rx) = watch::channel(false);
    let elector = match ds.kube_client() {
        Some(client) => {
            let el = lease::Elector::new(client, cfg.lease.clone());
            Some(tokio::spawn(lease::elect(el, leader_tx, stop_elector_rx)))
        }
        None => {
            info!(
                datastore = ds.backend(),
                "no Lease outside the Kubernetes datastore: running unelected (run one replica)"
            );
            leader_tx.send_replace(true);
            // Held until shutdown: the GC loop reads "leading" throughout.
            tokio::spawn(async move {
                let mut stop = stop_elector_rx;
                let _ = stop.changed().await;
                drop(leader_tx);
            });
            None
        }
    };

    let (stop_gc_tx, stop_gc_rx) = watch::channel(());
    let gc = IpamGc::new(ds, workloads, cfg.leak_grace_period);
    let gc_task = tokio::spawn(gc_loop(gc, period, leader_rx, stop_gc_rx));

    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
    }
    drop(stop_gc_tx);
    if let Err(e) = gc_task.await {
        warn!(error = %e, "the GC task failed");
    }
    drop(stop_elector_tx);
    if let Some(t) = elector {
        if let Err(e) = t.await {
            warn!(error = %e, "the election task failed");
        }
    }
    info!("controllers stopped");
    Ok(())
}

/// A pass every `period` while leading, and one straight away on becoming
/// leader; ends when `stop`'s sender is dropped (or the leader channel's).
async fn gc_loop(
    mut gc: IpamGc,
    period: Duration,
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<()>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
                if !*leader.borrow_and_update() {
                    // Whoever leads next watches the grace period afresh.
                    gc.forget_all();
                    continue;
                }
            }
            _ = tick.tick() => {}
        }
        if !*leader.borrow() {
            continue;
        }
        match gc.pass(&leader).await {
            Ok(r) => {
                if !r.released.is_empty() || r.candidates > 0 || r.failed > 0 {
                    info!(
                        released = r.released.len(),
                        candidates = r.candidates,
                        held_back = r.held_back,
                        resurrected = r.revived.len(),
                        failed = r.failed,
                        "IPAM sync complete"
                    );
                }
            }
            Err(e) => warn!(error = %e, "IPAM sync failed; retrying next period"),
        }
    }
}
