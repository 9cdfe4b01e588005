//! `tabbyctl lab status`: what the lab is made of and whether its daemons
//! still run.

use super::sh;
use super::state::Lab;
use anyhow::Result;
use tabby_agent::ctl::table::table;

fn running(pid: Option<u32>, what: &str) -> bool {
    pid.is_some_and(|p| sh::alive(p, what))
}

pub fn json(lab: &Lab) -> Result<String> {
    let mut v = serde_json::to_value(lab)?;
    for (i, n) in lab.nodes.iter().enumerate() {
        v["nodes"][i]["running"] = running(n.pid, "tabby-node").into();
    }
    v["route_reflectors"] = super::rr::reflectors(lab).into();
    if lab.etcd_pid.is_some() {
        v["etcd_running"] = running(lab.etcd_pid, "etcd").into();
    }
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

pub fn text(lab: &Lab) -> String {
    let mut out = format!(
        "Lab {} in {} ({} encapsulation, {} datastore, {} topology, {} ip family)\n\n",
        lab.name,
        lab.dir.display(),
        lab.encapsulation,
        lab.datastore,
        lab.topology,
        lab.ip_family
    );
    // IPv6 columns only where the lab has IPv6: an ipv4 lab's tables stay
    // as they were.
    let v6 = lab.ip_family.has_v6();
    let opt =
        |a: Option<std::net::Ipv6Addr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    let rrs = super::rr::reflectors(lab);
    let rows: Vec<Vec<String>> = lab
        .nodes
        .iter()
        .map(|n| {
            let mut row = vec![
                n.name.clone(),
                n.netns.clone(),
                n.address.to_string(),
                n.subnet.clone(),
                match (lab.topology, rrs.contains(&n.name.as_str())) {
                    (super::state::Topology::Mesh, _) => "mesh".into(),
                    (super::state::Topology::Tor, _) => {
                        let rack = super::tor::rack_of(lab, &n.subnet);
                        format!("rack r{} AS {}", rack + 1, super::tor::rack_as(rack))
                    }
                    (_, true) => format!("route reflector (cluster {})", super::rr::CLUSTER_ID),
                    (_, false) => "rr client".into(),
                },
                n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                if running(n.pid, "tabby-node") {
                    "yes".into()
                } else {
                    "no".into()
                },
                n.run_dir.display().to_string(),
            ];
            if v6 {
                row.insert(3, opt(n.address6));
            }
            row
        })
        .collect();
    let mut head = vec![
        "NODE", "NETNS", "ADDRESS", "SUBNET", "BGP", "PID", "RUNNING", "RUN DIR",
    ];
    if v6 {
        head.insert(3, "IPV6 ADDRESS");
    }
    out.push_str(&table(&head, &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = lab
        .pods
        .iter()
        .map(|p| {
            let mut row = vec![
                p.name.clone(),
                p.netns.clone(),
                p.address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                p.node.clone(),
            ];
            if v6 {
                row.insert(3, opt(p.address6));
            }
            row
        })
        .collect();
    let head: &[&str] = if v6 {
        &["POD", "NETNS", "ADDRESS", "IPV6 ADDRESS", "NODE"]
    } else {
        &["POD", "NETNS", "ADDRESS", "NODE"]
    };
    out.push_str(&table(head, &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = lab
        .fabric
        .bridges
        .iter()
        .map(|b| {
            let mut row = vec![
                lab.fabric.netns.clone(),
                b.name.clone(),
                b.subnet.clone(),
                b.router.to_string(),
            ];
            if v6 {
                row.push(b.subnet6.clone().unwrap_or_else(|| "-".into()));
                row.push(opt(b.router6));
            }
            row
        })
        .collect();
    let head: &[&str] = if v6 {
        &[
            "FABRIC",
            "BRIDGE",
            "SUBNET",
            "ROUTER",
            "IPV6 SUBNET",
            "IPV6 ROUTER",
        ]
    } else {
        &["FABRIC", "BRIDGE", "SUBNET", "ROUTER"]
    };
    out.push_str(&table(head, &rows));
    if let Some(pid) = lab.bird_pid {
        out.push_str(&format!(
            "\nToR: BIRD 2 in {} (pid {pid}, {}), AS {}, birdc -s {}\n",
            lab.fabric.netns,
            if running(Some(pid), "bird") {
                "running"
            } else {
                "not running"
            },
            super::tor::TOR_AS,
            lab.dir.join("bird.ctl").display()
        ));
    }
    if let Some(e) = &lab.etcd_endpoint {
        out.push_str(&format!(
            "\netcd: {e} in {} (pid {}, {})\n",
            lab.fabric.netns,
            lab.etcd_pid.map(|p| p.to_string()).unwrap_or_default(),
            if running(lab.etcd_pid, "etcd") {
                "running"
            } else {
                "not running"
            }
        ));
    }
    out
}
