//! A BIRD 2 daemon in a namespace, configured from a few typed fields.

use super::netns::{stdout_if_ok, Daemon, Netns};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct BirdPeer {
    /// Protocol name in birdc output.
    pub name: String,
    pub local: String,
    pub local_as: u32,
    pub neighbor: String,
    pub neighbor_as: u32,
    pub password: Option<String>,
    /// BIRD treats this neighbor as its route-reflector client.
    pub rr_client: bool,
    pub graceful_restart: bool,
    /// `graceful restart time` BIRD advertises.
    pub restart_time: u32,
    /// On an IPv4 session: also run an IPv6 channel (MP-BGP), giving this
    /// as BIRD's IPv6 next hop.
    pub ipv6_next_hop: Option<String>,
    /// `bfd on` (with a `protocol bfd` of 300 ms × 3 in the config).
    pub bfd: bool,
}

impl BirdPeer {
    pub fn new(name: &str, local: &str, local_as: u32, neighbor: &str, neighbor_as: u32) -> Self {
        BirdPeer {
            name: name.into(),
            local: local.into(),
            local_as,
            neighbor: neighbor.into(),
            neighbor_as,
            password: None,
            rr_client: false,
            graceful_restart: true,
            restart_time: 120,
            ipv6_next_hop: None,
            bfd: false,
        }
    }
}

pub struct Bird {
    daemon: Daemon,
    pub socket: PathBuf,
}

impl Bird {
    /// Starts BIRD with the given peers, originating `routes` (IPv4 CIDRs)
    /// from a static protocol named `gen`.
    pub fn start(ns: &Netns, router_id: &str, peers: &[BirdPeer], routes: &[&str]) -> Bird {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("bird.conf");
        let socket = dir.path().join("bird.ctl");
        std::fs::write(&conf, config(router_id, peers, routes)).expect("write bird.conf");
        let mut cmd = ns.command("bird");
        cmd.arg("-c").arg(&conf).arg("-s").arg(&socket).arg("-f");
        let bird = Bird {
            daemon: Daemon::spawn(ns, dir, "bird.out", cmd),
            socket,
        };
        super::wait_until("BIRD control socket", 10.0, || {
            bird.try_birdc(&["show", "status"]).is_some()
        });
        bird
    }

    /// `birdc -s SOCKET`, in BIRD's namespace.
    fn birdc_command(&self) -> std::process::Command {
        let mut c = self.daemon.command("birdc");
        c.arg("-s").arg(&self.socket);
        c
    }

    fn try_birdc(&self, args: &[&str]) -> Option<String> {
        stdout_if_ok(self.birdc_command().args(args))
    }

    pub fn birdc(&self, args: &[&str]) -> String {
        self.try_birdc(args)
            .unwrap_or_else(|| panic!("birdc {args:?} failed; BIRD output:\n{}", self.log()))
    }

    /// `show protocols all NAME`.
    pub fn protocol(&self, name: &str) -> String {
        self.birdc(&["show", "protocols", "all", name])
    }

    pub fn established(&self, name: &str) -> bool {
        self.protocol(name)
            .contains("BGP state:          Established")
    }

    /// `show route PREFIX all`, or None when BIRD has no route for it
    /// (birdc then says "Network not found" and exits with 1).
    pub fn route(&self, prefix: &str) -> Option<String> {
        let out = self
            .birdc_command()
            .args(["show", "route", prefix, "all"])
            .output()
            .expect("run birdc");
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.contains("Network not found") {
            return None;
        }
        assert!(
            out.contains("Table master4") || out.contains("Table master6"),
            "birdc show route: {out}\n{}",
            self.log()
        );
        out.contains(prefix.split('/').next().unwrap_or(prefix))
            .then_some(out)
            .filter(|o| o.contains("BGP.") || o.contains("static"))
    }

    /// Adds or removes an originated route at runtime by rewriting the
    /// config and reconfiguring.
    pub fn reconfigure(&self, router_id: &str, peers: &[BirdPeer], routes: &[&str]) {
        let conf = self.daemon.dir.path().join("bird.conf");
        std::fs::write(&conf, config(router_id, peers, routes)).expect("write bird.conf");
        let out = self.birdc(&["configure"]);
        assert!(
            out.contains("Reconfigured") || out.contains("Reconfiguration"),
            "{out}"
        );
    }

    /// `kill -9`: BIRD's sockets close without a NOTIFICATION.
    pub fn kill(mut self) {
        self.daemon.kill();
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

pub fn config(router_id: &str, peers: &[BirdPeer], routes: &[&str]) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "router id {router_id};");
    c.push_str("log stderr all;\n");
    c.push_str("protocol device { }\n");
    if peers.iter().any(|p| p.bfd) {
        c.push_str("protocol bfd { interface \"*\" { interval 300 ms; multiplier 3; }; }\n");
    }
    let (v6, v4): (Vec<&str>, Vec<&str>) = routes.iter().partition(|r| r.contains(':'));
    c.push_str("protocol static gen { ipv4;");
    for r in v4 {
        let _ = write!(c, " route {r} blackhole;");
    }
    c.push_str(" }\n");
    c.push_str("protocol static gen6 { ipv6;");
    for r in v6 {
        let _ = write!(c, " route {r} blackhole;");
    }
    c.push_str(" }\n");
    for p in peers {
        let _ = writeln!(c, "protocol bgp {} {{", p.name);
        let _ = writeln!(
            c,
            "  local {} as {}; neighbor {} as {};",
            p.local, p.local_as, p.neighbor, p.neighbor_as
        );
        c.push_str("  hold time 9; keepalive time 3; connect delay time 1;\n");
        c.push_str("  connect retry time 2; error wait time 1, 2;\n");

        if p.graceful_restart {
            let _ = writeln!(
                c,
                "  graceful restart on; graceful restart time {};",
                p.restart_time
            );
        } else {
            c.push_str("  graceful restart off;\n");
        }
        if let Some(pw) = &p.password {
            let _ = writeln!(c, "  password \"{pw}\";");
        }
        if p.bfd {
            c.push_str("  bfd on;\n");
        }
        if p.rr_client {
            c.push_str("  rr client;\n");
        }
        if p.local_as == p.neighbor_as {
            // No IGP here: iBGP next hops are on the shared link.
            c.push_str("  direct;\n");
        }
        if p.neighbor.contains(':') {
            c.push_str("  ipv6 { import all; export where proto = \"gen6\"; next hop self; };\n");
        } else {
            c.push_str("  ipv4 { import all; export where proto = \"gen\"; next hop self; };\n");
            if let Some(nh) = &p.ipv6_next_hop {
                let _ = writeln!(
                    c,
                    "  ipv6 {{ import all; export where proto = \"gen6\"; next hop address {nh}; }};"
                );
            }
        }
        c.push_str("}\n");
    }
    c
}
