//! `tabbyctl ipam show/release` against the embedded store after real
//! allocations: calicoctl's table, per-block rows, who holds an IP, the
//! effective configuration, and release by IP.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tabby_agent::datastore::{sqlite::SqliteStore, Datastore};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};

fn ctl(db: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
        .args(args)
        .env("DATASTORE_TYPE", "sqlite")
        .env("TABBY_DATASTORE", db)
        .output()
        .expect("running tabbyctl");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_blocks_ip_configuration_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let mut spec = IpPoolSpec {
        cidr: "10.40.0.0/24".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "pool-a", spec)))
        .await
        .unwrap();
    let ipam = Ipam::new(DatastoreIpam::new(ds.clone()));
    let mut attrs = BTreeMap::new();
    attrs.insert("namespace".to_string(), "default".to_string());
    attrs.insert("pod".to_string(), "web-0".to_string());
    let mut ips = Vec::new();
    for (i, node) in ["n1", "n1", "n2"].iter().enumerate() {
        let req = AssignRequest {
            attributes: attrs.clone(),
            ..AssignRequest::new(&format!("k8s-pod-network.c{i}"), node)
        };
        ips.extend(ipam.auto_assign(&req).await.unwrap().0);
    }

    let (ok, out, err) = ctl(&db, &["ipam", "show"]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.contains("10.40.0.0/24"))
        .expect(&out);
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[1..7],
        [
            "IP Pool",
            "10.40.0.0/24",
            "256",
            "3 (1%)",
            "2 (1%)",
            "251 (98%)"
        ],
        "{out}"
    );
    assert!(out.starts_with("+---"), "{out}");
    assert!(out.contains("| GROUPING |"), "{out}");

    let (_, out, _) = ctl(&db, &["ipam", "show", "--show-blocks"]);
    let blocks: Vec<&str> = out.lines().filter(|l| l.contains("| Block")).collect();
    assert_eq!(blocks.len(), 2, "one block per node:\n{out}");

    let ip = ips[0].to_string();
    let (_, out, _) = ctl(&db, &["ipam", "show", "--ip", &ip]);
    assert!(
        out.starts_with(&format!("IP {ip} is in use\nHandle: k8s-pod-network.c0\n")),
        "{out}"
    );
    assert!(out.contains("  pod: web-0"), "{out}");

    let (_, out, _) = ctl(&db, &["ipam", "show", "--show-configuration"]);
    assert!(
        out.contains("| MaxBlocksPerHost   | 0 (effective 20) |"),
        "{out}"
    );

    let (ok, out, _) = ctl(&db, &["ipam", "release", "--ip", &ip]);
    assert!(ok);
    assert_eq!(out.trim(), format!("Successfully released IP {ip}"));
    let (ok, _, err) = ctl(&db, &["ipam", "release", "--ip", &ip]);
    assert!(!ok);
    assert!(err.contains(&format!("IP {ip} is not assigned")), "{err}");
    let (_, out, _) = ctl(&db, &["ipam", "show", "--ip", &ip]);
    assert_eq!(out.trim(), format!("IP {ip} is not assigned"));

    // Nodes n1 and n2 are not Node resources here, and no pod has a
    // WorkloadEndpoint: check reports both affinities and both remaining
    // pod addresses (allocated without a timestamp, so judged by liveness
    // alone), --fix repairs all four, and a second check is clean.
    let (ok, out, _) = ctl(&db, &["ipam", "check"]);
    assert!(ok);
    assert!(
        out.contains("has an affinity for node n1, which does not exist"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "IP {} is allocated to k8s-pod-network.c2, which no live workload uses",
            ips[2]
        )),
        "{out}"
    );
    assert!(
        out.ends_with("Check complete; found 4 problems.\n"),
        "{out}"
    );
    let (ok, out, err) = ctl(&db, &["ipam", "check", "--fix"]);
    assert!(ok, "{err}");
    assert!(out.ends_with("Fixed 4 problems.\n"), "{out}");
    let (_, out, _) = ctl(&db, &["ipam", "check"]);
    assert_eq!(out, "Check complete; found 0 problems.\n");

    let (ok, _, err) = ctl(&db, &["ipam", "show", "--ip", "10.40.0.x"]);
    assert!(
        !ok && err.contains("--ip: \"10.40.0.x\" is not an IP address"),
        "{err}"
    );
}

/// The acceptance scenario: 3 nodes × 20 pods on Calico's default
/// pool; `ipam show --show-blocks` lists one /26 per node with its 20 pods,
/// and every pod's address is inside a block affine to its own node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_twenty_pods_each_stay_in_their_own_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let mut spec = IpPoolSpec {
        cidr: "192.168.0.0/16".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new(
        "IPPool",
        "default-ipv4-ippool",
        spec,
    )))
    .await
    .unwrap();
    let ipam = Ipam::new(DatastoreIpam::new(ds.clone()));
    let mut pods = Vec::new();
    for node in ["node-1", "node-2", "node-3"] {
        for p in 0..20 {
            let req = AssignRequest::new(&format!("k8s-pod-network.{node}-{p}"), node);
            pods.push((node, ipam.auto_assign(&req).await.unwrap().0[0]));
        }
    }
    let (ok, out, _) = ctl(&db, &["ipam", "show", "--show-blocks"]);
    assert!(ok);
    let blocks: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.contains("| Block"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(blocks.len(), 3, "{out}");
    for b in &blocks {
        assert!(b[2].ends_with("/26"), "{out}");
        assert_eq!(b[4], "20 (31%)", "{out}");
    }
    let (_, affs, _) = ctl(&db, &["get", "blockaffinities"]);
    for (node, ip) in pods {
        let owner = affs
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|c| c[2].parse::<ipnet::IpNet>().is_ok_and(|n| n.contains(&ip)))
            .expect("a block affinity covers every pod");
        assert_eq!((owner[1], owner[3]), (node, "confirmed"), "{ip}");
    }
}

/// Issue 15 items 7 and 8: a deleted pool's block is shown by `ipam show`
/// and reported by `ipam check` (it used to be hidden, with 0 problems),
/// and so is a Node tunnel address IPAM does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pool_blocks_and_unheld_tunnel_addresses_are_shown_and_checked() {
    use tabby_agent::resources::node::NodeSpec;
    use tabby_agent::resources::Kind;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let mut spec = IpPoolSpec {
        cidr: "10.41.0.0/24".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "gone", spec)))
        .await
        .unwrap();
    let node = NodeSpec {
        // Never allocated: what vxlan.calico would carry after IPAM lost it.
        ipv4_vxlan_tunnel_addr: Some("10.41.0.200".into()),
        ..Default::default()
    };
    ds.create(Resource::Node(Object::new("Node", "n1", node)))
        .await
        .unwrap();
    let ipam = Ipam::new(DatastoreIpam::new(ds.clone()));
    let (ip, _) = ipam
        .auto_assign(&AssignRequest::new("k8s-pod-network.c1", "n1"))
        .await
        .unwrap();
    ds.delete(Kind::IpPool, "gone", None).await.unwrap();
    let block = ipnet::IpNet::new(ip[0], 26).unwrap().trunc();

    let (ok, out, err) = ctl(&db, &["ipam", "show"]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.contains(&block.to_string()))
        .unwrap_or_else(|| panic!("{block} hidden:\n{out}"));
    assert!(
        row.contains("Block (no IP pool)") && row.contains("1 (2%)"),
        "{out}"
    );

    // A WorkloadEndpoint would make the pod live; without one the leak
    // is judged too, so look only for the two new findings.
    let (ok, out, err) = ctl(&db, &["ipam", "check", "--leak-grace-period", "1h"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "block {block} is in no IP pool (its pool was deleted); it goes once its 1 address(es) are released"
        )),
        "{out}"
    );
    assert!(
        out.contains("node n1's VXLAN tunnel address 10.41.0.200 is not assigned in IPAM"),
        "{out}"
    );
    assert!(!out.contains("found 0 problems"), "{out}");

    // The last address released, the block and its affinity go.
    ipam.release_by_handle("k8s-pod-network.c1").await.unwrap();
    let (_, out, _) = ctl(&db, &["ipam", "show"]);
    assert!(!out.contains(&block.to_string()), "{out}");
}
