//! The `tabby` CNI plugin (spec 1.0.0; 0.3.x/0.4.0 results and 1.1.0's
//! STATUS too) and its IPAM-only twin `tabby-ipam`, as a library so the
//! binary stays a thin shell.
//!
//! ADD: `Ipam.AutoAssign` on the node (handle `k8s-pod-network.<id>`,
//! attributes namespace/pod/node/timestamp) → the veth pair and the pod's
//! /32 and `169.254.1.1` routes ([`tabby_felix_lite::podlink`]) →
//! `Dataplane.AddWorkload` (WorkloadEndpoint + host route by the node's
//! reconciler) → the result on stdout. DEL: the pod end, then
//! `Dataplane.RemoveWorkload`, the host end, `Ipam.ReleaseByHandle`; safe
//! to repeat. CHECK compares the kernel and IPAM with `prevResult`.
//! Dual stack (`ipam.assign_ipv6: "true"`): one AutoAssign for both
//! families, the /128 and IPv6 default route added by
//! [`tabby_felix_lite::podlink6`], AddWorkload's `ipv6` field.
//! Errors are CNI error results naming what was wrong (see [`error`]).
//!
//! In Kubernetes mode (`"datastore_type": "kubernetes"`) ADD first reads
//! the pod's and namespace's IPAM annotations ([`k8s`], [`annotations`]):
//! pools to assign from, or the one address to assign (`Ipam.AssignIp`).
//!
//! `tabby install-cni` ([`install`]) puts the plugin, its conflist and its
//! kubeconfig on the host, as Calico's install-cni init container does.

pub mod annotations;
mod assign;
pub mod config;
pub mod conflist;
pub mod env;
pub mod error;
pub mod install;
pub mod k8s;
pub mod plugin;
pub mod result;
mod rpc;

pub use plugin::{run, Outcome};
