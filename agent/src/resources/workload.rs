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

/// Calico's escaping for a dash-joined name segment: `-` becomes `--`, and
/// a segment may not start or end with `-` (the join would be ambiguous).
fn escape_segment(field: &str, value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(format!("{field} {value:?} must not begin or end with '-'"));
    }
    Ok(value.replace('-', "--"))
}

/// The WorkloadEndpoint name Calico gives a Kubernetes pod's interface:
/// `<node>-k8s-<pod>-<endpoint>`, each segment dash-escaped.
pub fn workload_endpoint_name(node: &str, pod: &str, endpoint: &str) -> Result<String, String> {
    Ok(format!(
        "{}-k8s-{}-{}",
        escape_segment("node", node)?,
        escape_segment("pod", pod)?,
        escape_segment("interface_name", endpoint)?
    ))
}

/// The inverse of [`workload_endpoint_name`] for a Kubernetes endpoint:
/// `(node, pod, endpoint)`, or None if `name` is not of that form.
pub fn parse_workload_endpoint_name(name: &str) -> Option<(String, String, String)> {
    // Split on single dashes; a doubled dash is a dash inside a segment.
    let mut segs = vec![String::new()];
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '-' {
            if chars.peek() == Some(&'-') {
                chars.next();
                segs.last_mut()?.push('-');
            } else {
                segs.push(String::new());
            }
        } else {
            segs.last_mut()?.push(c);
        }
    }
    match <[String; 4]>::try_from(segs) {
        Ok([node, k8s, pod, endpoint]) if k8s == "k8s" && !node.is_empty() && !pod.is_empty() => {
            Some((node, pod, endpoint))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_round_trip() {
        let n = workload_endpoint_name("node-a", "web-7d9f-x2", "eth0").unwrap();
        assert_eq!(n, "node--a-k8s-web--7d9f--x2-eth0");
        assert_eq!(
            parse_workload_endpoint_name(&n),
            Some(("node-a".into(), "web-7d9f-x2".into(), "eth0".into()))
        );
        assert_eq!(parse_workload_endpoint_name("node-a-web-eth0"), None);
        assert_eq!(parse_workload_endpoint_name("plain"), None);
    }
}
