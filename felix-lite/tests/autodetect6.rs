//! IPv6 node address autodetection (`IP6_AUTODETECTION_METHOD`) against
//! real interfaces in a namespace: the same rules as IPv4, with fe80::/10
//! passed over as 169.254/16 is.

mod common;

use common::Netns;
use ipnet::Ipv6Net;
use tabby_felix_lite::autodetect::{self, AutodetectError, Detected, Method};
use tabby_felix_lite::netns;

fn detect(ns: &Netns, method: &str) -> Result<Detected<Ipv6Net>, AutodetectError> {
    let m: Method<Ipv6Net> = method.parse().expect("valid method");
    netns::block_on_in(
        &ns.name,
        move || async move { autodetect::detect(&m).await },
    )
    .expect("enter netns")
}

/// `nodad`: the addresses are usable at once (no tentative state), as they
/// are on a node that has been up for a while.
fn addr6(ns: &Netns, cidr: &str, dev: &str) {
    ns.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
}

/// A storage NIC created first, a docker bridge, an interface with only a
/// link-local address, and the uplink created last; every interface also
/// has an IPv4 address, which IPv6 detection must ignore.
fn node() -> Netns {
    let ns = Netns::new("ad6");
    ns.veth("stor0", "vethst");
    addr6(&ns, "fd00:99::2/64", "stor0");
    ns.ip(&["addr", "add", "10.99.0.2/24", "dev", "stor0"]);
    ns.ip(&["link", "add", "docker0", "type", "bridge"]);
    ns.ip(&["link", "set", "docker0", "up"]);
    addr6(&ns, "fd00:17::1/64", "docker0");
    ns.veth("ll0", "vethll");
    addr6(&ns, "fe80::7/64", "ll0");
    ns.ip(&["addr", "add", "10.98.0.2/24", "dev", "ll0"]);
    ns.veth("eth0", "vethe0");
    addr6(&ns, "2001:db8:50::10/64", "eth0");
    ns.ip(&["link", "set", "eth0", "mtu", "1400"]);
    ns
}

#[test]
fn first_found_takes_the_highest_index_global_address() {
    let ns = node();
    let d = detect(&ns, "first-found").unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string(), d.mtu),
        ("eth0", "2001:db8:50::10/64".into(), 1400)
    );
    assert!(d.reason.contains("stor0 fd00:99::2/64"), "{}", d.reason);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn link_local_only_and_excluded_interfaces_are_passed_over() {
    let ns = node();
    let d = detect(&ns, "skip-interface=eth.*").unwrap();
    assert_eq!(d.interface, "stor0");
    assert!(
        d.reason
            .contains("ll0 (only loopback/link-local addresses: fe80::"),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("docker0 (excluded by ^docker.*)"),
        "{}",
        d.reason
    );
}

#[test]
fn interface_and_cidr() {
    let ns = node();
    let d = detect(&ns, "interface=nope.*,stor[0-9]").unwrap();
    assert_eq!(d.address.to_string(), "fd00:99::2/64");
    let d = detect(&ns, "interface=docker0").unwrap();
    assert_eq!(d.address.to_string(), "fd00:17::1/64");
    let d = detect(&ns, "cidr=fd00:99::/48").unwrap();
    assert_eq!(d.interface, "stor0");
    // Both match; eth0 has the higher index.
    let d = detect(&ns, "cidr=fd00::/8, 2001:db8::/32").unwrap();
    assert_eq!(d.interface, "eth0");
    let e = "cidr=10.0.0.0/8"
        .parse::<Method<Ipv6Net>>()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("IP6_AUTODETECTION_METHOD=") && e.contains("not an IPv6 CIDR"),
        "{e}"
    );
}

#[test]
fn can_reach_uses_the_kernel_route() {
    let ns = node();
    let d = detect(&ns, "can-reach=fd00:99::77").unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string()),
        ("stor0", "fd00:99::2/64".into())
    );
    assert!(d.reason.contains("leaves via stor0"), "{}", d.reason);
    let e = detect(&ns, "can-reach=2001:db8:ffff::9")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("IP6_AUTODETECTION_METHOD=can-reach=2001:db8:ffff::9")
            && e.contains("no route to 2001:db8:ffff::9"),
        "{e}"
    );
    ns.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:50::1",
        "dev",
        "eth0",
    ]);
    let d = detect(&ns, "can-reach=2001:db8:ffff::9").unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string()),
        ("eth0", "2001:db8:50::10/64".into())
    );
}

#[test]
fn nothing_found_names_the_variable_and_what_was_tried() {
    let ns = node();
    let e = detect(&ns, "interface=bond.*").unwrap_err().to_string();
    assert!(
        e.starts_with("IP6_AUTODETECTION_METHOD=interface=bond.*: no usable IPv6 address"),
        "{e}"
    );
    assert!(e.contains("eth0 (name matches none of bond.*)"), "{e}");
    let e = detect(&ns, "cidr=fd00:1::/64").unwrap_err().to_string();
    assert!(
        e.contains("stor0 (fd00:99::2/64 outside the cidr= list)"),
        "{e}"
    );

    // Only link-local IPv6 (and a global IPv4) on the one uplink.
    let ll = Netns::new("ad6ll");
    ll.veth("ens3", "vethz");
    addr6(&ll, "fe80::3/64", "ens3");
    ll.ip(&["addr", "add", "10.5.0.3/24", "dev", "ens3"]);
    let e = detect(&ll, "first-found").unwrap_err().to_string();
    assert!(
        e.starts_with("IP6_AUTODETECTION_METHOD=first-found: no usable IPv6 address")
            && e.contains("ens3 (only loopback/link-local addresses: fe80::"),
        "{e}"
    );
}
