//! Objects as Calico writes them into its CRDs (`kubectl get -o yaml` on a
//! Calico cluster: server metadata, the `projectcalico.org/metadata`
//! annotation, BlockAffinity's string `deleted`, null allocations) are
//! accepted by Tabby's CRD schemas and read by Tabby's parser; and what
//! `tabbyctl apply` rejects, the schemas reject too.

use super::crd_validator::validate;
use super::schema;
use serde_json::Value;
use tabby_agent::ctl::apply::validate_documents;
use tabby_agent::resources::{parse_documents, Kind, Resource};

const CALICO_WRITTEN: &str = r#"
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  annotations:
    projectcalico.org/metadata: '{"uid":"6f3c0d1e-1111-4d8e-9e8f-0a1b2c3d4e5f","creationTimestamp":"2024-05-02T10:00:00Z"}'
  creationTimestamp: "2024-05-02T10:00:00Z"
  generation: 1
  name: default-ipv4-ippool
  resourceVersion: "1234"
  uid: 0b0d2a57-2222-4f5e-8a9b-1c2d3e4f5a6b
spec:
  allowedUses:
  - Workload
  - Tunnel
  blockSize: 26
  cidr: 192.168.0.0/16
  ipipMode: Always
  natOutgoing: true
  nodeSelector: all()
  vxlanMode: Never
---
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata:
  name: node-1-192-168-36-0-26
  resourceVersion: "2001"
  labels:
    projectcalico.org/node: node-1
spec:
  cidr: 192.168.36.0/26
  deleted: "false"
  node: node-1
  state: confirmed
---
apiVersion: crd.projectcalico.org/v1
kind: IPAMBlock
metadata:
  annotations:
    projectcalico.org/metadata: '{"creationTimestamp":null}'
  name: 192-168-36-0-26
  resourceVersion: "2002"
spec:
  affinity: host:node-1
  allocations:
  - 0
  - null
  - 1
  attributes:
  - handle_id: vxlan-tunnel-addr-node-1
    secondary:
      node: node-1
      type: vxlanTunnelAddress
  - handle_id: k8s-pod-network.3f2a9c
    secondary:
      namespace: default
      node: node-1
      pod: web-0
      timestamp: 2024-05-02 10:01:00.123456789 +0000 UTC
  cidr: 192.168.36.0/26
  deleted: false
  sequenceNumber: 1714644060123456789
  sequenceNumberForAllocation:
    "0": 1714644060123456788
    "2": 1714644060123456789
  strictAffinity: false
  unallocated:
  - 1
  - 3
---
apiVersion: crd.projectcalico.org/v1
kind: IPAMHandle
metadata:
  name: k8s-pod-network.3f2a9c
spec:
  block:
    192.168.36.0/26: 1
  deleted: false
  handleID: k8s-pod-network.3f2a9c
---
apiVersion: crd.projectcalico.org/v1
kind: IPAMConfig
metadata:
  name: default
spec:
  autoAllocateBlocks: true
  strictAffinity: false
---
apiVersion: crd.projectcalico.org/v1
kind: BGPConfiguration
metadata:
  name: default
spec:
  asNumber: 64512
  listenPort: 179
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  serviceClusterIPs:
  - cidr: 10.96.0.0/12
---
apiVersion: crd.projectcalico.org/v1
kind: BGPPeer
metadata:
  name: rack1-tor
spec:
  asNumber: 64567
  keepOriginalNextHop: false
  maxRestartTime: 2m0s
  nodeSelector: rack == 'rack-1'
  numAllowedLocalASNumbers: 1
  peerIP: 192.20.30.40:1790
---
apiVersion: crd.projectcalico.org/v1
kind: IPReservation
metadata:
  name: reserved
spec:
  reservedCIDRs:
  - 192.168.36.0/30
  - 192.168.36.9
"#;

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn kind_of(doc: &Value) -> Kind {
    Kind::from_kind_field(doc["kind"].as_str().unwrap()).unwrap()
}

#[test]
fn calico_written_objects_pass_the_schemas_and_parse() {
    for doc in docs(CALICO_WRITTEN) {
        let k = kind_of(&doc);
        let errors = validate(&schema(k), &doc);
        assert!(errors.is_empty(), "{k}: {errors:?}");
    }
    let parsed = parse_documents("calico.yaml", CALICO_WRITTEN).unwrap();
    assert_eq!(parsed.len(), 8);
    let by_kind = |k: Kind| {
        parsed
            .iter()
            .find(|d| d.resource.kind() == k)
            .map(|d| d.resource.clone())
            .unwrap()
    };
    let Resource::IpPool(pool) = by_kind(Kind::IpPool) else {
        unreachable!()
    };
    assert_eq!(pool.spec.cidr, "192.168.0.0/16");
    assert_eq!(pool.spec.block_size, Some(26));
    assert!(pool.spec.nat_outgoing);
    let Resource::BlockAffinity(a) = by_kind(Kind::BlockAffinity) else {
        unreachable!()
    };
    assert!(!a.spec.deleted, "the string \"false\" reads as false");
    assert_eq!(a.spec.state.as_str(), "confirmed");
    let Resource::IpamBlock(b) = by_kind(Kind::IpamBlock) else {
        unreachable!()
    };
    assert_eq!(b.spec.allocations, vec![Some(0), None, Some(1)]);
    assert_eq!(b.spec.attributes[1].secondary["pod"], "web-0");
    assert_eq!(
        b.spec.sequence_number_for_allocation["2"],
        1714644060123456789
    );
    let Resource::BgpPeer(p) = by_kind(Kind::BgpPeer) else {
        unreachable!()
    };
    assert_eq!(p.spec.num_allowed_local_as_numbers, Some(1));
    assert_eq!(p.spec.as_number.map(|a| a.0), Some(64567));
}

/// Each document breaks one rule; both the schema and `tabbyctl apply`
/// must refuse it.
const INVALID: &[(&str, &str)] = &[
    ("IPPool", "cidr: 10.0.0.0/16\n  vxlanMode: Sometimes"),
    ("IPPool", "cidr: 10.0.0.0/16\n  blockSize: 16"),
    ("IPPool", "cidr: not-a-cidr"),
    ("IPPool", "blockSize: 26"),
    ("BGPConfiguration", "listenPort: 0"),
    ("BGPConfiguration", "bindMode: Everywhere"),
    (
        "BGPConfiguration",
        "communities: [{name: a, value: \"65000\"}]",
    ),
    ("BGPConfiguration", "nodeMeshMaxRestartTime: \"10\""),
    ("BGPPeer", "peerIP: 10.0.0.1\n  asNumber: 0"),
    ("BGPPeer", "peerIP: 10.0.0.1\n  asNumber: \"1.x\""),
    ("BGPPeer", "peerIP: 10.0.0.300\n  asNumber: 64512"),
    (
        "BGPPeer",
        "peerIP: 10.0.0.1\n  asNumber: 64512\n  maxRestartTime: soon",
    ),
    (
        "BGPPeer",
        "peerIP: 10.0.0.1\n  asNumber: 64512\n  sourceAddress: Elsewhere",
    ),
    (
        "BGPPeer",
        "peerIP: 10.0.0.1\n  asNumber: 64512\n  password: {}",
    ),
    (
        "BlockAffinity",
        "node: n1\n  cidr: 10.0.0.0/26\n  state: lost\n  deleted: \"false\"",
    ),
    (
        "BlockAffinity",
        "node: n1\n  cidr: 10.0.0.0/26\n  state: pending\n  deleted: \"maybe\"",
    ),
    ("IPReservation", "reservedCIDRs: [10.0.0.300]"),
];

#[test]
fn what_tabbyctl_rejects_the_schemas_reject() {
    for (kind, spec) in INVALID {
        let text = format!(
            "apiVersion: crd.projectcalico.org/v1\nkind: {kind}\nmetadata:\n  name: bad\nspec:\n  {spec}\n"
        );
        let doc = &docs(&text)[0];
        let errors = validate(&schema(kind_of(doc)), doc);
        assert!(!errors.is_empty(), "the schema accepts {kind} {spec:?}");
        let tabby_rejects = match parse_documents("bad.yaml", &text) {
            Err(_) => true,
            Ok(mut d) => !validate_documents("bad.yaml", &mut d).is_empty(),
        };
        assert!(
            tabby_rejects,
            "tabbyctl accepts {kind} {spec:?}; is the case wrong?"
        );
    }
}
