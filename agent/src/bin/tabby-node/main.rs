//! tabby-node: the node daemon. With no subcommand (or `node`) it runs the
//! node agent, configured from calico-node's environment variables (see
//! `tabby_agent::node::config`). `tabby-node bgp --config FILE.yaml` runs
//! the BGP speaker on its own, like gobgpd or bird, so it can be peered
//! with and measured without Kubernetes (see `tabby_agent::bgpd`). This
//! file only parses the arguments and dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// FELIX_FEATUREDETECTOVERRIDE.
    Node,
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
}

#[tokio::main]
async fn main() {
    let res = match Cli::parse().command {
        None | Some(Command::Node) => match tabby_agent::node::NodeConfig::from_env() {
            Ok(cfg) => {
                init_logging(&cfg.log);
                tabby_agent::node::run(cfg).await
            }
            Err(e) => {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
        },
        Some(Command::Bgp {
            config,
            grpc_socket,
            restarted,
        }) => {
            init_logging(&std::env::var("TABBY_LOG").unwrap_or_else(|_| "info".into()));
            tabby_agent::bgpd::run(config, grpc_socket, restarted).await
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
