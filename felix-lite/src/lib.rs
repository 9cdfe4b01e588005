//! The Linux dataplane: routes, `vxlan.calico`, neighbour/FDB entries,
//! workload routes, MTU, sysctls and NAT outgoing, driven by one reconcile
//! loop that is the only writer of kernel state.
//!
//! It knows nothing of Kubernetes or BGP: [`model::DesiredState`] comes in,
//! the kernel is made to match it.

pub mod autodetect;
pub mod derive;
pub mod ethtool;
pub mod features;
pub mod firewall;
pub mod inspect;
pub mod model;
pub mod mtu;
pub mod neigh_limits;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod podlink;
pub mod podlink6;
pub mod reconcile;
pub mod route_text;
pub mod sysctl;
