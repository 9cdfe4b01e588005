//! How Calico names its custom resources in Kubernetes, and how those names
//! map back to the datastore names Tabby uses everywhere else (the etcd
//! layout's). Kubernetes object names are DNS subdomains, so a CIDR or a
//! mixed-case handle id cannot be a name as it is.

use crate::resources::ipam::{affinity_name, block_name};
use crate::resources::Kind;

/// Kubernetes caps object names at 253 characters (a DNS subdomain).
const MAX_NAME: usize = 253;

/// A block's CR name: the CIDR with `.`, `:` and `/` as `-`
/// (`10.244.1.0/26` → `10-244-1-0-26`), as Calico's `names.CIDRToName`.
pub fn cidr_cr_name(cidr: &str) -> String {
    cidr.replace(['.', ':', '/'], "-")
}

/// A BlockAffinity's CR name: `<host>-<cidr name>`. Past 253 characters
/// Calico truncates the host and appends `-` and the first 11 hex digits of
/// sha256("<host>+<cidr name>"), so the name stays unique and valid.
pub fn affinity_cr_name(host: &str, cidr: &str) -> String {
    let cidr_name = cidr_cr_name(cidr);
    let name = format!("{host}-{cidr_name}");
    if name.len() < MAX_NAME {
        return name;
    }
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{host}+{cidr_name}").as_bytes(),
    );
    let hash: String = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..11]
        .to_string();
    // Room for "-<cidr name>-<hash>"; the host is cut at a char boundary.
    let keep = MAX_NAME - 1 - cidr_name.len() - 1 - hash.len() - 1;
    let mut cut = keep.min(host.len());
    while !host.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{cidr_name}-{hash}", &host[..cut])
}

/// A handle's CR name: the handle id lowercased (Calico keeps the original
/// in `spec.handleID`).
pub fn handle_cr_name(handle_id: &str) -> String {
    handle_id.to_ascii_lowercase()
}

/// The CR name for a Tabby datastore name of a CRD-backed kind.
pub fn cr_name(kind: Kind, name: &str) -> String {
    match kind {
        Kind::IpamBlock => cidr_cr_name(
            &crate::resources::ipam::cidr_from_block_name(name).unwrap_or_else(|| name.into()),
        ),
        Kind::BlockAffinity => match name.split_once('/') {
            Some((host, block)) => affinity_cr_name(
                host,
                &crate::resources::ipam::cidr_from_block_name(block)
                    .unwrap_or_else(|| block.into()),
            ),
            None => name.to_string(),
        },
        Kind::IpamHandle => handle_cr_name(name),
        _ => name.to_string(),
    }
}

/// The Tabby datastore name of a CR, from its spec where the CR name alone
/// is lossy (CIDRs, lowercased handle ids).
pub fn store_name(kind: Kind, cr_name: &str, spec: &serde_json::Value) -> String {
    let field = |f: &str| {
        spec.get(f)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    match kind {
        Kind::IpamBlock => field("cidr").map(block_name),
        Kind::BlockAffinity => match (field("node"), field("cidr")) {
            (Some(n), Some(c)) => Some(affinity_name(n, c)),
            _ => None,
        },
        Kind::IpamHandle => field("handleID").map(str::to_string),
        _ => None,
    }
    .unwrap_or_else(|| cr_name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_calicos() {
        assert_eq!(cidr_cr_name("10.244.1.0/26"), "10-244-1-0-26");
        assert_eq!(cidr_cr_name("fd00:10:244::/122"), "fd00-10-244---122");
        assert_eq!(
            affinity_cr_name("node-a", "10.244.1.0/26"),
            "node-a-10-244-1-0-26"
        );
        assert_eq!(cr_name(Kind::IpamBlock, "10.244.1.0-26"), "10-244-1-0-26");
        assert_eq!(
            cr_name(Kind::BlockAffinity, "node-a/10.244.1.0-26"),
            "node-a-10-244-1-0-26"
        );
        assert_eq!(
            cr_name(Kind::IpamHandle, "k8s-pod-network.ABC"),
            "k8s-pod-network.abc"
        );
    }

    #[test]
    fn long_affinity_names_are_hashed_to_253() {
        let host = "h".repeat(300);
        let n = affinity_cr_name(&host, "10.244.1.0/26");
        assert_eq!(n.len(), 252, "{n}");
        assert!(n.ends_with("-10-244-1-0-26-") || n.contains("-10-244-1-0-26-"));
        // Two hosts that differ only past the cut get different names.
        let other = format!("{}x", "h".repeat(299));
        assert_ne!(n, affinity_cr_name(&other, "10.244.1.0/26"));
        // The hash is sha256("<host>+<cidrname>"), first 11 hex digits.
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{host}+10-244-1-0-26").as_bytes(),
        );
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert!(n.ends_with(&hex[..11]));
    }

    #[test]
    fn store_names_come_from_the_spec() {
        let spec =
            serde_json::json!({"cidr": "10.244.1.0/26", "node": "node-a", "handleID": "K8s.X"});
        assert_eq!(
            store_name(Kind::IpamBlock, "10-244-1-0-26", &spec),
            "10.244.1.0-26"
        );
        assert_eq!(
            store_name(Kind::BlockAffinity, "x", &spec),
            "node-a/10.244.1.0-26"
        );
        assert_eq!(store_name(Kind::IpamHandle, "k8s.x", &spec), "K8s.X");
        assert_eq!(store_name(Kind::IpPool, "p", &spec), "p");
    }
}
