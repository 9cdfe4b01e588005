//! Calls to the local tabby-node over its socket, bounded so a wedged
//! daemon cannot hang the CLI.

use crate::grpc::connect_unix;
use std::path::Path;
use std::time::Duration;
use tabby_proto::node::node_client::NodeClient;
use tabby_proto::node::{StatusRequest, StatusResponse};

/// How long a CLI call waits for the node.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: String,
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Call(#[from] tonic::Status),
    #[error("no answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout,
}

/// A channel to the node socket, its failure naming the socket.
async fn channel(socket: &Path) -> Result<tonic::transport::Channel, ClientError> {
    connect_unix(socket)
        .await
        .map_err(|source| ClientError::Connect {
            socket: socket.display().to_string(),
            source,
        })
}

/// `call`, given at most [`CALL_TIMEOUT`].
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| ClientError::Timeout)?
}

/// One `Node.Status` call.
pub async fn node_status(socket: &Path) -> Result<StatusResponse, ClientError> {
    bounded(async {
        let r = NodeClient::new(channel(socket).await?)
            .status(StatusRequest {})
            .await?;
        Ok(r.into_inner())
    })
    .await
}

/// One `Dataplane.Status` call: the reconciler's last pass, with the items
/// it could not converge.
pub async fn dataplane_status(
    socket: &Path,
) -> Result<tabby_proto::dataplane::DataplaneStatus, ClientError> {
    bounded(async {
        let r =
            tabby_proto::dataplane::dataplane_client::DataplaneClient::new(channel(socket).await?)
                .status(tabby_proto::dataplane::StatusRequest {})
                .await?;
        Ok(r.into_inner())
    })
    .await
}
