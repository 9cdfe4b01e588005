//! Calico-written custom resources (as `kubectl get -o yaml` shows them in
//! a cluster Calico ran) read as Tabby's resources, and what Tabby writes
//! is in Calico's form.

use super::*;

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

#[test]
fn a_calico_ippool_reads() {
    let cr = yaml(
        r#"
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv4-ippool
  resourceVersion: "1234"
  uid: 7b3c1f0e-0000-4000-8000-000000000001
  creationTimestamp: "2024-05-01T10:00:00Z"
  annotations:
    projectcalico.org/metadata: '{"creationTimestamp":"2024-05-01T09:59:59Z","labels":{"zone":"a"}}'
spec:
  allowedUses: [Workload, Tunnel]
  blockSize: 26
  cidr: 192.168.0.0/16
  ipipMode: Never
  natOutgoing: true
  nodeSelector: all()
  vxlanMode: CrossSubnet
"#,
    );
    let Resource::IpPool(p) = from_cr(Kind::IpPool, &cr).unwrap() else {
        panic!("not a pool")
    };
    assert_eq!(p.metadata.name, "default-ipv4-ippool");
    assert_eq!(p.metadata.resource_version.as_deref(), Some("1234"));
    assert_eq!(p.metadata.labels["zone"], "a");
    assert_eq!(
        p.metadata.creation_timestamp.as_deref(),
        Some("2024-05-01T09:59:59Z"),
        "the v3 metadata in the annotation wins"
    );
    assert_eq!(p.spec.cidr, "192.168.0.0/16");
    assert!(p.spec.nat_outgoing);
    assert_eq!(p.spec.block_size, Some(26));
}

#[test]
fn a_calico_ipam_block_affinity_and_handle_read() {
    let block = yaml(
        r#"
apiVersion: crd.projectcalico.org/v1
kind: IPAMBlock
metadata: {name: 10-244-1-0-26, resourceVersion: "55"}
spec:
  affinity: host:node-a
  allocations: [0, null, null, null]
  attributes:
  - handle_id: vxlan-tunnel-addr-node-a
    secondary: {node: node-a, type: vxlanTunnelAddress}
  cidr: 10.244.1.0/26
  deleted: false
  sequenceNumber: 1
  sequenceNumberForAllocation: {"0": 0}
  strictAffinity: false
  unallocated: [1, 2, 3]
"#,
    );
    let Resource::IpamBlock(b) = from_cr(Kind::IpamBlock, &block).unwrap() else {
        panic!()
    };
    assert_eq!(b.metadata.name, "10.244.1.0-26");
    assert_eq!(b.spec.affinity.as_deref(), Some("host:node-a"));
    assert_eq!(b.spec.allocations[0], Some(0));
    assert_eq!(b.spec.attributes[0].secondary["type"], "vxlanTunnelAddress");

    let aff = yaml(
        r#"
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata: {name: node-a-10-244-1-0-26, resourceVersion: "56"}
spec: {cidr: 10.244.1.0/26, deleted: "false", node: node-a, state: confirmed}
"#,
    );
    let Resource::BlockAffinity(a) = from_cr(Kind::BlockAffinity, &aff).unwrap() else {
        panic!()
    };
    assert_eq!(a.metadata.name, "node-a/10.244.1.0-26");
    assert!(!a.spec.deleted);

    let handle = yaml(
        r#"
apiVersion: crd.projectcalico.org/v1
kind: IPAMHandle
metadata: {name: k8s-pod-network.3f2a9c, resourceVersion: "57"}
spec:
  block: {10.244.1.0/26: 1}
  deleted: false
  handleID: k8s-pod-network.3F2A9C
"#,
    );
    let h = from_cr(Kind::IpamHandle, &handle).unwrap();
    assert_eq!(h.name(), "k8s-pod-network.3F2A9C");
}

#[test]
fn tabby_writes_calicos_form() {
    let aff = Resource::from_json_slice(
        br#"{"apiVersion":"projectcalico.org/v3","kind":"BlockAffinity",
             "metadata":{"name":"node-a/10.244.1.0-26","resourceVersion":"9"},
             "spec":{"state":"confirmed","node":"node-a","cidr":"10.244.1.0/26","deleted":false}}"#,
    )
    .unwrap();
    let cr = to_cr(&aff);
    assert_eq!(cr["apiVersion"], "crd.projectcalico.org/v1");
    assert_eq!(cr["metadata"]["name"], "node-a-10-244-1-0-26");
    assert_eq!(cr["metadata"]["resourceVersion"], "9");
    assert_eq!(
        cr["spec"]["deleted"], "false",
        "Calico's CRD types it a string"
    );
    assert_eq!(cr["spec"]["state"], "confirmed");
    assert!(
        cr["metadata"].get("annotations").is_none(),
        "IPAM kinds carry no metadata annotation, as Calico writes them"
    );
    let back = from_cr(Kind::BlockAffinity, &cr).unwrap();
    assert_eq!(back.to_json_value()["spec"], aff.to_json_value()["spec"]);
}

#[test]
fn v3_metadata_goes_in_the_annotation_and_only_calico_keys_on_the_cr() {
    let peer = Resource::from_json_slice(
        br#"{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer",
             "metadata":{"name":"tor-a","uid":"u-1",
               "labels":{"rack":"r1","projectcalico.org/owned":"yes"},
               "annotations":{"note":"x","operator.tigera.io/managed":"true"}},
             "spec":{"peerIP":"10.0.0.1","asNumber":64600}}"#,
    )
    .unwrap();
    let cr = to_cr(&peer);
    let labels = cr["metadata"]["labels"].as_object().unwrap();
    assert_eq!(labels.len(), 1);
    assert_eq!(labels["projectcalico.org/owned"], "yes");
    let ann = cr["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(ann["operator.tigera.io/managed"], "true");
    assert!(ann.get("note").is_none());
    let meta: Value = serde_json::from_str(ann[METADATA_ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!(meta["labels"]["rack"], "r1");
    assert!(meta.get("name").is_none() && meta.get("uid").is_none());
    assert_eq!(cr["metadata"]["uid"], "u-1");
    // And back, with the CR's own resourceVersion.
    let mut stored = cr.clone();
    stored["metadata"]["resourceVersion"] = "77".into();
    let back = from_cr(Kind::BgpPeer, &stored).unwrap();
    assert_eq!(back.metadata().labels, peer.metadata().labels);
    assert_eq!(back.metadata().annotations, peer.metadata().annotations);
    assert_eq!(back.revision(), Some(77));
}

#[test]
fn pre_v3_pool_fields_are_upgraded_on_read() {
    let cr = yaml(
        r#"
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata: {name: old, resourceVersion: "3"}
spec:
  cidr: 10.10.0.0/16
  ipip: {enabled: true, mode: cross-subnet}
  nat-outgoing: true
"#,
    );
    let Resource::IpPool(p) = from_cr(Kind::IpPool, &cr).unwrap() else {
        panic!()
    };
    assert!(p.spec.nat_outgoing);
    assert_eq!(
        serde_json::to_value(p.spec.ipip_mode).unwrap(),
        "CrossSubnet"
    );
}

#[test]
fn a_bad_metadata_annotation_is_an_error_naming_it() {
    let cr = yaml(
        r#"
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: p
  resourceVersion: "3"
  annotations: {projectcalico.org/metadata: "not json"}
spec: {cidr: 10.10.0.0/16}
"#,
    );
    let e = from_cr(Kind::IpPool, &cr).unwrap_err().to_string();
    assert!(e.contains(METADATA_ANNOTATION), "{e}");
}

#[test]
fn an_operator_installation_reads_and_writes_as_the_operators_object() {
    let cr = yaml(
        r#"
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
  resourceVersion: "77"
  labels: {team: net}
spec:
  variant: Calico
  calicoNetwork:
    bgp: Enabled
    linuxDataplane: Iptables
    ipPools: [{cidr: 10.244.0.0/16, encapsulation: VXLANCrossSubnet}]
status:
  mtu: 1450
  conditions: [{type: Ready, status: "True", reason: Applied, message: ok}]
"#,
    );
    let r = from_cr(Kind::Installation, &cr).unwrap();
    let Resource::Installation(i) = &r else {
        panic!("not an Installation: {r:?}")
    };
    assert_eq!(i.metadata.labels["team"], "net");
    assert_eq!(i.status.as_ref().unwrap()["mtu"], 1450);
    assert_eq!(i.spec.other["variant"], "Calico");
    let back = to_cr(&r);
    assert_eq!(back["apiVersion"], "operator.tigera.io/v1");
    // Its metadata is its own: every label on the CR, no Calico annotation.
    assert_eq!(back["metadata"]["labels"]["team"], "net");
    assert!(back["metadata"].get("annotations").is_none(), "{back}");
    assert_eq!(back["spec"]["calicoNetwork"]["linuxDataplane"], "Iptables");
    assert_eq!(back["status"]["conditions"][0]["reason"], "Applied");
}
