//! Calico's etcdv3 key layout (libcalico-go backend/model) and the value
//! forms Calico writes there, so that Tabby and calicoctl can share an etcd.
//!
//! v3 resources live under `/calico/resources/v3/projectcalico.org/<plural>/`
//! as v3 JSON. IPAM objects are stored as Calico's backend model, keyed by
//! what they describe (block CIDR, node and CIDR, handle id) rather than by
//! a resource name.

use crate::resources::ipam::{
    cidr_from_block_name, AffinityState, BlockAffinitySpec, IpamConfigSpec, IpamHandleSpec,
};
use crate::resources::{Kind, Object, Resource};
use serde::{Deserialize, Serialize};

pub(crate) const ROOT: &str = "/calico/";
const RESOURCES: &str = "/calico/resources/v3/projectcalico.org/";
const BLOCKS: &str = "/calico/ipam/v2/assignment/";
const HOSTS: &str = "/calico/ipam/v2/host/";
const HANDLES: &str = "/calico/ipam/v2/handle/";
const CONFIG: &str = "/calico/ipam/v2/config";
/// Calico keeps no Installation in etcd (the operator reads it from the
/// Kubernetes API only); Tabby stores it beside the v3 resources, under
/// the operator's group, so the lab and etcd users can apply one.
const INSTALLATIONS: &str = "/calico/resources/v3/operator.tigera.io/installations/";

fn family(cidr_or_ip: &str) -> &'static str {
    if cidr_or_ip.contains(':') {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// The key of (kind, name). Block names are `10.0.0.0-26`; affinity names
/// are `<node>/10.0.0.0-26`.
pub(crate) fn key(kind: Kind, name: &str) -> String {
    match kind {
        Kind::IpamBlock => format!("{BLOCKS}{}/block/{name}", family(name)),
        Kind::BlockAffinity => {
            let (node, block) = name.split_once('/').unwrap_or((name, ""));
            format!("{HOSTS}{node}/{}/block/{block}", family(block))
        }
        Kind::IpamHandle => format!("{HANDLES}{name}"),
        Kind::IpamConfig => CONFIG.to_string(),
        Kind::Installation => format!("{INSTALLATIONS}{name}"),
        _ => format!("{RESOURCES}{}/{name}", kind.plural()),
    }
}

/// The prefix under which every key of `kind` lives.
pub(crate) fn kind_prefix(kind: Kind) -> String {
    match kind {
        Kind::IpamBlock => BLOCKS.to_string(),
        Kind::BlockAffinity => HOSTS.to_string(),
        Kind::IpamHandle => HANDLES.to_string(),
        Kind::IpamConfig => CONFIG.to_string(),
        Kind::Installation => INSTALLATIONS.to_string(),
        _ => format!("{RESOURCES}{}/", kind.plural()),
    }
}

/// The (kind, name) a key belongs to; None for keys Tabby doesn't model
/// (felix config, workload endpoints, the `/calico/ipam/v2/host/<node>`
/// marker, ...).
pub(crate) fn parse_key(key: &str) -> Option<(Kind, String)> {
    if let Some(name) = key.strip_prefix(INSTALLATIONS) {
        return (!name.is_empty()).then(|| (Kind::Installation, name.to_string()));
    }
    if let Some(rest) = key.strip_prefix(RESOURCES) {
        let (plural, name) = rest.split_once('/')?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.plural() == plural && *k != Kind::Installation)?;
        return (!name.is_empty()).then(|| (kind, name.to_string()));
    }
    if let Some(rest) = key.strip_prefix(BLOCKS) {
        let (_, name) = rest.split_once("/block/")?;
        return Some((Kind::IpamBlock, name.to_string()));
    }
    if let Some(rest) = key.strip_prefix(HOSTS) {
        let (node, rest) = rest.split_once('/')?;
        let (_, block) = rest.split_once("/block/")?;
        return Some((Kind::BlockAffinity, format!("{node}/{block}")));
    }
    if let Some(id) = key.strip_prefix(HANDLES) {
        return Some((Kind::IpamHandle, id.to_string()));
    }
    (key == CONFIG).then(|| (Kind::IpamConfig, "default".to_string()))
}

#[derive(Serialize, Deserialize)]
struct AffinityValue {
    state: AffinityState,
    #[serde(default)]
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
struct ConfigValue {
    strict_affinity: bool,
    auto_allocate_blocks: bool,
    #[serde(default)]
    max_blocks_per_host: u32,
}

/// The bytes Calico keeps at the key.
pub(crate) fn encode(r: &Resource) -> Result<Vec<u8>, super::Error> {
    let v = match r {
        Resource::IpamBlock(o) => serde_json::to_vec(&o.spec),
        Resource::BlockAffinity(o) => serde_json::to_vec(&AffinityValue {
            state: o.spec.state,
            deleted: o.spec.deleted,
        }),
        Resource::IpamHandle(o) => serde_json::to_vec(&o.spec),
        Resource::IpamConfig(o) => serde_json::to_vec(&ConfigValue {
            strict_affinity: o.spec.strict_affinity,
            auto_allocate_blocks: o.spec.auto_allocate_blocks,
            max_blocks_per_host: o.spec.max_blocks_per_host,
        }),
        _ => return super::stored_bytes(r),
    };
    super::within_limit(r, v.unwrap_or_default())
}

/// Rebuilds the resource from Calico's stored form.
pub(crate) fn decode(kind: Kind, name: &str, bytes: &[u8]) -> Result<Resource, String> {
    let err = |e: serde_json::Error| e.to_string();
    Ok(match kind {
        Kind::IpamBlock => {
            let spec = serde_json::from_slice(bytes).map_err(err)?;
            Resource::IpamBlock(Object::new(kind.as_str(), name, spec))
        }
        Kind::BlockAffinity => {
            let v: AffinityValue = serde_json::from_slice(bytes).map_err(err)?;
            let (node, block) = name.split_once('/').unwrap_or((name, ""));
            let spec = BlockAffinitySpec {
                state: v.state,
                node: node.to_string(),
                cidr: cidr_from_block_name(block).unwrap_or_default(),
                deleted: v.deleted,
            };
            Resource::BlockAffinity(Object::new(kind.as_str(), name, spec))
        }
        Kind::IpamHandle => {
            let spec: IpamHandleSpec = serde_json::from_slice(bytes).map_err(err)?;
            Resource::IpamHandle(Object::new(kind.as_str(), name, spec))
        }
        Kind::IpamConfig => {
            let v: ConfigValue = serde_json::from_slice(bytes).map_err(err)?;
            let spec = IpamConfigSpec {
                strict_affinity: v.strict_affinity,
                auto_allocate_blocks: v.auto_allocate_blocks,
                max_blocks_per_host: v.max_blocks_per_host,
                ip_cooldown_seconds: None,
            };
            Resource::IpamConfig(Object::new(kind.as_str(), name, spec))
        }
        _ => Resource::from_json_slice(bytes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ipam::block_name;

    #[test]
    fn keys_follow_calicos_layout_and_parse_back() {
        let cases = [
            (
                Kind::IpPool,
                "default-ipv4-ippool",
                "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool",
            ),
            (
                Kind::IpamBlock,
                "10.244.1.0-26",
                "/calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26",
            ),
            (
                Kind::BlockAffinity,
                "node-a/10.244.1.0-26",
                "/calico/ipam/v2/host/node-a/ipv4/block/10.244.1.0-26",
            ),
            (
                Kind::IpamBlock,
                "fd00::-122",
                "/calico/ipam/v2/assignment/ipv6/block/fd00::-122",
            ),
            (
                Kind::IpamHandle,
                "k8s-pod-network.abc",
                "/calico/ipam/v2/handle/k8s-pod-network.abc",
            ),
            (Kind::IpamConfig, "default", "/calico/ipam/v2/config"),
            (
                Kind::Installation,
                "default",
                "/calico/resources/v3/operator.tigera.io/installations/default",
            ),
        ];
        for (kind, name, k) in cases {
            assert_eq!(key(kind, name), k);
            assert_eq!(parse_key(k), Some((kind, name.to_string())));
            assert!(k.starts_with(&kind_prefix(kind)));
        }
        assert_eq!(parse_key("/calico/ipam/v2/host/node-a"), None);
        assert_eq!(block_name("10.0.0.0/26"), "10.0.0.0-26");
    }

    #[test]
    fn affinity_value_is_calicos_shape() {
        let spec = BlockAffinitySpec {
            state: AffinityState::Confirmed,
            node: "n1".into(),
            cidr: "10.0.0.0/26".into(),
            deleted: false,
        };
        let r = Resource::BlockAffinity(Object::new("BlockAffinity", "n1/10.0.0.0-26", spec));
        let bytes = encode(&r).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"state":"confirmed","deleted":false}"#
        );
        assert_eq!(
            decode(Kind::BlockAffinity, "n1/10.0.0.0-26", &bytes).unwrap(),
            r
        );
    }
}
