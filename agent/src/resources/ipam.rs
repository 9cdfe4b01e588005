//! The IPAM kinds: IPAMBlock, BlockAffinity, IPAMHandle, IPAMConfig.
//! Field names follow Calico's `crd.projectcalico.org/v1` CRDs.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
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

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamBlockSpec {
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true, "format" = "cidr"))]
    pub cidr: String,
    /// `host:<node>` or `virtual:<name>`; None = unaffine.
    #[serde(default)]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_claim_time: Option<String>,
    // Calico's CRD requires the fields Calico always writes; Tabby writes
    // them all too.
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub strict_affinity: bool,
    /// Per ordinal: index into `attributes`, or None when free.
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub allocations: Vec<Option<u32>>,
    /// Free ordinals, FIFO.
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub unallocated: Vec<u32>,
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub attributes: Vec<AllocationAttribute>,
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub sequence_number: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
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

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockAffinitySpec {
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub state: AffinityState,
    #[serde(default)]
    #[schemars(length(min = 1), extend("x-tabby-required" = true))]
    pub node: String,
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true, "format" = "cidr"))]
    pub cidr: String,
    /// Calico's CRD stores this as the string "false"/"true" for
    /// compatibility with old releases; both forms are read, a bool is
    /// written (to sqlite and etcd; a CR must carry the string).
    #[serde(default, deserialize_with = "bool_or_string")]
    #[schemars(schema_with = "bool_string_schema", extend("x-tabby-required" = true))]
    pub deleted: bool,
}

/// The schema of `BlockAffinity.spec.deleted` as Calico's CRD types it: a
/// string. Only the two spellings Calico writes are valid there.
fn bool_string_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": ["true", "false"]
    })
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

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamHandleSpec {
    #[serde(default, rename = "handleID")]
    #[schemars(extend("x-tabby-required" = true))]
    pub handle_id: String,
    /// Block CIDR → number of addresses this handle holds in it.
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub block: BTreeMap<String, u32>,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpamConfigSpec {
    // Required in the CRD, as in Calico's: an absent autoAllocateBlocks
    // reads as true here but false in Calico (Go's zero value).
    #[serde(default)]
    #[schemars(extend("x-tabby-required" = true))]
    pub strict_affinity: bool,
    #[serde(default = "yes")]
    #[schemars(extend("x-tabby-required" = true))]
    pub auto_allocate_blocks: bool,
    /// 0 means Calico's default of 20.
    // Calico's field is an int32.
    #[serde(default)]
    #[schemars(range(max = 2147483647))]
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
