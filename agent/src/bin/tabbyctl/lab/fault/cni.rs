//! CNI faults on a node's CNI directories (see `lab::cni`): what a host
//! that once ran flannel, or lost its plugin binary, looks like.

use super::super::cni::{bin_dir, link_plugin, net_dir};
use super::super::state::Lab;
use super::Fault;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "foreign-conflist",
        about: "a leftover 05-flannel.conflist that sorts before Tabby's (seed 003)",
        inject: foreign_inject,
        clear: foreign_clear,
    },
    Fault {
        name: "missing-cni-bin",
        about: "the tabby plugin binary gone from the node's CNI bin dir",
        inject: bin_inject,
        clear: bin_clear,
    },
];

const FLANNEL_NAME: &str = "05-flannel.conflist";
/// kube-flannel's own conflist, as its install-cni container writes it.
const FLANNEL: &str = r#"{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
"#;

fn net(lab: &Lab, i: usize) -> Result<PathBuf> {
    let d = net_dir(&lab.nodes[i]);
    if !d.is_dir() {
        bail!(
            "{} has no CNI net dir {} (a lab from before the lab wrote CNI dirs: bring it up again)",
            lab.nodes[i].name,
            d.display()
        );
    }
    Ok(d)
}

fn foreign_inject(lab: &mut Lab, i: usize) -> Result<()> {
    let p = net(lab, i)?.join(FLANNEL_NAME);
    std::fs::write(&p, FLANNEL).with_context(|| format!("writing {}", p.display()))
}

fn remove(p: PathBuf) -> Result<()> {
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", p.display()))
        }
        _ => Ok(()),
    }
}

fn foreign_clear(lab: &mut Lab, i: usize) -> Result<()> {
    let d = net(lab, i)?;
    // `node doctor`'s fix renames it out of the runtime's sight.
    remove(d.join(FLANNEL_NAME))?;
    remove(d.join(format!("{FLANNEL_NAME}.disabled")))
}

fn bin_inject(lab: &mut Lab, i: usize) -> Result<()> {
    net(lab, i)?;
    remove(bin_dir(&lab.nodes[i]).join("tabby"))
}

fn bin_clear(lab: &mut Lab, i: usize) -> Result<()> {
    net(lab, i)?;
    // Whatever is there now (nothing, or the doctor's fix's copy) becomes
    // the lab's link again.
    link_plugin(&lab.nodes[i], "tabby")
}
