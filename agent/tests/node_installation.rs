//! The Installation on SQLite, end to end: `tabbyctl apply -f
//! installation.yaml`, then a real tabby-node in a network namespace with
//! two interfaces applies it — pools (and no CALICO_IPV4POOL_* default
//! pool), the VXLAN MTU on `vxlan.calico`, the backend (BGP listening or
//! not), the autodetection interface in the Node — and writes its status;
//! a changed Installation is applied without a restart; an invalid one
//! written past tabbyctl is Degraded by field with nothing applied; the
//! node's own environment wins where it sets something. Needs root.

mod common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use common::Ctl;
use netns::{link_named, stdout_if_ok, Netns};
use serde_json::Value;
use tabby_agent::datastore::sqlite::SqliteStore;
use tabby_agent::datastore::Datastore;
use tabby_agent::resources::{Kind, Resource};

struct Node {
    _daemon: Option<node_common::Daemon>,
    ns: Netns,
    _peers: (Netns, Netns),
    /// The node's two interfaces and addresses: (if, addr) each.
    links: [(String, String); 2],
    dir: tempfile::TempDir,
}

impl Node {
    /// The namespace and datastore, no node yet.
    fn prepare(tag: &str, subnet: u8) -> Node {
        let ns = Netns::new(tag);
        let p1 = Netns::new(&format!("{tag}p"));
        let p2 = Netns::new(&format!("{tag}q"));
        let a = link_named(&ns, &p1, subnet, 1, 2);
        let b = link_named(&ns, &p2, subnet + 1, 1, 2);
        Node {
            _daemon: None,
            ns,
            _peers: (p1, p2),
            links: [(a.if_a, a.addr_a), (b.if_a, b.addr_a)],
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn start(&mut self, env: &[(&str, &str)]) {
        let d = self.dir.path();
        self._daemon = Some(node_common::spawn(
            &self.ns,
            "node-a",
            &d.join("tabby.db"),
            &d.join("run"),
            &d.join("node.log"),
            env,
        ));
    }

    fn ctl(&self) -> Ctl {
        Ctl::sqlite(&self.dir.path().join("tabby.db"))
    }

    fn apply(&self, yaml: &str) -> std::process::Output {
        self.ctl().run_stdin(&["apply", "-f", "-"], yaml)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn get(&self, what: &[&str]) -> Value {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let o = self.ctl().run(&args);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    }

    /// name → (cidr, vxlanMode, managed-by label).
    fn pools(&self) -> Vec<(String, String, String, String)> {
        let v = self.get(&["ippools"]);
        let items = v["items"].as_array().cloned().unwrap_or_else(|| vec![v]);
        let mut out: Vec<_> = items
            .iter()
            .filter(|p| p["metadata"]["name"].is_string())
            .map(|p| {
                let s = |x: &Value| x.as_str().unwrap_or("").to_string();
                (
                    s(&p["metadata"]["name"]),
                    s(&p["spec"]["cidr"]),
                    s(&p["spec"]["vxlanMode"]),
                    s(&p["metadata"]["labels"]["app.kubernetes.io/managed-by"]),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn node_address(&self) -> String {
        let v = self.get(&["nodes", "node-a"]);
        v["spec"]["bgp"]["ipv4Address"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn vxlan_mtu(&self) -> Option<u64> {
        let out = stdout_if_ok(
            self.ns
                .command("ip")
                .args(["-j", "link", "show", "vxlan.calico"]),
        )?;
        serde_json::from_str::<Value>(&out).ok()?[0]["mtu"].as_u64()
    }

    fn node_status(&self) -> String {
        let run = self.dir.path().join("run").display().to_string();
        let o = self.ctl().run(&["node", "status", "--run-dir", &run]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn bgp_listening(&self) -> bool {
        stdout_if_ok(self.ns.command("ss").args(["-Hltn", "sport = :179"]))
            .is_some_and(|o| !o.trim().is_empty())
    }

    fn condition(&self, kind: &str) -> Value {
        let v = self.get(&["installation", "default"]);
        v["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == kind).cloned())
            .unwrap_or(Value::Null)
    }

    fn wait(&self, what: &str, cond: impl FnMut() -> bool) {
        assert!(wait::eventually(30.0, cond), "{what}\n{}", self.log());
    }
}

fn installation(mtu: u32, bgp: &str, iface: &str, pools: &str) -> String {
    format!(
        "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  variant: Calico\n  calicoNetwork:\n    bgp: {bgp}\n    mtu: {mtu}\n    linuxDataplane: Iptables\n    nodeAddressAutodetectionV4:\n      interface: {iface}\n    ipPools:\n{pools}"
    )
}

const ONE_POOL: &str = "    - cidr: 172.30.0.0/16\n      encapsulation: VXLAN\n";

#[test]
fn the_installation_is_applied_and_followed_live() {
    let mut n = Node::prepare("inst", 96);
    let (if1, addr1) = n.links[0].clone();
    let (if2, addr2) = n.links[1].clone();
    let o = n.apply(&installation(1400, "Disabled", &if2, ONE_POOL));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    n.start(&[]);

    n.wait("the pool and MTU 1400", || {
        n.vxlan_mtu() == Some(1400) && !n.pools().is_empty()
    });
    // The Installation's pool only: no 192.168.0.0/16 default pool.
    assert_eq!(
        n.pools(),
        vec![(
            "default-ipv4-ippool".into(),
            "172.30.0.0/16".into(),
            "Always".into(),
            "tabby".into()
        )]
    );
    assert_eq!(n.node_address(), format!("{addr2}/24"));
    assert!(!n.bgp_listening(), "bgp: Disabled is the vxlan backend");
    let log = n.log();
    for want in [
        "networking backend from the Installation (vxlan)",
        &format!("node address autodetection from the Installation (interface={if2})"),
        "VXLAN MTU from the Installation (1400)",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
    n.wait("Ready", || n.condition("Ready")["status"] == "True");
    let st = n.get(&["installation", "default"])["status"].clone();
    assert_eq!(st["mtu"], 1400);
    assert_eq!(
        st["computed"]["calicoNetwork"]["ipPools"][0]["natOutgoing"],
        "Enabled"
    );
    assert_eq!(n.condition("Degraded")["status"], "False");
    assert!(
        n.node_status()
            .contains("The BGP backend is not in use (CALICO_NETWORKING_BACKEND=vxlan)"),
        "{}",
        n.node_status()
    );

    // A change, live: MTU, backend, autodetection and a second pool.
    let two = format!(
        "{ONE_POOL}    - name: extra\n      cidr: 172.31.0.0/16\n      encapsulation: None\n"
    );
    let o = n.apply(&installation(1350, "Enabled", &if1, &two));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    n.wait("MTU 1350, BGP, the new address and two pools", || {
        n.vxlan_mtu() == Some(1350)
            && n.bgp_listening()
            && n.node_address() == format!("{addr1}/24")
            && n.pools().len() == 2
    });
    assert_eq!(n.pools()[1].2, "Never", "encapsulation None");
    // `node status` follows the switch: the speaker's peer table.
    n.wait("node status with BGP", || {
        n.node_status().contains("IPv4 BGP status")
    });

    // tabbyctl refuses IPIP by name, and nothing changes.
    let ipip = "    - cidr: 172.30.0.0/16\n      encapsulation: IPIP\n";
    let o = n.apply(&installation(1300, "Enabled", &if1, ipip));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.calicoNetwork.ipPools[0].encapsulation: IPIP: Tabby has no IPIP"),
        "{err}"
    );

    // Written past tabbyctl: Degraded by field, nothing of it applied.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ds = SqliteStore::open(&n.dir.path().join("tabby.db"))
            .await
            .unwrap();
        let Ok(Resource::Installation(mut cur)) = ds.get(Kind::Installation, "default").await
        else {
            panic!("no Installation stored")
        };
        let net = cur.spec.calico_network.as_mut().unwrap();
        net.mtu = Some(1300);
        net.ip_pools[0].encapsulation = Some("GRE".into());
        ds.update(Resource::Installation(cur)).await.unwrap();
    });
    n.wait("Degraded", || n.condition("Degraded")["status"] == "True");
    let msg = n.condition("Degraded")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains("spec.calicoNetwork.ipPools[0].encapsulation: \"GRE\" is not one of"),
        "{msg}"
    );
    assert_eq!(n.condition("Ready")["status"], "False");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(n.vxlan_mtu(), Some(1350), "the invalid MTU is not applied");
    assert_eq!(n.pools()[0].2, "Always", "the pool is unchanged");
}

#[test]
fn the_nodes_environment_wins_and_the_log_says_so() {
    let mut n = Node::prepare("instenv", 98);
    let (_, addr1) = n.links[0].clone();
    let (if2, _) = n.links[1].clone();
    let o = n.apply(&installation(1400, "Enabled", &if2, ONE_POOL));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ip = format!("{addr1}/24");
    n.start(&[
        ("FELIX_VXLANMTU", "1450"),
        ("CALICO_NETWORKING_BACKEND", "vxlan"),
        ("IP", &ip),
    ]);
    n.wait("MTU 1450 from the environment", || {
        n.vxlan_mtu() == Some(1450)
    });
    assert_eq!(n.node_address(), ip);
    assert!(!n.bgp_listening());
    let log = n.log();
    for want in [
        "VXLAN MTU from the environment (1450); not 1400",
        "networking backend from the environment (vxlan); not bird",
        "node address autodetection from the environment",
    ] {
        assert!(log.contains(want), "missing {want:?} in\n{log}");
    }
}

#[test]
fn tabbyctl_refuses_an_installation_overlapping_a_pool_it_does_not_manage() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::sqlite(&dir.path().join("tabby.db"));
    let pool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: mine}\nspec: {cidr: 10.244.0.0/16}\n";
    let o = ctl.run_stdin(&["apply", "-f", "-"], pool);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ctl.run_stdin(
        &["apply", "-f", "-"],
        &installation(1400, "Enabled", "eth0", "    - cidr: 10.244.8.0/24\n"),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.calicoNetwork.ipPools[0].cidr: 10.244.8.0/24 overlaps IPPool \"mine\""),
        "{err}"
    );
    let o = ctl.run(&["get", "installation", "default"]);
    assert!(!o.status.success(), "nothing was stored");
}

#[tokio::test]
async fn on_etcd_the_installation_has_its_own_key() {
    let etcd = common::Etcd::start().await;
    let ctl = Ctl::etcd(&etcd.endpoint);
    let o = ctl.run_stdin(
        &["apply", "-f", "-"],
        &installation(1400, "Enabled", "eth0", ONE_POOL),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut c = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let r = c
        .get(
            "/calico/resources/v3/operator.tigera.io/installations/default",
            None,
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(r.kvs()[0].value()).unwrap();
    assert_eq!(v["apiVersion"], "operator.tigera.io/v1");
    assert_eq!(v["spec"]["calicoNetwork"]["mtu"], 1400);
    let out = ctl.ok(&["get", "installations"]);
    assert!(out.contains("172.30.0.0/16"), "{out}");
}

#[test]
fn a_pool_conflict_clears_once_the_pool_in_the_way_is_deleted() {
    let mut n = Node::prepare("instcf", 100);
    let pool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: mine}\nspec: {cidr: 172.30.0.0/16, vxlanMode: Always}\n";
    let o = n.apply(pool);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Past tabbyctl, which would refuse the overlap.
    let (if1, _) = n.links[0].clone();
    let yaml = installation(1400, "Disabled", &if1, "    - cidr: 172.30.0.0/24\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ds = SqliteStore::open(&n.dir.path().join("tabby.db"))
            .await
            .unwrap();
        let r = tabby_agent::resources::parse_documents("i.yaml", &yaml)
            .unwrap()
            .remove(0)
            .resource;
        ds.create(r).await.unwrap();
    });
    n.start(&[]);
    n.wait("Degraded: PoolConflict", || {
        n.condition("Degraded")["reason"] == "PoolConflict"
    });
    let msg = n.condition("Degraded")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains("spec.calicoNetwork.ipPools[0].cidr: 172.30.0.0/24 overlaps IPPool \"mine\""),
        "{msg}"
    );
    assert_eq!(n.pools().len(), 1, "nothing written");
    let o = n.ctl().run(&["delete", "ippool", "mine"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    n.wait("Ready once the pool is gone", || {
        n.condition("Ready")["status"] == "True"
    });
    assert_eq!(
        n.pools(),
        vec![(
            "default-ipv4-ippool".into(),
            "172.30.0.0/24".into(),
            "CrossSubnet".into(),
            "tabby".into()
        )]
    );
}

/// `tabby-node health --live` inside the node's namespace: the exit code.
fn live(n: &Node) -> i32 {
    n.ns.command("env")
        .args([
            "-i",
            "FELIX_HEALTHENABLED=true",
            env!("CARGO_BIN_EXE_tabby-node"),
            "health",
            "--live",
        ])
        .output()
        .map(|o| o.status.code().unwrap_or(-1))
        .unwrap_or(-1)
}

#[test]
fn the_node_stays_live_when_the_installation_turns_bgp_off() {
    let mut n = Node::prepare("instlv", 102);
    let (if1, _) = n.links[0].clone();
    let o = n.apply(&installation(1400, "Enabled", &if1, ONE_POOL));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    n.start(&[("FELIX_HEALTHENABLED", "true")]);
    n.wait("BGP up and live", || n.bgp_listening() && live(&n) == 0);
    let o = n.apply(&installation(1400, "Disabled", &if1, ONE_POOL));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    n.wait("BGP stopped", || !n.bgp_listening());
    // Liveness no longer asks the stopped speaker.
    for _ in 0..3 {
        assert_eq!(live(&n), 0, "{}", n.log());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
