//! Calico IPAM semantics (pools, blocks, affinities, handles, borrowing) as
//! pure allocation logic over a small store trait.
//!
//! The crate does no I/O of its own: [`store::IpamStore`] is implemented by
//! the agent over its datastore backends, and [`memory`] provides an
//! in-process implementation with the same compare-and-swap semantics.
//!
//! - [`block`]: one block's ordinals, FIFO free list and attributes.
//! - [`selector`]: Calico's label selectors (IPPool.nodeSelector).
//! - [`pool`]: which pools a request may use; per-host block search order.
//! - [`allocator`]: assign, borrow and release; a fast path over the
//!   store's cached blocks that falls back to reading through. Claiming a
//!   block (`Ipam::claim`) is in the private `claim` module, release in
//!   `release`.
//! - [`assign_ip`]: one specific address (Calico's `AssignIP`).
//! - [`check`]: `ipam check [--fix]`, leaks judged through
//!   [`check::LiveWorkloads`] and [`gc`].
//! - [`gc`]: garbage collection as calico-kube-controllers does it: which
//!   allocations are leaked, the grace period across passes, what may be
//!   released.
//! - [`handle`]: Calico's handle names (pods, tunnel addresses).
//! - [`timestamp`]: the allocation timestamps Calico and Tabby write.

pub mod allocator;
mod assign_error;
pub mod assign_ip;
pub mod block;
pub mod check;
mod claim;
pub mod gc;
pub mod handle;
pub mod memory;
pub mod pool;
mod release;
pub use release::HostRelease;
pub mod report;
pub mod selector;
pub mod store;
pub mod timestamp;
