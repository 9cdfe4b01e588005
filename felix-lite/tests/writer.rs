//! The batched route writer against the kernel: failures come back tied to
//! the request that caused them, across many sendmsg chunks (root).

mod common;

use common::{is_root, node_with_eth0};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use tabby_felix_lite::netlink::routes::{add_request, delete_request, RouteSpec, RouteTarget};
use tabby_felix_lite::netlink::NlSocket;
use tabby_felix_lite::netns;

const COUNT: u32 = 2000;

/// Route i goes to 172.20.x.y/32; every 97th uses a gateway on no
/// connected subnet, which the kernel refuses (ENETUNREACH).
fn spec(i: u32, oif: u32) -> RouteSpec {
    let dst = Ipv4Net::new(
        Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 20, 0, 0)) + i),
        32,
    )
    .unwrap();
    let gateway = if i % 97 == 13 {
        Ipv4Addr::new(192, 0, 2, 1)
    } else {
        Ipv4Addr::new(10, 96, 0, 2)
    };
    RouteSpec {
        dst,
        target: RouteTarget::Gateway {
            gateway,
            oif,
            onlink: false,
        },
    }
}

#[test]
fn each_failure_is_attributed_to_its_request() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("writer", "10.96.0.1/24");
    let oif = ns.ip_json(&["link", "show", "eth0"])[0]["ifindex"]
        .as_u64()
        .unwrap() as u32;
    let (add_failures, dup_failures, del_failures) = netns::run_in(&ns.name, move || {
        let mut sock = NlSocket::open().unwrap();
        let adds = sock
            .apply((0..COUNT).map(|i| add_request(&spec(i, oif), false)))
            .unwrap();
        // Adding the same again: every one that went in is now EEXIST.
        let dups = sock
            .apply((0..COUNT).map(|i| add_request(&spec(i, oif), false)))
            .unwrap();
        let dels = sock
            .apply((0..COUNT).map(|i| delete_request(spec(i, oif).dst, 0, 0)))
            .unwrap();
        let summarise = |v: Vec<(usize, tabby_felix_lite::netlink::NlError)>| {
            v.into_iter()
                .map(|(i, e)| (i, e.errno(), e.to_string()))
                .collect::<Vec<_>>()
        };
        (summarise(adds), summarise(dups), summarise(dels))
    })
    .unwrap();

    let bad: Vec<usize> = (0..COUNT)
        .filter(|i| i % 97 == 13)
        .map(|i| i as usize)
        .collect();
    let got: Vec<usize> = add_failures.iter().map(|f| f.0).collect();
    assert_eq!(got, bad);
    assert!(
        add_failures.iter().all(|f| f.1 == Some(libc::ENETUNREACH)),
        "{:?}",
        &add_failures[..1]
    );
    // Every add that failed fails again; every one that succeeded is EEXIST.
    assert_eq!(dup_failures.len(), COUNT as usize);
    for (i, errno, _) in &dup_failures {
        let want = if bad.contains(i) {
            libc::ENETUNREACH
        } else {
            libc::EEXIST
        };
        assert_eq!(*errno, Some(want), "request {i}");
    }
    // Deleting: only the never-installed ones are missing (ESRCH).
    let got: Vec<usize> = del_failures.iter().map(|f| f.0).collect();
    assert_eq!(got, bad);
    assert!(del_failures.iter().all(|f| f.1 == Some(libc::ESRCH)));
    assert_eq!(ns.ip(&["route", "show", "proto", "81"]).lines().count(), 0);
}

#[test]
fn deletes_never_match_another_protocols_route() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("writerdel", "10.96.0.1/24");
    ns.ip(&[
        "route",
        "add",
        "172.21.0.0/24",
        "via",
        "10.96.0.2",
        "proto",
        "static",
    ]);
    let result = netns::run_in(&ns.name, || {
        NlSocket::open()
            .unwrap()
            .apply([delete_request("172.21.0.0/24".parse().unwrap(), 0, 0)])
            .unwrap()
            .into_iter()
            .map(|(i, e)| (i, e.errno()))
            .collect::<Vec<_>>()
    })
    .unwrap();
    assert_eq!(result, vec![(0, Some(libc::ESRCH))]);
    assert!(ns
        .ip(&["route", "show", "172.21.0.0/24"])
        .contains("via 10.96.0.2"));
}
