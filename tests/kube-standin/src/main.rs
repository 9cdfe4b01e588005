//! `kube-standin`: the test API server as a process, for shell scripts and
//! kubectl. Prints `listening on http://ADDR` once it accepts connections
//! and serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tabby_kube_standin::{Options, StandIn};

#[derive(Parser)]
#[command(about = "Test-only stand-in for the Kubernetes API server")]
struct Args {
    /// Address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for this server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Register the CRDs in this multi-document YAML file before serving.
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 1.0)]
    bookmark_interval: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let opts = Options {
        bookmark_interval: std::time::Duration::from_secs_f64(args.bookmark_interval.max(0.01)),
        ..Options::default()
    };
    let server = StandIn::start_with(args.listen, opts)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    if let Some(path) = &args.crds {
        let yaml =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let names = server
            .load_crds_yaml(&yaml)
            .with_context(|| format!("loading {}", path.display()))?;
        eprintln!("registered {} CRDs from {}", names.len(), path.display());
    }
    if let Some(path) = &args.kubeconfig {
        server
            .write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("listening on {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    server.stop().await;
    Ok(())
}
