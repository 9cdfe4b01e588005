//! `tabbyctl ipam show|release`, as calicoctl's ipam commands.

use crate::output::boxed_table;
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use std::net::IpAddr;
use std::sync::Arc;
use tabby_agent::datastore::Datastore;
use tabby_agent::ipam::workloads::live_workloads;
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::{Kind, Resource};
use tabby_ipam::allocator::Ipam;
use tabby_ipam::check::{check, check_tunnels, fix, LeakCheck};
use tabby_ipam::report::usage;
use tabby_ipam::store::IpamStore;

#[derive(Subcommand)]
pub enum IpamCmd {
    /// Show pool (and block) usage, who holds an IP, or the IPAM configuration.
    Show {
        #[arg(long)]
        show_blocks: bool,
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        show_configuration: bool,
    },
    /// Report inconsistencies (unconfirmed or orphaned affinities, handle
    /// records that disagree with blocks, pod addresses with no
    /// WorkloadEndpoint, tunnel addresses of deleted nodes, blocks of
    /// deleted pools, Node tunnel addresses IPAM does not hold); --fix
    /// repairs what it can.
    Check {
        #[arg(long)]
        fix: bool,
        /// Pod addresses younger than this are not judged leaked (their
        /// endpoint may not be written yet), as Calico's leakGracePeriod.
        #[arg(long, default_value = "15m", value_parser = parse_grace)]
        leak_grace_period: std::time::Duration,
    },
    /// Release an IP address whatever holds it.
    Release {
        #[arg(long)]
        ip: String,
    },
}

fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 15m or 90s: {e}"))
}

fn parse_ip(s: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|_| anyhow!("--ip: {s:?} is not an IP address"))
}

fn pct(n: u128, total: u128) -> String {
    let p = (n * 100 + total / 2).checked_div(total).unwrap_or(0);
    format!("{n} ({p}%)")
}

pub async fn run(ds: Arc<dyn Datastore>, cmd: IpamCmd) -> Result<()> {
    let store = DatastoreIpam::new(ds.clone());
    match cmd {
        IpamCmd::Show {
            show_configuration: true,
            ..
        } => {
            let c = store.config().await?;
            let max = if c.max_blocks_per_host == 0 {
                format!("0 (effective {})", c.effective_max_blocks_per_host())
            } else {
                c.max_blocks_per_host.to_string()
            };
            let rows = vec![
                vec!["StrictAffinity".into(), c.strict_affinity.to_string()],
                vec![
                    "AutoAllocateBlocks".into(),
                    c.auto_allocate_blocks.to_string(),
                ],
                vec!["MaxBlocksPerHost".into(), max],
            ];
            print!("{}", boxed_table(&["PROPERTY", "VALUE"], &rows));
        }
        IpamCmd::Show { ip: Some(ip), .. } => {
            let ip = parse_ip(&ip)?;
            let blocks = store.list_blocks().await?;
            let holder = blocks
                .iter()
                .find(|b| b.value.cidr.contains(&ip))
                .and_then(|b| b.value.holder(ip).cloned());
            match holder {
                None => println!("IP {ip} is not assigned"),
                Some(a) => {
                    println!("IP {ip} is in use");
                    if let Some(h) = a.handle_id {
                        println!("Handle: {h}");
                    }
                    if !a.secondary.is_empty() {
                        println!("Attributes:");
                        for (k, v) in a.secondary {
                            println!("  {k}: {v}");
                        }
                    }
                }
            }
        }
        IpamCmd::Show { show_blocks, .. } => {
            let pools = store.pools().await?;
            let blocks: Vec<_> = store
                .list_blocks()
                .await?
                .into_iter()
                .map(|b| b.value)
                .collect();
            let cfg = store.config().await?;
            let rows: Vec<Vec<String>> = usage(&pools, &blocks, &cfg, show_blocks)
                .iter()
                .map(|r| {
                    vec![
                        r.grouping.to_string(),
                        r.cidr.to_string(),
                        r.total.to_string(),
                        pct(r.in_use, r.total),
                        pct(r.reserved, r.total),
                        pct(r.free(), r.total),
                    ]
                })
                .collect();
            let header = [
                "GROUPING",
                "CIDR",
                "IPS TOTAL",
                "IPS IN USE",
                "IPS RESERVED",
                "IPS FREE",
            ];
            print!("{}", boxed_table(&header, &rows));
        }
        IpamCmd::Check {
            fix: do_fix,
            leak_grace_period,
        } => {
            let node_list = ds.list(Kind::Node, None).await?.items;
            let nodes = node_list.iter().map(|n| n.name().to_string()).collect();
            // The address each node's vxlan.calico carries.
            let tunnels: std::collections::BTreeMap<String, IpAddr> = node_list
                .iter()
                .filter_map(|n| match n {
                    Resource::Node(n) => {
                        let t = n.spec.ipv4_vxlan_tunnel_addr.as_deref()?;
                        let ip = t.split('/').next()?.parse().ok()?;
                        Some((n.metadata.name.clone(), ip))
                    }
                    _ => None,
                })
                .collect();
            let workloads = live_workloads(ds.clone());
            let leaks = LeakCheck {
                workloads: workloads.as_ref(),
                grace: leak_grace_period,
                now: std::time::SystemTime::now(),
            };
            let mut problems = check(&store, &nodes, Some(&leaks)).await?;
            problems.extend(check_tunnels(&store, &tunnels).await?);
            for p in &problems {
                println!("{p}");
            }
            println!("Check complete; found {} problems.", problems.len());
            if do_fix && !problems.is_empty() {
                let n = fix(&Ipam::new(store), &problems).await?;
                println!("Fixed {n} problems.");
            }
        }
        IpamCmd::Release { ip } => {
            let ip = parse_ip(&ip)?;
            let released = Ipam::new(store).release_ips(&[ip]).await?;
            if released.is_empty() {
                bail!("IP {ip} is not assigned");
            }
            println!("Successfully released IP {ip}");
        }
    }
    Ok(())
}
