//! Calico's IPAM handle names: one spelling for every caller (the CNI
//! plugin, tabby-node's tunnel upkeep, `ipam check`).

/// Calico's pod handle prefix: `k8s-pod-network.<containerID>`.
pub const POD_HANDLE_PREFIX: &str = "k8s-pod-network.";

/// The VXLAN tunnel address handle prefix, `vxlan-tunnel-addr-<node>`.
pub const VXLAN_TUNNEL_HANDLE_PREFIX: &str = "vxlan-tunnel-addr-";

/// The IPv6 VXLAN tunnel address handle prefix.
pub const VXLAN_V6_TUNNEL_HANDLE_PREFIX: &str = "vxlan-v6-tunnel-addr-";

/// Calico's tunnel address handles, `<prefix><node>`.
pub const TUNNEL_HANDLE_PREFIXES: [&str; 5] = [
    VXLAN_TUNNEL_HANDLE_PREFIX,
    VXLAN_V6_TUNNEL_HANDLE_PREFIX,
    "ipip-tunnel-addr-",
    "wireguard-tunnel-addr-",
    "wireguard-v6-tunnel-addr-",
];

/// A pod's handle: `k8s-pod-network.<containerID>`.
pub fn pod_handle(container_id: &str) -> String {
    format!("{POD_HANDLE_PREFIX}{container_id}")
}

/// A node's VXLAN tunnel address handle: `vxlan-tunnel-addr-<node>`.
pub fn vxlan_tunnel_handle(node: &str) -> String {
    format!("{VXLAN_TUNNEL_HANDLE_PREFIX}{node}")
}

/// A node's IPv6 VXLAN tunnel address handle: `vxlan-v6-tunnel-addr-<node>`.
pub fn vxlan_v6_tunnel_handle(node: &str) -> String {
    format!("{VXLAN_V6_TUNNEL_HANDLE_PREFIX}{node}")
}
