//! One gRPC call to the node, with a deadline, its failure as a CNI error.
//! Its own module because both the ADD/DEL flow and IPAM assignment call it.

use super::error::{from_grpc, CniError, TRY_AGAIN_LATER};
use std::time::Duration;

/// Per request; the node's IPAM may wait on a busy datastore.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One request with a deadline; failures mapped to CNI codes.
pub(super) async fn call<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CniError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(from_grpc(what, &s)),
        Err(_) => Err(CniError::new(
            TRY_AGAIN_LATER,
            format!("{what}: the node did not answer within {CALL_TIMEOUT:?}; try again later"),
        )),
    }
}
