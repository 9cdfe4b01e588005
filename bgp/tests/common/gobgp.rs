//! A gobgpd daemon in a namespace, queried with the `gobgp` CLI (JSON).

use super::netns::{stdout_if_ok, Daemon, Netns};
use std::fmt::Write as _;

pub struct GobgpPeer {
    pub address: String,
    pub peer_as: u32,
    pub password: Option<String>,
}

pub struct Gobgp {
    daemon: Daemon,
}

impl Gobgp {
    pub fn start(ns: &Netns, asn: u32, router_id: &str, peers: &[GobgpPeer]) -> Gobgp {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("gobgpd.toml");
        std::fs::write(&conf, config(asn, router_id, peers)).expect("write gobgpd.toml");
        let mut cmd = ns.command("gobgpd");
        cmd.arg("-f").arg(&conf).args([
            "-t",
            "toml",
            "-p",
            "--api-hosts",
            "127.0.0.1:50051",
            "--pprof-disable",
        ]);
        let g = Gobgp {
            daemon: Daemon::spawn(ns, dir, "gobgpd.out", cmd),
        };
        super::wait_until("gobgpd API", 10.0, || g.try_cli(&["global"]).is_some());
        g
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        stdout_if_ok(self.daemon.command("gobgp").args(args))
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("gobgp {args:?} failed"))
    }

    /// `gobgp neighbor -j` as JSON.
    pub fn neighbors(&self) -> serde_json::Value {
        serde_json::from_str(&self.cli(&["neighbor", "-j"])).expect("gobgp neighbor -j")
    }

    pub fn established(&self, address: &str) -> bool {
        self.neighbors().as_array().into_iter().flatten().any(|n| {
            n["state"]["neighbor_address"] == address
                && (n["state"]["session_state"] == 6
                    || n["state"]["session_state"] == "established")
        })
    }

    /// The global RIB entry for `prefix`: a JSON array of paths, or None.
    pub fn route(&self, prefix: &str) -> Option<serde_json::Value> {
        let rib: serde_json::Value =
            serde_json::from_str(&self.cli(&["global", "rib", "-a", "ipv4", "-j"])).ok()?;
        rib.get(prefix).cloned()
    }

    pub fn originate(&self, prefix: &str) {
        self.cli(&["global", "rib", "add", "-a", "ipv4", prefix]);
    }

    pub fn withdraw(&self, prefix: &str) {
        self.cli(&["global", "rib", "del", "-a", "ipv4", prefix]);
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

pub fn config(asn: u32, router_id: &str, peers: &[GobgpPeer]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "[global.config]\n  as = {asn}\n  router-id = \"{router_id}\""
    );
    for p in peers {
        let _ = writeln!(
            c,
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
            p.address, p.peer_as
        );
        if let Some(pw) = &p.password {
            let _ = writeln!(c, "    auth-password = \"{pw}\"");
        }
        c.push_str("  [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n");
        c.push_str(
            "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n",
        );
        c.push_str("  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n");
        c.push_str("    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n");
    }
    c
}
