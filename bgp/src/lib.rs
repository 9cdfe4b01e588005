//! Tabby's BGP speaker: wire codec, RFC 4271 session FSM, RIBs and policy.
//!
//! This crate knows nothing of Kubernetes. The agent hands it typed
//! configuration and consumes its best-path stream through the `Bgp` gRPC
//! service defined in `tabby-proto`.

pub mod daemon_config;
pub mod fsm;
pub mod peer_config;
pub mod policy;
pub mod rib;
pub mod speaker;
pub mod transport;
pub mod wire;
