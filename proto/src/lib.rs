//! The gRPC services that link Tabby's parts, and that the CLI and the CNI
//! plugin reach over the node's unix socket (`$TABBY_RUN_DIR/tabby.sock`).
//!
//! Each service lives in its own protobuf package so that a part depends only
//! on the contract it speaks.

/// The BGP speaker: peers, originated prefixes, best-path stream.
pub mod bgp {
    tonic::include_proto!("tabby.bgp.v1");
}

/// The dataplane (felix-lite): desired routes, VTEPs, workloads.
pub mod dataplane {
    tonic::include_proto!("tabby.dataplane.v1");
}

/// IP address management, used by the CNI plugin through the node agent.
pub mod ipam {
    tonic::include_proto!("tabby.ipam.v1");
}

/// Node-level status, as `tabbyctl node status` shows it.
pub mod node {
    tonic::include_proto!("tabby.node.v1");
}
