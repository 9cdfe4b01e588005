//! When each block claim committed: a watch on the lab's datastore, as a
//! node's cache follows it, timestamps every BlockAffinity of the claiming
//! node that turns `confirmed` (Calico's claim: a pending affinity, the
//! block, then the confirmation other nodes route on). That instant is the
//! issue's "a new block claimed on node A", without the CNI plugin's own
//! start and the rest of its ADD. The watch's own delay (the SQLite
//! wake-up, `bench-watch`: ~1 ms p50, or etcd's watch) makes the claim look
//! that much later, so latencies measured from it are low by that much.
//!
//! The thread enters node A's network namespace first: an etcd lab's etcd
//! listens on the lab fabric, which the host namespace cannot reach.

use anyhow::{Context, Result};
use futures::StreamExt;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::mpsc::Sender;
use std::time::Instant;
use tabby_agent::datastore::{connect, DatastoreConfig, EventType};
use tabby_agent::resources::ipam::AffinityState;
use tabby_agent::resources::{Kind, Resource};

/// A confirmed claim: the block and when its confirmation was seen.
pub struct Claim {
    pub lab: usize,
    pub block: (Ipv4Addr, u8),
    pub at: Instant,
}

/// Starts the watch for lab `lab`; returns once it is watching, so no claim
/// after the return is missed.
pub fn watch(
    lab: usize,
    cfg: DatastoreConfig,
    netns: &str,
    node: &str,
    tx: Sender<Claim>,
) -> Result<()> {
    let path = format!("/var/run/netns/{netns}");
    let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let node = node.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    std::thread::Builder::new()
        .name(format!("claims-{lab}"))
        .spawn(move || {
            let run = async {
                // SAFETY: a plain syscall on an fd we hold open.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error())
                        .context("setns into the claiming node");
                }
                let ds = connect(&cfg)
                    .await
                    .context("connecting to the lab's datastore")?;
                let from = ds.list(Kind::BlockAffinity, None).await?.revision;
                let mut w = ds.watch(&[Kind::BlockAffinity], from).await?;
                let _ = ready_tx.send(Ok(()));
                while let Some(ev) = w.next().await {
                    let Ok(ev) = ev else { continue };
                    let at = Instant::now();
                    let Resource::BlockAffinity(a) = &ev.resource else {
                        continue;
                    };
                    if ev.event_type == EventType::Deleted
                        || a.spec.node != node
                        || a.spec.state != AffinityState::Confirmed
                    {
                        continue;
                    }
                    let Some(block) = parse(&a.spec.cidr) else {
                        continue;
                    };
                    if tx.send(Claim { lab, block, at }).is_err() {
                        break;
                    }
                }
                anyhow::Ok(())
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let r = match rt {
                Ok(rt) => rt.block_on(run),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = r {
                let _ = ready_tx.send(Err(e));
            }
        })?;
    ready_rx.recv().context("claim watcher ended")?
}

fn parse(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = cidr.split_once('/')?;
    Some((a.parse().ok()?, l.parse().ok()?))
}
