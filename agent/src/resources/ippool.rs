//! IPPool (`projectcalico.org/v3`), with Calico's defaults.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `ipipMode` / `vxlanMode`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncapMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum AllowedUse {
    Workload,
    Tunnel,
    LoadBalancer,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignmentMode {
    Automatic,
    Manual,
}

// The CRD schema (`tabbyctl manifests`) carries what `validate` checks
// where OpenAPI can say it: the blockSize range per address family and
// the encapsulation rules are CEL rules because they span two fields.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.blockSize) || (self.cidr.contains(':') ? self.blockSize >= 116 : self.blockSize <= 32)",
        "message": "blockSize must be 20..32 for an IPv4 pool and 116..128 for an IPv6 pool"
    },
    {
        "rule": "!has(self.ipipMode) || !has(self.vxlanMode) || self.ipipMode == 'Never' || self.vxlanMode == 'Never'",
        "message": "ipipMode and vxlanMode cannot both be enabled on one pool"
    },
    {
        "rule": "!has(self.ipipMode) || self.ipipMode == 'Never' || !self.cidr.contains(':')",
        "message": "IPIP is not supported on IPv6 pools"
    }
]))]
pub struct IpPoolSpec {
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true, "format" = "cidr"))]
    pub cidr: String,
    /// Filled with 26 (IPv4) or 122 (IPv6) when the pool is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20, max = 128))]
    pub block_size: Option<u8>,
    // Calico's CRD defaults both modes to Never on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-tabby-api-default" = "Never"))]
    pub ipip_mode: Option<EncapMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-tabby-api-default" = "Never"))]
    pub vxlan_mode: Option<EncapMode>,
    #[serde(default)]
    pub nat_outgoing: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    #[serde(
        default,
        rename = "disableBGPExport",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_bgp_export: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_uses: Vec<AllowedUse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_mode: Option<AssignmentMode>,
}

impl IpPoolSpec {
    /// Fills the fields calicoctl fills on create, so `get -o yaml` shows the
    /// effective configuration.
    pub fn fill_defaults(&mut self, is_v6: bool) {
        self.block_size.get_or_insert(if is_v6 { 122 } else { 26 });
        self.ipip_mode.get_or_insert(EncapMode::Never);
        self.vxlan_mode.get_or_insert(EncapMode::Never);
        self.node_selector
            .get_or_insert_with(|| "all()".to_string());
        if self.allowed_uses.is_empty() {
            self.allowed_uses = vec![AllowedUse::Workload, AllowedUse::Tunnel];
        }
    }
}
