//! Calico IPAM semantics (pools, blocks, affinities, handles, borrowing) as
//! pure allocation logic over a small store trait.
//!
//! The crate does no I/O of its own: the agent's datastore backends implement
//! its store trait. The allocator arrives with the IPAM issue; the workspace
//! reserves its room now so the crate boundaries are fixed from the start.

pub mod allocator;
pub mod block;
pub mod memory;
pub mod pool;
pub mod selector;
pub mod store;
