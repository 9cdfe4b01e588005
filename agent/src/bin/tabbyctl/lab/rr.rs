//! The `rr` lab topology, configured as Calico's route-reflector guide
//! does it: the first node of each subnet gets the label
//! `route-reflector=true` and `routeReflectorClusterID: 244.0.0.1`, the
//! node-to-node mesh is turned off, and one BGPPeer (`nodeSelector:
//! all()`, `peerSelector: route-reflector == 'true'`) makes every node
//! peer with the reflectors; reverse peering makes each reflector peer
//! with every node. Applied through `tabbyctl apply` before any tabby-node
//! starts, so no node ever runs the mesh.

use super::sh;
use super::state::Lab;
use super::state::Topology;
use anyhow::{bail, Context, Result};

/// The cluster ID Calico's documentation uses.
pub const CLUSTER_ID: &str = "244.0.0.1";

/// The reflectors' names: the first node of each subnet (none unless the
/// topology is `rr`).
pub fn reflectors(lab: &Lab) -> Vec<&str> {
    if lab.topology != Topology::Rr {
        return Vec::new();
    }
    let mut seen = std::collections::BTreeSet::new();
    lab.nodes
        .iter()
        .filter(|n| seen.insert(n.subnet.as_str()))
        .map(|n| n.name.as_str())
        .collect()
}

/// How many BGP sessions node `i` should have once the lab has converged.
pub fn expected_sessions(lab: &Lab, i: usize) -> usize {
    let all = lab.nodes.len().saturating_sub(1);
    if lab.topology == Topology::Tor {
        // A rack's nodes peer with their ToR only.
        return 1;
    }
    let rrs = reflectors(lab);
    if lab.topology == Topology::Mesh || rrs.contains(&lab.nodes[i].name.as_str()) {
        all
    } else {
        rrs.len()
    }
}

fn manifest(lab: &Lab) -> String {
    let mut y = String::from(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n---\n\
         apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-with-route-reflectors\nspec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n",
    );
    for name in reflectors(lab) {
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    route-reflector: \"true\"\nspec:\n  bgp:\n    routeReflectorClusterID: {CLUSTER_ID}\n"
        ));
    }
    y
}

/// Applies the topology's resources (nothing for the mesh).
pub fn configure(lab: &Lab) -> Result<()> {
    if lab.topology != Topology::Rr {
        return Ok(());
    }
    let file = lab.dir.join("topology-rr.yaml");
    std::fs::write(&file, manifest(lab)).with_context(|| format!("writing {}", file.display()))?;
    // From the fabric namespace, where etcd and the API stand-in listen.
    let mut c = sh::in_ns(&lab.fabric.netns, "env");
    for (k, v) in lab.datastore_env() {
        c.arg(format!("{k}={v}"));
    }
    c.arg(std::env::current_exe()?)
        .args(["apply", "-f"])
        .arg(&file);
    let out = c.output().context("running tabbyctl apply")?;
    if !out.status.success() {
        bail!(
            "applying the rr topology ({}): {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    sh::step(
        &lab.name,
        "bgp",
        format_args!(
            "route reflectors {} (cluster ID {CLUSTER_ID}, label route-reflector=true), mesh off, BGPPeer peer-with-route-reflectors",
            reflectors(lab).join(", ")
        ),
    );
    Ok(())
}
