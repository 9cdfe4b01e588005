//! tabby-node: the node daemon. With no subcommand (or `node`) it runs the
//! node agent, configured from calico-node's environment variables (see
//! `tabby_agent::node::config`). `tabby-node bgp --config FILE.yaml` runs
//! the BGP speaker on its own, like gobgpd or bird, so it can be peered
//! with and measured without Kubernetes.

mod install;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tabby_agent::grpc::bgp::BgpService;
use tabby_bgp::daemon_config::DaemonConfig;
use tabby_bgp::speaker::Speaker;

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
    /// TABBY_BGP_CONNECT_RETRY, TABBY_LOG.
    Node,
    /// Run the BGP speaker standalone.
    Bgp {
        /// The speaker's YAML configuration (see `tabby_bgp::daemon_config`).
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
            bgp(config, grpc_socket, restarted).await
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

async fn bgp(config: PathBuf, grpc_socket: Option<PathBuf>, restarted: bool) -> anyhow::Result<()> {
    let cfg = DaemonConfig::load(&config)?;
    let speaker = Speaker::start(cfg.speaker_config(restarted)).await?;
    tracing::info!(
        router_id = %cfg.router_id,
        asn = cfg.as_number,
        listen = %cfg.listen(),
        peers = cfg.peers.len(),
        "BGP speaker running"
    );
    if cfg.install_routes {
        let watch = speaker.watch().await?;
        let s = speaker.clone();
        tokio::spawn(async move {
            if let Err(e) = install::run(s, watch).await {
                tracing::error!(error = %format!("{e:#}"), "kernel route install stopped");
            }
        });
    }
    if let Some(path) = grpc_socket {
        let listener = tabby_agent::grpc::bind_socket(&path)
            .with_context(|| format!("binding the gRPC socket {}", path.display()))?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let svc = BgpService::standalone(speaker.clone()).into_server();
        tokio::spawn(async move {
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
            {
                tracing::error!(error = %e, "gRPC server stopped");
            }
        });
    }
    shutdown_signal().await;
    tracing::info!("shutting down: sending Cease to every peer");
    speaker.shutdown().await?;
    // Let the writers flush the NOTIFICATIONs.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
