//! `lab up --topology`: how the lab's nodes peer.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Calico's default: the node-to-node mesh.
    #[default]
    #[value(name = "mesh")]
    Mesh,
    /// The first node of each subnet is a route reflector, the mesh is
    /// off and every node peers with the reflectors (see `rr`).
    #[value(name = "rr")]
    Rr,
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Topology::Mesh => "mesh",
            Topology::Rr => "rr",
        })
    }
}
