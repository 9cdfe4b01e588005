//! Pods as the IPAM garbage collector's liveness source in the Kubernetes
//! datastore, read as calico-kube-controllers reads them: the whole list
//! once per pass, and each pod again with a GET right before its addresses
//! are released. The addresses a pod owns are those of the
//! WorkloadEndpoint the datastore derives from it
//! ([`crate::datastore::kdd::pod::wep_from_pod`]), so the GC and the rest
//! of Tabby agree on them.

use super::endpoint_ip;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use std::collections::{BTreeSet, HashMap};
use tabby_ipam::check::LiveWorkloads;
use tabby_ipam::gc::{Allocation, PodKey, PodView, Workloads};
use tabby_ipam::store::StoreError;

pub struct KubePods {
    client: Client,
}

impl KubePods {
    pub fn new(client: Client) -> Self {
        KubePods { client }
    }
}

fn unavailable(e: kube::Error) -> StoreError {
    StoreError::Unavailable(format!("reading pods: {e}"))
}

/// What the GC needs of one Pod.
pub fn pod_view(pod: &Pod) -> Option<(PodKey, PodView)> {
    let key = (pod.metadata.namespace.clone()?, pod.metadata.name.clone()?);
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    // Calico waits for the kubelet's report (status.podIP and podIPs).
    let reported = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            && s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    let mut view = PodView {
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        reported,
        finished: matches!(phase, Some("Failed" | "Succeeded")),
        ips: Vec::new(),
    };
    let endpoint = serde_json::to_value(pod)
        .ok()
        .map(|v| crate::datastore::kdd::pod::wep_from_pod(&v));
    match endpoint {
        Some(Ok(Some(crate::resources::Resource::WorkloadEndpoint(w)))) => {
            view.ips = w
                .spec
                .ip_networks
                .iter()
                .filter_map(|n| endpoint_ip(n))
                .collect();
        }
        Some(Ok(_)) => {}
        // A pod the mapping can't read: Calico counts its allocations
        // valid rather than guess.
        Some(Err(_)) | None => view.reported = false,
    }
    Some((key, view))
}

#[async_trait]
impl LiveWorkloads for KubePods {
    async fn snapshot(&self) -> Result<Workloads, StoreError> {
        let list = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(unavailable)?;
        Ok(Workloads {
            pods: Some(list.items.iter().filter_map(pod_view).collect()),
            containers: None,
        })
    }

    async fn recheck(&self, allocs: &[&Allocation]) -> Result<Workloads, StoreError> {
        let keys: BTreeSet<(&str, &str)> = allocs
            .iter()
            .filter_map(|a| Some((a.namespace.as_deref()?, a.pod.as_deref()?)))
            .collect();
        let mut pods = HashMap::new();
        for (ns, name) in keys {
            let api = Api::<Pod>::namespaced(self.client.clone(), ns);
            if let Some(p) = api.get_opt(name).await.map_err(unavailable)? {
                pods.extend(pod_view(&p));
            }
        }
        Ok(Workloads {
            pods: Some(pods),
            containers: None,
        })
    }
}
