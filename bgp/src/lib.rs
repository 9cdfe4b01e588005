//! Tabby's BGP speaker: wire codec, RFC 4271 session FSM, RIBs and policy.
//!
//! A library that knows nothing of Kubernetes, gRPC or configuration
//! files. The agent uses the [`speaker::Speaker`] API directly, in
//! process: it hands the speaker typed configuration
//! ([`peer_config`], [`speaker::SpeakerConfig`]) and consumes its
//! best-path stream ([`speaker::Speaker::watch`]). The `Bgp` gRPC service
//! over a speaker and the standalone daemon's YAML (`tabby-node bgp`) are
//! the agent's (`tabby_agent::grpc::bgp`, `tabby_agent::bgpd`).

pub mod fsm;
pub mod log_limit;
pub mod peer_config;
pub mod policy;
pub mod rib;
pub mod speaker;
pub mod transport;
pub mod wire;
