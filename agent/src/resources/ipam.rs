//! The IPAM kinds: IPAMBlock, BlockAffinity, IPAMHandle, IPAMConfig.
//! Field names follow Calico's `crd.projectcalico.org/v1` CRDs.

use serde::{de, Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AllocationAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secondary: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "releasedAt",
        skip_serializing_if = "Option::is_none"
    )]
    pub released_at: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamBlockSpec {
    #[serde(default)]
    pub cidr: String,
    /// `host:<node>` or `virtual:<name>`; None = unaffine.
    #[serde(default)]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_claim_time: Option<String>,
    #[serde(default)]
    pub strict_affinity: bool,
    /// Per ordinal: index into `attributes`, or None when free.
    #[serde(default)]
    pub allocations: Vec<Option<u32>>,
    /// Free ordinals, FIFO.
    #[serde(default)]
    pub unallocated: Vec<u32>,
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    #[serde(default)]
    pub sequence_number: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    #[default]
    Pending,
    Confirmed,
    PendingDeletion,
}

impl AffinityState {
    pub fn as_str(self) -> &'static str {
        match self {
            AffinityState::Pending => "pending",
            AffinityState::Confirmed => "confirmed",
            AffinityState::PendingDeletion => "pendingDeletion",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinitySpec {
    #[serde(default)]
    pub state: AffinityState,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub cidr: String,
    /// Calico's CRD stores this as the string "false"/"true" for
    /// compatibility with old releases; both forms are read, a bool is
    /// written.
    #[serde(default, deserialize_with = "bool_or_string")]
    pub deleted: bool,
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        S(String),
    }
    match B::deserialize(d)? {
        B::B(b) => Ok(b),
        B::S(s) => match s.as_str() {
            "true" => Ok(true),
            "false" | "" => Ok(false),
            other => Err(de::Error::custom(format!(
                "{other:?} is not a boolean (expected true or false)"
            ))),
        },
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamHandleSpec {
    #[serde(default, rename = "handleID")]
    pub handle_id: String,
    /// Block CIDR → number of addresses this handle holds in it.
    #[serde(default)]
    pub block: BTreeMap<String, u32>,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfigSpec {
    #[serde(default)]
    pub strict_affinity: bool,
    #[serde(default = "yes")]
    pub auto_allocate_blocks: bool,
    /// 0 means Calico's default of 20.
    #[serde(default)]
    pub max_blocks_per_host: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_cooldown_seconds: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Default for IpamConfigSpec {
    fn default() -> Self {
        IpamConfigSpec {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
            ip_cooldown_seconds: None,
        }
    }
}

impl IpamConfigSpec {
    /// The limit actually enforced: Calico silently reads 0 as 20.
    pub fn effective_max_blocks_per_host(&self) -> u32 {
        if self.max_blocks_per_host == 0 {
            20
        } else {
            self.max_blocks_per_host
        }
    }
}

/// The datastore name of a block: its CIDR with `/` as `-`, as in Calico's
/// etcd keys (`10.244.1.0-26`). The Kubernetes backend derives its own
/// DNS-safe name from this.
pub fn block_name(cidr: &str) -> String {
    cidr.replace('/', "-")
}

/// The datastore name of an affinity: `<node>/<block name>`. Node names
/// cannot contain `/`, so the pair is recoverable from the name.
pub fn affinity_name(node: &str, cidr: &str) -> String {
    format!("{node}/{}", block_name(cidr))
}

/// The inverse of [`block_name`]: `10.244.1.0-26` → `10.244.1.0/26`.
pub fn cidr_from_block_name(name: &str) -> Option<String> {
    let (ip, len) = name.rsplit_once('-')?;
    Some(format!("{ip}/{len}"))
}
