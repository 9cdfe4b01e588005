//! Node address autodetection against real interfaces in a namespace.

mod common;

use common::Netns;
use tabby_felix_lite::autodetect::{self, AutodetectError, Detected, Method};
use tabby_felix_lite::netns;

fn detect(ns: &Netns, method: &str) -> Result<Detected, AutodetectError> {
    let m: Method = method.parse().expect("valid method");
    netns::block_on_in(
        &ns.name,
        move || async move { autodetect::detect(&m).await },
    )
    .expect("enter netns")
}

/// A node with a storage NIC created first, a docker bridge, a cali veth,
/// a link-local-only interface and the real uplink created last.
fn node() -> Netns {
    let ns = Netns::new("ad");
    ns.veth("stor0", "vethst");
    ns.ip(&["addr", "add", "10.99.0.2/24", "dev", "stor0"]);
    ns.ip(&["link", "add", "docker0", "type", "bridge"]);
    ns.ip(&["addr", "add", "172.17.0.1/16", "dev", "docker0"]);
    ns.ip(&["link", "set", "docker0", "up"]);
    ns.veth("cali12345", "vethca");
    ns.ip(&["addr", "add", "10.244.7.1/32", "dev", "cali12345"]);
    ns.veth("ll0", "vethll");
    ns.ip(&["addr", "add", "169.254.7.7/16", "dev", "ll0"]);
    ns.veth("eth0", "vethe0");
    ns.ip(&["addr", "add", "192.168.50.10/24", "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "mtu", "1400"]);
    ns
}

#[test]
fn first_found_matches_calico() {
    let ns = node();
    let d = detect(&ns, "first-found").unwrap();
    // Calico walks interfaces from the highest index down: eth0 is seen
    // first; stor0 is eligible too and the reason says so.
    assert_eq!(d.interface, "eth0");
    assert_eq!(d.address.to_string(), "192.168.50.10/24");
    assert_eq!(d.mtu, 1400);
    assert!(
        d.reason.contains("chose 192.168.50.10/24 on eth0"),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("stor0 10.99.0.2/24"), "{}", d.reason);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn interface_regexes() {
    let ns = node();
    let d = detect(&ns, "interface=eth.*").unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string()),
        ("eth0", "192.168.50.10/24".into())
    );
    let d = detect(&ns, "interface=nope.*,stor[0-9]").unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string()),
        ("stor0", "10.99.0.2/24".into())
    );
    // interface= has no default exclusions: docker0 is fair game.
    let d = detect(&ns, "interface=docker0").unwrap();
    assert_eq!(d.address.to_string(), "172.17.0.1/16");
}

#[test]
fn skip_interface_adds_to_the_defaults() {
    let ns = node();
    let d = detect(&ns, "skip-interface=eth.*").unwrap();
    // ll0 has only a link-local address, cali/docker/veth are default
    // exclusions: stor0 is what is left.
    assert_eq!(d.interface, "stor0");
    assert!(
        d.reason
            .contains("ll0 (only loopback/link-local addresses: 169.254.7.7/16)"),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("cali12345 (excluded by ^cali.*)"),
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("eth0 (excluded by eth.*)"),
        "{}",
        d.reason
    );
}

#[test]
fn cidr_method() {
    let ns = node();
    let d = detect(&ns, "cidr=10.99.0.0/16").unwrap();
    assert_eq!(d.interface, "stor0");
    let d = detect(&ns, "cidr=172.16.0.0/12, 192.168.0.0/16").unwrap();
    // Both docker0 and eth0 match; eth0 has the higher index.
    assert_eq!(d.interface, "eth0");
    let d = detect(&ns, "cidr=10.244.0.0/16").unwrap();
    assert_eq!(
        d.interface, "cali12345",
        "cidr= applies no name exclusions, as in Calico"
    );
    assert!(
        d.warnings.iter().any(|w| w.contains("/32")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn can_reach_uses_the_kernel_route() {
    let ns = node();
    let d = detect(&ns, "can-reach=10.99.0.77").unwrap();
    assert_eq!(d.interface, "stor0");
    assert!(d.reason.contains("leaves via stor0"), "{}", d.reason);
    let e = detect(&ns, "can-reach=203.0.113.9")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no route to 203.0.113.9"), "{e}");
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.168.50.1",
        "dev",
        "eth0",
    ]);
    let d = detect(&ns, "can-reach=203.0.113.9").unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string()),
        ("eth0", "192.168.50.10/24".into())
    );
}

#[test]
fn nothing_found_names_method_and_interfaces() {
    let ns = node();
    let e = detect(&ns, "interface=bond.*").unwrap_err().to_string();
    assert!(
        e.starts_with("IP_AUTODETECTION_METHOD=interface=bond.*: no usable IPv4 address"),
        "{e}"
    );
    for name in ["eth0", "stor0", "docker0", "cali12345", "ll0", "lo"] {
        assert!(
            e.contains(&format!("{name} (name matches none of bond.*)")),
            "{name} missing: {e}"
        );
    }
    let e = detect(&ns, "cidr=10.1.0.0/16").unwrap_err().to_string();
    assert!(
        e.contains("stor0 (10.99.0.2/24 outside the cidr= list)"),
        "{e}"
    );

    let empty = Netns::new("ad0");
    let e = detect(&empty, "first-found").unwrap_err().to_string();
    assert!(
        e.contains("first-found") && e.contains("lo (excluded by ^lo)"),
        "{e}"
    );
}

#[test]
fn warns_on_slash_32_and_shared_address() {
    let ns = Netns::new("ad32");
    ns.veth("ens3", "vethx");
    ns.ip(&["addr", "add", "10.77.0.5/32", "dev", "ens3"]);
    ns.veth("nlocal", "vethy");
    ns.ip(&["addr", "add", "10.77.0.5/32", "dev", "nlocal"]);
    let d = detect(&ns, "interface=ens3").unwrap();
    assert_eq!(d.address.to_string(), "10.77.0.5/32");
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("is a /32") && w.contains("CrossSubnet")),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings.iter().any(|w| w.contains("also on nlocal")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn local_cidr_finds_prefix_or_refuses() {
    let ns = node();
    let d = netns::block_on_in(&ns.name, || async {
        autodetect::local_cidr("10.99.0.2".parse().unwrap()).await
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        (d.interface.as_str(), d.address.to_string()),
        ("stor0", "10.99.0.2/24".into())
    );
    let e = netns::block_on_in(&ns.name, || async {
        autodetect::local_cidr("10.99.0.3".parse().unwrap()).await
    })
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("10.99.0.3 is not on any interface") && e.contains("stor0 (has 10.99.0.2/24)"),
        "{e}"
    );
}
