//! BGPPeer and BGPConfiguration.

use super::asn::AsNumber;
use super::duration::GO_DURATION_PATTERN;
use super::meta::BgpPassword;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    /// Only this node peers (node-specific peer). Exclusive with nodeSelector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// `A.B.C.D`, `A.B.C.D:port`, an IPv6 address or `[v6]:port`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("anyOf" = [
        {"format": "ipv4"},
        {"format": "ipv6"},
        {"pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}:[0-9]{1,5}$"},
        {"pattern": "^\\[[0-9A-Fa-f:.]+\\]:[0-9]{1,5}$"}
    ]))]
    pub peer_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_original_next_hop: bool,
    /// Go duration string, e.g. "120s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION_PATTERN))]
    pub max_restart_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["UseNodeIP", "None"]))]
    pub source_address: Option<String>,
    /// `None` or `BFDIfDirectlyConnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["None", "BFDIfDirectlyConnected"]))]
    pub failure_detection_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird_gateway_mode: Option<String>,
    // Calico spells it with "AS" in capitals; camelCase alone would write
    // numAllowedLocalAsNumbers, which Calico (and a CRD) don't know. The
    // alias keeps reading what earlier Tabby builds stored.
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        alias = "numAllowedLocalAsNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    // Calico's field is an int32.
    #[schemars(range(max = 2147483647))]
    pub num_allowed_local_as_numbers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_workload_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<String>,
    /// `Auto` (default): a node this peer's peerSelector selects also
    /// peers with the nodes its node/nodeSelector selects; `Manual`: only
    /// the selected side peers (the reverse needs its own BGPPeer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Auto", "Manual"]))]
    pub reverse_peering: Option<String>,
    /// Not part of Calico's API: a per-peer prefix limit (Cease 6/1 when
    /// exceeded). Optional, so Calico manifests never carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<u32>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrEntry {
    pub cidr: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Community {
    pub name: String,
    /// `aa:nn` (standard) or `aa:nn:mm` (large); the part sizes are
    /// checked by `tabbyctl apply` only.
    #[schemars(pattern(r"^[0-9]+:[0-9]+(:[0-9]+)?$"))]
    pub value: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixAdvertisement {
    pub cidr: String,
    #[serde(default)]
    pub communities: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpConfigurationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub listen_port: Option<u16>,
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<CidrEntry>,
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<CidrEntry>,
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<CidrEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["None", "NodeIP"]))]
    pub bind_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION_PATTERN))]
    pub node_mesh_max_restart_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV4",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv4: Option<String>,
    #[serde(
        default,
        rename = "localWorkloadPeeringIPV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_workload_peering_ipv6: Option<String>,
    /// Tabby extension: BGPPeer's `failureDetectionMode` for the mesh
    /// sessions (`None` or `BFDIfDirectlyConnected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["None", "BFDIfDirectlyConnected"]))]
    pub node_to_node_mesh_failure_detection_mode: Option<String>,
    /// Tabby extension (named after Calico Enterprise's BFDConfiguration
    /// `minimumRecvInterval`): Go duration, default 300ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION_PATTERN))]
    pub bfd_minimum_recv_interval: Option<String>,
    /// Tabby extension (BFDConfiguration's `minimumSendInterval`): Go
    /// duration, default 300ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION_PATTERN))]
    pub bfd_minimum_send_interval: Option<String>,
    /// Tabby extension (BFDConfiguration's `multiplier`): 1-255, default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub bfd_multiplier: Option<u32>,
}

impl BgpConfigurationSpec {
    /// Calico's defaults apply where a field is unset.
    pub fn effective_as(&self) -> AsNumber {
        self.as_number.unwrap_or(AsNumber::DEFAULT)
    }
    pub fn mesh_enabled(&self) -> bool {
        self.node_to_node_mesh_enabled.unwrap_or(true)
    }
    pub fn effective_listen_port(&self) -> u16 {
        self.listen_port.unwrap_or(179)
    }
}
