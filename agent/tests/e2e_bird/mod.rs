//! A BIRD 2 daemon inside a lab's namespace (the fabric, where the node
//! subnets' router addresses are), configured by the test's own text:
//! the bgp crate's harness config exports only its static routes and sets
//! `next hop self`, which a reflector must not do. Killed on drop.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Bird {
    child: Child,
    dir: tempfile::TempDir,
    pub socket: PathBuf,
    netns: String,
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `protocol bgp` block: BIRD's hold time matches the lab's (9 s).
pub fn protocol(
    name: &str,
    local: &str,
    local_as: u32,
    neighbor: &str,
    neighbor_as: u32,
    body: &str,
) -> String {
    format!(
        "protocol bgp {name} {{\n  local {local} as {local_as}; neighbor {neighbor} as {neighbor_as};\n  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1; error wait time 1, 2;\n{body}}}\n"
    )
}

impl Bird {
    /// BIRD in the lab's fabric, on the first subnet's router address, with
    /// one `protocol bgp` per lab node (AS `local_as` here, the nodes in
    /// `node_as`); returns it with that router address.
    pub fn peering_every_node(
        lab: &super::e2e_common::Lab,
        local_as: u32,
        node_as: u32,
        body: &str,
    ) -> (Bird, String) {
        let router = lab.state["fabric"]["bridges"][0]["router"]
            .as_str()
            .expect("lab.json: fabric.bridges[0].router")
            .to_string();
        let protocols: String = lab
            .node_names()
            .iter()
            .map(|n| {
                let ip = lab.node_ip(n).to_string();
                protocol(&n.replace('-', "_"), &router, local_as, &ip, node_as, body)
            })
            .collect();
        (
            Bird::start(&lab.netns("fabric"), &router, &protocols),
            router,
        )
    }

    /// Starts BIRD in namespace `netns` with `router id` and the protocol
    /// blocks in `protocols`.
    pub fn start(netns: &str, router_id: &str, protocols: &str) -> Bird {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("bird.conf");
        let socket = dir.path().join("bird.ctl");
        std::fs::write(&conf, config(router_id, protocols)).expect("write bird.conf");
        let log = std::fs::File::create(dir.path().join("bird.out")).expect("bird.out");
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "bird", "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bird");
        let bird = Bird {
            child,
            dir,
            socket,
            netns: netns.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while bird.try_birdc(&["show", "status"]).is_none() {
            assert!(
                Instant::now() < deadline,
                "BIRD did not start:\n{}",
                bird.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        bird
    }

    fn try_birdc(&self, args: &[&str]) -> Option<String> {
        let o = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    pub fn birdc(&self, args: &[&str]) -> String {
        self.try_birdc(args)
            .unwrap_or_else(|| panic!("birdc {args:?} failed:\n{}", self.log()))
    }

    /// `show route all PREFIX` (BIRD's every path for it), or None when
    /// BIRD has none.
    pub fn route_all(&self, prefix: &str) -> Option<String> {
        let o = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(["show", "route", "all", prefix])
            .output()
            .expect("birdc");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        (!out.contains("Network not found") && out.contains(prefix)).then_some(out)
    }

    pub fn established(&self, proto: &str) -> bool {
        self.try_birdc(&["show", "protocols", "all", proto])
            .is_some_and(|o| o.contains("BGP state:          Established"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.out")).unwrap_or_default()
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }
}

fn config(router_id: &str, protocols: &str) -> String {
    format!("router id {router_id};\nlog stderr all;\nprotocol device {{ }}\n{protocols}")
}
