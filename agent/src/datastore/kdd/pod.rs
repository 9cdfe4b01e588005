//! WorkloadEndpoints in the Kubernetes datastore are not stored: each is
//! derived from its Pod, as libcalico-go's `conversion/workload_endpoint.go`
//! does. Writing one patches the Pod's status with the annotations Calico's
//! CNI plugin sets (`cni.projectcalico.org/podIP`, `podIPs`,
//! `containerID`); deleting one blanks the addresses.

use super::error::revision;
use crate::datastore::Error;
use crate::resources::workload::{workload_endpoint_name, WorkloadEndpointSpec};
use crate::resources::{Kind, Resource, WorkloadEndpoint};
use serde_json::{json, Value};
use tabby_felix_lite::derive::host_veth_name;

pub const POD_IP: &str = "cni.projectcalico.org/podIP";
pub const POD_IPS: &str = "cni.projectcalico.org/podIPs";
pub const CONTAINER_ID: &str = "cni.projectcalico.org/containerID";
/// Pod (or namespace) annotations naming the pools to assign from.
pub const IPV4_POOLS: &str = "cni.projectcalico.org/ipv4pools";
pub const IPV6_POOLS: &str = "cni.projectcalico.org/ipv6pools";
/// A pod annotation asking for specific addresses.
pub const IP_ADDRS: &str = "cni.projectcalico.org/ipAddrs";

fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn as_cidr(ip: &str) -> String {
    if ip.contains('/') {
        ip.to_string()
    } else if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

/// The pod's addresses in Calico's order of trust: what the kubelet
/// reported, then what the CNI plugin annotated.
fn pod_ips(pod: &Value) -> Vec<String> {
    let from_status: Vec<String> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("ip").and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .map(as_cidr)
                .collect()
        })
        .unwrap_or_default();
    if !from_status.is_empty() {
        return from_status;
    }
    if let Some(ip) = s(pod, "/status/podIP") {
        return vec![as_cidr(ip)];
    }
    let ann = pod.pointer("/metadata/annotations");
    let get = |k: &str| {
        ann.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(ips) = get(POD_IPS) {
        return ips.split(',').map(|x| as_cidr(x.trim())).collect();
    }
    get(POD_IP).map(|ip| vec![as_cidr(ip)]).unwrap_or_default()
}

/// The WorkloadEndpoint a Pod stands for, or None when it has none: host
/// networked, not scheduled, finished (Failed/Succeeded), or no address yet.
pub fn wep_from_pod(pod: &Value) -> Result<Option<Resource>, Error> {
    if matches!(s(pod, "/status/phase"), Some("Failed" | "Succeeded")) || pod_ips(pod).is_empty() {
        return Ok(None);
    }
    endpoint_of_pod(pod)
}

/// The endpoint a scheduled, pod-networked Pod has or had, whatever its
/// phase or addresses: what a watch reports deleted when the Pod goes away
/// or stops being an endpoint.
pub fn endpoint_of_pod(pod: &Value) -> Result<Option<Resource>, Error> {
    let (Some(ns), Some(name)) = (s(pod, "/metadata/namespace"), s(pod, "/metadata/name")) else {
        return Ok(None);
    };
    let Some(node) = s(pod, "/spec/nodeName") else {
        return Ok(None);
    };
    if pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let ips = pod_ips(pod);
    let Ok(wep_name) = workload_endpoint_name(node, name, "eth0") else {
        return Ok(None);
    };
    let sa = s(pod, "/spec/serviceAccountName").unwrap_or("default");
    let spec = WorkloadEndpointSpec {
        orchestrator: "k8s".into(),
        node: node.into(),
        container_id: s(
            pod,
            &format!("/metadata/annotations/{}", CONTAINER_ID.replace('/', "~1")),
        )
        .unwrap_or_default()
        .into(),
        pod: name.into(),
        endpoint: "eth0".into(),
        service_account_name: sa.into(),
        ip_networks: ips,
        profiles: vec![format!("kns.{ns}"), format!("ksa.{ns}.{sa}")],
        interface_name: host_veth_name(ns, name),
        ..Default::default()
    };
    let mut w = WorkloadEndpoint::new("WorkloadEndpoint", &wep_name, spec);
    w.metadata.namespace = Some(ns.into());
    if let Some(labels) = pod.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                w.metadata.labels.insert(k.clone(), v.into());
            }
        }
    }
    for (k, v) in [
        ("projectcalico.org/namespace", ns),
        ("projectcalico.org/orchestrator", "k8s"),
        ("projectcalico.org/serviceaccount", sa),
    ] {
        w.metadata.labels.insert(k.into(), v.into());
    }
    w.metadata.uid = s(pod, "/metadata/uid").map(str::to_string);
    w.metadata.creation_timestamp = s(pod, "/metadata/creationTimestamp").map(str::to_string);
    let key = format!("{ns}/{wep_name}");
    let rv = revision(
        Kind::WorkloadEndpoint,
        &key,
        s(pod, "/metadata/resourceVersion"),
    )?;
    w.metadata.resource_version = Some(rv.to_string());
    Ok(Some(Resource::WorkloadEndpoint(w)))
}

/// The merge patch of `pods/<name>/status` that records `w`'s addresses
/// and sandbox on the Pod (what Calico's CNI plugin sends on ADD), CAS on
/// the revision when `w` carries one.
pub fn add_patch(w: &WorkloadEndpoint) -> Value {
    let ips = &w.spec.ip_networks;
    let mut meta = json!({"annotations": {
        POD_IP: ips.first().cloned().unwrap_or_default(),
        POD_IPS: ips.join(","),
        CONTAINER_ID: w.spec.container_id,
    }});
    if let Some(rv) = &w.metadata.resource_version {
        meta["resourceVersion"] = Value::String(rv.clone());
    }
    json!({"metadata": meta})
}

/// The patch that blanks the addresses on DEL (Calico keeps containerID).
pub fn del_patch(rv: Option<&str>) -> Value {
    let mut meta = json!({"annotations": {POD_IP: "", POD_IPS: ""}});
    if let Some(rv) = rv {
        meta["resourceVersion"] = Value::String(rv.to_string());
    }
    json!({"metadata": meta})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "p-1", "resourceVersion": "40",
                         "labels": {"app": "web"},
                         "annotations": {CONTAINER_ID: "abc123", POD_IP: "10.244.1.5/32", POD_IPS: "10.244.1.5/32"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "web-sa"},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn a_pod_reads_as_calicos_workload_endpoint() {
        let Some(Resource::WorkloadEndpoint(w)) = wep_from_pod(&pod()).unwrap() else {
            panic!("no endpoint")
        };
        assert_eq!(w.metadata.name, "node--a-k8s-web--1-eth0");
        assert_eq!(w.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(w.spec.ip_networks, ["10.244.1.5/32"]);
        assert_eq!(w.spec.container_id, "abc123");
        assert_eq!(w.spec.interface_name, host_veth_name("shop", "web-1"));
        assert_eq!(w.spec.profiles, ["kns.shop", "ksa.shop.web-sa"]);
        assert_eq!(w.metadata.labels["app"], "web");
        assert_eq!(w.metadata.labels["projectcalico.org/namespace"], "shop");
    }

    #[test]
    fn status_ips_win_and_finished_or_host_network_pods_have_none() {
        let mut p = pod();
        p["status"]["podIPs"] = json!([{"ip": "10.244.1.9"}, {"ip": "fd00::9"}]);
        let Some(Resource::WorkloadEndpoint(w)) = wep_from_pod(&p).unwrap() else {
            panic!()
        };
        assert_eq!(w.spec.ip_networks, ["10.244.1.9/32", "fd00::9/128"]);
        let mut done = pod();
        done["status"]["phase"] = json!("Failed");
        assert_eq!(wep_from_pod(&done).unwrap(), None);
        let mut host = pod();
        host["spec"]["hostNetwork"] = json!(true);
        assert_eq!(wep_from_pod(&host).unwrap(), None);
        let mut fresh = pod();
        fresh["metadata"]["annotations"] = json!({});
        assert_eq!(wep_from_pod(&fresh).unwrap(), None);
    }

    #[test]
    fn add_then_del_patches_use_calicos_annotations() {
        let Some(Resource::WorkloadEndpoint(w)) = wep_from_pod(&pod()).unwrap() else {
            panic!()
        };
        let p = add_patch(&w);
        assert_eq!(p["metadata"]["annotations"][POD_IPS], "10.244.1.5/32");
        assert_eq!(p["metadata"]["resourceVersion"], "40");
        let d = del_patch(None);
        assert_eq!(d["metadata"]["annotations"][POD_IP], "");
        assert!(d["metadata"]["annotations"].get(CONTAINER_ID).is_none());
    }
}
