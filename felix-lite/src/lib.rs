//! The Linux dataplane: routes, `vxlan.calico`, neighbour/FDB entries,
//! workload routes, MTU, sysctls and NAT outgoing, driven by one reconcile
//! loop that is the only writer of kernel state.
//!
//! It knows nothing of Kubernetes or BGP. The reconciler arrives with the
//! felix-lite issue; the room is reserved now so the boundaries are fixed.
