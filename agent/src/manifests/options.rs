//! What a rendering of tabby.yaml may change, and the names its parts
//! share. Kept out of tabby.rs, which assembles the file from
//! workloads.rs, so workloads.rs need not import its own caller.

pub const CONFIG_MAP: &str = "tabby-config";
/// The one image every container runs (tabby-node, tabby, tabbyctl and
/// `nft` in it); `tabbyctl manifests --image` replaces it.
pub const IMAGE: &str = concat!("ghcr.io/tabby-net/tabby:v", env!("CARGO_PKG_VERSION"));

/// What a rendering may change.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub image: String,
    /// The ConfigMap's `veth_mtu`: "0" lets tabby-node derive it.
    pub veth_mtu: String,
    /// The ConfigMap's `calico_backend` (CALICO_NETWORKING_BACKEND).
    pub backend: String,
    /// Extra tabby-node environment (the default pool from an Installation).
    pub node_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            image: IMAGE.into(),
            veth_mtu: "0".into(),
            backend: "bird".into(),
            node_env: vec![],
        }
    }
}
