//! Issue 15 item 14: a TCP-MD5 mismatch is dropped by the kernel without a
//! trace in the session (no SYN-ACK, no RST); the speaker reads the
//! kernel's counters and names the peer, so `node status` can say
//! "TCP-MD5 signature mismatch" instead of a bare "Active".

mod common;

use common::inproc::{in_ns, runtime};
use common::netns::{link_named, Netns};
use common::tabby::{peer, Tabby};
use common::wait_until;
use std::time::Duration;
use tabby_bgp::peer_config::LocalConfig;
use tabby_bgp::transport::{connect, ConnectOptions};

const TABBY_AS: u32 = 65000;
const PEER_AS: u32 = 65001;

#[test]
fn a_wrong_or_missing_md5_password_is_reported_for_the_peer() {
    let nt = Netns::new("m5t");
    let nb = Netns::new("m5b");
    let l = link_named(&nt, &nb, 92, 1, 2);
    let unsigned = "10.179.92.3".to_string();
    let plain = "10.179.92.4".to_string();
    for a in [&unsigned, &plain] {
        nb.ip(&["addr", "add", &format!("{a}/24"), "dev", &l.if_b]);
    }
    let with_pw = |a: &str, pw: Option<&str>| {
        let mut p = peer(a, PEER_AS);
        p.passive = true;
        p.password = pw.map(str::to_owned);
        p
    };
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(l.addr_a.parse().unwrap(), TABBY_AS),
        &l.addr_a,
        vec![
            // Wrong password on the other side.
            with_pw(&l.addr_b, Some("right")),
            // The other side signs nothing.
            with_pw(&unsigned, Some("right")),
            // Fine: neither side signs, and it stays untouched.
            with_pw(&plain, None),
        ],
    );
    let peer_rt = runtime(&nb);
    let to: std::net::SocketAddr = format!("{}:179", l.addr_a).parse().unwrap();
    for (from, pw) in [(l.addr_b.clone(), Some("wrong")), (unsigned.clone(), None)] {
        in_ns(&peer_rt, async move {
            for _ in 0..2 {
                let opts = ConnectOptions {
                    source: Some(from.parse().unwrap()),
                    password: pw.map(str::to_owned),
                    ttl_security: None,
                };
                // The kernel on Tabby's side drops the SYNs: this times out.
                let r = connect(to, &opts, Duration::from_millis(1500)).await;
                assert!(r.is_err(), "{from} connected despite the mismatch");
            }
        });
    }
    wait_until("the mismatches are attributed", 10.0, || {
        tabby.peer(&l.addr_b).md5_mismatches > 0 && tabby.peer(&unsigned).md5_mismatches > 0
    });
    let s = tabby.peer(&l.addr_b);
    assert!(s.md5_mismatch_since.is_some(), "{s:?}");
    assert_eq!(tabby.peer(&plain).md5_mismatches, 0);
    assert!(tabby.peer(&plain).md5_mismatch_since.is_none());
}
