//! The standalone BGP daemon: `tabby-node bgp --config FILE.yaml
//! [--grpc-socket PATH] [--restarted]` runs Tabby's speaker on its own,
//! like bird or gobgpd, so it can be peered with and measured without
//! Kubernetes or a datastore. The file's format is in [`config`]; with
//! `installRoutes: true` learned best paths go into the kernel ([`install`]).
//!
//! It lives in the agent, not in tabby-bgp, because it is wiring: YAML,
//! the gRPC socket, signals and `ip`; the speaker crate stays a library.

pub mod config;
mod install;

pub use config::{ConfigError, DaemonConfig, DaemonPeer, NextHopMode};

use crate::grpc::bgp::BgpService;
use anyhow::Context;
use std::path::PathBuf;
use tabby_bgp::speaker::Speaker;

/// Runs the speaker from the YAML file at `config` until SIGTERM or
/// Ctrl-C, then sends Cease to every peer. `grpc_socket` serves the whole
/// `Bgp` API there ([`BgpService::standalone`]); `restarted` sets the
/// Restart State bit of the graceful-restart capability so peers refresh
/// the routes they kept.
pub async fn run(
    config: PathBuf,
    grpc_socket: Option<PathBuf>,
    restarted: bool,
) -> anyhow::Result<()> {
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
        let listener = crate::grpc::bind_socket(&path)
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
    // Returns once every Cease is written out.
    speaker.shutdown().await?;
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
