//! tabby-node: the node daemon. With no subcommand (or `node`) it runs the
//! node agent, configured from calico-node's environment variables (see
//! `tabby_agent::node::config`). `tabby-node bgp --config FILE.yaml` runs
//! the BGP speaker on its own, like gobgpd or bird, so it can be peered
//! with and measured without Kubernetes (see `tabby_agent::bgpd`).
//! `tabby-node controllers` runs what calico-kube-controllers does (IPAM
//! garbage collection; see `tabby_agent::controllers`). `tabby-node health
//! --live|--ready` is the exec form of the probes (see
//! `tabby_agent::observe::probe`). This file only
//! parses the arguments and dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tabby_agent::observe::probe::Probe;

#[derive(Parser)]
#[command(name = "tabby-node", version, about = "Tabby node daemon")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent (the default), configured by the environment:
    /// NODENAME, IP, IP_AUTODETECTION_METHOD, AS, CALICO_NETWORKING_BACKEND,
    /// DATASTORE_TYPE, TABBY_DATASTORE, ETCD_ENDPOINTS, CALICO_IPV4POOL_*,
    /// TABBY_RUN_DIR, TABBY_VXLAN_FALLBACK, TABBY_BGP_HOLD_TIME,
    /// TABBY_BGP_CONNECT_RETRY, TABBY_LOG, FELIX_VXLANMTU,
    /// FELIX_FEATUREDETECTOVERRIDE, FELIX_HEALTHENABLED, FELIX_HEALTHHOST,
    /// FELIX_HEALTHPORT, FELIX_PROMETHEUSMETRICSENABLED,
    /// FELIX_PROMETHEUSMETRICSHOST, FELIX_PROMETHEUSMETRICSPORT.
    Node,
    /// Ask the running node's health endpoint (FELIX_HEALTHHOST:
    /// FELIX_HEALTHPORT): exit 0 when it passes, else print
    /// `tabby-node is not ready: <why>` (or `live`) and exit 1.
    #[command(group(clap::ArgGroup::new("probe").required(true).args(["live", "ready"])))]
    Health {
        /// Liveness: the node's loops are turning.
        #[arg(long)]
        live: bool,
        /// Readiness: datastore in sync, first dataplane apply done, BGP
        /// peers Established by calico-node's rule.
        #[arg(long)]
        ready: bool,
    },
    /// Run the BGP speaker standalone.
    Bgp {
        /// The speaker's YAML configuration (see `tabby_agent::bgpd::config`).
        #[arg(long)]
        config: PathBuf,
        /// Serve the `Bgp` gRPC API on this unix socket.
        #[arg(long)]
        grpc_socket: Option<PathBuf>,
        /// This start follows a restart: set the Restart State bit of the
        /// graceful-restart capability so peers refresh our stale routes.
        #[arg(long)]
        restarted: bool,
    },
    /// Run the controllers calico-kube-controllers runs (IPAM garbage
    /// collection), elected by a Lease in the Kubernetes datastore.
    /// Environment: DATASTORE_TYPE, KUBECONFIG, TABBY_DATASTORE,
    /// ETCD_ENDPOINTS, TABBY_LEAK_GRACE_PERIOD, POD_NAMESPACE, POD_NAME,
    /// TABBY_LEASE_NAME, TABBY_LEASE_DURATION, TABBY_LEASE_RENEW_PERIOD,
    /// TABBY_LOG.
    Controllers {
        /// How long an address must look leaked before it is released
        /// (Calico's leakGracePeriod; 0 turns that off). Default 15m.
        #[arg(long)]
        leak_grace_period: Option<String>,
        /// The Lease's namespace (default POD_NAMESPACE, else kube-system).
        #[arg(long)]
        lease_namespace: Option<String>,
        /// The Lease's name (default tabby-kube-controllers).
        #[arg(long)]
        lease_name: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    let res = match Cli::parse().command {
        None | Some(Command::Node) => match tabby_agent::node::NodeConfig::from_env() {
            Ok(cfg) => {
                init_logging(&cfg.log);
                // The CNI plugin's kubeconfig token, refreshed before it
                // expires (on only in the DaemonSet: TABBY_CNI_KUBECONFIG).
                match tabby_agent::cni::install::refresh::Refresher::from_env(|k| {
                    std::env::var(k).ok()
                }) {
                    Ok(Some(r)) => {
                        tokio::spawn(r.run());
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("Error: TABBY_CNI_KUBECONFIG: {e}");
                        std::process::exit(1);
                    }
                }
                tabby_agent::node::run(cfg).await
            }
            Err(e) => {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
        },
        Some(Command::Health { live, ready: _ }) => {
            let probe = if live { Probe::Live } else { Probe::Ready };
            let env = std::env::vars().collect();
            let res = match tabby_agent::node::config::health_addr(&env) {
                Ok(addr) => tabby_agent::observe::probe::run(probe, addr)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            if let Err(why) = res {
                println!("tabby-node is not {}: {why}", probe.word());
                std::process::exit(1);
            }
            Ok(())
        }
        Some(Command::Bgp {
            config,
            grpc_socket,
            restarted,
        }) => {
            init_logging(&std::env::var("TABBY_LOG").unwrap_or_else(|_| "info".into()));
            tabby_agent::bgpd::run(config, grpc_socket, restarted).await
        }
        Some(Command::Controllers {
            leak_grace_period,
            lease_namespace,
            lease_name,
        }) => {
            let args = tabby_agent::controllers::ControllersArgs {
                leak_grace_period,
                lease_namespace,
                lease_name,
            };
            match tabby_agent::controllers::ControllersConfig::from_env(args) {
                Ok(cfg) => {
                    init_logging(&cfg.log);
                    tabby_agent::controllers::run(cfg).await.map_err(Into::into)
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    std::process::exit(1);
                }
            }
        }
    };
    if let Err(e) = res {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
