//! `tabbyctl node status`: calicoctl's `node status` layout, read from the
//! local tabby-node over its socket (`$TABBY_RUN_DIR/tabby.sock`).
//!
//! calicoctl says "Calico process is running."; Tabby says "Tabby process
//! is running." in the same place, so scripts keyed on the rest of the
//! line keep working. Tabby adds two sections calicoctl has not: how
//! each block is routed (`Block paths`) and `Problems` — the reconciler's
//! unconverged items and the first `node doctor` findings (read-only
//! checks, no probes).

use crate::output::boxed_table;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use tabby_agent::datastore::{connect, DatastoreConfig};
use tabby_agent::doctor::{self, Finding, Options};
use tabby_proto::node::{BgpPeerRow, StatusResponse};

pub fn socket(run_dir: Option<PathBuf>) -> PathBuf {
    run_dir
        .or_else(|| std::env::var_os("TABBY_RUN_DIR").map(PathBuf::from))
        .map(|d| tabby_agent::grpc::socket_path(&d))
        .unwrap_or_else(|| {
            tabby_agent::grpc::socket_path(tabby_agent::grpc::DEFAULT_RUN_DIR.as_ref())
        })
}

/// One `Node.Status` call.
pub async fn query(socket: &Path) -> Result<StatusResponse> {
    Ok(tabby_agent::ctl::client::node_status(socket).await?)
}

fn peers(family: &str, rows: &[BgpPeerRow]) -> String {
    let mut out = format!("{family} BGP status\n");
    if rows.is_empty() {
        out.push_str(&format!("No {family} peers found.\n"));
        return out;
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.peer_address.clone(),
                r.peer_type.clone(),
                r.state.clone(),
                r.since.clone(),
                r.info.clone(),
            ]
        })
        .collect();
    out.push_str(&boxed_table(
        &["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
        &rows,
    ));
    out
}

/// Tabby's BFD section, only where some peer runs BFD.
fn bfd(s: &StatusResponse) -> String {
    let rows: Vec<Vec<String>> = s
        .ipv4_peers
        .iter()
        .chain(&s.ipv6_peers)
        .filter(|r| !r.bfd_state.is_empty())
        .map(|r| {
            vec![
                r.peer_address.clone(),
                r.bfd_state.clone(),
                r.bfd_info.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\nBFD status\n{}",
        boxed_table(&["PEER ADDRESS", "STATE", "INFO"], &rows)
    )
}

/// Tabby's extra section: how each block is routed from this node.
fn blocks(s: &StatusResponse) -> String {
    let mut out = String::from("Block paths\n");
    if s.block_paths.is_empty() {
        out.push_str("No blocks found.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = s
        .block_paths
        .iter()
        .map(|b| {
            vec![
                b.block.clone(),
                b.node.clone(),
                b.path.clone(),
                b.via.clone(),
                b.reason.clone(),
            ]
        })
        .collect();
    out.push_str(&boxed_table(
        &["BLOCK", "NODE", "PATH", "VIA", "REASON"],
        &rows,
    ));
    out
}

pub fn render(s: &StatusResponse) -> String {
    let mut out = String::from("Tabby process is running.\n\n");
    // First, because everything below is only as fresh as the datastore
    // copy it was computed from (a hung etcd went unnoticed for a minute).
    if !s.datastore_synced && !s.datastore_error.is_empty() {
        out.push_str(&format!("Datastore not in sync: {}\n\n", s.datastore_error));
    }
    if s.networking_backend == "bird" || !s.ipv4_peers.is_empty() {
        out.push_str(&peers("IPv4", &s.ipv4_peers));
        out.push('\n');
        out.push_str(&peers("IPv6", &s.ipv6_peers));
        out.push_str(&bfd(s));
    } else {
        out.push_str(&format!(
            "The BGP backend is not in use (CALICO_NETWORKING_BACKEND={}).\n",
            if s.networking_backend.is_empty() {
                "none"
            } else {
                &s.networking_backend
            }
        ));
    }
    out.push('\n');
    out.push_str(&blocks(s));
    out
}

/// How many doctor findings `node status` shows before pointing at
/// `node doctor` for the rest.
const TOP_FINDINGS: usize = 5;

/// The `Problems` section: what the dataplane could not converge (the
/// reconciler's own errors) and the first doctor findings (no probes).
pub fn problems(
    bgp_errors: &[String],
    dataplane_errors: &[String],
    findings: Option<&[Finding]>,
) -> String {
    let mut out = String::from("Problems\n");
    for e in bgp_errors {
        out.push_str(&format!("BGP session not configured: {e}\n"));
    }
    let Some(findings) = findings else {
        for e in dataplane_errors {
            out.push_str(&format!("DATAPLANE {e}\n"));
        }
        out.push_str(
            "(not in the node's network namespace: run tabbyctl node doctor there for the \
             kernel's side)\n",
        );
        return out;
    };
    if bgp_errors.is_empty() && dataplane_errors.is_empty() && findings.is_empty() {
        out.push_str("No problems found.\n");
        return out;
    }
    for e in dataplane_errors {
        out.push_str(&format!("DATAPLANE {e}\n"));
    }
    for f in findings.iter().take(TOP_FINDINGS) {
        out.push_str(&tabby_agent::doctor::render_line(f, false));
        out.push('\n');
    }
    if findings.len() > TOP_FINDINGS {
        out.push_str(&format!(
            "... and {} more: run `tabbyctl node doctor`\n",
            findings.len() - TOP_FINDINGS
        ));
    }
    out
}

/// The doctor's read-only checks for `node status`: no probes, and the
/// datastore only when this shell names one (node status itself needs
/// none, and must not create an empty SQLite file where none was meant).
async fn quick_findings(sock: &Path) -> Option<Vec<Finding>> {
    let opts = Options {
        socket: sock.to_path_buf(),
        probes: false,
        ..Options::default()
    };
    let configured = std::env::var_os("DATASTORE_TYPE").is_some();
    let ds = if configured {
        match DatastoreConfig::from_env() {
            Ok(cfg) => connect(&cfg).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(e),
        }
    } else {
        Err(String::new())
    };
    let ctx = doctor::gather(opts, ds).await;
    // Run outside the node's network namespace (a socket reached from the
    // host), the kernel read here is not the node's: its findings would
    // be about the wrong machine.
    let node_ip = ctx
        .agent()
        .and_then(|a| a.status.node_ip.split('/').next().map(str::to_string))
        .unwrap_or_default();
    let on_node = node_ip.is_empty()
        || ctx
            .kernel()
            .is_some_and(|k| k.addrs.iter().any(|a| a.ip.to_string() == node_ip));
    if !on_node {
        return None;
    }
    Some(
        doctor::run(&ctx)
            .await
            .into_iter()
            .filter(|f| configured || f.check != "datastore")
            .collect(),
    )
}

pub async fn status(run_dir: Option<PathBuf>) -> Result<()> {
    let sock = socket(run_dir);
    match query(&sock).await {
        Ok(s) if s.running => {
            print!("{}", render(&s));
            let errors = tabby_agent::ctl::client::dataplane_status(&sock)
                .await
                .map(|d| d.errors)
                .unwrap_or_default();
            println!();
            print!(
                "{}",
                problems(
                    &s.bgp_errors,
                    &errors,
                    quick_findings(&sock).await.as_deref()
                )
            );
            Ok(())
        }
        Ok(_) => bail!(
            "Tabby process is not running (it is shutting down; socket {}).",
            sock.display()
        ),
        Err(e) => {
            println!("Tabby process is not running.");
            bail!("no tabby-node answers on {}: {e:#}", sock.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_proto::node::BlockPathRow;

    fn row(addr: &str, info: &str) -> BgpPeerRow {
        BgpPeerRow {
            peer_address: addr.into(),
            peer_type: "node-to-node mesh".into(),
            state: if info == "Established" { "up" } else { "start" }.into(),
            since: "23:30:04".into(),
            info: info.into(),
            ..Default::default()
        }
    }

    #[test]
    fn calicoctl_layout_with_tabby_blocks() {
        let s = StatusResponse {
            running: true,
            networking_backend: "bird".into(),
            ipv4_peers: vec![row("172.17.8.102", "Established")],
            block_paths: vec![BlockPathRow {
                block: "172.30.1.0/26".into(),
                node: "node-2".into(),
                path: "vxlan-fallback".into(),
                via: "172.30.1.1".into(),
                reason: "BGP down 12s".into(),
            }],
            ..Default::default()
        };
        let want = "\
Tabby process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

Block paths
+---------------+--------+----------------+------------+--------------+
|     BLOCK     |  NODE  |      PATH      |    VIA     |    REASON    |
+---------------+--------+----------------+------------+--------------+
| 172.30.1.0/26 | node-2 | vxlan-fallback | 172.30.1.1 | BGP down 12s |
+---------------+--------+----------------+------------+--------------+
";
        assert_eq!(render(&s), want);
    }

    #[test]
    fn bfd_section_only_where_a_peer_runs_bfd() {
        let mut up = row("172.17.8.102", "Established");
        up.bfd_state = "Up".into();
        up.bfd_info = "detect time 0.9 s".into();
        let s = StatusResponse {
            running: true,
            networking_backend: "bird".into(),
            ipv4_peers: vec![up, row("172.17.8.103", "Established")],
            ..Default::default()
        };
        let out = render(&s);
        let want = "\
BFD status
+--------------+-------+-------------------+
| PEER ADDRESS | STATE |       INFO        |
+--------------+-------+-------------------+
| 172.17.8.102 | Up    | detect time 0.9 s |
+--------------+-------+-------------------+
";
        // Only the peer running BFD is in the section.
        assert!(out.contains(want), "{out}");
    }

    #[test]
    fn a_stalled_datastore_is_named_at_the_top() {
        let s = StatusResponse {
            running: true,
            networking_backend: "bird".into(),
            datastore_revisions: [("ippools".to_string(), 7)].into(),
            datastore_error: "datastore not responding for 12 s: etcdv3 did not answer within 5 s"
                .into(),
            ..Default::default()
        };
        let out = render(&s);
        assert!(
            out.starts_with(
                "Tabby process is running.\n\nDatastore not in sync: datastore not responding for 12 s: etcdv3 did not answer within 5 s\n\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn no_peers_and_no_bgp() {
        let s = StatusResponse {
            running: true,
            networking_backend: "bird".into(),
            ..Default::default()
        };
        let out = render(&s);
        assert!(
            out.contains("IPv4 BGP status\nNo IPv4 peers found.\n"),
            "{out}"
        );
        assert!(out.contains("Block paths\nNo blocks found.\n"), "{out}");
        let s = StatusResponse {
            running: true,
            networking_backend: "vxlan".into(),
            ..Default::default()
        };
        let out = render(&s);
        assert!(
            out.contains("BGP backend is not in use (CALICO_NETWORKING_BACKEND=vxlan)"),
            "{out}"
        );
        assert!(!out.contains("IPv4 BGP status"), "{out}");
    }

    #[test]
    fn problems_lists_dataplane_errors_then_top_findings() {
        assert_eq!(
            problems(&[], &[], Some(&[])),
            "Problems\nNo problems found.\n"
        );
        assert!(problems(&[], &[], None).contains("not in the node's network namespace"));
        let e = "BGPPeer tor: password secret s key k: cannot read /x/s/k".to_string();
        let out = problems(std::slice::from_ref(&e), &[], Some(&[]));
        assert!(
            out.contains(&format!("BGP session not configured: {e}")),
            "{out}"
        );
        assert!(!out.contains("No problems found"));
        let findings: Vec<Finding> = (0..7)
            .map(|i| Finding::error("route", format!("problem {i}")))
            .collect();
        let out = problems(&[], &["172.30.1.0/26: refused".into()], Some(&findings));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "DATAPLANE 172.30.1.0/26: refused");
        assert!(lines[2].starts_with("ERROR   [route] problem 0"), "{out}");
        assert_eq!(lines.len(), 1 + 1 + 5 + 1, "{out}");
        assert!(
            out.ends_with("... and 2 more: run `tabbyctl node doctor`\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn no_node_is_an_error_naming_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = socket(Some(dir.path().to_path_buf()));
        assert_eq!(sock, dir.path().join("tabby.sock"));
        let e = status(Some(dir.path().to_path_buf())).await.unwrap_err();
        assert!(
            format!("{e:#}").contains(&sock.display().to_string()),
            "{e:#}"
        );
    }
}
