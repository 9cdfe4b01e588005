//! Two real tabby-node processes, each in its own network namespace with a
//! veth between them, sharing one SQLite datastore as the lab runs them:
//! Node resources written, the mesh session Established, each node with a
//! native route (protocol 81) to the other's block; a frozen peer moves
//! its block to vxlan.calico once the session is lost and back when it
//! returns; SIGTERM leaves the kernel routes in place. Needs root.

#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use netns::{link_named, Netns};
use node_common::Daemon;
use std::path::Path;
use tabby_agent::datastore::sqlite::SqliteStore;
use tabby_agent::datastore::Datastore;
use tabby_agent::resources::{Kind, Resource};
use tabby_proto::node as pb;
use wait::wait_until;

fn start(ns: &Netns, name: &str, dir: &Path) -> Daemon {
    node_common::mesh_node(ns, name, dir)
}

fn routes(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.ip(&["route", "show"]).stdout).into_owned()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn status(dir: &Path, name: &str) -> Option<pb::StatusResponse> {
    let sock = dir.join(name).join("run").join("tabby.sock");
    rt().block_on(async {
        let ch = tabby_agent::grpc::connect_unix(&sock).await.ok()?;
        let mut c = pb::node_client::NodeClient::new(ch);
        Some(c.status(pb::StatusRequest {}).await.ok()?.into_inner())
    })
}

/// The block the datastore gives `node` (from its VXLAN tunnel address's
/// claim), and the node's tunnel address.
fn node_block(dir: &Path, node: &str) -> Option<(String, String)> {
    rt().block_on(async {
        let ds = SqliteStore::open(&dir.join("tabby.db")).await.ok()?;
        let Ok(Resource::Node(n)) = ds.get(Kind::Node, node).await else {
            return None;
        };
        let tunnel = n.spec.ipv4_vxlan_tunnel_addr.clone()?;
        let affs = ds.list(Kind::BlockAffinity, None).await.ok()?;
        let block = affs.items.iter().find_map(|r| match r {
            Resource::BlockAffinity(a) if a.spec.node == node => Some(a.spec.cidr.clone()),
            _ => None,
        })?;
        Some((block, tunnel))
    })
}

#[test]
fn two_nodes_mesh_native_routes_and_fallback() {
    let na = Netns::new("nda");
    let nb = Netns::new("ndb");
    let l = link_named(&na, &nb, 81, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let a = start(&na, "node-a", dir);
    let mut b = start(&nb, "node-b", dir);

    wait_until("both Node resources with tunnel addresses", 20.0, || {
        node_block(dir, "node-a").is_some() && node_block(dir, "node-b").is_some()
    });
    let (block_a, tunnel_a) = node_block(dir, "node-a").unwrap();
    let (block_b, tunnel_b) = node_block(dir, "node-b").unwrap();
    rt().block_on(async {
        let ds = SqliteStore::open(&dir.join("tabby.db")).await.unwrap();
        let Resource::Node(n) = ds.get(Kind::Node, "node-a").await.unwrap() else {
            panic!("not a Node")
        };
        let bgp = n.spec.bgp.expect("spec.bgp");
        assert_eq!(
            bgp.ipv4_address.as_deref(),
            Some(format!("{}/24", l.addr_a).as_str())
        );
        let mac = n.spec.vxlan_tunnel_mac_addr.expect("VTEP MAC");
        assert!(mac.starts_with("66:"), "Felix-style derived MAC, got {mac}");
        let pools = ds.list(Kind::IpPool, None).await.unwrap();
        assert_eq!(
            pools.items.len(),
            1,
            "one default pool although two nodes raced"
        );
    });

    let native_b = format!("{block_b} via {} dev {} proto 81", l.addr_b, l.if_a);
    let native_a = format!("{block_a} via {} dev {} proto 81", l.addr_a, l.if_b);
    wait_until("native routes on both nodes", 20.0, || {
        routes(&na).contains(&native_b) && routes(&nb).contains(&native_a)
    });
    assert!(routes(&na).contains(&format!("blackhole {block_a} proto 81")));

    wait_until("mesh Established in node status", 20.0, || {
        status(dir, "node-a").is_some_and(|s| {
            s.ipv4_peers.iter().any(|p| {
                p.peer_address == l.addr_b
                    && p.peer_type == "node-to-node mesh"
                    && p.state == "up"
                    && p.info == "Established"
            })
        })
    });
    let s = status(dir, "node-a").unwrap();
    assert!(s.running);
    assert_eq!(s.networking_backend, "bird");
    assert_eq!(s.node_ip, format!("{}/24", l.addr_a));
    assert_eq!(s.interface, l.if_a);
    let row = s
        .block_paths
        .iter()
        .find(|r| r.block == block_b)
        .expect("a row for node-b's block");
    assert_eq!((row.node.as_str(), row.path.as_str()), ("node-b", "native"));

    // Freeze node-b: the session expires after the 3 s hold time, and its
    // block moves to VXLAN via its tunnel address.
    let stop = |sig: &str, pid: u32| {
        netns::run("kill", &[sig, &pid.to_string()]);
    };
    stop("-STOP", b.0.id());
    let tunnel_b_ip = tunnel_b.split('/').next().unwrap().to_string();
    let via_vxlan = format!("{block_b} via {tunnel_b_ip} dev vxlan.calico proto 81 onlink");
    wait_until(
        "fallback to vxlan.calico within hold time + 5 s",
        8.5,
        || routes(&na).contains(&via_vxlan),
    );
    let s = status(dir, "node-a").unwrap();
    let row = s.block_paths.iter().find(|r| r.block == block_b).unwrap();
    assert_eq!(row.path, "vxlan-fallback", "{row:?}");
    assert_eq!(row.via, tunnel_b_ip);
    let _ = tunnel_a;
    stop("-CONT", b.0.id());
    wait_until("back to native once Established", 45.0, || {
        routes(&na).contains(&native_b)
    });

    // SIGTERM: a clean exit that leaves the kernel routes for the next start.
    stop("-TERM", b.0.id());
    let st = b.0.wait().unwrap();
    assert!(st.success(), "tabby-node exits 0 on SIGTERM: {st:?}");
    assert!(
        routes(&nb).contains(&native_a),
        "routes stay after SIGTERM: {}",
        routes(&nb)
    );
    drop(a);
}

#[test]
fn kill_9_and_restart_keeps_routes_and_the_tunnel_address() {
    let na = Netns::new("nra");
    let nb = Netns::new("nrb");
    let l = link_named(&na, &nb, 82, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut a = start(&na, "node-a", dir);
    let _b = start(&nb, "node-b", dir);
    wait_until("both Node resources with tunnel addresses", 20.0, || {
        node_block(dir, "node-a").is_some() && node_block(dir, "node-b").is_some()
    });
    let (block_a, tunnel_a) = node_block(dir, "node-a").unwrap();
    let (block_b, _) = node_block(dir, "node-b").unwrap();
    let native_a = format!("{block_a} via {} dev {} proto 81", l.addr_a, l.if_b);
    let native_b = format!("{block_b} via {} dev {} proto 81", l.addr_b, l.if_a);
    wait_until("native routes on both nodes", 20.0, || {
        routes(&na).contains(&native_b) && routes(&nb).contains(&native_a)
    });

    a.0.kill().unwrap();
    a.0.wait().unwrap();
    // Nothing is withdrawn while node-a is gone: node-b's route comes from
    // the datastore, node-a's kernel state stays.
    for _ in 0..10 {
        assert!(routes(&nb).contains(&native_a), "{}", routes(&nb));
        assert!(routes(&na).contains(&native_b), "{}", routes(&na));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _a2 = start(&na, "node-a", dir);
    wait_until(
        "restarted node-a serves status with its peer Established",
        30.0,
        || {
            status(dir, "node-a").is_some_and(|s| {
                s.ipv4_peers
                    .iter()
                    .any(|p| p.peer_address == l.addr_b && p.info == "Established")
            })
        },
    );
    assert!(routes(&na).contains(&native_b));
    let (block_a2, tunnel_a2) = node_block(dir, "node-a").unwrap();
    assert_eq!(tunnel_a2, tunnel_a, "the restart keeps the tunnel address");
    assert_eq!(block_a2, block_a);
    let s = status(dir, "node-a").unwrap();
    assert_eq!(s.vxlan_tunnel_address, tunnel_a);
    let handles = rt().block_on(async {
        let ds = SqliteStore::open(&dir.join("tabby.db")).await.unwrap();
        let blocks = ds.list(Kind::IpamBlock, None).await.unwrap();
        blocks
            .items
            .iter()
            .map(|r| match r {
                Resource::IpamBlock(b) => b
                    .spec
                    .attributes
                    .iter()
                    .filter(|a| a.handle_id.as_deref() == Some("vxlan-tunnel-addr-node-a"))
                    .count(),
                _ => 0,
            })
            .sum::<usize>()
    });
    assert_eq!(
        handles, 1,
        "one tunnel allocation for node-a, not one per start"
    );
}

#[test]
fn blocked_bgp_port_falls_back_to_vxlan_and_recovers() {
    let na = Netns::new("nfa");
    let nb = Netns::new("nfb");
    let l = link_named(&na, &nb, 83, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _a = start(&na, "node-a", dir);
    let _b = start(&nb, "node-b", dir);
    wait_until("both Node resources with tunnel addresses", 20.0, || {
        node_block(dir, "node-a").is_some() && node_block(dir, "node-b").is_some()
    });
    let (block_a, tunnel_a) = node_block(dir, "node-a").unwrap();
    let (block_b, tunnel_b) = node_block(dir, "node-b").unwrap();
    let native_a = format!("{block_a} via {} dev {} proto 81", l.addr_a, l.if_b);
    let native_b = format!("{block_b} via {} dev {} proto 81", l.addr_b, l.if_a);
    wait_until("native routes on both nodes", 20.0, || {
        routes(&na).contains(&native_b) && routes(&nb).contains(&native_a)
    });
    wait_until("mesh Established", 20.0, || {
        status(dir, "node-a").is_some_and(|s| s.ipv4_peers.iter().any(|p| p.info == "Established"))
    });

    // Drop BGP on node-b, both directions, as seed 002's firewall did.
    let nft = |args: &[&str]| {
        let mut c = nb.command("nft");
        c.args(args);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    nft(&["add", "table", "inet", "tbtest"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "tbtest",
        "in",
        "{ type filter hook input priority -10; policy accept; }",
    ]);
    nft(&[
        "add", "rule", "inet", "tbtest", "in", "tcp", "dport", "179", "drop",
    ]);
    nft(&[
        "add", "rule", "inet", "tbtest", "in", "tcp", "sport", "179", "drop",
    ]);

    let ip_of = |t: &str| t.split('/').next().unwrap().to_string();
    let vx_b = format!(
        "{block_b} via {} dev vxlan.calico proto 81 onlink",
        ip_of(&tunnel_b)
    );
    let vx_a = format!(
        "{block_a} via {} dev vxlan.calico proto 81 onlink",
        ip_of(&tunnel_a)
    );
    // Hold time 3 s, plus 5 s.
    wait_until(
        "both ends on vxlan.calico within hold time + 5 s",
        8.0,
        || routes(&na).contains(&vx_b) && routes(&nb).contains(&vx_a),
    );
    let vx_dev = String::from_utf8_lossy(&na.ip(&["-d", "link", "show", "vxlan.calico"]).stdout)
        .into_owned();
    assert!(
        vx_dev.contains(&format!("local {} dev {}", l.addr_a, l.if_a)),
        "vxlan.calico bound to the node interface: {vx_dev}"
    );
    let neigh = String::from_utf8_lossy(&na.ip(&["neigh", "show", "dev", "vxlan.calico"]).stdout)
        .into_owned();
    assert!(
        neigh.contains(&ip_of(&tunnel_b)) && neigh.contains("PERMANENT"),
        "{neigh}"
    );

    nft(&["delete", "table", "inet", "tbtest"]);
    wait_until("back to native routes once Established", 30.0, || {
        routes(&na).contains(&native_b) && routes(&nb).contains(&native_a)
    });
}
