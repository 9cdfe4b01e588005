//! The transport against the real kernel in namespaces: only configured
//! sources are admitted, the source address is honoured, and TCP-MD5 keys
//! must match for a connection to form at all.

mod common;

use common::inproc::{in_ns, runtime};
use common::netns::{link, link_named, Netns};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tabby_bgp::transport::{connect, ConnectOptions, Listener};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn only_configured_sources_are_admitted() {
    let na = Netns::new("tra");
    let nb = Netns::new("trb");
    let l = link_named(&na, &nb, 50, 1, 2);
    let (la, lb) = (l.addr_a, l.addr_b);
    nb.ip(&["addr", "add", "10.179.50.3/24", "dev", &l.if_b]);
    let rta = runtime(&na);
    let rtb = runtime(&nb);
    let listen: SocketAddr = format!("{la}:1790").parse().unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let listener = in_ns(&rta, async move {
        let l = Listener::bind(listen).unwrap();
        l.allow(ip("10.179.50.2"), None).unwrap();
        l.spawn(tx);
        l
    });
    assert!(listener.is_allowed(ip(&lb)));

    // From the unconfigured .3: the kernel completes the handshake, then the
    // listener closes it, so the client reads EOF.
    let eof = in_ns(&rtb, async move {
        let opts = ConnectOptions {
            source: Some(ip("10.179.50.3")),
            password: None,
            ttl_security: None,
        };
        let mut s = connect(listen, &opts, Duration::from_secs(2))
            .await
            .unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await
    });
    assert!(
        matches!(eof, Ok(Ok(0))),
        "connection from .3 not closed: {eof:?}"
    );
    assert!(rx.try_recv().is_err(), "unconfigured source was handed on");

    // From the configured .2, bound explicitly.
    in_ns(&rtb, async move {
        let opts = ConnectOptions {
            source: Some(ip("10.179.50.2")),
            password: None,
            ttl_security: None,
        };
        let s = connect(listen, &opts, Duration::from_secs(2))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(s);
    });
    let got = rta.block_on(async { tokio::time::timeout(Duration::from_secs(2), rx.recv()).await });
    assert_eq!(got.unwrap().unwrap().peer, ip("10.179.50.2"));
}

#[test]
fn tcp_md5_keys_must_match() {
    let na = Netns::new("tma");
    let nb = Netns::new("tmb");
    let (la, lb) = link(&na, &nb, 51, 1, 2);
    let rta = runtime(&na);
    let rtb = runtime(&nb);
    let listen: SocketAddr = format!("{la}:179").parse().unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let peer = ip(&lb);
    let _listener = in_ns(&rta, async move {
        let l = Listener::bind(listen).unwrap();
        l.allow(peer, Some("s3cr3t")).unwrap();
        l.spawn(tx);
        l
    });
    let try_connect = |pw: Option<&str>| {
        let opts = ConnectOptions {
            source: None,
            password: pw.map(str::to_owned),
            ttl_security: None,
        };
        in_ns(&rtb, async move {
            connect(listen, &opts, Duration::from_millis(1500))
                .await
                .map(drop)
        })
    };
    let wrong = try_connect(Some("wrong"));
    assert!(wrong.is_err(), "wrong MD5 key connected");
    let none = try_connect(None);
    assert!(none.is_err(), "unsigned SYN connected to an MD5 listener");
    assert!(rx.try_recv().is_err());
    try_connect(Some("s3cr3t")).expect("matching MD5 key must connect");
    let got = rta.block_on(async { tokio::time::timeout(Duration::from_secs(2), rx.recv()).await });
    assert_eq!(got.unwrap().unwrap().peer, peer);
}
