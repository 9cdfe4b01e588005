//! The feeder and the monitor against each other over loopback, as the
//! benchmark's direct row runs them: the monitor sees every prefix of
//! phase 1, then the withdrawal and re-announcement of phase 2, and the
//! counts it prints are exact.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: u32 = 5000;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_file(p: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn monitor_counts_every_prefix_of_both_phases() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let d = |f: &str| dir.path().join(f);
    let _feeder = Kill(
        Command::new(env!("CARGO_BIN_EXE_bgp-feeder"))
            .args(["--listen", &addr, "--count", &N.to_string(), "--first", "0"])
            .arg("--go")
            .arg(d("go"))
            .arg("--churn-go")
            .arg(d("go2"))
            .arg("--ready")
            .arg(d("feeder.ready"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut monitor = Kill(
        Command::new(env!("CARGO_BIN_EXE_bgp-monitor"))
            .args([
                "--connect",
                &addr,
                "--expect",
                &N.to_string(),
                "--phases",
                "2",
            ])
            .arg("--ready")
            .arg(d("monitor.ready"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(monitor.0.stdout.take().unwrap()).lines();
    wait_file(&d("feeder.ready"));
    wait_file(&d("monitor.ready"));
    std::fs::write(d("go"), b"").unwrap();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("phase 1 done "), "{first}");
    assert!(
        first.ends_with(&format!("announced {N} withdrawn 0")),
        "{first}"
    );
    std::fs::write(d("go2"), b"").unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(second.starts_with("phase 2 done "), "{second}");
    assert!(
        second.ends_with(&format!("announced {} withdrawn {N}", 2 * N)),
        "{second}"
    );
}
