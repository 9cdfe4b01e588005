//! Which workloads are live, for `ipam check`, in the embedded datastore:
//! the WorkloadEndpoints the node agents write (one per pod interface,
//! carrying the pod sandbox's container ID, as Calico's CNI plugin writes
//! them). A Kubernetes backend would implement the same trait from Pods.

use crate::datastore::Datastore;
use crate::resources::{Kind, Resource};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::Arc;
use tabby_ipam::check::{LiveWorkloads, PodAllocation};
use tabby_ipam::store::StoreError;

pub struct WorkloadEndpoints {
    ds: Arc<dyn Datastore>,
}

impl WorkloadEndpoints {
    pub fn new(ds: Arc<dyn Datastore>) -> Self {
        WorkloadEndpoints { ds }
    }
}

#[async_trait]
impl LiveWorkloads for WorkloadEndpoints {
    async fn live(&self, allocs: &[PodAllocation]) -> Result<Vec<bool>, StoreError> {
        let l = self
            .ds
            .list(Kind::WorkloadEndpoint, None)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let containers: HashSet<String> = l
            .items
            .into_iter()
            .filter_map(|r| match r {
                Resource::WorkloadEndpoint(w) if !w.spec.container_id.is_empty() => {
                    Some(w.spec.container_id)
                }
                _ => None,
            })
            .collect();
        containers.live(allocs).await
    }
}
