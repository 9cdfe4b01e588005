//! The RBAC of `tabby.yaml`: Calico's `calico-node` and
//! `calico-cni-plugin` ClusterRoles (CALICO.md §12) cut down to what
//! Tabby's code calls, each rule with the reason it exists. The reasons
//! name the code, so a rule whose caller goes away is easy to find.

use super::yamldoc::role_document;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const NAMESPACE: &str = "kube-system";
pub const NODE_SA: &str = "tabby-node";
pub const CNI_SA: &str = crate::cni::install::kubeconfig::CNI_SERVICE_ACCOUNT;
pub const CONTROLLERS_SA: &str = "tabby-controllers";

const CALICO: &str = "crd.projectcalico.org";
const OPERATOR: &str = "operator.tigera.io";
/// Every Calico CRD Tabby stores (manifests/crds.yaml).
const CALICO_KINDS: [&str; 8] = [
    "ippools",
    "bgppeers",
    "bgpconfigurations",
    "ipamblocks",
    "blockaffinities",
    "ipamhandles",
    "ipamconfigs",
    "ipreservations",
];
const IPAM_KINDS: [&str; 3] = ["ipamblocks", "blockaffinities", "ipamhandles"];

/// A rule and why it exists.
pub struct Rule {
    pub why: &'static str,
    pub rule: PolicyRule,
}

fn rule(why: &'static str, group: &str, resources: &[&str], verbs: &[&str]) -> Rule {
    Rule {
        why,
        rule: PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    }
}

fn named(mut r: Rule, names: &[&str]) -> Rule {
    r.rule.resource_names = Some(names.iter().map(|s| s.to_string()).collect());
    r
}

pub fn node_rules() -> Vec<Rule> {
    vec![
        rule(
            "Nodes are Calico's Node resource in the Kubernetes datastore: the cluster cache\n\
             lists and watches them (mesh peers, block owners, VTEPs), and tabby-node updates\n\
             its own Node's projectcalico.org/ annotations (address, AS, VXLAN tunnel address\n\
             and MAC; datastore/kdd/ops.rs replaces the Node). Never create or delete.",
            "",
            &["nodes"],
            &["get", "list", "watch", "update"],
        ),
        rule(
            "The Node's NetworkUnavailable condition: False (CalicoIsUp) once pods can be\n\
             networked, True (CalicoIsDown) on shutdown (a strategic merge patch).",
            "",
            &["nodes/status"],
            &["patch"],
        ),
        rule(
            "WorkloadEndpoints are derived from Pods: the cluster cache lists and watches them\n\
             (workload routes, IPAM leak checks) and AddWorkload reads the CNI's pod.",
            "",
            &["pods"],
            &["get", "list", "watch"],
        ),
        rule(
            "AddWorkload/RemoveWorkload write and blank the pod's cni.projectcalico.org/podIP,\n\
             podIPs and containerID annotations (a merge patch of pods/status, as Calico).",
            "",
            &["pods/status"],
            &["patch"],
        ),
        rule(
            "The cluster cache lists and watches every Calico kind Tabby stores; BGPPeers,\n\
             BGPConfigurations, IPReservations and IPAMConfigs are only read (a missing\n\
             IPAMConfig means Calico's defaults; Tabby never creates one, calico-node does).",
            CALICO,
            &CALICO_KINDS,
            &["get", "list", "watch"],
        ),
        rule(
            "The default pool (CALICO_IPV4POOL_*) is created when no pool exists, and the\n\
             Installation's pools are created and updated, and deleted once gone from it.",
            CALICO,
            &["ippools"],
            &["create", "update", "delete"],
        ),
        rule(
            "IPAM on this node's socket: claim blocks (affinities), assign and release\n\
             addresses (blocks, handles), with Calico's two-step delete (update, then delete).",
            CALICO,
            &IPAM_KINDS,
            &["create", "update", "delete"],
        ),
        rule(
            "The Installation (spec.calicoNetwork: pools, autodetection, MTU, BGP) is read and\n\
             followed without a restart.",
            OPERATOR,
            &["installations"],
            &["get", "list", "watch"],
        ),
        rule(
            "The Installation's status (mtu, computed, Ready/Progressing/Degraded conditions).",
            OPERATOR,
            &["installations/status"],
            &["update", "patch"],
        ),
        named(
            rule(
                "install-cni (run with this ServiceAccount) asks for a token of tabby-cni-plugin\n\
                 for the plugin's kubeconfig; only that ServiceAccount's.",
                "",
                &["serviceaccounts/token"],
                &["create"],
            ),
            &[CNI_SA],
        ),
    ]
}

pub fn cni_rules() -> Vec<Rule> {
    vec![
        rule(
            "ADD reads the pod's cni.projectcalico.org/ipv4pools and ipAddrs annotations\n\
             (cni/k8s.rs). Everything else (IPAM, the WorkloadEndpoint, pods/status) goes\n\
             through tabby-node's socket, so unlike calico-cni-plugin no IPAM kinds here.",
            "",
            &["pods"],
            &["get"],
        ),
        rule(
            "ADD reads the namespace's cni.projectcalico.org/ipv4pools annotation.",
            "",
            &["namespaces"],
            &["get"],
        ),
    ]
}

pub fn controllers_rules() -> Vec<Rule> {
    vec![
        rule(
            "IPAM garbage collection: which Nodes still exist (a deleted node's blocks and\n\
             tunnel addresses are released).",
            "",
            &["nodes"],
            &["get", "list"],
        ),
        rule(
            "IPAM garbage collection: which pods are live (an address whose pod is gone past\n\
             the grace period is a leak).",
            "",
            &["pods"],
            &["get", "list"],
        ),
        rule(
            "IPAM garbage collection reads and releases addresses and empty blocks (Calico's\n\
             two-step delete: update, then delete); it never allocates.",
            CALICO,
            &IPAM_KINDS,
            &["get", "list", "update", "delete"],
        ),
        rule(
            "IPAM reads the pools, reservations and IPAMConfig while releasing.",
            CALICO,
            &["ippools", "ipreservations", "ipamconfigs"],
            &["get", "list"],
        ),
    ]
}

/// The Lease the controllers elect a leader with, in their namespace.
pub fn controllers_lease_rules() -> Vec<Rule> {
    let lease = crate::controllers::config::DEFAULT_LEASE_NAME;
    vec![
        rule(
            "Leader election: the first replica creates the Lease (create cannot be limited\n\
             to a name).",
            "coordination.k8s.io",
            &["leases"],
            &["create"],
        ),
        named(
            rule(
                "Leader election: read, renew and release the controllers' own Lease only.",
                "coordination.k8s.io",
                &["leases"],
                &["get", "update"],
            ),
            &[lease],
        ),
    ]
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        ..Default::default()
    }
}

pub fn service_account(name: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(name, Some(NAMESPACE)),
        ..Default::default()
    }
}

fn subject(sa: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: sa.into(),
        namespace: Some(NAMESPACE.into()),
        ..Default::default()
    }]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn reasons(rules: &[Rule]) -> Vec<&str> {
    rules.iter().map(|r| r.why).collect()
}

/// A ClusterRole named after its ServiceAccount, and the binding, as YAML
/// documents with a comment above each rule.
pub fn cluster_role_documents(sa: &str, comment: &[&str], rules: Vec<Rule>) -> String {
    let role = ClusterRole {
        metadata: meta(sa, None),
        rules: Some(rules.iter().map(|r| r.rule.clone()).collect()),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(sa, None),
        role_ref: role_ref("ClusterRole", sa),
        subjects: Some(subject(sa)),
    };
    role_document(comment, &role, &reasons(&rules)) + &super::yamldoc::document(&[], &binding)
}

/// A namespaced Role for `sa` in [`NAMESPACE`], and its binding.
pub fn role_documents(sa: &str, comment: &[&str], rules: Vec<Rule>) -> String {
    let role = Role {
        metadata: meta(sa, Some(NAMESPACE)),
        rules: Some(rules.iter().map(|r| r.rule.clone()).collect()),
    };
    let binding = RoleBinding {
        metadata: meta(sa, Some(NAMESPACE)),
        role_ref: role_ref("Role", sa),
        subjects: Some(subject(sa)),
    };
    role_document(comment, &role, &reasons(&rules)) + &super::yamldoc::document(&[], &binding)
}
