//! The tigera operator's Installation (`operator.tigera.io/v1`, kind
//! Installation, the singleton `default`): the part of it Tabby honours is
//! `spec.calicoNetwork` (pools, BGP, MTU, IPv4 address autodetection).
//!
//! Enum-like fields are strings and every level keeps the fields it does
//! not model, because an Installation can reach tabby-node without passing
//! `tabbyctl apply` (written straight into the Kubernetes API): it must
//! still be readable so that tabby-node can report *which* field is wrong
//! in `status.conditions` instead of failing to list it. `validate` turns
//! those strings and leftovers into errors naming the field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The operator's API group and version.
pub const API_OPERATOR_V1: &str = "operator.tigera.io/v1";

/// The one Installation the operator reads.
pub const INSTALLATION_NAME: &str = "default";

/// The encapsulations the operator knows; the first two are IPIP, which
/// Tabby does not implement.
pub const ENCAPSULATIONS: [&str; 5] = [
    "IPIP",
    "IPIPCrossSubnet",
    "VXLAN",
    "VXLANCrossSubnet",
    "None",
];

/// What an unset `encapsulation` means for an IPv4 pool. The operator's
/// default is IPIP, which Tabby cannot do; VXLANCrossSubnet keeps the
/// operator's intent (native routing inside a subnet, a tunnel across)
/// with the tunnel Tabby has. A deliberate deviation, in the README.
pub const DEFAULT_ENCAPSULATION_V4: &str = "VXLANCrossSubnet";

/// Top-level spec fields of the operator's Installation that Tabby accepts
/// and does not act on (no operator-managed components here: images,
/// registries, other daemonsets). tabby-node logs them once.
pub const IGNORED_SPEC_FIELDS: &[&str] = &[
    "variant",
    "registry",
    "imagePath",
    "imagePrefix",
    "imagePullSecrets",
    "kubernetesProvider",
    "cni",
    "controlPlaneNodeSelector",
    "controlPlaneTolerations",
    "controlPlaneReplicas",
    "nodeMetricsPort",
    "typhaMetricsPort",
    "flexVolumePath",
    "kubeletVolumePluginPath",
    "nodeUpdateStrategy",
    "componentResources",
    "certificateManagement",
    "nonPrivileged",
    "calicoNodeDaemonSet",
    "calicoNodeWindowsDaemonSet",
    "calicoCNIConfig",
    "calicoKubeControllersDeployment",
    "typhaDeployment",
    "calicoWindowsUpgradeDaemonSet",
    "csiNodeDriverDaemonSet",
    "fipsMode",
    "logging",
    "windowsNodes",
    "serviceCIDRs",
    "azure",
    "proxy",
    "typhaAffinity",
    "tlsCipherSuites",
];

/// `calicoNetwork` fields of the operator Tabby accepts and ignores: the
/// dataplane is always felix-lite's, host ports and the rest are Felix
/// features Tabby does not have.
pub const IGNORED_NETWORK_FIELDS: &[&str] = &[
    "linuxDataplane",
    "windowsDataplane",
    "bgpLoggingLevel",
    "hostPorts",
    "multiInterfaceMode",
    "containerIPForwarding",
    "linuxPolicySetupTimeoutSeconds",
    "sysctl",
    "clusterRoutingMode",
    "linuxPodInterfaceType",
    "nodeAddressAutodetectionV6",
];

// The operator's CRD has many more fields than Tabby models; the schema
// keeps them (`x-kubernetes-preserve-unknown-fields`), as the operator's
// own CRD defines them, so an Installation written for the operator is
// stored unchanged.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct InstallationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calico_network: Option<CalicoNetworkSpec>,
    /// Every other field, as written.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct CalicoNetworkSpec {
    /// `Enabled` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Enabled", "Disabled"]))]
    pub bgp: Option<String>,
    #[serde(default, rename = "ipPools", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub ip_pools: Vec<InstallationPool>,
    /// The VXLAN MTU; unset means the parent interface's MTU − 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    #[serde(
        default,
        rename = "nodeAddressAutodetectionV4",
        skip_serializing_if = "Option::is_none"
    )]
    pub node_address_autodetection_v4: Option<NodeAddressAutodetection>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.encapsulation) || !self.encapsulation.startsWith('IPIP')",
        "message": "Tabby has no IPIP dataplane: use VXLAN, VXLANCrossSubnet or None"
    }
]))]
pub struct InstallationPool {
    /// The IPPool's name; the operator's default is
    /// `default-ipv4-ippool` for the first IPv4 pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true, "format" = "cidr"))]
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["IPIP", "IPIPCrossSubnet", "VXLAN", "VXLANCrossSubnet", "None"]))]
    pub encapsulation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Enabled", "Disabled"]))]
    pub nat_outgoing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20, max = 128))]
    pub block_size: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    #[serde(
        default,
        rename = "disableBGPExport",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_bgp_export: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_new_allocations: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("items" = {"type": "string", "enum": ["Workload", "Tunnel", "LoadBalancer"]}))]
    pub allowed_uses: Vec<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

/// One autodetection block: exactly one method may be set.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddressAutodetection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_found: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_reach: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// `NodeInternalIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["NodeInternalIP"]))]
    pub kubernetes: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, Value>,
}

impl NodeAddressAutodetection {
    /// The methods set, by field name, in the operator's precedence
    /// (§13: interface, skipInterface, canReach, firstFound, cidrs,
    /// kubernetes). `firstFound: false` is not a method.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.interface.is_some() {
            m.push("interface");
        }
        if self.skip_interface.is_some() {
            m.push("skipInterface");
        }
        if self.can_reach.is_some() {
            m.push("canReach");
        }
        if self.first_found == Some(true) {
            m.push("firstFound");
        }
        if !self.cidrs.is_empty() {
            m.push("cidrs");
        }
        if self.kubernetes.is_some() {
            m.push("kubernetes");
        }
        m
    }
}
