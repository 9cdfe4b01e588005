//! IPAM in the agent: Calico's IPAM resources as the allocator's store
//! (`tabby_ipam` holds the logic, with no I/O), the fast path over the
//! cluster cache, and which workloads are live for leak checks.

mod cache;
mod convert;
mod store;
pub mod workloads;

pub use cache::KINDS;
pub use store::DatastoreIpam;
