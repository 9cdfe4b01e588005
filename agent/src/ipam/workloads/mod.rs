//! Which workloads are live, for `ipam check` and the IPAM garbage
//! collector (`tabby_ipam::gc` judges; this reads).
//!
//! - [`WorkloadEndpoints`]: the embedded datastores' WorkloadEndpoints, one
//!   per pod interface as the CNI plugin writes them (with the pod's
//!   namespace, name, node, addresses and sandbox container ID).
//! - [`kube::KubePods`]: in the Kubernetes datastore, the Pods themselves,
//!   as calico-kube-controllers reads them: a Pod says more than the
//!   endpoint derived from it (whether it has finished, whether the kubelet
//!   has reported its addresses yet).

pub mod kube;

use crate::datastore::Datastore;
use crate::resources::{Kind, Resource};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use tabby_ipam::check::LiveWorkloads;
use tabby_ipam::gc::{PodKey, PodView, Workloads};
use tabby_ipam::store::StoreError;

pub struct WorkloadEndpoints {
    ds: Arc<dyn Datastore>,
}

impl WorkloadEndpoints {
    pub fn new(ds: Arc<dyn Datastore>) -> Self {
        WorkloadEndpoints { ds }
    }
}

/// An endpoint's `ipNetworks` entry (`10.0.0.5/32`, or a bare address).
pub(crate) fn endpoint_ip(net: &str) -> Option<IpAddr> {
    net.split('/').next()?.trim().parse().ok()
}

#[async_trait]
impl LiveWorkloads for WorkloadEndpoints {
    async fn snapshot(&self) -> Result<Workloads, StoreError> {
        let l = self
            .ds
            .list(Kind::WorkloadEndpoint, None)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut pods: HashMap<PodKey, PodView> = HashMap::new();
        let mut containers = HashSet::new();
        for r in l.items {
            let Resource::WorkloadEndpoint(w) = r else {
                continue;
            };
            if !w.spec.container_id.is_empty() {
                containers.insert(w.spec.container_id.clone());
            }
            if w.spec.pod.is_empty() {
                continue;
            }
            let key = (
                w.metadata.namespace.clone().unwrap_or_default(),
                w.spec.pod.clone(),
            );
            // A pod with several interfaces has an endpoint for each.
            let view = pods.entry(key).or_default();
            view.node = Some(w.spec.node.clone()).filter(|n| !n.is_empty());
            view.ips
                .extend(w.spec.ip_networks.iter().filter_map(|n| endpoint_ip(n)));
            view.reported = !view.ips.is_empty();
        }
        Ok(Workloads {
            pods: Some(pods),
            containers: Some(containers),
        })
    }
}

/// The liveness source for `ds`: Pods in Kubernetes (over the datastore's
/// own client), WorkloadEndpoints otherwise.
pub fn live_workloads(ds: Arc<dyn Datastore>) -> Box<dyn LiveWorkloads> {
    match ds.kube_client() {
        Some(client) => Box::new(kube::KubePods::new(client)),
        None => Box::new(WorkloadEndpoints::new(ds)),
    }
}
