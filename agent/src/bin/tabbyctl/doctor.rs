//! `tabbyctl node doctor [--all-nodes] [-o json]`: see
//! `tabby_agent::doctor` for what it checks.
//!
//! `--all-nodes` runs the doctor on every node of the datastore's Node
//! list through `--exec`, a command template with `{node}` in it that
//! runs `tabbyctl node doctor -o json` on that node (in the lab,
//! `tabbyctl lab exec {node} --`; on Kubernetes, `kubectl exec` into the
//! node's tabby-node pod), and prints one cluster view.

use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tabby_agent::datastore::{connect, Datastore, DatastoreConfig};
use tabby_agent::doctor::{self, Finding, Options};

#[derive(clap::Args, Clone)]
pub struct DoctorArgs {
    /// Ask every node of the cluster and print one view.
    #[arg(long)]
    pub all_nodes: bool,
    /// With --all-nodes: the command that runs `tabbyctl node doctor -o
    /// json` on node {node}, split on spaces.
    #[arg(long, value_name = "TEMPLATE")]
    pub exec: Option<String>,
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// A route-table limit the pod block routes must fit (a cloud route
    /// table, e.g. 200 for an AWS VPC); default none.
    #[arg(long)]
    pub route_limit: Option<u64>,
    /// The cluster's service CIDRs (comma-separated), which pools must
    /// not overlap.
    #[arg(long, value_delimiter = ',')]
    pub service_cidr: Vec<ipnet::IpNet>,
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_net_dir: PathBuf,
    #[arg(long, default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// Read only: send no probes (pings, TCP connects).
    #[arg(long)]
    pub no_probes: bool,
}

async fn datastore() -> Result<Arc<dyn Datastore>, String> {
    let cfg = DatastoreConfig::from_env().map_err(|e| e.to_string())?;
    connect(&cfg).await.map_err(|e| format!("{e:#}"))
}

pub async fn run(args: DoctorArgs) -> Result<()> {
    if args.all_nodes {
        return all_nodes(&args).await;
    }
    let opts = Options {
        socket: crate::node::socket(args.run_dir.clone()),
        route_limit: args.route_limit,
        cni_net_dir: args.cni_net_dir.clone(),
        cni_bin_dir: args.cni_bin_dir.clone(),
        service_cidrs: args.service_cidr.clone(),
        probes: !args.no_probes,
        ..Options::default()
    };
    let ctx = doctor::gather(opts, datastore().await).await;
    let findings = doctor::run(&ctx).await;
    if args.output == "json" {
        print!("{}", doctor::render_json(&ctx.node_name, &findings));
    } else {
        print!("{}", doctor::render_text(&ctx.node_name, &findings, false));
    }
    if doctor::has_errors(&findings) {
        std::process::exit(1);
    }
    Ok(())
}

/// One node's report, from `node doctor -o json` run through the template.
fn on_node(template: &str, node: &str) -> Result<Vec<Finding>> {
    let words: Vec<String> = template
        .split_whitespace()
        .map(|w| w.replace("{node}", node))
        .collect();
    let Some((prog, rest)) = words.split_first() else {
        bail!("--exec: empty command template");
    };
    let out = std::process::Command::new(prog)
        .args(rest)
        .args(["tabbyctl", "node", "doctor", "-o", "json"])
        .output()
        .with_context(|| format!("running {prog} for node {node}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow!(
            "node {node}: no doctor report ({e}); it said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    let mut findings: Vec<Finding> = serde_json::from_value(v["findings"].clone())
        .map_err(|e| anyhow!("node {node}: unreadable report: {e}"))?;
    for f in &mut findings {
        f.node = node.to_string();
    }
    Ok(findings)
}

async fn all_nodes(args: &DoctorArgs) -> Result<()> {
    let Some(template) = &args.exec else {
        bail!(
            "--all-nodes needs --exec 'COMMAND {{node}}' that runs a command on a node \
             (lab: 'tabbyctl lab exec {{node}} --'; Kubernetes: a kubectl exec into the node's \
             tabby-node pod)"
        );
    };
    let ds = datastore().await.map_err(|e| anyhow!(e))?;
    let nodes = ds.list(tabby_agent::resources::Kind::Node, None).await?;
    let mut all = Vec::new();
    let mut summaries = Vec::new();
    for n in nodes.items {
        let name = n.name().to_string();
        let findings = match on_node(template, &name) {
            Ok(f) => f,
            Err(e) => vec![{
                let mut f = Finding::error("doctor", "the doctor could not run on this node")
                    .evidence(format!("{e:#}"));
                f.node = name.clone();
                f
            }],
        };
        summaries.push(doctor::summary(&name, &findings));
        all.extend(findings);
    }
    all.sort_by_key(|f| f.severity);
    if args.output == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"findings": all}))?
        );
    } else {
        for f in &all {
            println!("{}", doctor::render_line(f, true));
        }
        for s in summaries {
            println!("{s}");
        }
    }
    if doctor::has_errors(&all) {
        std::process::exit(1);
    }
    Ok(())
}
