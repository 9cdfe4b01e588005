//! `lab up --topology`: how the nodes learn each other's blocks.
//!
//! - `mesh` (default): Calico's node-to-node mesh.
//! - `tor`: AS per rack. Each subnet is a rack `rN` whose nodes share AS
//!   65000+N; a real BIRD 2 in the fabric namespace is every rack's ToR (AS
//!   64513, one `protocol bgp` per node, the ToR address being the rack's
//!   router address). The mesh is off (BGPConfiguration default) and each
//!   rack has a BGPPeer `nodeSelector: rack == 'rN'` to its ToR, Calico's
//!   way; nodes carry the label `rack: rN`. `numAllowedLocalASNumbers: 1`
//!   lets a node accept its rack mates' blocks, which come back from the
//!   ToR with the rack's own AS in the path. BIRD's `protocol kernel` puts
//!   what it learned into the fabric's table, so the fabric routes exactly
//!   what BGP carries.
//! - `rr`: route reflectors (not in this build yet).

use super::sh::{self, in_ns, step};
use super::state::{Lab, Topology, POD_POOL};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::time::Duration;

/// The ToRs' AS (one BIRD plays every rack's ToR).
pub const TOR_AS: u32 = 64513;

/// Rack index (0-based) of a node: the index of its subnet.
pub fn rack_of(lab: &Lab, subnet: &str) -> usize {
    lab.fabric
        .bridges
        .iter()
        .position(|b| b.subnet == subnet)
        .unwrap_or(0)
}

/// Rack `rN`'s AS.
pub fn rack_as(rack: usize) -> u32 {
    65001 + rack as u32
}

/// The resources the ToR topology needs before the first node starts, as
/// `tabbyctl apply` reads them.
pub fn resources(lab: &Lab) -> String {
    let mut y = String::from(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n",
    );
    for n in &lab.nodes {
        let r = rack_of(lab, &n.subnet) + 1;
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: {}\n  labels:\n    rack: r{r}\nspec: {{}}\n",
            n.name
        );
    }
    for (i, b) in lab.fabric.bridges.iter().enumerate() {
        let _ = write!(
            y,
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rack-r{r}-tor\nspec:\n  nodeSelector: rack == 'r{r}'\n  peerIP: {}\n  asNumber: {TOR_AS}\n  numAllowedLocalASNumbers: 1\n",
            b.router,
            r = i + 1
        );
    }
    y
}

/// BIRD's configuration: one `protocol bgp` per node, learned pod routes
/// into the fabric's kernel table (ECMP when several paths).
pub fn bird_config(lab: &Lab) -> String {
    let mut c = String::new();
    let rid = lab.fabric.bridges[0].router;
    let _ = writeln!(c, "router id {rid};");
    c.push_str("log stderr all;\nprotocol device { }\n");
    c.push_str("protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }\n");
    let _ = writeln!(c, "define PODS = [ {POD_POOL}+ ];");
    for (i, n) in lab.nodes.iter().enumerate() {
        let rack = rack_of(lab, &n.subnet);
        let tor = lab.fabric.bridges[rack].router;
        let _ = writeln!(c, "protocol bgp node{} {{", i + 1);
        let _ = writeln!(
            c,
            "  description \"{}\";\n  local {tor} as {TOR_AS}; neighbor {} as {};",
            n.name,
            n.address,
            rack_as(rack)
        );
        // The lab's short timers (tabby-node runs with a 9 s hold time).
        c.push_str("  hold time 9; keepalive time 3; connect delay time 1;\n");
        c.push_str("  connect retry time 2; error wait time 1, 2;\n");
        c.push_str("  graceful restart on;\n");
        c.push_str(
            "  ipv4 { import where net ~ PODS; export where source = RTS_BGP; next hop self; };\n",
        );
        c.push_str("}\n");
    }
    c
}

fn ctl(lab: &Lab, args: &[&str]) -> Result<()> {
    let mut c = in_ns(&lab.fabric.netns, "env");
    for (k, v) in lab.datastore_env() {
        c.arg(format!("{k}={v}"));
    }
    c.arg(std::env::current_exe()?).args(args);
    sh::run(&mut c).map(|_| ())
}

/// Applies the resources and starts BIRD in the fabric namespace.
pub fn start(lab: &mut Lab) -> Result<()> {
    let file = lab.dir.join("tor-resources.yaml");
    std::fs::write(&file, resources(lab)).with_context(|| format!("writing {}", file.display()))?;
    ctl(lab, &["apply", "-f", &file.display().to_string()])
        .context("applying the ToR topology's BGPConfiguration, Nodes and BGPPeers")?;
    let conf = lab.dir.join("bird.conf");
    let socket = lab.dir.join("bird.ctl");
    std::fs::write(&conf, bird_config(lab))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut cmd = in_ns(&lab.fabric.netns, "bird");
    cmd.arg("-f").arg("-c").arg(&conf).arg("-s").arg(&socket);
    let log = lab.dir.join("bird.log");
    let pid = sh::spawn_detached(&mut cmd, &log)?;
    lab.bird_pid = Some(pid);
    let up = sh::wait_for(Duration::from_secs(10), || {
        sh::run(
            in_ns(&lab.fabric.netns, "birdc")
                .arg("-s")
                .arg(&socket)
                .args(["show", "status"]),
        )
        .is_ok()
    });
    if !up {
        bail!(
            "BIRD in {} did not answer on {} within 10 s; last log lines:\n{}",
            lab.fabric.netns,
            socket.display(),
            tail(&log, 15)
        );
    }
    step(
        &lab.name,
        "tor",
        format_args!(
            "BIRD 2 (pid {pid}, AS {TOR_AS}) in {} as the ToR of {} rack(s); mesh off, BGPPeers rack-rN-tor; birdc -s {}",
            lab.fabric.netns,
            lab.fabric.bridges.len(),
            socket.display()
        ),
    );
    Ok(())
}

/// `AS` for a node's tabby-node in the ToR topology (Calico's env).
pub fn node_as_env(lab: &Lab, subnet: &str) -> Option<(String, String)> {
    (lab.topology == Topology::Tor)
        .then(|| ("AS".into(), rack_as(rack_of(lab, subnet)).to_string()))
}

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::state::{DatastoreKind, Encapsulation, Plan};

    fn lab(nodes: usize, subnets: usize) -> Lab {
        Plan {
            nodes,
            subnets,
            pods_per_node: 1,
            encapsulation: Encapsulation::None,
            datastore: DatastoreKind::Sqlite,
            topology: Topology::Tor,
            ip_family: Default::default(),
        }
        .layout("t", std::path::Path::new("/tmp/t"))
    }

    #[test]
    fn racks_follow_subnets_and_bird_has_one_session_per_node() {
        let l = lab(3, 2);
        let racks: Vec<usize> = l.nodes.iter().map(|n| rack_of(&l, &n.subnet)).collect();
        assert_eq!(racks, [0, 0, 1]);
        assert_eq!(rack_as(0), 65001);
        assert_eq!(
            node_as_env(&l, &l.nodes[2].subnet),
            Some(("AS".into(), "65002".into()))
        );
        let c = bird_config(&l);
        assert!(
            c.contains("local 172.31.1.1 as 64513; neighbor 172.31.1.11 as 65001;"),
            "{c}"
        );
        assert!(
            c.contains("local 172.31.2.1 as 64513; neighbor 172.31.2.13 as 65002;"),
            "{c}"
        );
        assert_eq!(c.matches("protocol bgp ").count(), 3);
        assert!(c.contains("merge paths on"));
        let r = resources(&l);
        assert!(r.contains("nodeToNodeMeshEnabled: false"));
        assert!(
            r.contains("nodeSelector: rack == 'r2'\n  peerIP: 172.31.2.1"),
            "{r}"
        );
        assert_eq!(r.matches("kind: BGPPeer").count(), 2);
        assert_eq!(r.matches("rack: r1").count(), 2);
    }

    #[test]
    fn unfit_combinations_are_refused() {
        assert!(Topology::Rr
            .validate(Encapsulation::VxlanCrossSubnet, DatastoreKind::Sqlite)
            .is_ok());
        let e = Topology::Rr
            .validate(Encapsulation::Vxlan, DatastoreKind::Sqlite)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--topology rr: needs BGP"), "{e}");
        assert!(Topology::Tor
            .validate(Encapsulation::Vxlan, DatastoreKind::Sqlite)
            .is_err());
        assert_eq!(Topology::Tor.default_encapsulation(), Encapsulation::None);
        assert_eq!(
            Topology::Mesh.default_encapsulation(),
            Encapsulation::VxlanCrossSubnet
        );
    }
}
