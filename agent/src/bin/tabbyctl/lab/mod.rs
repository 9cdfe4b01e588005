//! `tabbyctl lab`: a Tabby cluster on one machine, built from network
//! namespaces. A fabric namespace holds one bridge per node subnet and
//! routes between them (node subnets only, never pod CIDRs); each node is a
//! namespace on its subnet's bridge running its own tabby-node; each pod is
//! a namespace wired by the `tabby` CNI plugin.
//!
//! Addresses: node subnets 172.31.<n>.0/24 (router .1, nodes .11 up), pods
//! from the pool 172.30.0.0/16. For `--datastore etcdv3` the lab runs etcd
//! inside the fabric namespace on the first router address (172.31.1.1),
//! which every node reaches by its default route; `tabbyctl lab exec
//! fabric -- tabbyctl ...` reaches it from the host. `--datastore
//! kubernetes` runs the test-only Kubernetes API stand-in there instead,
//! with Calico's CRDs, and registers the nodes and pods in it as kubelets
//! would (see `kube`). `--topology rr` makes one node per subnet a route
//! reflector and turns the mesh off (see `rr`).

mod check;
mod cni;
mod down;
mod family;
mod fault;
mod kube;
mod limits;
mod pods;
mod rr;
mod sh;
mod state;
mod status;
mod tor;
mod up;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use state::{check_name, default_dir, DatastoreKind, Encapsulation, Lab, Plan};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct Which {
    /// The lab's name: it prefixes its namespaces (`<name>_node-1`).
    #[arg(long, default_value = "lab", global = true)]
    name: String,
    /// Where the lab keeps lab.json, the datastore, logs and run dirs
    /// (default /var/run/tabby-lab/<name>).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
}

impl Which {
    fn resolve(&self) -> Result<(String, PathBuf)> {
        check_name(&self.name)?;
        let dir = self.dir.clone().unwrap_or_else(|| default_dir(&self.name));
        Ok((self.name.clone(), dir))
    }

    fn load(&self) -> Result<Lab> {
        let (_, dir) = self.resolve()?;
        Lab::load(&dir)
    }
}

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the lab: fabric, nodes with tabby-node, pods through the CNI plugin.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 2)]
        subnets: usize,
        #[arg(long, default_value_t = 2)]
        pods_per_node: usize,
        /// The default pool's encapsulation. VXLANCrossSubnet (the default
        /// for the mesh) routes natively inside a subnet and through VXLAN
        /// across the fabric, which carries no pod routes; None is the
        /// default for `--topology tor`, whose fabric carries what BGP
        /// learned.
        #[arg(long, value_enum)]
        encapsulation: Option<Encapsulation>,
        #[arg(long, value_enum, default_value = "sqlite")]
        datastore: DatastoreKind,
        /// mesh: Calico's node-to-node mesh; tor: AS per rack, a BIRD 2 ToR
        /// per subnet, mesh off, node-specific BGPPeers; rr: route
        /// reflectors.
        #[arg(long, value_enum, default_value = "mesh")]
        topology: state::Topology,
        /// ipv4; ipv6: IPv6-only nodes (`IP=none`) and pods; dual: both.
        /// ipv6 and dual give each node subnet an IPv6 /64 as well and an
        /// IPv6 pool (see `family`); mesh topology only for now.
        #[arg(long, value_enum, default_value = "ipv4")]
        ip_family: family::IpFamily,
    },
    /// Nodes, pods and fabric, and whether the daemons run.
    Status {
        #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Ping every ordered pod pair over each of the lab's families (one
    /// matrix per family); non-zero exit if any pair fails.
    Check,
    /// Stop everything and remove the namespaces and the lab directory.
    Down,
    /// Stop, start or kill -9 one node's tabby-node.
    Node {
        #[arg(value_parser = ["stop", "start", "kill"])]
        action: String,
        node: String,
    },
    /// Add a pod on NODE, or delete one, through the CNI plugin.
    Pod {
        #[arg(value_parser = ["add", "delete"])]
        action: String,
        pod: String,
        #[arg(long)]
        node: Option<String>,
    },
    /// Create core objects from a JSON list in the API (run by `lab up`
    /// inside the fabric namespace, where a kubernetes lab's API is).
    #[command(hide = true)]
    KubeApply {
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Delete the listed objects instead.
        #[arg(long)]
        delete: bool,
        file: PathBuf,
    },
    /// Put a seed failure into the lab as a real host would have it, or
    /// take it out again (`list` names them): see `tabbyctl node doctor`.
    Fault {
        #[arg(value_parser = ["inject", "clear", "list"])]
        action: String,
        // Its own id: the global `--name` (the lab's) would take it over.
        #[arg(id = "fault", value_name = "NAME")]
        name: Option<String>,
        #[arg(long, default_value = "node-1")]
        node: String,
    },
    /// Run a command in a node's (or `fabric`'s, or a pod's) namespace with
    /// the lab's datastore environment, e.g. `lab exec node-1 -- ip route`.
    Exec {
        target: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

pub async fn run(which: Which, cmd: LabCmd) -> Result<()> {
    let (name, dir) = which.resolve()?;
    match cmd {
        LabCmd::Up {
            nodes,
            subnets,
            pods_per_node,
            encapsulation,
            datastore,
            topology,
            ip_family,
        } => {
            let plan = Plan {
                ip_family,
                nodes,
                subnets,
                pods_per_node,
                encapsulation: encapsulation.unwrap_or(topology.default_encapsulation()),
                datastore,
                topology,
            };
            up::up(&name, &dir, plan).await
        }
        LabCmd::Down => down::down(&name, &dir),
        LabCmd::Status { output } => {
            let lab = which.load()?;
            if output == "json" {
                print!("{}", status::json(&lab)?);
            } else {
                print!("{}", status::text(&lab));
            }
            Ok(())
        }
        LabCmd::Check => check::check(&which.load()?),
        LabCmd::Node { action, node } => {
            let mut lab = which.load()?;
            let i = lab
                .nodes
                .iter()
                .position(|n| n.name == node)
                .ok_or_else(|| {
                    lab.node(&node)
                        .err()
                        .unwrap_or_else(|| anyhow::anyhow!("no node"))
                })?;
            let pid = lab.nodes[i].pid;
            match action.as_str() {
                "stop" => {
                    if let Some(p) = pid {
                        sh::stop(p, "tabby-node", Duration::from_secs(10));
                    }
                    sh::step(&name, &node, "tabby-node stopped");
                }
                "kill" => {
                    if let Some(p) = pid.filter(|&p| sh::alive(p, "tabby-node")) {
                        sh::signal(p, "KILL");
                        sh::wait_for(Duration::from_secs(5), || !sh::alive(p, "tabby-node"));
                    }
                    sh::step(&name, &node, "tabby-node killed (SIGKILL)");
                }
                _ => {
                    if pid.is_some_and(|p| sh::alive(p, "tabby-node")) {
                        bail!(
                            "tabby-node on {node} is already running (pid {})",
                            pid.unwrap_or(0)
                        );
                    }
                    up::start_node(&mut lab, i)?;
                    lab.save()?;
                    up::wait_ready(&lab, i).await?;
                }
            }
            Ok(())
        }
        LabCmd::Pod { action, pod, node } => {
            let mut lab = which.load()?;
            let found = lab.pods.iter().position(|p| p.name == pod);
            if action == "delete" {
                let Some(i) = found else {
                    bail!("no pod {pod:?} in lab {name:?}");
                };
                pods::delete(&lab, i)?;
                if lab.datastore == DatastoreKind::Kubernetes {
                    let p = &lab.pods[i];
                    kube::delete(&lab, &[kube::pod_object(&p.namespace, &p.name, &p.node)])?;
                }
                lab.pods.remove(i);
                lab.save()?;
                sh::step(&name, "pods", format_args!("pod {pod} deleted"));
                return Ok(());
            }
            if found.is_some() {
                bail!("pod {pod:?} already exists in lab {name:?}");
            }
            let Some(node) = node else {
                bail!("lab pod add {pod}: --node NODE is required");
            };
            lab.node(&node)?;
            state::check_name(&pod)
                .map_err(|_| anyhow::anyhow!("pod name {pod:?}: expected a-z, 0-9 and '-'"))?;
            lab.pods.push(state::Pod {
                netns: format!("{}{pod}", state::ns_prefix(&name)),
                namespace: "default".into(),
                node: node.clone(),
                container_id: format!("{name}-{pod}"),
                address: None,
                address6: None,
                name: pod.clone(),
            });
            let i = lab.pods.len() - 1;
            if lab.datastore == DatastoreKind::Kubernetes {
                // The scheduler's and the kubelet's part: the Pod first.
                kube::apply(&lab, &[kube::pod_object("default", &pod, &node)])?;
            }
            let addr = pods::add(&lab, i);
            match addr {
                Ok(a) => {
                    lab.pods[i].set_addrs(a);
                    lab.save()?;
                    sh::step(&name, &node, format_args!("pod {pod} at {a}"));
                    Ok(())
                }
                Err(e) => {
                    let _ = sh::ip(&["netns", "del", &lab.pods[i].netns]);
                    Err(e)
                }
            }
        }
        LabCmd::KubeApply {
            kubeconfig,
            delete,
            file,
        } => kube::kube_apply(&kubeconfig, &file, delete).await,
        LabCmd::Fault { action, name, node } => {
            let mut lab = which.load()?;
            fault::run(&mut lab, &action, name.as_deref(), &node).await
        }
        LabCmd::Exec { target, command } => {
            let lab = which.load()?;
            let ns = if target == "fabric" {
                lab.fabric.netns.clone()
            } else if let Some(p) = lab.pods.iter().find(|p| p.name == target) {
                p.netns.clone()
            } else {
                lab.node(&target)?.netns.clone()
            };
            let mut c = sh::in_ns(&ns, "env");
            for (k, v) in lab.datastore_env() {
                c.arg(format!("{k}={v}"));
            }
            // In a node: tabby-node's own environment, as `kubectl exec`
            // into calico-node's pod sees it (node doctor reads it).
            if let Some(n) = lab.nodes.iter().find(|n| n.name == target) {
                c.args(&n.env);
                c.arg(format!("TABBY_RUN_DIR={}", n.run_dir.display()));
            }
            // tabbyctl by bare name means this tabbyctl.
            let mut args = command.into_iter();
            let prog = args.next().unwrap_or_default();
            if prog == "tabbyctl" {
                c.arg(std::env::current_exe()?);
            } else {
                c.arg(prog);
            }
            c.args(args);
            let status = c.status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::family;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: super::LabCmd,
    }

    fn up_family(args: &[&str]) -> Result<family::IpFamily, clap::Error> {
        use clap::Parser;
        let argv = ["lab", "up"].iter().chain(args);
        match Cli::try_parse_from(argv)?.cmd {
            super::LabCmd::Up { ip_family, .. } => Ok(ip_family),
            _ => unreachable!("parsed `up`"),
        }
    }

    #[test]
    fn lab_up_takes_ip_family_and_defaults_to_ipv4() {
        assert_eq!(up_family(&[]).unwrap(), family::IpFamily::Ipv4);
        assert_eq!(
            up_family(&["--ip-family", "dual"]).unwrap(),
            family::IpFamily::Dual
        );
        assert_eq!(
            up_family(&["--ip-family", "ipv6"]).unwrap(),
            family::IpFamily::Ipv6
        );
        let e = up_family(&["--ip-family", "v6"]).unwrap_err().to_string();
        assert!(
            e.contains("--ip-family") && e.contains("ipv4, ipv6, dual"),
            "{e}"
        );
    }
}
