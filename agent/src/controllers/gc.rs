//! One IPAM garbage collection pass, as calico-kube-controllers' node
//! controller runs it: read the blocks, the nodes and the workloads, judge
//! by `tabby_ipam::gc`, re-check what is to be released against the
//! datastore itself, release (each address only while the leaked handle
//! still holds it), then release deleted nodes' empty blocks.

use crate::datastore::Datastore;
use crate::ipam::DatastoreIpam;
use crate::resources::Kind;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabby_ipam::allocator::{Ipam, IpamError};
use tabby_ipam::check::LiveWorkloads;
use tabby_ipam::gc::{self, Allocation, Candidates, Release};
use tabby_ipam::store::{IpamStore, StoreError};
use tokio::sync::watch;
use tracing::{debug, info, instrument, warn};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Datastore(#[from] crate::datastore::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    pub released: Vec<Release>,
    /// Confirmed leaks the re-check found in use after all.
    pub revived: Vec<Release>,
    /// Leaks waiting out the grace period after the pass (confirmed ones
    /// held back included).
    pub candidates: usize,
    /// Confirmed leaks kept because another address of their handle is
    /// in use.
    pub held_back: usize,
    /// Deleted nodes and the blocks released for each.
    pub nodes: Vec<(String, Vec<ipnet::IpNet>)>,
    /// Releases that failed (retried next pass).
    pub failed: usize,
    /// The pass stopped early because leadership was lost.
    pub interrupted: bool,
}

pub struct IpamGc {
    ds: Arc<dyn Datastore>,
    ipam: Ipam<DatastoreIpam>,
    workloads: Box<dyn LiveWorkloads>,
    candidates: Candidates,
    grace: Duration,
}

impl IpamGc {
    pub fn new(ds: Arc<dyn Datastore>, workloads: Box<dyn LiveWorkloads>, grace: Duration) -> Self {
        IpamGc {
            ipam: Ipam::new(DatastoreIpam::new(ds.clone())),
            ds,
            workloads,
            candidates: Candidates::new(),
            grace,
        }
    }

    /// Forgets every candidate: a replica that (re)gains leadership has not
    /// watched the grace period pass, so it starts over.
    pub fn forget_all(&mut self) {
        self.candidates = Candidates::new();
    }

    async fn nodes(&self) -> Result<HashSet<String>, GcError> {
        Ok(self
            .ds
            .list(Kind::Node, None)
            .await?
            .items
            .iter()
            .map(|n| n.name().to_string())
            .collect())
    }

    /// One pass. Stops before its next write once `leader` says false.
    #[instrument(name = "ipam_gc", skip_all)]
    pub async fn pass(&mut self, leader: &watch::Receiver<bool>) -> Result<PassReport, GcError> {
        let mut report = PassReport::default();
        self.run_pass(leader, &mut report).await?;
        report.candidates = self.candidates.len();
        Ok(report)
    }

    async fn run_pass(
        &mut self,
        leader: &watch::Receiver<bool>,
        report: &mut PassReport,
    ) -> Result<(), GcError> {
        let store = self.ipam.store();
        let blocks = store.list_blocks().await?;
        let allocs = gc::allocations(blocks.iter().map(|b| &b.value));
        let nodes = self.nodes().await?;
        let w = self.workloads.snapshot().await?;
        let verdicts = gc::assess(&allocs, &nodes, &w);
        let confirmed = self
            .candidates
            .observe(&allocs, &verdicts, Instant::now(), self.grace);
        let affs = store.list_affinities(None).await?;
        let plan = gc::plan(
            &allocs,
            &verdicts,
            &confirmed,
            &nodes,
            affs.iter().map(|a| a.value.node.as_str()),
        );
        report.held_back = plan.held_back.len();
        for a in &plan.held_back {
            debug!(ip = %a.ip, handle = %a.handle, "leaked, but other addresses of the handle are in use; keeping it");
        }

        if !plan.releases.is_empty() {
            // The last word is the datastore's, read now: a pod recreated
            // (or a node re-registered) since the pass began keeps its
            // addresses.
            let fresh_nodes = self.nodes().await?;
            let refs: Vec<&Allocation> = plan.releases.iter().map(|r| &r.alloc).collect();
            let fresh = self.workloads.recheck(&refs).await?;
            let (still, revived) = gc::recheck(plan.releases, &fresh_nodes, &fresh);
            for r in &revived {
                self.candidates.forget(&r.alloc.key());
                info!(ip = %r.alloc.ip, handle = %r.alloc.handle, "leaked IP has been resurrected after querying latest state");
            }
            report.revived = revived;
            for r in still {
                if !*leader.borrow() {
                    report.interrupted = true;
                    return Ok(());
                }
                self.candidates.forget(&r.alloc.key());
                let a = &r.alloc;
                match self.ipam.release_ip_held_by(a.ip, &a.handle).await {
                    Ok(true) => {
                        info!(
                            ip = %a.ip,
                            handle = %a.handle,
                            namespace = %a.namespace.as_deref().unwrap_or(""),
                            pod = %a.pod.as_deref().unwrap_or(""),
                            node = %a.node.as_deref().unwrap_or(""),
                            reason = %r.reason,
                            "garbage collected leaked IP address"
                        );
                        report.released.push(r);
                    }
                    Ok(false) => {
                        debug!(ip = %a.ip, handle = %a.handle, "already released or reassigned");
                    }
                    Err(e) => {
                        report.failed += 1;
                        warn!(ip = %a.ip, handle = %a.handle, error = %e, "leaked IP address was not garbage collected");
                    }
                }
            }
        }

        if !plan.nodes.is_empty() {
            let fresh_nodes = self.nodes().await?;
            for node in plan.nodes.iter().filter(|n| !fresh_nodes.contains(*n)) {
                if !*leader.borrow() {
                    report.interrupted = true;
                    return Ok(());
                }
                match self.ipam.release_host_affinities(node).await {
                    Ok(r) => {
                        if !r.released.is_empty() {
                            info!(node = %node, blocks = ?r.released, "released the block affinities of a deleted node");
                        }
                        if !r.kept.is_empty() {
                            info!(node = %node, blocks = ?r.kept, "deleted node's blocks still hold addresses; will retry");
                        }
                        report.nodes.push((node.clone(), r.released));
                    }
                    Err(e) => {
                        report.failed += 1;
                        log_release_error(node, &e);
                    }
                }
            }
        }
        Ok(())
    }
}

fn log_release_error(node: &str, e: &IpamError) {
    warn!(node = %node, error = %e, "could not release a deleted node's affinities; will retry");
}
