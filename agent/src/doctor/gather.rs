//! Gathering a doctor run's context: the kernel, the local tabby-node and
//! the cluster, each kept as a `Result` so a missing source is reported
//! once and the checks of the others still run.

use super::Finding;
use crate::datastore::Datastore;
use crate::grpc::connect_unix;
use crate::resources::{
    BgpConfiguration, BgpPeer, BlockAffinity, IpPool, IpamBlock, IpamConfig, Kind, Node, Resource,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_proto::bgp::bgp_client::BgpClient;
use tabby_proto::dataplane::dataplane_client::DataplaneClient;
use tabby_proto::node::node_client::NodeClient;

/// How long one call to the local agent may take.
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the doctor was asked to look at.
#[derive(Debug, Clone)]
pub struct Options {
    /// The local tabby-node's socket.
    pub socket: PathBuf,
    /// A route-table limit to hold the block routes against (a cloud VPC
    /// route table); None: no limit.
    pub route_limit: Option<u64>,
    /// Where the runtime reads CNI conflists and plugin binaries.
    pub cni_net_dir: PathBuf,
    pub cni_bin_dir: PathBuf,
    /// The cluster's service CIDRs (beside BGPConfiguration's
    /// `serviceClusterIPs`), which no pool may overlap.
    pub service_cidrs: Vec<ipnet::IpNet>,
    /// Send probes (DF-bit pings, the VXLAN probe, TCP 179 connects).
    pub probes: bool,
    pub probe_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            socket: crate::grpc::socket_path(crate::grpc::DEFAULT_RUN_DIR.as_ref()),
            route_limit: None,
            cni_net_dir: "/etc/cni/net.d".into(),
            cni_bin_dir: "/opt/cni/bin".into(),
            service_cidrs: Vec::new(),
            probes: true,
            probe_timeout: Duration::from_secs(2),
        }
    }
}

/// The local tabby-node's own view, over its socket.
#[derive(Debug, Clone)]
pub struct Agent {
    pub status: tabby_proto::node::StatusResponse,
    pub dataplane: tabby_proto::dataplane::DataplaneStatus,
    /// Empty when the node runs no BGP speaker.
    pub peers: Vec<tabby_proto::bgp::PeerStatus>,
}

/// The cluster as the datastore has it.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub pools: Vec<IpPool>,
    pub blocks: Vec<IpamBlock>,
    pub affinities: Vec<BlockAffinity>,
    pub bgp_configs: Vec<BgpConfiguration>,
    pub bgp_peers: Vec<BgpPeer>,
    pub ipam_config: Option<IpamConfig>,
    /// The store revision the lists were read at.
    pub revision: String,
}

/// Everything one doctor run reads. Built once by [`gather`]; every check
/// reads it and sends only its own probes.
pub struct Ctx {
    /// This node's name: the agent's, else `NODENAME`, else the hostname
    /// (calico-node's order).
    pub node_name: String,
    /// The environment the doctor runs with: in calico-node's pod (or the
    /// lab's `lab exec NODE`) it is tabby-node's own.
    pub env: BTreeMap<String, String>,
    pub kernel: Result<KernelSnapshot, String>,
    pub agent: Result<Agent, String>,
    pub cluster: Result<Cluster, String>,
    pub datastore: Option<std::sync::Arc<dyn Datastore>>,
    pub opts: Options,
}

impl Ctx {
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    pub fn kernel(&self) -> Option<&KernelSnapshot> {
        self.kernel.as_ref().ok()
    }

    pub fn agent(&self) -> Option<&Agent> {
        self.agent.as_ref().ok()
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref().ok()
    }

    /// This node's Node resource.
    pub fn this_node(&self) -> Option<&Node> {
        self.cluster()?
            .nodes
            .iter()
            .find(|n| n.metadata.name == self.node_name)
    }

    /// The other nodes of the cluster.
    pub fn remote_nodes(&self) -> impl Iterator<Item = &Node> {
        let me = self.node_name.clone();
        self.cluster()
            .into_iter()
            .flat_map(|c| c.nodes.iter())
            .filter(move |n| n.metadata.name != me)
    }
}

/// A node's IPv4 address (`spec.bgp.ipv4Address` without its prefix).
pub fn node_ipv4(n: &Node) -> Option<std::net::Ipv4Addr> {
    n.spec
        .bgp
        .as_ref()?
        .ipv4_address
        .as_deref()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// A node's IPv4 address with its prefix (the node subnet).
pub fn node_ipv4_net(n: &Node) -> Option<ipnet::Ipv4Net> {
    let a = n.spec.bgp.as_ref()?.ipv4_address.as_deref()?;
    a.parse()
        .ok()
        .or_else(|| ipnet::Ipv4Net::new(a.parse().ok()?, 32).ok())
}

/// Reads everything. `ds` is None when no datastore could be reached (the
/// reason is `ds_error`).
pub async fn gather(opts: Options, ds: Result<std::sync::Arc<dyn Datastore>, String>) -> Ctx {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let kernel =
        KernelSnapshot::read().map_err(|e| format!("reading the kernel over netlink: {e}"));
    let agent = agent_view(&opts.socket).await;
    let (cluster, datastore) = match ds {
        Ok(ds) => (cluster_view(ds.as_ref()).await, Some(ds)),
        Err(e) => (Err(e), None),
    };
    let node_name = agent
        .as_ref()
        .ok()
        .map(|a| a.status.node_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| env.get("NODENAME").cloned())
        .or_else(|| env.get("HOSTNAME").cloned())
        .unwrap_or_else(hostname);
    Ctx {
        node_name,
        env,
        kernel,
        agent,
        cluster,
        datastore,
        opts,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn agent_view(socket: &Path) -> Result<Agent, String> {
    let call = async {
        let ch = connect_unix(socket).await.map_err(|e| e.to_string())?;
        let status = NodeClient::new(ch.clone())
            .status(tabby_proto::node::StatusRequest {})
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        let dataplane = DataplaneClient::new(ch.clone())
            .status(tabby_proto::dataplane::StatusRequest {})
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        // No Bgp service means no speaker on this node (VXLAN-only).
        let peers = BgpClient::new(ch)
            .list_peers(tabby_proto::bgp::ListPeersRequest {})
            .await
            .map(|r| r.into_inner().peers)
            .unwrap_or_default();
        Ok::<_, String>(Agent {
            status,
            dataplane,
            peers,
        })
    };
    match tokio::time::timeout(AGENT_TIMEOUT, call).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) => Err(format!("{}: {e}", socket.display())),
        Err(_) => Err(format!(
            "{}: no answer within {} s",
            socket.display(),
            AGENT_TIMEOUT.as_secs()
        )),
    }
}

async fn cluster_view(ds: &dyn Datastore) -> Result<Cluster, String> {
    let mut c = Cluster::default();
    for kind in [
        Kind::Node,
        Kind::IpPool,
        Kind::IpamBlock,
        Kind::BlockAffinity,
        Kind::BgpConfiguration,
        Kind::BgpPeer,
        Kind::IpamConfig,
    ] {
        let list = ds
            .list(kind, None)
            .await
            .map_err(|e| format!("listing {}: {e}", kind.plural()))?;
        c.revision = list.revision.to_string();
        for r in list.items {
            match r {
                Resource::Node(n) => c.nodes.push(n),
                Resource::IpPool(p) => c.pools.push(p),
                Resource::IpamBlock(b) => c.blocks.push(b),
                Resource::BlockAffinity(a) => c.affinities.push(a),
                Resource::BgpConfiguration(b) => c.bgp_configs.push(b),
                Resource::BgpPeer(p) => c.bgp_peers.push(p),
                Resource::IpamConfig(i) => c.ipam_config = Some(i),
                _ => {}
            }
        }
    }
    Ok(c)
}

/// Findings about the sources themselves: a kernel that cannot be read, a
/// tabby-node that does not answer, a datastore that cannot be listed.
pub(super) fn source_findings(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(e) = &ctx.kernel {
        out.push(
            Finding::error("kernel", "cannot read this node's routes and links")
                .evidence(e.clone())
                .fix("run tabbyctl node doctor as root in the host's network namespace (hostNetwork: true)"),
        );
    }
    if let Err(e) = &ctx.agent {
        out.push(
            Finding::error("agent", "tabby-node does not answer on its socket")
                .evidence(e.clone())
                .fix("start tabby-node (its log says why it stopped), or point TABBY_RUN_DIR at its run dir"),
        );
    }
    if let Err(e) = &ctx.cluster {
        out.push(
            Finding::error("datastore", "the datastore cannot be read")
                .evidence(e.clone())
                .fix("check DATASTORE_TYPE and ETCD_ENDPOINTS / KUBECONFIG / TABBY_DATASTORE, and that the datastore is up"),
        );
    }
    out
}
