//! `tabby-node bgp` as a process against a real BIRD 2 in namespaces:
//! TCP-MD5 session, originated and learned prefixes, kernel route install,
//! the gRPC socket, `kill -9` with BIRD keeping the routes (graceful
//! restart) and the restarted daemon refreshing them, and SIGTERM sending
//! Cease. Uses the bgp crate's interop harness.

#[allow(dead_code)]
#[path = "../../bgp/tests/common/bird.rs"]
mod bird;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use bird::{Bird, BirdPeer};
use netns::{link, Netns};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tabby_proto::bgp as pb;
use wait::wait_until;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(
    ns: &Netns,
    config: &std::path::Path,
    socket: &std::path::Path,
    restarted: bool,
) -> Daemon {
    let mut c = ns.command(env!("CARGO_BIN_EXE_tabby-node"));
    c.arg("bgp")
        .arg("--config")
        .arg(config)
        .arg("--grpc-socket")
        .arg(socket);
    if restarted {
        c.arg("--restarted");
    }
    Daemon(
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tabby-node"),
    )
}

fn kernel_routes(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.ip(&["route", "show", "proto", "bgp"]).stdout).into_owned()
}

#[test]
fn tabby_node_bgp_daemon_with_bird() {
    let nt = Netns::new("tnt");
    let nb = Netns::new("tnb");
    let (ta, ba) = link(&nt, &nb, 70, 1, 2);
    let mut bp = BirdPeer::new("tabby", &ba, 65001, &ta, 65000);
    bp.password = Some("pw1".into());
    let bird = Bird::start(&nb, &ba, &[bp], &["10.199.0.0/24"]);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tabby.yaml");
    let socket = dir.path().join("tabby.sock");
    std::fs::write(
        &config,
        format!(
            "routerId: {ta}\nasNumber: 65000\ninstallRoutes: true\noriginate: [10.198.0.0/24]\n\
             peers:\n  - address: {ba}\n    asNumber: 65001\n    password: pw1\n    holdTime: 9\n"
        ),
    )
    .unwrap();
    let mut daemon = start(&nt, &config, &socket, false);
    wait_until("BIRD Established with tabby-node", 20.0, || {
        bird.established("tabby")
    });
    wait_until("BIRD learns 10.198.0.0/24", 5.0, || {
        bird.route("10.198.0.0/24").is_some()
    });
    let r = bird.route("10.198.0.0/24").unwrap();
    assert!(
        r.contains("BGP.as_path: 65000\n") && r.contains(&format!("BGP.next_hop: {ta}")),
        "{r}"
    );
    wait_until("kernel route for BIRD's prefix", 5.0, || {
        kernel_routes(&nt).contains(&format!("10.199.0.0/24 via {ba}"))
    });

    // The gRPC socket answers.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peers = rt.block_on(async {
        let ch = tabby_agent::grpc::connect_unix(&socket).await.unwrap();
        let mut c = pb::bgp_client::BgpClient::new(ch);
        c.list_peers(pb::ListPeersRequest {})
            .await
            .unwrap()
            .into_inner()
            .peers
    });
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].state, pb::SessionState::Established as i32);
    assert_eq!(peers[0].prefixes_accepted, 1);

    // kill -9: BIRD keeps the route (graceful restart) until we are back.
    daemon.0.kill().unwrap();
    let _ = daemon.0.wait();
    wait_until("BIRD in graceful restart", 10.0, || {
        bird.protocol("tabby")
            .contains("Neighbor graceful restart active")
    });
    let daemon = start(&nt, &config, &socket, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while bird
        .protocol("tabby")
        .contains("Neighbor graceful restart active")
    {
        assert!(
            Instant::now() < deadline,
            "BIRD never left graceful restart"
        );
        assert!(
            bird.route("10.198.0.0/24").is_some(),
            "route flapped during the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bird.established("tabby"));
    assert!(bird.route("10.198.0.0/24").is_some());

    // SIGTERM: Cease to BIRD, clean exit.
    let pid = daemon.0.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let mut daemon = daemon;
    let code = daemon.0.wait().unwrap();
    assert!(code.success(), "tabby-node exited with {code}");
    wait_until("BIRD reports the Cease", 5.0, || {
        bird.protocol("tabby")
            .contains("Received: Administrative shutdown")
    });
}
