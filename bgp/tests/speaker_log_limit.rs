//! Issue 15 item 15: what a fuzzing or misconfigured peer does many times a
//! second (connect from an unconfigured address, send malformed UPDATEs)
//! is logged once per window per source with a count, and counted in the
//! speaker's status for the metrics, instead of one WARN per occurrence.

mod common;

use common::inproc::runtime;
use common::netns::{link_named, Netns};
use common::raw::{open, RawPeer};
use common::tabby::{peer, Tabby};
use common::wait_until;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tabby_bgp::peer_config::LocalConfig;

const TABBY_AS: u32 = 65000;
const PEER_AS: u32 = 65001;
const FLOOD: usize = 200;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// An UPDATE whose ORIGIN is 3 (RFC 7606: treat as withdraw) for
/// 10.203.0.0/24.
fn malformed_update() -> Vec<u8> {
    let attrs = [0x40, 1, 1, 3, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 0, 1u8];
    let nlri = [24u8, 10, 203, 0];
    let len = 19 + 2 + 2 + attrs.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&attrs);
    m.extend_from_slice(&nlri);
    m
}

#[test]
fn refused_connections_and_malformed_updates_are_logged_once_per_source_with_counts() {
    let logs = Capture::default();
    let w = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("tabby_bgp=info")
        .with_writer(move || w.clone())
        .with_ansi(false)
        .init();

    let nt = Netns::new("rlt");
    let nb = Netns::new("rlb");
    let l = link_named(&nt, &nb, 91, 1, 2);
    let stranger = "10.179.91.3".to_string();
    nb.ip(&["addr", "add", &format!("{stranger}/24"), "dev", &l.if_b]);
    let mut p = peer(&l.addr_b, PEER_AS);
    p.passive = true;
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(l.addr_a.parse().unwrap(), TABBY_AS),
        &l.addr_a,
        vec![p],
    );
    let peer_rt = runtime(&nb);

    // A flood of connections from an address that is no peer.
    let (from, to) = (stranger.clone(), l.addr_a.clone());
    common::inproc::in_ns(&peer_rt, async move {
        for _ in 0..FLOOD {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(format!("{from}:0").parse().unwrap()).unwrap();
            let c = s.connect(format!("{to}:179").parse().unwrap()).await;
            drop(c);
        }
    });
    wait_until("every connection refused", 10.0, || {
        tabby.speaker.refused_connections() >= FLOOD as u64
    });

    // A real session that then sends malformed UPDATEs.
    let (from, to) = (l.addr_b.clone(), l.addr_a.clone());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    peer_rt.spawn(async move {
        let mut p = RawPeer::connect(&from, &to).await;
        p.establish(open(PEER_AS, 90, &from, false))
            .await
            .expect("peer establishes");
        let bad = malformed_update();
        for _ in 0..FLOOD {
            p.send_bytes(&bad).await;
        }
        let _ = done_tx.send(());
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("UPDATEs sent");
    wait_until("every UPDATE counted", 10.0, || {
        tabby.peer(&l.addr_b).updates_treated_as_withdraw >= FLOOD as u64
    });
    assert!(tabby.established(&l.addr_b), "the session survived");

    let refused = logs.lines("unconfigured address");
    assert!(
        !refused.is_empty() && refused.len() <= 2,
        "{} lines for {FLOOD} refused connections: {refused:#?}",
        refused.len()
    );
    assert!(refused[0].contains(&stranger), "{refused:?}");
    let withdrawn = logs.lines("treated as withdraw");
    assert!(
        !withdrawn.is_empty() && withdrawn.len() <= 2,
        "{} lines for {FLOOD} malformed UPDATEs",
        withdrawn.len()
    );
    assert!(withdrawn[0].contains("ORIGIN"), "{withdrawn:?}");
    assert_eq!(tabby.speaker.refused_connections(), FLOOD as u64);
    assert_eq!(
        tabby.peer(&l.addr_b).updates_treated_as_withdraw,
        FLOOD as u64
    );
}
