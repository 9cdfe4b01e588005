//! Issue 15 items 6 and 7, end to end: configuration changes touch only
//! what they concern. Pools, BGPPeers and BGPConfiguration fields applied
//! and deleted one at a time on a running mesh reset no session they do not
//! concern and lose no ping; disabling the pool the VTEPs came from, with a
//! pool overlapping the node subnet (its router's address) in place,
//! re-addresses no VTEP. Root only.

mod e2e_common;

use e2e_common::{serial, wait_until, Lab};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `tabbyctl apply -f` (or `delete -f`) of one manifest.
fn ctl_file(lab: &Lab, verb: &str, tag: &str, yaml: &str) {
    let path = format!("/tmp/{}-{tag}.yaml", lab.name);
    std::fs::write(&path, yaml).unwrap();
    let (ok, out) = lab.tabbyctl(&[verb, "-f", &path]);
    let _ = std::fs::remove_file(&path);
    assert!(ok, "{verb} {tag}: {out}");
}

/// Every BGP peer row of `node status`: address → (SINCE, INFO).
fn sessions(lab: &Lab, node: &str) -> BTreeMap<String, (String, String)> {
    let (_, out) = lab.node_status(node);
    out.lines()
        .skip_while(|l| !l.starts_with("IPv4 BGP status"))
        .take_while(|l| !l.starts_with("IPv6 BGP status"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c.len() == 7 && c[1] != "PEER ADDRESS")
                .then(|| (c[1].to_string(), (c[4].to_string(), c[5].to_string())))
        })
        .collect()
}

/// Lines of the node's whole log that mention `what`.
fn log_lines(lab: &Lab, node: &str, what: &str) -> Vec<String> {
    let path = lab.node(node)["log"].as_str().unwrap().to_string();
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_string)
        .collect()
}

/// A ping from the first pod of node-1 to the first pod of node-3,
/// 10 a second for `secs`.
fn start_ping(lab: &Lab, secs: u32) -> Child {
    let pods = lab.pods();
    let pod_on = |n: &str| -> Value {
        pods.iter()
            .find(|p| p["node"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no pod on {n}"))
    };
    let from = pod_on("node-1");
    let to = pod_on("node-3");
    Command::new("ip")
        .args(["netns", "exec", from["netns"].as_str().unwrap()])
        .args(["ping", "-q", "-i", "0.1", "-c", &(secs * 10).to_string()])
        .arg(to["address"].as_str().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping")
}

/// (sent, received) from ping's summary.
fn ping_result(child: Child) -> (u32, u32, String) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {text}"))
        .to_string();
    let num = |i: usize| -> u32 {
        line.split(',')
            .nth(i)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num(0), num(1), text)
}

const POOL: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: extra
spec:
  cidr: 10.250.0.0/16
  vxlanMode: Never
  natOutgoing: true
";

const POOL_DISABLED: &str = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: extra
spec:
  cidr: 10.250.0.0/16
  vxlanMode: Never
  natOutgoing: true
  disabled: true
";

/// A peer in each node's own namespace (nothing listens there): the one
/// session this change concerns.
const PEER: &str = "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: loopback
spec:
  peerIP: 127.0.0.1
  asNumber: 65099
";

const BGP_CONFIG: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  serviceClusterIPs:
  - cidr: 10.96.0.0/12
";

const BGP_CONFIG_2: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Debug
  nodeToNodeMeshEnabled: true
";

#[test]
fn pool_peer_and_bgp_configuration_changes_reset_no_mesh_session() {
    let _g = serial();
    let lab = Lab::three_nodes_with("reconf", "1", "None", &["--datastore", "sqlite"]);
    let nodes = lab.node_names();
    let mesh_of = |n: &str| -> Vec<String> {
        nodes
            .iter()
            .filter(|o| o.as_str() != n)
            .map(|o| lab.node_ip(o).to_string())
            .collect()
    };
    for n in &nodes {
        let want = mesh_of(n);
        let ok = wait_until(Duration::from_secs(30), || {
            let est = lab.established_peers(n);
            want.iter().all(|o| est.contains(o))
        });
        assert!(ok, "{n}: mesh not Established\n{}", lab.logs());
    }
    // SINCE has a resolution of a second: let every session be older than
    // one, so a reset shows.
    std::thread::sleep(Duration::from_secs(2));
    let before: BTreeMap<String, BTreeMap<String, (String, String)>> = nodes
        .iter()
        .map(|n| (n.clone(), sessions(&lab, n)))
        .collect();
    let added_before: BTreeMap<String, usize> = nodes
        .iter()
        .map(|n| (n.clone(), log_lines(&lab, n, "BGP peer added").len()))
        .collect();

    let steps: [(&str, &str, &str); 8] = [
        ("apply", "pool", POOL),
        ("apply", "pool-disabled", POOL_DISABLED),
        ("delete", "pool", POOL),
        ("apply", "peer", PEER),
        ("delete", "peer", PEER),
        ("apply", "bgpconfig", BGP_CONFIG),
        ("apply", "bgpconfig-2", BGP_CONFIG_2),
        ("delete", "bgpconfig", BGP_CONFIG_2),
    ];
    let ping = start_ping(&lab, 3 * steps.len() as u32 + 4);
    std::thread::sleep(Duration::from_secs(2));
    for (verb, tag, yaml) in steps {
        ctl_file(&lab, verb, tag, yaml);
        std::thread::sleep(Duration::from_secs(3));
    }
    let (sent, received, text) = ping_result(ping);

    let mut flaps = Vec::new();
    let mut readded = 0;
    for n in &nodes {
        let after = sessions(&lab, n);
        for peer in mesh_of(n) {
            if after.get(&peer) != before[n].get(&peer) {
                flaps.push(format!(
                    "{n} -> {peer}: {:?} then {:?}",
                    before[n].get(&peer),
                    after.get(&peer)
                ));
            }
        }
        let added: Vec<String> = log_lines(&lab, n, "BGP peer added")
            .into_iter()
            .skip(added_before[n])
            .filter(|l| !l.contains("127.0.0.1"))
            .collect();
        readded += added.len();
        if !added.is_empty() {
            flaps.push(format!("{n} re-added mesh peers: {added:?}"));
        }
        let loopback = log_lines(&lab, n, "BGP peer added")
            .into_iter()
            .skip(added_before[n])
            .filter(|l| l.contains("127.0.0.1"))
            .count();
        assert_eq!(loopback, 1, "{n}: the BGPPeer concerned is added once");
    }
    eprintln!(
        "item 6: {} configuration changes, {} mesh peers re-added, {} mesh sessions with a new SINCE, {}/{} pings lost",
        steps.len(),
        readded,
        flaps.len() - flaps.iter().filter(|f| f.contains("re-added")).count(),
        sent - received,
        sent
    );
    assert!(
        flaps.is_empty(),
        "mesh sessions reset:\n{}",
        flaps.join("\n")
    );
    assert_eq!(sent, received, "pings lost:\n{text}");
}

/// Waits until every node has every mesh peer Established.
fn wait_mesh(lab: &Lab, timeout: Duration) -> Result<(), String> {
    let nodes = lab.node_names();
    for n in &nodes {
        let want: Vec<String> = nodes
            .iter()
            .filter(|o| *o != n)
            .map(|o| lab.node_ip(o).to_string())
            .collect();
        let ok = wait_until(timeout, || {
            let est = lab.established_peers(n);
            want.iter().all(|o| est.contains(o))
        });
        if !ok {
            return Err(format!("{n}: {}", lab.node_status(n).1));
        }
    }
    Ok(())
}

/// The AS every node takes from BGPConfiguration: the sessions it
/// concerns (all of them) come back on the new AS, which needs the speaker
/// itself restarted (it used to keep the old AS in its OPEN while its peers
/// expected the new one, so no session came back).
#[test]
fn a_new_cluster_as_brings_every_session_back_on_it() {
    let _g = serial();
    let lab = Lab::three_nodes_with("reas", "1", "None", &["--datastore", "sqlite"]);
    wait_mesh(&lab, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    ctl_file(
        &lab,
        "apply",
        "as",
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 64600\n",
    );
    std::thread::sleep(Duration::from_secs(2));
    wait_mesh(&lab, Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("not back on AS 64600: {e}\n{}", lab.logs()));
    let (ok, out) = lab.wait_check(Duration::from_secs(20));
    assert!(ok, "lab check:\n{out}");
}

/// The lab's default pool, as stored, with `disabled` set.
fn default_pool(lab: &Lab, disabled: bool) -> String {
    let (ok, out) = lab.tabbyctl(&["get", "ippool", "-o", "json"]);
    assert!(ok, "get ippool: {out}");
    let v: Value = serde_json::from_str(&out).expect("ippool JSON");
    let items = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![v.clone()]);
    let p = items
        .into_iter()
        .find(|p| p["spec"]["cidr"] == "172.30.0.0/16")
        .unwrap_or_else(|| panic!("no lab pool in {out}"));
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {}\nspec:\n  cidr: 172.30.0.0/16\n  blockSize: {}\n  vxlanMode: {}\n  natOutgoing: {}\n  disabled: {disabled}\n",
        p["metadata"]["name"].as_str().unwrap(),
        p["spec"]["blockSize"].as_u64().unwrap_or(26),
        p["spec"]["vxlanMode"].as_str().unwrap_or("Always"),
        p["spec"]["natOutgoing"].as_bool().unwrap_or(true),
    )
}

#[test]
fn disabling_the_vtep_pool_re_addresses_no_vtep() {
    let _g = serial();
    let lab = Lab::three_nodes_with("revtep", "1", "VXLAN", &["--datastore", "sqlite"]);
    let nodes = lab.node_names();
    let vteps: BTreeMap<String, std::net::Ipv4Addr> =
        nodes.iter().map(|n| (n.clone(), lab.vtep(n).0)).collect();
    // A pool overlapping the node subnet (172.31.1.0/24: router .1, nodes
    // from .11): `apply` lets it in, as no node address is inside it.
    let edge = "apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: edge
spec:
  cidr: 172.31.1.0/29
  blockSize: 29
  vxlanMode: Always
";
    ctl_file(&lab, "apply", "edge", edge);
    ctl_file(&lab, "apply", "disabled", &default_pool(&lab, true));
    std::thread::sleep(Duration::from_secs(4));
    for n in &nodes {
        let now = lab.vtep(n).0;
        assert_eq!(
            now,
            vteps[n],
            "{n}: VTEP re-addressed after its pool was disabled\n{}",
            lab.logs()
        );
    }
    ctl_file(&lab, "apply", "enabled", &default_pool(&lab, false));
    std::thread::sleep(Duration::from_secs(3));
    for n in &nodes {
        assert_eq!(
            lab.vtep(n).0,
            vteps[n],
            "{n}: VTEP re-addressed after its pool was enabled again"
        );
        let (_, out) = lab.tabbyctl(&["ipam", "show", "--ip", &vteps[n].to_string()]);
        assert!(
            out.contains("is in use") && out.contains("vxlan-tunnel-addr-"),
            "{n}: {out}"
        );
    }
    let (ok, out) = lab.tabbyctl(&["ipam", "check"]);
    assert!(ok && out.contains("found 0 problems"), "{out}");
    let (ok, out) = lab.wait_check(Duration::from_secs(20));
    assert!(ok, "lab check:\n{out}\n{}", lab.logs());

    // The VTEPs' pool deleted: they must move, and the only VXLAN pool
    // left lies inside the node subnet. No new address can be had, so each
    // node keeps the one it holds (it used to release it first and then
    // take the router's, 172.31.1.1).
    let (ok, out) = lab.tabbyctl(&["delete", "ippool", &default_pool_name(&lab)]);
    assert!(ok, "delete the pool: {out}");
    std::thread::sleep(Duration::from_secs(4));
    let subnet: ipnet::Ipv4Net = "172.31.1.0/24".parse().unwrap();
    for n in &nodes {
        let now = lab.vtep(n).0;
        assert!(
            !subnet.contains(&now),
            "{n}: VTEP {now} inside the node subnet"
        );
        assert_eq!(
            now, vteps[n],
            "{n}: VTEP changed with nothing to change it to"
        );
        let (_, out) = lab.tabbyctl(&["ipam", "show", "--ip", &now.to_string()]);
        assert!(
            out.contains("is in use") && out.contains("vxlan-tunnel-addr-"),
            "{n}: {out}"
        );
    }
    let (_, out) = lab.tabbyctl(&["ipam", "check"]);
    assert!(
        out.contains("is in no IP pool (its pool was deleted)"),
        "{out}"
    );
}

fn default_pool_name(lab: &Lab) -> String {
    let yaml = default_pool(lab, false);
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("name: "))
        .unwrap()
        .to_string()
}
