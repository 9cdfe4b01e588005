//! What `tabbyctl get` prints: calicoctl's tables, or v3 YAML/JSON.

use tabby_agent::resources::ippool::EncapMode;
use tabby_agent::resources::{Kind, Resource, API_V3};

pub use tabby_agent::ctl::table::table;

fn mode(m: Option<EncapMode>) -> String {
    format!("{:?}", m.unwrap_or_default())
}

pub fn render_table(kind: Kind, items: &[Resource], wide: bool) -> String {
    let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
        Kind::IpPool => {
            let header = if wide {
                vec![
                    "NAME",
                    "CIDR",
                    "NAT",
                    "IPIPMODE",
                    "VXLANMODE",
                    "DISABLED",
                    "DISABLEBGPEXPORT",
                    "SELECTOR",
                ]
            } else {
                vec!["NAME", "CIDR", "SELECTOR"]
            };
            let rows = items
                .iter()
                .filter_map(|r| match r {
                    Resource::IpPool(p) => Some(p),
                    _ => None,
                })
                .map(|p| {
                    let sel = p
                        .spec
                        .node_selector
                        .clone()
                        .unwrap_or_else(|| "all()".into());
                    if wide {
                        vec![
                            p.metadata.name.clone(),
                            p.spec.cidr.clone(),
                            p.spec.nat_outgoing.to_string(),
                            mode(p.spec.ipip_mode),
                            mode(p.spec.vxlan_mode),
                            p.spec.disabled.to_string(),
                            p.spec.disable_bgp_export.to_string(),
                            sel,
                        ]
                    } else {
                        vec![p.metadata.name.clone(), p.spec.cidr.clone(), sel]
                    }
                })
                .collect();
            (header, rows)
        }
        Kind::BgpPeer => {
            let header = if wide {
                vec![
                    "NAME",
                    "PEERIP",
                    "NODE",
                    "ASN",
                    "PEERSELECTOR",
                    "KEEPORIGINALNEXTHOP",
                ]
            } else {
                vec!["NAME", "PEERIP", "NODE", "ASN"]
            };
            let rows = items
                .iter()
                .filter_map(|r| match r {
                    Resource::BgpPeer(p) => Some(p),
                    _ => None,
                })
                .map(|p| {
                    let node = p
                        .spec
                        .node
                        .clone()
                        .or_else(|| p.spec.node_selector.clone())
                        .unwrap_or_else(|| "(global)".into());
                    let mut row = vec![
                        p.metadata.name.clone(),
                        p.spec.peer_ip.clone().unwrap_or_default(),
                        node,
                        p.spec.as_number.map(|a| a.to_string()).unwrap_or_default(),
                    ];
                    if wide {
                        row.push(p.spec.peer_selector.clone().unwrap_or_default());
                        row.push(p.spec.keep_original_next_hop.to_string());
                    }
                    row
                })
                .collect();
            (header, rows)
        }
        Kind::BgpConfiguration => {
            let header = vec!["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"];
            let rows = items
                .iter()
                .filter_map(|r| match r {
                    Resource::BgpConfiguration(c) => Some(c),
                    _ => None,
                })
                .map(|c| {
                    vec![
                        c.metadata.name.clone(),
                        c.spec
                            .log_severity_screen
                            .clone()
                            .unwrap_or_else(|| "Info".into()),
                        c.spec.mesh_enabled().to_string(),
                        c.spec.effective_as().to_string(),
                    ]
                })
                .collect();
            (header, rows)
        }
        Kind::Node => {
            let header = if wide {
                vec!["NAME", "ASN", "IPV4", "IPV6"]
            } else {
                vec!["NAME"]
            };
            let rows = items
                .iter()
                .filter_map(|r| match r {
                    Resource::Node(n) => Some(n),
                    _ => None,
                })
                .map(|n| {
                    if !wide {
                        return vec![n.metadata.name.clone()];
                    }
                    let bgp = n.spec.bgp.clone().unwrap_or_default();
                    vec![
                        n.metadata.name.clone(),
                        bgp.as_number
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "(64512)".into()),
                        bgp.ipv4_address.unwrap_or_default(),
                        bgp.ipv6_address.unwrap_or_default(),
                    ]
                })
                .collect();
            (header, rows)
        }
        Kind::IpamBlock => (
            vec!["NAME", "CIDR", "AFFINITY", "IN USE"],
            items
                .iter()
                .filter_map(|r| match r {
                    Resource::IpamBlock(b) => Some(b),
                    _ => None,
                })
                .map(|b| {
                    let used = b.spec.allocations.iter().filter(|a| a.is_some()).count();
                    vec![
                        b.metadata.name.clone(),
                        b.spec.cidr.clone(),
                        b.spec.affinity.clone().unwrap_or_default(),
                        format!("{used}/{}", b.spec.allocations.len()),
                    ]
                })
                .collect(),
        ),
        Kind::BlockAffinity => (
            vec!["NAME", "NODE", "CIDR", "STATE"],
            items
                .iter()
                .filter_map(|r| match r {
                    Resource::BlockAffinity(a) => Some(a),
                    _ => None,
                })
                .map(|a| {
                    vec![
                        a.metadata.name.clone(),
                        a.spec.node.clone(),
                        a.spec.cidr.clone(),
                        a.spec.state.as_str().to_string(),
                    ]
                })
                .collect(),
        ),
        Kind::IpamHandle => (
            vec!["NAME", "BLOCKS"],
            items
                .iter()
                .filter_map(|r| match r {
                    Resource::IpamHandle(h) => Some(h),
                    _ => None,
                })
                .map(|h| {
                    let blocks: Vec<String> = h
                        .spec
                        .block
                        .iter()
                        .map(|(b, n)| format!("{b}={n}"))
                        .collect();
                    vec![h.metadata.name.clone(), blocks.join(",")]
                })
                .collect(),
        ),
        Kind::IpamConfig => (
            vec![
                "NAME",
                "STRICTAFFINITY",
                "AUTOALLOCATEBLOCKS",
                "MAXBLOCKSPERHOST",
            ],
            items
                .iter()
                .filter_map(|r| match r {
                    Resource::IpamConfig(c) => Some(c),
                    _ => None,
                })
                .map(|c| {
                    let eff = c.spec.effective_max_blocks_per_host();
                    let max = if c.spec.max_blocks_per_host == 0 {
                        format!("0 (effective {eff})")
                    } else {
                        eff.to_string()
                    };
                    vec![
                        c.metadata.name.clone(),
                        c.spec.strict_affinity.to_string(),
                        c.spec.auto_allocate_blocks.to_string(),
                        max,
                    ]
                })
                .collect(),
        ),
        Kind::WorkloadEndpoint => {
            let header = if wide {
                vec![
                    "NAMESPACE",
                    "NAME",
                    "WORKLOAD",
                    "NODE",
                    "NETWORKS",
                    "INTERFACE",
                    "PROFILES",
                ]
            } else {
                vec!["NAMESPACE", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE"]
            };
            let rows = items
                .iter()
                .filter_map(|r| match r {
                    Resource::WorkloadEndpoint(w) => Some(w),
                    _ => None,
                })
                .map(|w| {
                    let s = &w.spec;
                    let workload = if s.pod.is_empty() {
                        &s.workload
                    } else {
                        &s.pod
                    };
                    let mut row = vec![w.metadata.namespace.clone().unwrap_or_default()];
                    if wide {
                        row.push(w.metadata.name.clone());
                    }
                    row.extend([
                        workload.clone(),
                        s.node.clone(),
                        s.ip_networks.join(","),
                        s.interface_name.clone(),
                    ]);
                    if wide {
                        row.push(s.profiles.join(","));
                    }
                    row
                })
                .collect();
            (header, rows)
        }
        Kind::IpReservation => (
            vec!["NAME", "CIDRS"],
            items
                .iter()
                .filter_map(|r| match r {
                    Resource::IpReservation(o) => Some(o),
                    _ => None,
                })
                .map(|o| vec![o.metadata.name.clone(), o.spec.reserved_cidrs.join(",")])
                .collect(),
        ),
        Kind::Installation => (
            vec!["NAME", "POOLS", "READY", "REASON"],
            items
                .iter()
                .filter_map(|r| match r {
                    Resource::Installation(o) => Some(o),
                    _ => None,
                })
                .map(|o| {
                    let pools = o
                        .spec
                        .calico_network
                        .as_ref()
                        .map(|n| {
                            n.ip_pools
                                .iter()
                                .map(|p| p.cidr.clone())
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    // The Ready condition tabby-node wrote, if any.
                    let ready = o
                        .status
                        .as_ref()
                        .and_then(|s| s.get("conditions"))
                        .and_then(|c| c.as_array())
                        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                        .cloned()
                        .unwrap_or_default();
                    let text = |k: &str| {
                        ready
                            .get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string()
                    };
                    vec![
                        o.metadata.name.clone(),
                        pools.join(","),
                        text("status"),
                        text("reason"),
                    ]
                })
                .collect(),
        ),
    };
    table(&header, &rows)
}

/// A `<Kind>List` as calicoctl prints many resources in YAML or JSON.
pub fn list_value(kind: Kind, items: &[Resource], revision: u64) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": API_V3,
        "kind": format!("{}List", kind.as_str()),
        "items": items.iter().map(Resource::to_json_value).collect::<Vec<_>>(),
        "metadata": { "resourceVersion": revision.to_string() },
    })
}

/// A table with box borders and centred headers, as calicoctl prints its
/// `ipam show` and `node status` tables.
pub fn boxed_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let centred = |s: &str, w: usize| {
        let pad = w - s.len();
        format!("{}{s}{}", " ".repeat(pad / 2), " ".repeat(pad - pad / 2))
    };
    let mut out = rule.clone();
    for (i, h) in header.iter().enumerate() {
        out.push_str(&format!("| {} ", centred(h, widths[i])));
    }
    out.push_str("|\n");
    out.push_str(&rule);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(&format!("| {c:<w$} ", w = widths[i]));
        }
        out.push_str("|\n");
    }
    out.push_str(&rule);
    out
}
