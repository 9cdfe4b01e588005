//! The node agent's gRPC surface on its unix socket
//! (`$TABBY_RUN_DIR/tabby.sock`, mode 0600), used by tabbyctl and the CNI
//! plugin, and the `Bgp` service the standalone `tabby-node bgp` serves.

pub mod bgp;
pub mod dataplane;
pub mod ipam;
pub mod node;

#[cfg(test)]
mod bgp_tests;

use hyper_util::rt::TokioIo;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

/// Where tabby-node keeps its socket unless `TABBY_RUN_DIR` (or the CNI
/// conflist's `run_dir`) says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/var/run/tabby";
/// The socket's file name inside the run dir.
pub const SOCKET_NAME: &str = "tabby.sock";

/// The node socket inside `run_dir`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET_NAME)
}

/// Binds the socket, replacing a stale one, readable by root only: the
/// socket hands out addresses and changes the dataplane.
pub fn bind_socket(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// A gRPC channel to the agent's unix socket.
pub async fn connect_unix(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but unused: every connection goes to
    // the socket.
    Endpoint::from_static("http://tabby.sock")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(p).await?)) }
        }))
        .await
}
