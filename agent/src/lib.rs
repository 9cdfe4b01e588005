//! Tabby's agent: Calico's resource model, the datastore backends, and the
//! wiring behind the `tabbyctl`, `tabby-node` and `tabby` binaries. This is
//! the only crate that knows about Kubernetes and Calico's API.

pub mod apply;
pub mod bgpd;
pub mod cni;
pub mod datastore;
pub mod grpc;
mod ipam_cache;
mod ipam_convert;
pub mod ipam_store;
pub mod ipam_workloads;
pub mod node;
pub mod resources;
