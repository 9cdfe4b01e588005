//! The runtime on real sockets: two namespaces over a veth, one BFD
//! runtime in each. Sessions come Up, a new rate reaches the peer by
//! Poll/Final, a drop rule makes one side detect the failure within its
//! detection time (diag 1) while the other hears it, and packets not sent
//! with TTL 255 are ignored (GTSM).

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};
use tabby_bfd::packet::{ControlPacket, Diag, State};
use tabby_bfd::runtime::{Bfd, SessionKey};
use tabby_bfd::session::SessionConfig;

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("tbfd-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Ns(name)
    }

    /// A tokio runtime whose workers (and sockets) live in this namespace.
    fn runtime(&self) -> tokio::runtime::Runtime {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns file");
            // SAFETY: setns only changes this thread's network namespace.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime")
        })
        .join()
        .expect("runtime thread")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn pair(tag: &str, subnet: u8) -> (Ns, Ns, String, String) {
    let (a, b) = (Ns::new(&format!("{tag}a")), Ns::new(&format!("{tag}b")));
    let (ia, ib) = (
        format!("bf{tag}a{}", std::process::id() % 10000),
        format!("bf{tag}b{}", std::process::id() % 10000),
    );
    run(
        "ip",
        &[
            "-n", &a.0, "link", "add", &ia, "type", "veth", "peer", "name", &ib, "netns", &b.0,
        ],
    );
    let (aa, ab) = (format!("10.178.{subnet}.1"), format!("10.178.{subnet}.2"));
    run(
        "ip",
        &["-n", &a.0, "addr", "add", &format!("{aa}/24"), "dev", &ia],
    );
    run(
        "ip",
        &["-n", &b.0, "addr", "add", &format!("{ab}/24"), "dev", &ib],
    );
    run("ip", &["-n", &a.0, "link", "set", &ia, "up"]);
    run("ip", &["-n", &b.0, "link", "set", &ib, "up"]);
    (a, b, aa, ab)
}

fn wait(what: &str, secs: f64, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed().as_secs_f64() < secs,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

const FAST: SessionConfig = SessionConfig {
    desired_min_tx: Duration::from_millis(100),
    required_min_rx: Duration::from_millis(100),
    detect_mult: 3,
};

#[test]
fn sessions_come_up_and_detect_a_silent_peer() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tabby_bfd=info".into()),
        )
        .with_test_writer()
        .try_init();
    let (na, nb, aa, ab) = pair("u", 1);
    let (ra, rb) = (na.runtime(), nb.runtime());
    let key_a = SessionKey {
        peer: ab.parse().unwrap(),
        local: aa.parse().unwrap(),
    };
    let key_b = SessionKey {
        peer: aa.parse().unwrap(),
        local: ab.parse().unwrap(),
    };
    let (bfd_a, sa) = ra
        .block_on(ra.spawn(async move {
            let bfd = Bfd::start().expect("listen a");
            let s = bfd.add(key_a, FAST).expect("session a");
            (bfd, s)
        }))
        .unwrap();
    let (_bfd_b, sb) = rb
        .block_on(rb.spawn(async move {
            let bfd = Bfd::start().expect("listen b");
            let s = bfd.add(key_b, FAST).expect("session b");
            (bfd, s)
        }))
        .unwrap();
    let mut changes = bfd_a.subscribe();
    wait("both Up", 10.0, || {
        sa.state() == State::Up && sb.state() == State::Up
    });
    // Poll/Final done: the fast rate is in use on both sides.
    wait("fast rate", 3.0, || {
        sa.status.borrow().tx_interval == Some(Duration::from_millis(100))
    });
    assert_eq!(
        sa.status.borrow().detection_time,
        Duration::from_millis(300)
    );
    assert!(matches!(changes.try_recv(), Ok(c) if c.key == key_a));

    // A slower rate on A reaches B through a Poll Sequence.
    sa.reconfigure(SessionConfig {
        desired_min_tx: Duration::from_millis(200),
        ..FAST
    });
    wait("B's detection time follows A's new rate", 3.0, || {
        sb.status.borrow().detection_time == Duration::from_millis(600)
    });
    sa.reconfigure(FAST);
    wait("and back", 3.0, || {
        sb.status.borrow().detection_time == Duration::from_millis(300)
    });

    // Silence B towards A: A detects, B hears A's Down.
    run(
        "ip",
        &["netns", "exec", &na.0, "nft", "add table inet bfdt"],
    );
    run(
        "ip",
        &[
            "netns",
            "exec",
            &na.0,
            "nft",
            "add chain inet bfdt in { type filter hook input priority 0; udp dport 3784 drop; }",
        ],
    );
    let t = wait("A Down", 3.0, || sa.state() == State::Down);
    println!(
        "BFD down after {:.2} s (detect time 0.3 s)",
        t.as_secs_f64()
    );
    assert!(t < Duration::from_millis(600), "{t:?}");
    assert_eq!(
        sa.status.borrow().local_diag,
        Diag::ControlDetectionTimeExpired
    );
    wait("B Down", 2.0, || sb.state() != State::Up);
    assert_eq!(
        sb.status.borrow().local_diag,
        Diag::NeighborSignaledSessionDown
    );

    run(
        "ip",
        &["netns", "exec", &na.0, "nft", "delete table inet bfdt"],
    );
    wait("both Up again", 10.0, || {
        sa.state() == State::Up && sb.state() == State::Up
    });

    // Removing B's session tells A (AdminDown), not a detection expiry.
    drop(sb);
    wait("A Down by AdminDown", 2.0, || sa.state() == State::Down);
    assert_eq!(
        sa.status.borrow().local_diag,
        Diag::NeighborSignaledSessionDown
    );
    drop((sa, bfd_a));
    ra.shutdown_background();
    rb.shutdown_background();
}

#[test]
fn packets_not_sent_with_ttl_255_are_ignored() {
    let (na, nb, aa, ab) = pair("g", 2);
    let ra = na.runtime();
    let key = SessionKey {
        peer: ab.parse().unwrap(),
        local: aa.parse().unwrap(),
    };
    let (_bfd, s) = ra
        .block_on(ra.spawn(async move {
            let bfd = Bfd::start().expect("listen");
            let s = bfd.add(key, FAST).expect("session");
            (bfd, s)
        }))
        .unwrap();
    let rb = nb.runtime();
    let down = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 77,
        your_discriminator: 0,
        desired_min_tx: Duration::from_secs(1),
        required_min_rx: Duration::from_secs(1),
        required_min_echo_rx: Duration::ZERO,
    };
    let send = |ttl: u32| {
        let (ab, aa) = (ab.clone(), aa.clone());
        rb.block_on(rb.spawn(async move {
            let u = tokio::net::UdpSocket::bind((ab.as_str(), 0)).await.unwrap();
            u.set_ttl(ttl).unwrap();
            u.send_to(&down.encode(), (aa.as_str(), 3784))
                .await
                .unwrap();
        }))
        .unwrap();
    };
    send(64);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.state(), State::Down, "a TTL-64 packet moved the session");
    assert_eq!(s.status.borrow().remote_discr, 0);
    send(255);
    wait("Init from a TTL-255 packet", 2.0, || {
        s.state() == State::Init
    });
    assert_eq!(s.status.borrow().remote_discr, 77);
    ra.shutdown_background();
    rb.shutdown_background();
}
