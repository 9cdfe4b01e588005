use super::*;
use std::collections::HashMap;
use tabby_felix_lite::netlink::links::KernelAddr6;

fn cfg(env: &[(&str, &str)]) -> Result<Ipv6Config, String> {
    let m: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ipv6Config::from_lookup(&|k| {
        m.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

fn err(env: &[(&str, &str)]) -> String {
    cfg(env).expect_err("should be refused")
}

#[test]
fn calicos_defaults_mean_no_ipv6_address_and_no_pool() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c, Ipv6Config::default());
    assert_eq!(c.ip6, Ip6Setting::None);
    assert!(c.ipv6_support);
}

#[test]
fn ip6_forms() {
    assert_eq!(
        cfg(&[("IP6", "autodetect")]).unwrap().ip6,
        Ip6Setting::Autodetect
    );
    assert_eq!(cfg(&[("IP6", "none")]).unwrap().ip6, Ip6Setting::None);
    assert_eq!(
        cfg(&[("IP6", "fd00:1::5/64")]).unwrap().ip6,
        Ip6Setting::Fixed {
            addr: "fd00:1::5".parse().unwrap(),
            prefix_len: Some(64)
        }
    );
    assert_eq!(
        cfg(&[("IP6", "fd00:1::5")]).unwrap().ip6,
        Ip6Setting::Fixed {
            addr: "fd00:1::5".parse().unwrap(),
            prefix_len: None
        }
    );
}

#[test]
fn bad_ip6_values_name_the_variable() {
    for (v, want) in [
        ("10.0.0.1", "is not an IPv6 address"),
        ("fd00::5/129", "is not an IPv6 address"),
        ("fe80::1/64", "link-local"),
        ("ff02::1", "not a unicast address"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
    ] {
        let e = err(&[("IP6", v)]);
        assert!(e.starts_with("IP6: "), "{v}: {e}");
        assert!(e.contains(want), "{v}: {e}");
    }
}

#[test]
fn ip6_autodetection_methods() {
    let m = |v: &str| cfg(&[("IP6_AUTODETECTION_METHOD", v)]).map(|c| c.autodetect);
    assert_eq!(m("first-found"), Ok(Method6::FirstFound));
    assert_eq!(
        m("interface=eth.*"),
        Ok(Method6::Interface(vec!["eth.*".into()]))
    );
    assert_eq!(
        m("cidr=fd00:1::/64, fd00:2::/64"),
        Ok(Method6::Cidr(vec![
            "fd00:1::/64".parse().unwrap(),
            "fd00:2::/64".parse().unwrap()
        ]))
    );
    let e = m("cidr=10.0.0.0/8").unwrap_err();
    assert!(e.starts_with("IP6_AUTODETECTION_METHOD="), "{e}");
    assert!(e.contains("not an IPv6 CIDR"), "{e}");
    let e = m("interface=(").unwrap_err();
    assert!(e.starts_with("IP6_AUTODETECTION_METHOD="), "{e}");
    assert!(e.contains("not a valid regex"), "{e}");
    let e = m("closest").unwrap_err();
    assert!(e.starts_with("IP6_AUTODETECTION_METHOD="), "{e}");
}

#[test]
fn the_default_ipv6_pool() {
    let c = cfg(&[("CALICO_IPV6POOL_CIDR", "fd00:10:244::/48")]).unwrap();
    assert_eq!(
        c.pool,
        Some(DefaultPool6 {
            cidr: "fd00:10:244::/48".parse().unwrap(),
            block_size: 122,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
        })
    );
    let c = cfg(&[
        ("CALICO_IPV6POOL_CIDR", "fd00:10:244::/48"),
        ("CALICO_IPV6POOL_BLOCK_SIZE", "120"),
        ("CALICO_IPV6POOL_VXLAN", "CrossSubnet"),
        ("CALICO_IPV6POOL_NAT_OUTGOING", "true"),
    ])
    .unwrap()
    .pool
    .unwrap();
    assert_eq!(
        (c.block_size, c.vxlan_mode, c.nat_outgoing),
        (120, EncapMode::CrossSubnet, true)
    );
}

#[test]
fn bad_pool_values_name_the_variable() {
    let pool = ("CALICO_IPV6POOL_CIDR", "fd00:10:244::/48");
    for (env, var, want) in [
        (
            vec![("CALICO_IPV6POOL_CIDR", "10.244.0.0/16")],
            "CALICO_IPV6POOL_CIDR",
            "not an IPv6 CIDR",
        ),
        (
            vec![("CALICO_IPV6POOL_CIDR", "fd00:10:244::1/48")],
            "CALICO_IPV6POOL_CIDR",
            "host bits",
        ),
        (
            vec![pool, ("CALICO_IPV6POOL_BLOCK_SIZE", "115")],
            "CALICO_IPV6POOL_BLOCK_SIZE",
            "expected 116-128",
        ),
        (
            vec![pool, ("CALICO_IPV6POOL_BLOCK_SIZE", "129")],
            "CALICO_IPV6POOL_BLOCK_SIZE",
            "expected 116-128",
        ),
        (
            vec![
                ("CALICO_IPV6POOL_CIDR", "fd00:10:244::/120"),
                ("CALICO_IPV6POOL_BLOCK_SIZE", "118"),
            ],
            "CALICO_IPV6POOL_BLOCK_SIZE",
            "do not fit",
        ),
        (
            vec![pool, ("CALICO_IPV6POOL_VXLAN", "Sometimes")],
            "CALICO_IPV6POOL_VXLAN",
            "not a VXLAN mode",
        ),
        (
            vec![pool, ("CALICO_IPV6POOL_NAT_OUTGOING", "maybe")],
            "CALICO_IPV6POOL_NAT_OUTGOING",
            "not a boolean",
        ),
        (
            vec![("FELIX_IPV6SUPPORT", "perhaps")],
            "FELIX_IPV6SUPPORT",
            "not a boolean",
        ),
    ] {
        let e = err(&env);
        assert!(e.starts_with(&format!("{var}: ")), "{env:?}: {e}");
        assert!(e.contains(want), "{env:?}: {e}");
    }
    assert!(!cfg(&[("FELIX_IPV6SUPPORT", "false")]).unwrap().ipv6_support);
}

#[test]
fn an_ip6_address_on_no_interface_is_refused_naming_ip6() {
    let k = KernelSnapshot {
        addrs6: vec![
            KernelAddr6 {
                index: 2,
                ip: "fd00:1::5".parse().unwrap(),
                prefix_len: 64,
            },
            KernelAddr6 {
                index: 2,
                ip: "fe80::1".parse().unwrap(),
                prefix_len: 64,
            },
        ],
        ..Default::default()
    };
    let (iface, net) = locate_ip6("fd00:1::5".parse().unwrap(), None, &k).unwrap();
    assert_eq!(
        (iface.as_str(), net.to_string().as_str()),
        ("ifindex 2", "fd00:1::5/64")
    );
    let e = locate_ip6("fd00:9::5".parse().unwrap(), Some(64), &k).unwrap_err();
    assert!(
        e.starts_with("IP6: fd00:9::5 is not on any interface"),
        "{e}"
    );
    assert!(e.contains("fd00:1::5/64 on ifindex 2"), "{e}");
    assert!(!e.contains("fe80::1"), "{e}");
}

#[test]
fn felix_vxlanmtuv6_is_an_ipv6_mtu() {
    assert_eq!(cfg(&[]).unwrap().vxlan_mtu6, None);
    assert_eq!(cfg(&[("FELIX_VXLANMTUV6", "0")]).unwrap().vxlan_mtu6, None);
    assert_eq!(
        cfg(&[("FELIX_VXLANMTUV6", "1430")]).unwrap().vxlan_mtu6,
        Some(1430)
    );
    for bad in ["1000", "x", "70000"] {
        let e = err(&[("FELIX_VXLANMTUV6", bad)]);
        assert!(e.starts_with("FELIX_VXLANMTUV6:"), "{e}");
    }
}
