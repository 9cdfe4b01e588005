//! tabby-node's main loop: start-up, then datastore changes, BGP changes
//! and a 1 s tick (the fallback timer) each recompute the routes and hand
//! them to felix-lite; the gRPC socket serves Ipam, Node, Dataplane and
//! Bgp.
//!
//! On SIGTERM the speaker sends Cease to every peer and the process exits;
//! kernel routes, `vxlan.calico` and workload routes stay as they are, so
//! pods keep working and the next start converges from there without a
//! gap (its first desired state already holds every block).

use super::bgp::Bgp;
use super::cluster::Cluster;
use super::config::{Backend, NodeConfig};
use super::routes::{self, Inputs, Local};
use super::status::{NodeService, Snapshot};
use super::{follow, startup, vtep};
use crate::grpc::ipam::IpamService;
use crate::ipam_store::DatastoreIpam;
use anyhow::Context;
use ipnet::Ipv4Net;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tabby_felix_lite::autodetect::{host, Detected};
use tabby_felix_lite::model::DesiredState;
use tabby_felix_lite::reconcile::{Config as ReconcileConfig, Reconciler};
use tabby_ipam::allocator::Ipam;

/// Subnets on this host's interfaces that can hold a native next hop (not
/// Tabby's own or the pods').
async fn connected_subnets(node: Option<Ipv4Net>) -> Vec<Ipv4Net> {
    let mut out: Vec<Ipv4Net> = node.into_iter().map(|n| n.trunc()).collect();
    match host::interfaces().await {
        Ok(ifaces) => {
            for f in ifaces {
                if f.name == "lo"
                    || f.name.starts_with("cali")
                    || f.name.starts_with("vxlan.calico")
                {
                    continue;
                }
                for a in f.addrs {
                    if !a.scope_link_or_host
                        && a.net.prefix_len() < 32
                        && !out.contains(&a.net.trunc())
                    {
                        out.push(a.net.trunc());
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing interfaces for connected subnets"),
    }
    out
}

fn checksum_offload_broken() -> bool {
    tabby_felix_lite::features::checksum_offload_broken(None).unwrap_or(false)
}

pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let started = SystemTime::now();
    let start_instant = Instant::now();
    let me = cfg.node_name.clone();
    tracing::info!(node = %me, backend = cfg.backend.as_str(), datastore = ?cfg.datastore, "tabby-node starting");
    let ds = crate::datastore::connect(&cfg.datastore)
        .await
        .context("connecting to the datastore")?;
    let detected: Option<Detected> = startup::detect_address(&cfg).await?;
    let node_ip = detected.as_ref().map(|d| d.address);
    let interface = detected
        .as_ref()
        .map(|d| d.interface.clone())
        .unwrap_or_default();
    startup::ensure_default_pool(&*ds, &cfg).await?;
    startup::write_node_address(&*ds, &cfg, node_ip).await?;

    let (mut cluster, rev) = follow::list_all(&*ds).await?;
    let ipam = Arc::new(Ipam::new(DatastoreIpam::cached(ds.clone())));
    ipam.store().wait_ready(Duration::from_secs(5)).await;
    let mut vx_pools = my_vxlan_pools(&cluster, &me);
    // Without a VTEP the node still routes natively; a pool that allows no
    // tunnel addresses must not keep it from starting.
    let mut my_vtep = startup::ensure_tunnel(
        &*ds,
        &ipam,
        &cfg,
        startup::vxlan_wanted(&cfg, &vx_pools) && node_ip.is_some(),
        &vx_pools,
    )
    .await
    .unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "no VXLAN tunnel address: VXLAN and fallback unavailable");
        None
    });
    // The tunnel write changed our Node: read everything again so the
    // first desired state sees it.
    let (c2, rev2) = follow::list_all(&*ds).await?;
    cluster = c2;
    let (mut cluster_rx, _follower) = follow::spawn(ds.clone(), cluster.clone(), rev.min(rev2));

    let reconciler = Reconciler::start(ReconcileConfig::default())
        .context("starting the dataplane reconciler")?;
    let dataplane = reconciler.handle();

    let mut bgp = match (cfg.backend, node_ip) {
        (Backend::Bird, Some(ip)) => Some(Bgp::start(&cfg, &cluster, ip.addr()).await?),
        (Backend::Bird, None) => {
            tracing::warn!("IP=none: no node address, so no BGP");
            None
        }
        _ => None,
    };

    let offload_broken = checksum_offload_broken();
    let connected = connected_subnets(node_ip).await;
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    let node_svc = NodeService {
        node_name: me.clone(),
        backend: cfg.backend.as_str(),
        vxlan_fallback: cfg.vxlan_fallback,
        hold_time_seconds: cfg.hold_time.as_secs() as u32,
        started,
        speaker: bgp.as_ref().map(|b| b.speaker.clone()),
        snapshot: snapshot.clone(),
    };
    let socket = cfg.socket_path();
    let listener = crate::grpc::bind_socket(&socket)
        .with_context(|| format!("binding the gRPC socket {}", socket.display()))?;
    let mut router = tonic::transport::Server::builder()
        .add_service(tabby_proto::ipam::ipam_server::IpamServer::new(
            IpamService::new(ipam.clone(), &me),
        ))
        .add_service(node_svc.into_server());
    if let Some(b) = &bgp {
        let peer_types = super::status::bgp_peer_types(snapshot.clone());
        router = router.add_service(
            crate::grpc::bgp::BgpService::node(b.speaker.clone(), peer_types).into_server(),
        );
    }
    router = router.add_service(
        tabby_proto::dataplane::dataplane_server::DataplaneServer::new(
            crate::grpc::dataplane::DataplaneService::new(ds.clone(), &me, dataplane.clone())
                .with_node_address(
                    &interface,
                    &node_ip.map(|n| n.addr().to_string()).unwrap_or_default(),
                ),
        ),
    );
    // Local pods' routes come back from their WorkloadEndpoints. The
    // reconciler acts on the first change it sees, so this runs right
    // before the first set_desired (computed below without I/O), and both
    // land in one debounced pass: no pass ever lacks the remote blocks.
    match crate::grpc::dataplane::restore_workloads(&*ds, &me, &dataplane).await {
        Ok(n) => tracing::info!(workloads = n, "restored local workloads"),
        Err(e) => tracing::warn!(error = %e, "restoring local workloads"),
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    });
    tracing::info!(socket = %socket.display(), "serving gRPC");

    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    let mut last: Option<DesiredState> = None;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut cluster_dirty = true;
    // The cluster-derived inputs change only when the cluster does; the
    // rest (time, BGP health, learned routes, connected subnets) is
    // refreshed on every pass.
    let mut inputs = Inputs {
        local: Local {
            name: me.clone(),
            ip: node_ip,
            interface: interface.clone(),
            vtep: my_vtep,
            connected,
            disable_tx_checksum_offload: offload_broken,
        },
        bgp: bgp.is_some(),
        routing: cfg.backend != Backend::None,
        fallback: cfg.vxlan_fallback,
        hold_time: cfg.hold_time,
        now: Instant::now(),
        nodes: Default::default(),
        affinities: Vec::new(),
        pools: Vec::new(),
        mesh: Default::default(),
        learned: Vec::new(),
    };
    loop {
        if cluster_dirty {
            let pools = my_vxlan_pools(&cluster, &me);
            if pools != vx_pools {
                vx_pools = pools;
                let wanted = startup::vxlan_wanted(&cfg, &vx_pools) && node_ip.is_some();
                match startup::ensure_tunnel(&*ds, &ipam, &cfg, wanted, &vx_pools).await {
                    Ok(v) => my_vtep = v,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "updating the VXLAN tunnel address")
                    }
                }
            }
            if let Some(b) = bgp.as_mut() {
                b.sync(&cluster).await;
            }
            inputs.nodes = cluster.node_infos();
            inputs.affinities = cluster.confirmed_affinities();
            inputs.pools = cluster.pool_infos();
            cluster_dirty = false;
        }
        inputs.local.vtep = my_vtep;
        inputs.now = Instant::now();
        inputs.mesh = bgp.as_ref().map(|b| b.mesh_health()).unwrap_or_default();
        inputs.learned = bgp.as_ref().map(|b| b.learned()).unwrap_or_default();
        let out = routes::calculate(&inputs);
        if last.as_ref() != Some(&out.desired) {
            tracing::debug!(
                routes = out.desired.routes.len(),
                vteps = out.desired.vteps.len(),
                "new desired state"
            );
            for r in &out.rows {
                tracing::debug!(block = %r.block, node = %r.node, path = %r.path, via = %r.via, reason = %r.reason, "block path");
            }
            dataplane.set_desired(out.desired.clone());
            last = Some(out.desired);
        }
        if let Ok(mut s) = snapshot.write() {
            *s = Snapshot {
                node_ip: node_ip.map(|n| n.to_string()).unwrap_or_default(),
                interface: interface.clone(),
                as_number: super::peers::node_as(&cluster, &me),
                tunnel: my_vtep.map(|v| v.0.to_string()).unwrap_or_default(),
                mac: my_vtep.map(|v| vtep::format_mac(&v.1)).unwrap_or_default(),
                rows: out.rows,
                peer_types: bgp.as_ref().map(|b| b.peer_types()).unwrap_or_default(),
            };
        }

        tokio::select! {
            r = cluster_rx.changed() => {
                if r.is_err() {
                    anyhow::bail!("the datastore follower stopped");
                }
                cluster = Cluster::clone(&cluster_rx.borrow_and_update());
                cluster_dirty = true;
            }
            _ = next_best_paths(&mut bgp) => {}
            _ = ticker.tick() => {
                ticks += 1;
                if let Some(b) = bgp.as_mut() {
                    b.poll().await;
                }
                if ticks.is_multiple_of(10) {
                    inputs.local.connected = connected_subnets(node_ip).await;
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!(
        uptime_s = start_instant.elapsed().as_secs(),
        "stopping: Cease to every BGP peer; kernel routes stay"
    );
    if let Some(b) = &bgp {
        b.shutdown().await;
    }
    let _ = std::fs::remove_file(&socket);
    drop(reconciler);
    Ok(())
}

async fn next_best_paths(bgp: &mut Option<Bgp>) {
    match bgp {
        Some(b) => b.next_best_paths().await,
        None => std::future::pending().await,
    }
}

fn my_vxlan_pools(cluster: &Cluster, me: &str) -> Vec<Ipv4Net> {
    let labels = cluster
        .nodes
        .get(me)
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let pools: Vec<_> = cluster.pools.values().cloned().collect();
    startup::vxlan_pools(&pools, &labels)
}
