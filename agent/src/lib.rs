//! Tabby's agent: Calico's resource model, the datastore backends, and the
//! wiring behind the `tabbyctl`, `tabby-node` and `tabby` binaries. This is
//! the only crate that knows about Kubernetes and Calico's API.

pub mod bgpd;
pub mod cache;
pub mod cni;
pub mod controllers;
pub mod ctl;
pub mod datastore;
pub mod doctor;
pub mod grpc;
pub mod ipam;
pub mod manifests;
pub mod node;
pub mod observe;
pub mod resources;
