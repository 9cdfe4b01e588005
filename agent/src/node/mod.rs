//! tabby-node, the node agent: configured like calico-node from the
//! environment, it writes this node's Node resource, computes the routes to
//! every block (native, VXLAN, or VXLAN fallback when BGP cannot reach the
//! owner), runs the BGP speaker and felix-lite, and serves the node's gRPC
//! socket.

pub mod bgp;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod follow;
pub mod peers;
pub mod routes;
pub mod startup;
pub mod status;
pub mod vtep;

#[cfg(test)]
mod routes_tests;

pub use config::NodeConfig;
pub use daemon::run;
