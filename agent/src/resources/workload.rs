//! WorkloadEndpoint: one pod interface, as Calico's CNI plugin writes it
//! (`projectcalico.org/v3`, namespaced). Tabby's node agent writes one per
//! pod it networks; `ipam check` reads them to tell live addresses from
//! leaked ones.

use serde::{Deserialize, Serialize};

fn empty(s: &str) -> bool {
    s.is_empty()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    #[serde(default, skip_serializing_if = "empty")]
    pub orchestrator: String,
    #[serde(default, skip_serializing_if = "empty")]
    pub workload: String,
    #[serde(default, skip_serializing_if = "empty")]
    pub node: String,
    /// The pod sandbox's container ID: the IPAM handle is
    /// `k8s-pod-network.<containerID>`.
    #[serde(default, rename = "containerID", skip_serializing_if = "empty")]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "empty")]
    pub service_account_name: String,
    #[serde(default, rename = "ipNetworks", skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<String>,
    #[serde(default, rename = "ipv4Gateway", skip_serializing_if = "empty")]
    pub ipv4_gateway: String,
    #[serde(default, rename = "ipv6Gateway", skip_serializing_if = "empty")]
    pub ipv6_gateway: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "empty")]
    pub interface_name: String,
    #[serde(default, skip_serializing_if = "empty")]
    pub mac: String,
    // Kept verbatim so a CNI-written endpoint round-trips; Tabby doesn't
    // act on them yet.
    #[serde(default, rename = "ipNATs", skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_controls: Option<serde_json::Value>,
}
