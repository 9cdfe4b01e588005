//! A Calico Node in the Kubernetes datastore is the core v1 Node: Calico
//! never creates or deletes one (the kubelet registers it); its Calico
//! fields are annotations and its labels are the Node's labels, as
//! libcalico-go's `resources/node.go` maps them.

use super::error::revision;
use crate::datastore::Error;
use crate::resources::node::{NodeAddress, NodeBgpSpec, NodeSpec, OrchRef};
use crate::resources::{AsNumber, Kind, Node, Resource};
use serde_json::{json, Map, Value};

pub const IPV4_ADDRESS: &str = "projectcalico.org/IPv4Address";
pub const IPV6_ADDRESS: &str = "projectcalico.org/IPv6Address";
pub const AS_NUMBER: &str = "projectcalico.org/ASNumber";
pub const RR_CLUSTER_ID: &str = "projectcalico.org/RouteReflectorClusterID";
pub const IPV4_IPIP_TUNNEL: &str = "projectcalico.org/IPv4IPIPTunnelAddr";
pub const IPV4_VXLAN_TUNNEL: &str = "projectcalico.org/IPv4VXLANTunnelAddr";
pub const VXLAN_MAC: &str = "projectcalico.org/VXLANTunnelMACAddr";
pub const IPV6_VXLAN_TUNNEL: &str = "projectcalico.org/IPv6VXLANTunnelAddr";
pub const VXLAN_MAC_V6: &str = "projectcalico.org/VXLANTunnelMACAddrV6";
const WIREGUARD: &str = "projectcalico.org/WireguardSpec";

/// Every annotation Tabby owns on a Node: absent from the Calico Node means
/// absent from the Kubernetes Node.
const OWNED: [&str; 10] = [
    IPV4_ADDRESS,
    IPV6_ADDRESS,
    AS_NUMBER,
    RR_CLUSTER_ID,
    IPV4_IPIP_TUNNEL,
    IPV4_VXLAN_TUNNEL,
    VXLAN_MAC,
    IPV6_VXLAN_TUNNEL,
    VXLAN_MAC_V6,
    WIREGUARD,
];

fn str_map(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The Calico Node for a core v1 Node (JSON as the API returned it).
pub fn from_k8s(k8s: &Value) -> Result<Resource, Error> {
    let meta = k8s.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ann = str_map(meta.get("annotations"));
    let get = |k: &str| ann.get(k).filter(|v| !v.is_empty()).cloned();
    let as_number = match get(AS_NUMBER) {
        Some(s) => Some(AsNumber::parse(&s).map_err(|e| Error::Corrupt {
            kind: Kind::Node,
            name: name.clone(),
            reason: format!("annotation {AS_NUMBER}: {e}"),
        })?),
        None => None,
    };
    let bgp = NodeBgpSpec {
        as_number,
        ipv4_address: get(IPV4_ADDRESS),
        ipv6_address: get(IPV6_ADDRESS),
        ipv4_ipip_tunnel_addr: get(IPV4_IPIP_TUNNEL),
        route_reflector_cluster_id: get(RR_CLUSTER_ID),
    };
    // The Node's InternalIP/ExternalIP addresses, which autodetection's
    // `kubernetes: NodeInternalIP` method reads.
    let addresses = k8s
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let t = x.get("type")?.as_str()?;
                    let addr = x.get("address")?.as_str()?;
                    matches!(t, "InternalIP" | "ExternalIP").then(|| NodeAddress {
                        address: addr.to_string(),
                        kind: Some(t.to_string()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let spec = NodeSpec {
        bgp: (bgp != NodeBgpSpec::default()).then_some(bgp),
        ipv4_vxlan_tunnel_addr: get(IPV4_VXLAN_TUNNEL),
        vxlan_tunnel_mac_addr: get(VXLAN_MAC),
        ipv6_vxlan_tunnel_addr: get(IPV6_VXLAN_TUNNEL),
        vxlan_tunnel_mac_addr_v6: get(VXLAN_MAC_V6),
        addresses,
        orch_refs: vec![OrchRef {
            node_name: Some(name.clone()),
            orchestrator: "k8s".into(),
        }],
        wireguard: get(WIREGUARD).and_then(|s| serde_json::from_str(&s).ok()),
    };
    let mut n = Node::new("Node", &name, spec);
    n.metadata.labels = str_map(meta.get("labels"));
    n.metadata.uid = meta.get("uid").and_then(Value::as_str).map(str::to_string);
    n.metadata.creation_timestamp = meta
        .get("creationTimestamp")
        .and_then(Value::as_str)
        .map(str::to_string);
    let rv = revision(
        Kind::Node,
        &name,
        meta.get("resourceVersion").and_then(Value::as_str),
    )?;
    n.metadata.resource_version = Some(rv.to_string());
    Ok(Resource::Node(n))
}

/// Writes `node`'s Calico fields and labels onto `k8s` (the Node as read),
/// leaving every other annotation and field as the kubelet left it.
pub fn merge_into_k8s(node: &Node, k8s: &mut Value) {
    let spec = &node.spec;
    let bgp = spec.bgp.clone().unwrap_or_default();
    let want: [(&str, Option<String>); 10] = [
        (IPV4_ADDRESS, bgp.ipv4_address),
        (IPV6_ADDRESS, bgp.ipv6_address),
        (AS_NUMBER, bgp.as_number.map(|a| a.to_string())),
        (RR_CLUSTER_ID, bgp.route_reflector_cluster_id),
        (IPV4_IPIP_TUNNEL, bgp.ipv4_ipip_tunnel_addr),
        (IPV4_VXLAN_TUNNEL, spec.ipv4_vxlan_tunnel_addr.clone()),
        (VXLAN_MAC, spec.vxlan_tunnel_mac_addr.clone()),
        (IPV6_VXLAN_TUNNEL, spec.ipv6_vxlan_tunnel_addr.clone()),
        (VXLAN_MAC_V6, spec.vxlan_tunnel_mac_addr_v6.clone()),
        (WIREGUARD, spec.wireguard.as_ref().map(|w| w.to_string())),
    ];
    debug_assert_eq!(want.len(), OWNED.len());
    let Some(meta) = k8s.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        *ann = Value::Object(Map::new());
    }
    if let Some(ann) = ann.as_object_mut() {
        for (k, v) in want {
            match v {
                Some(v) => ann.insert(k.to_string(), Value::String(v)),
                None => ann.remove(k),
            };
        }
    }
    let labels: Map<String, Value> = node
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    meta.insert("labels".into(), Value::Object(labels));
    if let Some(rv) = &node.metadata.resource_version {
        meta.insert("resourceVersion".into(), Value::String(rv.clone()));
    }
}

/// The strategic-merge patch of `nodes/<name>/status` calico-node sends:
/// `NetworkUnavailable` False with reason `CalicoIsUp` once networking is
/// up, True with `CalicoIsDown` at shutdown. Conditions merge by `type`.
pub fn network_condition_patch(up: bool, now: &str) -> Value {
    let (status, reason, message) = if up {
        ("False", "CalicoIsUp", "Calico is running on this node")
    } else {
        (
            "True",
            "CalicoIsDown",
            "Calico is shutting down on this node",
        )
    };
    json!({"status": {"conditions": [{
        "type": "NetworkUnavailable",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
        "lastHeartbeatTime": now,
    }]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    // A Node as a cluster that ran calico-node shows it (kubectl get node -o json).
    fn calico_written() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": "worker-1", "uid": "u-1", "resourceVersion": "812",
                "labels": {"kubernetes.io/hostname": "worker-1", "rack": "r1"},
                "annotations": {
                    "projectcalico.org/IPv4Address": "10.0.0.5/24",
                    "projectcalico.org/IPv4VXLANTunnelAddr": "10.244.7.192",
                    "projectcalico.org/VXLANTunnelMACAddr": "66:d5:33:1a:2b:3c",
                    "projectcalico.org/ASNumber": "64513",
                    "node.alpha.kubernetes.io/ttl": "0"
                }
            },
            "status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.0.5"},
                {"type": "Hostname", "address": "worker-1"}
            ]}
        })
    }

    #[test]
    fn calico_annotations_read_as_the_node_spec() {
        let Resource::Node(n) = from_k8s(&calico_written()).unwrap() else {
            panic!()
        };
        let bgp = n.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4_address.as_deref(), Some("10.0.0.5/24"));
        assert_eq!(bgp.as_number, Some(AsNumber(64513)));
        assert_eq!(
            n.spec.ipv4_vxlan_tunnel_addr.as_deref(),
            Some("10.244.7.192")
        );
        assert_eq!(
            n.spec.vxlan_tunnel_mac_addr.as_deref(),
            Some("66:d5:33:1a:2b:3c")
        );
        assert_eq!(n.spec.addresses.len(), 1, "only Internal/ExternalIP");
        assert_eq!(n.metadata.labels["rack"], "r1");
        assert_eq!(n.metadata.resource_version.as_deref(), Some("812"));
    }

    #[test]
    fn writing_keeps_foreign_annotations_and_removes_cleared_fields() {
        let mut k8s = calico_written();
        let Resource::Node(mut n) = from_k8s(&k8s).unwrap() else {
            panic!()
        };
        n.spec.bgp.as_mut().unwrap().as_number = None;
        n.spec.ipv4_vxlan_tunnel_addr = Some("10.244.7.193".into());
        merge_into_k8s(&n, &mut k8s);
        let ann = &k8s["metadata"]["annotations"];
        assert_eq!(ann["node.alpha.kubernetes.io/ttl"], "0");
        assert!(ann.get(AS_NUMBER).is_none());
        assert_eq!(ann[IPV4_VXLAN_TUNNEL], "10.244.7.193");
        assert_eq!(k8s["status"]["addresses"][1]["type"], "Hostname");
        let back = from_k8s(&k8s).unwrap();
        assert_eq!(back, Resource::Node(n));
    }

    #[test]
    fn bad_as_annotation_names_itself() {
        let mut k8s = calico_written();
        k8s["metadata"]["annotations"][AS_NUMBER] = json!("lots");
        let e = from_k8s(&k8s).unwrap_err().to_string();
        assert!(e.contains(AS_NUMBER), "{e}");
    }
}
