//! The `Dataplane` gRPC service on the node's socket: how the CNI plugin
//! hands a pod to the node.
//!
//! AddWorkload records the pod as a Calico WorkloadEndpoint (so it survives
//! a node restart and `ipam check` sees the address as live) and tells the
//! reconciler, which installs `<ip>/32 dev cali…` (protocol 81) and the
//! host end's sysctls; with `ipv6` set (dual stack) also `<ipv6>/128 dev
//! cali…` and the host end's IPv6 side. RemoveWorkload undoes both and is idempotent. The
//! WorkloadEndpoint is written before the reconciler is told, so a node
//! that restarts in between restores the route from it
//! ([`restore_workloads`]).
//!
//! SetDesiredState is refused: on a node, tabby-node computes the desired
//! state itself from the datastore and BGP and is its only writer; a second
//! writer over the socket would be overwritten on the node's next change
//! and would fight it until then.

use crate::datastore::{Datastore, Error as DsError};
use crate::resources::workload::{workload_endpoint_name, WorkloadEndpointSpec};
use crate::resources::{Kind, Resource, WorkloadEndpoint};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tabby_felix_lite::model::{Workload, Workload6};
use tabby_felix_lite::reconcile::ReconcilerHandle;
use tabby_proto::dataplane as pb;
use tonic::{Request, Response, Status};

/// How long AddWorkload waits for the reconciler to program the route, so
/// the pod has connectivity when the CNI ADD returns. On timeout the call
/// still succeeds: the reconciler keeps retrying.
const PROGRAM_WAIT: Duration = Duration::from_secs(5);

pub struct DataplaneService {
    ds: Arc<dyn Datastore>,
    node: String,
    handle: ReconcilerHandle,
    interface: String,
    node_ip: String,
}

impl DataplaneService {
    pub fn new(ds: Arc<dyn Datastore>, node: &str, handle: ReconcilerHandle) -> Self {
        DataplaneService {
            ds,
            node: node.to_string(),
            handle,
            interface: String::new(),
            node_ip: String::new(),
        }
    }

    /// The node's interface and address, reported by Status.
    pub fn with_node_address(mut self, interface: &str, node_ip: &str) -> Self {
        self.interface = interface.to_string();
        self.node_ip = node_ip.to_string();
        self
    }
}

fn parse_ip(field: &str, s: &str) -> Result<Ipv4Addr, Status> {
    // Accept "a.b.c.d" and "a.b.c.d/32".
    let bare = s.split('/').next().unwrap_or(s);
    bare.parse()
        .map_err(|_| Status::invalid_argument(format!("{field}: {s:?} is not an IPv4 address")))
}

/// `ipv6`: empty is none; "x::y" and "x::y/128" are accepted.
fn parse_ip6(field: &str, s: &str) -> Result<Option<Ipv6Addr>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    let bare = s.split('/').next().unwrap_or(s);
    bare.parse()
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("{field}: {s:?} is not an IPv6 address")))
}

fn ds_status(e: DsError) -> Status {
    match e {
        DsError::Unavailable(_) => Status::unavailable(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The address a WorkloadEndpoint carries (its first IPv4 network; none
/// for an IPv6-only pod).
fn endpoint_ip(w: &WorkloadEndpoint) -> Option<Ipv4Addr> {
    w.spec
        .ip_networks
        .iter()
        .find_map(|n| n.split('/').next().and_then(|a| a.parse().ok()))
}

/// The endpoint's IPv6 address (its first IPv6 network), dual stack.
fn endpoint_ip6(w: &WorkloadEndpoint) -> Option<Ipv6Addr> {
    w.spec
        .ip_networks
        .iter()
        .find_map(|n| n.split('/').next().and_then(|a| a.parse().ok()))
}

fn model_workload6(w: &WorkloadEndpoint, ip: Ipv6Addr) -> Workload6 {
    Workload6 {
        ip,
        host_interface: w.spec.interface_name.clone(),
        workload_id: w.metadata.namespaced_key(),
    }
}

fn model_workload(w: &WorkloadEndpoint, ip: Ipv4Addr) -> Workload {
    Workload {
        ip,
        host_interface: w.spec.interface_name.clone(),
        workload_id: w.metadata.namespaced_key(),
    }
}

impl DataplaneService {
    fn endpoint_for(
        &self,
        w: &pb::Workload,
        ip: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> Result<WorkloadEndpoint, Status> {
        let node = if w.node.is_empty() {
            &self.node
        } else {
            &w.node
        };
        let iface = if w.interface_name.is_empty() {
            "eth0"
        } else {
            &w.interface_name
        };
        if w.pod.is_empty() {
            return Err(Status::invalid_argument("pod is empty"));
        }
        if w.host_interface.is_empty() {
            return Err(Status::invalid_argument("host_interface is empty"));
        }
        let name = workload_endpoint_name(node, &w.pod, iface).map_err(Status::invalid_argument)?;
        let namespace = if w.namespace.is_empty() {
            "default"
        } else {
            &w.namespace
        };
        let spec = WorkloadEndpointSpec {
            orchestrator: "k8s".into(),
            node: node.to_string(),
            container_id: w.container_id.clone(),
            pod: w.pod.clone(),
            endpoint: iface.to_string(),
            // As Calico writes a dual-stack pod's: the /32, then the /128
            // (only the /128 for an IPv6-only pod).
            ip_networks: ip
                .map(|a| format!("{a}/32"))
                .into_iter()
                .chain(ip6.map(|a| format!("{a}/128")))
                .collect(),
            profiles: vec![format!("kns.{namespace}")],
            interface_name: w.host_interface.clone(),
            mac: w.mac.clone(),
            ..Default::default()
        };
        let mut wep = WorkloadEndpoint::new("WorkloadEndpoint", &name, spec);
        wep.metadata.namespace = Some(namespace.to_string());
        for (k, v) in [
            ("projectcalico.org/namespace", namespace),
            ("projectcalico.org/orchestrator", "k8s"),
        ] {
            wep.metadata.labels.insert(k.into(), v.into());
        }
        Ok(wep)
    }

    /// Create, or replace what is there (an ADD retried by the runtime,
    /// or the same pod re-created with a new sandbox).
    async fn put_endpoint(&self, wep: WorkloadEndpoint) -> Result<(), Status> {
        for _ in 0..5 {
            match self
                .ds
                .create(Resource::WorkloadEndpoint(wep.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(DsError::AlreadyExists { .. }) => {}
                Err(e) => return Err(ds_status(e)),
            }
            let key = wep.metadata.namespaced_key();
            let current = match self.ds.get(Kind::WorkloadEndpoint, &key).await {
                Ok(r) => r,
                Err(DsError::NotFound { .. }) => continue,
                Err(e) => return Err(ds_status(e)),
            };
            let mut next = Resource::WorkloadEndpoint(wep.clone());
            next.metadata_mut().resource_version = current.metadata().resource_version.clone();
            next.metadata_mut().uid = current.metadata().uid.clone();
            next.metadata_mut().creation_timestamp = current.metadata().creation_timestamp.clone();
            match self.ds.update(next).await {
                Ok(_) => return Ok(()),
                Err(DsError::Conflict { .. } | DsError::NotFound { .. }) => continue,
                Err(e) => return Err(ds_status(e)),
            }
        }
        Err(Status::aborted(format!(
            "WorkloadEndpoint {} kept changing under concurrent writers",
            wep.metadata.namespaced_key()
        )))
    }

    async fn get_endpoint(&self, key: &str) -> Result<Option<WorkloadEndpoint>, Status> {
        match self.ds.get(Kind::WorkloadEndpoint, key).await {
            Ok(Resource::WorkloadEndpoint(w)) => Ok(Some(w)),
            Ok(_) => Ok(None),
            Err(DsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(ds_status(e)),
        }
    }

    /// The endpoint of this node that holds `ip`, if any.
    async fn endpoint_by_ip(&self, ip: Ipv4Addr) -> Result<Option<WorkloadEndpoint>, Status> {
        let list = self
            .ds
            .list(Kind::WorkloadEndpoint, None)
            .await
            .map_err(ds_status)?;
        Ok(list.items.into_iter().find_map(|r| match r {
            Resource::WorkloadEndpoint(w)
                if w.spec.node == self.node && endpoint_ip(&w) == Some(ip) =>
            {
                Some(w)
            }
            _ => None,
        }))
    }
}

#[tonic::async_trait]
impl pb::dataplane_server::Dataplane for DataplaneService {
    async fn set_desired_state(
        &self,
        _request: Request<pb::SetDesiredStateRequest>,
    ) -> Result<Response<pb::SetDesiredStateResponse>, Status> {
        Err(Status::failed_precondition(
            "tabby-node computes this node's desired dataplane state itself (from the \
             datastore and BGP) and is its only writer; use AddWorkload/RemoveWorkload for pods",
        ))
    }

    async fn add_workload(
        &self,
        request: Request<pb::Workload>,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let w = request.into_inner();
        // An IPv6-only pod has no IPv4 address; a pod with neither is none.
        let ip = match w.ip.is_empty() {
            true => None,
            false => Some(parse_ip("ip", &w.ip)?),
        };
        let ip6 = parse_ip6("ipv6", &w.ipv6)?;
        if ip.is_none() && ip6.is_none() {
            return Err(Status::invalid_argument(
                "ip and ipv6 are both empty: expected the pod's IPv4 address, its IPv6 address or both",
            ));
        }
        let wep = self.endpoint_for(&w, ip, ip6)?;
        let key = wep.metadata.namespaced_key();
        self.put_endpoint(wep.clone()).await?;
        let mut generation = None;
        let mut labels = Vec::new();
        if let Some(ip) = ip {
            let w4 = model_workload(&wep, ip);
            labels.push(tabby_felix_lite::reconcile::plan::workload_label(&w4));
            generation = Some(self.handle.add_workload(w4));
        }
        if let Some(ip6) = ip6 {
            let w6 = model_workload6(&wep, ip6);
            labels.push(tabby_felix_lite::reconcile::plan6::workload_label6(&w6));
            generation = Some(self.handle.add_workload6(w6));
        }
        let generation = generation.expect("one of ip and ipv6 is set (checked above)");
        tracing::info!(endpoint = %key, ip = ?ip, ipv6 = ?ip6, host_interface = %w.host_interface, "workload added");
        match tokio::time::timeout(PROGRAM_WAIT, self.handle.wait_for_generation(generation)).await
        {
            Ok(Some(status)) => {
                if let Some(f) = status
                    .last_pass
                    .failures
                    .iter()
                    .find(|f| labels.contains(&f.item))
                {
                    tracing::warn!(endpoint = %key, error = %f.error, "workload route not programmed yet; the reconciler retries");
                }
            }
            Ok(None) => return Err(Status::unavailable("the reconciler has stopped")),
            Err(_) => tracing::warn!(endpoint = %key, "reconciler pass did not finish in time"),
        }
        Ok(Response::new(pb::WorkloadResponse {
            workload_endpoint: key,
            ip: ip.map(|a| a.to_string()).unwrap_or_default(),
            kept_for_other_container: false,
            ipv6: ip6.map(|a| a.to_string()).unwrap_or_default(),
        }))
    }

    async fn remove_workload(
        &self,
        request: Request<pb::RemoveWorkloadRequest>,
    ) -> Result<Response<pb::WorkloadResponse>, Status> {
        let r = request.into_inner();
        let wep = if !r.pod.is_empty() {
            let iface = if r.interface_name.is_empty() {
                "eth0"
            } else {
                &r.interface_name
            };
            let name = workload_endpoint_name(&self.node, &r.pod, iface)
                .map_err(Status::invalid_argument)?;
            let ns = if r.namespace.is_empty() {
                "default"
            } else {
                &r.namespace
            };
            self.get_endpoint(&format!("{ns}/{name}")).await?
        } else if !r.ip.is_empty() {
            self.endpoint_by_ip(parse_ip("ip", &r.ip)?).await?
        } else {
            return Err(Status::invalid_argument(
                "name the workload: pod (with namespace and interface_name) or ip",
            ));
        };
        let Some(wep) = wep else {
            // Already gone (DEL is idempotent); still drop a route the
            // caller names by address.
            if let Ok(ip) = parse_ip("ip", &r.ip) {
                self.handle.remove_workload(ip);
            }
            return Ok(Response::new(pb::WorkloadResponse::default()));
        };
        if !r.container_id.is_empty()
            && !wep.spec.container_id.is_empty()
            && wep.spec.container_id != r.container_id
        {
            // The pod was re-created with a new sandbox that owns the
            // endpoint now; a late DEL for the old one must not remove it.
            tracing::info!(endpoint = %wep.metadata.namespaced_key(), "DEL for an older sandbox; endpoint kept");
            return Ok(Response::new(pb::WorkloadResponse {
                workload_endpoint: wep.metadata.namespaced_key(),
                ip: endpoint_ip(&wep).map(|i| i.to_string()).unwrap_or_default(),
                kept_for_other_container: true,
                ipv6: endpoint_ip6(&wep)
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
            }));
        }
        let key = wep.metadata.namespaced_key();
        let ip = endpoint_ip(&wep);
        let ip6 = endpoint_ip6(&wep);
        match self.ds.delete(Kind::WorkloadEndpoint, &key, None).await {
            Ok(_) | Err(DsError::NotFound { .. }) => {}
            Err(e) => return Err(ds_status(e)),
        }
        let mut generation = ip.map(|ip| self.handle.remove_workload(ip));
        if let Some(ip6) = ip6 {
            generation = Some(self.handle.remove_workload6(ip6));
        }
        if let Some(generation) = generation {
            let _ = tokio::time::timeout(PROGRAM_WAIT, self.handle.wait_for_generation(generation))
                .await;
        }
        tracing::info!(endpoint = %key, ip = ?ip, ipv6 = ?ip6, "workload removed");
        Ok(Response::new(pb::WorkloadResponse {
            workload_endpoint: key,
            ip: ip.map(|i| i.to_string()).unwrap_or_default(),
            kept_for_other_container: false,
            ipv6: ip6.map(|i| i.to_string()).unwrap_or_default(),
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::DataplaneStatus>, Status> {
        let s = self.handle.status();
        let pass = &s.last_pass;
        Ok(Response::new(pb::DataplaneStatus {
            interface: self.interface.clone(),
            node_ip: self.node_ip.clone(),
            pod_mtu: pass.pod_mtu.unwrap_or(0),
            routes_programmed: pass.routes_programmed as u32,
            last_sync_unix: s
                .last_sync
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            errors: pass
                .failures
                .iter()
                .chain(&pass.standing)
                .map(|f| f.to_string())
                .collect(),
            node_name: self.node.clone(),
        }))
    }
}

/// At node start: gives the reconciler every workload of `node_name` from
/// its WorkloadEndpoints, so pods keep their routes across a restart.
/// Returns how many were restored; endpoints without a usable address or
/// host interface are skipped with a warning.
pub async fn restore_workloads(
    ds: &dyn Datastore,
    node_name: &str,
    handle: &ReconcilerHandle,
) -> Result<usize, DsError> {
    let list = ds.list(Kind::WorkloadEndpoint, None).await?;
    let mut restored = 0;
    for r in list.items {
        let Resource::WorkloadEndpoint(w) = r else {
            continue;
        };
        if w.spec.node != node_name {
            continue;
        }
        let (ip, ip6) = (endpoint_ip(&w), endpoint_ip6(&w));
        if w.spec.interface_name.is_empty() || (ip.is_none() && ip6.is_none()) {
            tracing::warn!(
                endpoint = %w.metadata.namespaced_key(),
                "WorkloadEndpoint has no address or interfaceName; not restored"
            );
            continue;
        }
        if let Some(ip) = ip {
            handle.add_workload(model_workload(&w, ip));
        }
        if let Some(ip6) = ip6 {
            handle.add_workload6(model_workload6(&w, ip6));
        }
        restored += 1;
    }
    tracing::info!(
        restored,
        node = node_name,
        "workloads restored from WorkloadEndpoints"
    );
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_follow_calico() {
        assert_eq!(
            workload_endpoint_name("node1", "nginx", "eth0").unwrap(),
            "node1-k8s-nginx-eth0"
        );
        assert_eq!(
            workload_endpoint_name("worker-1", "web-7d9f-abc", "eth0").unwrap(),
            "worker--1-k8s-web--7d9f--abc-eth0"
        );
        let e = workload_endpoint_name("node1", "-bad", "eth0").unwrap_err();
        assert!(e.contains("pod"), "{e}");
        assert!(workload_endpoint_name("", "p", "eth0")
            .unwrap_err()
            .contains("node"));
    }
}
