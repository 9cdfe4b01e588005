//! Start-up, in calico-node's order: find the node address, make sure a
//! pool exists, write the Node, fill the cluster cache, give the node its
//! VTEP, start felix-lite and the BGP speaker, serve the node socket, and
//! restore local workloads — then hand over to [`Daemon::run`].

use super::{connected_subnets, Daemon};
use crate::cache::ClusterCache;
use crate::grpc::ipam::IpamService;
use crate::grpc::node::{NodeService, Snapshot};
use crate::ipam::DatastoreIpam;
use crate::node::bgp::Bgp;
use crate::node::cluster::Cluster;
use crate::node::config::{Backend, NodeConfig};
use crate::node::installation;
use crate::node::routes::{Inputs, Local};
use crate::node::session_addrs::MyAddrs;
use crate::node::startup;
use crate::node::tunnel::Tunnel;
use crate::resources::Kind;
use anyhow::Context;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tabby_felix_lite::autodetect::Detected;
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::reconcile::{Config as ReconcileConfig, Reconciler};
use tabby_ipam::allocator::Ipam;

/// How long start-up waits for the first list of every kind.
const CACHE_READY: Duration = Duration::from_secs(10);

/// Every kind this process follows: what the route calculation and BGP
/// read, and what IPAM reads.
fn followed_kinds() -> Vec<Kind> {
    let mut kinds: Vec<Kind> = crate::node::cluster::KINDS.to_vec();
    kinds.extend(crate::ipam::KINDS);
    // Followed so that a change to it is applied without a restart.
    kinds.push(Kind::Installation);
    kinds.sort();
    kinds.dedup();
    kinds
}

pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    Daemon::start(cfg).await?.run().await
}

impl Daemon {
    async fn start(cfg: NodeConfig) -> anyhow::Result<Daemon> {
        let started = SystemTime::now();
        let started_at = Instant::now();
        let me = cfg.node_name.clone();
        tracing::info!(node = %me, backend = cfg.backend.as_str(), datastore = ?cfg.datastore, "tabby-node starting");
        let ds = crate::datastore::connect(&cfg.datastore)
            .await
            .context("connecting to the datastore")?;
        // The Installation's per-node settings under the environment's,
        // before anything depends on them; its pools before the VTEP
        // (which needs a VXLAN pool selecting this node).
        let base_cfg = cfg.clone();
        let inst = installation::read(&*ds).await;
        let (cfg, decisions) = installation::overlay(&base_cfg, inst.spec.as_ref());
        installation::log_decisions(&decisions);
        let detected: Option<Detected> = startup::detect_address(&cfg, &*ds).await?;
        let node_ip = detected.as_ref().map(|d| d.address);
        let mut interface = detected
            .as_ref()
            .map(|d| d.interface.clone())
            .unwrap_or_default();
        let node_mtu = node_vxlan_mtu(&cfg, detected.as_ref());
        if inst.present {
            // The operator sets NO_DEFAULT_POOLS: its pools are the pools.
            tracing::info!("an Installation exists: no default pool from CALICO_IPV4POOL_*");
            installation::apply(&*ds, &inst, node_mtu).await;
        } else {
            startup::ensure_default_pool(&*ds, &cfg).await?;
            startup::ensure_default_pool6(&*ds, &cfg).await?;
        }
        startup::write_node_address(&*ds, &cfg, node_ip).await?;
        let mut interface6 = String::new();
        if cfg.ipv6.ip6 != crate::node::config6::Ip6Setting::None {
            let k = tokio::task::spawn_blocking(KernelSnapshot::read).await??;
            if let Some(net) = startup::write_node_ipv6(&*ds, &cfg, &k).await? {
                // The interface holding it: the IPv6 VTEP's parent, and the
                // node interface of an IPv6-only node.
                if let Some(a) = k.addrs6.iter().find(|a| a.ip == net.addr()) {
                    interface6 = k.ifname(a.index);
                }
            }
        }
        if interface.is_empty() {
            interface = interface6.clone();
        }

        let kinds = followed_kinds();
        let (cache, reflectors) = ClusterCache::follow(ds.clone(), &kinds);
        // Subscribed before anything is read, so no change after the first
        // view goes unnoticed.
        let cache_rx = cache.subscribe();
        if !cache.wait_ready(&kinds, CACHE_READY).await {
            anyhow::bail!("the datastore did not list every kind within {CACHE_READY:?}");
        }
        let ipam = Arc::new(Ipam::new(DatastoreIpam::with_cache(
            ds.clone(),
            cache.clone(),
        )));
        let cluster = Cluster::from_cache(&cache);
        // Read back from our Node: `write_node_ipv6` chose it (IP6=).
        let node_ip6 = cluster
            .nodes
            .get(&me)
            .and_then(crate::node::cluster::node_ipv6)
            .filter(|_| cfg.ipv6.ipv6_support);
        let tunnel = Tunnel::start(
            &*ds,
            &ipam,
            &cfg,
            &cluster,
            node_ip.is_some(),
            node_ip6.is_some(),
        )
        .await;
        // The tunnel write changed our Node: put it into the cache now so
        // the first desired state sees it without waiting for the watch.
        if let Ok(n) = ds.get(Kind::Node, &me).await {
            let rev = n.revision().unwrap_or_default();
            cache.put(n, rev);
        }
        let seen = Daemon::generations(&cache);
        let cluster = Cluster::from_cache(&cache);

        // Read before the reconciler starts and before the first publish:
        // the native routes a previous run left (kept for a hold time while
        // the ToR session comes back), and the connected subnets. Nothing
        // slow may sit between restoring workloads and the first publish.
        let last_paths = super::paths::kernel_last_paths(&cluster.confirmed_affinities(), &me);
        let connected = connected_subnets(node_ip, node_ip6).await;
        let reconciler = Reconciler::start(ReconcileConfig::default())
            .context("starting the dataplane reconciler")?;
        let dataplane = reconciler.handle();

        let my = MyAddrs {
            v4: node_ip.map(|n| n.addr()),
            v6: node_ip6.map(|n| n.addr()),
        };
        let bgp = match cfg.backend {
            Backend::Bird if my.is_empty() => {
                tracing::warn!("IP=none and no IPv6 address: no node address, so no BGP");
                None
            }
            Backend::Bird => Some(Bgp::start(&cfg, &cluster, my).await?),
            _ => None,
        };

        let snapshot = Arc::new(RwLock::new(Snapshot::default()));
        let speaker = Arc::new(RwLock::new(bgp.as_ref().map(|b| b.speaker.clone())));
        // Probes and metrics are up before the socket, so a kubelet sees
        // "not ready" (with the reason) rather than a refused connection
        // while the node comes up.
        let observer = crate::observe::Observer::new(
            crate::observe::Parts {
                node_name: me.clone(),
                cache: cache.clone(),
                kinds: kinds.clone(),
                dataplane: dataplane.clone(),
                speaker: speaker.clone(),
                snapshot: snapshot.clone(),
            },
            started_at,
        );
        observer.serve(cfg.health, cfg.metrics).await?;
        let node_svc = NodeService {
            node_name: me.clone(),
            backend: cfg.backend.as_str(),
            vxlan_fallback: cfg.vxlan_fallback,
            hold_time_seconds: cfg.hold_time.as_secs() as u32,
            started,
            speaker: speaker.clone(),
            snapshot: snapshot.clone(),
            cache: Some(cache.clone()),
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
            let peer_types = crate::grpc::node::bgp_peer_types(snapshot.clone());
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
        // before the first set_desired (the first publish, computed without
        // I/O), and both land in one debounced pass: no pass ever lacks the
        // remote blocks.
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
        // Pods can be networked from here on: in Kubernetes, the Node's
        // NetworkUnavailable condition goes False (CalicoIsUp).
        if let Err(e) = ds.report_node_network(&me, true).await {
            tracing::warn!(error = %e, "setting the Node's NetworkUnavailable condition");
        }

        let inputs = Inputs {
            local: Local {
                name: me.clone(),
                ip: node_ip,
                interface,
                interface6,
                vtep: tunnel.vtep,
                ip6: node_ip6,
                vtep6: tunnel.vtep6,
                connected,
                disable_tx_checksum_offload: cfg.checksum_offload_broken(),
                vxlan_mtu: cfg.vxlan_mtu,
                vxlan_mtu6: cfg.ipv6.vxlan_mtu6,
            },
            bgp: bgp.is_some(),
            routing: cfg.backend != Backend::None,
            fallback: cfg.vxlan_fallback,
            hold_time: cfg.hold_time,
            now: Instant::now(),
            nodes: cluster.node_infos(),
            affinities: cluster.confirmed_affinities(),
            pools: cluster.pool_infos(),
            mesh: bgp.as_ref().map(|b| b.mesh_health()).unwrap_or_default(),
            learned: bgp.as_ref().map(|b| b.learned()).unwrap_or_default(),
            peers: bgp.as_ref().map(|b| b.peer_infos()).unwrap_or_default(),
            resolved: Default::default(),
            last: last_paths,
            lost_since: Default::default(),
        };
        Ok(Daemon {
            base_cfg,
            installation_gen: None,
            installation_retry: false,
            node_mtu,
            cache_rx,
            seen,
            cfg,
            ds,
            cache,
            _reflectors: reflectors,
            ipam,
            cluster,
            node_ip,
            tunnel,
            bgp,
            dataplane,
            _reconciler: reconciler,
            inputs,
            last: None,
            snapshot,
            speaker,
            observer,
            on_fallback: Default::default(),
            fallback_activations: 0,
            trim_due: false,
            ticks: 0,
            started: started_at,
        })
    }
}

/// This node's VXLAN MTU as the status reports it: the configured one,
/// else the node interface's MTU minus VXLAN's 50 bytes.
pub(super) fn node_vxlan_mtu(cfg: &NodeConfig, d: Option<&Detected>) -> Option<u32> {
    cfg.vxlan_mtu.or_else(|| {
        d.filter(|d| d.mtu > 0)
            .map(|d| tabby_felix_lite::mtu::vxlan_mtu(d.mtu, None))
    })
}
