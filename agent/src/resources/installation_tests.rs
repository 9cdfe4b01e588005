use crate::resources::installation_render::{
    autodetection_method, bgp_enabled, computed, ip_pools, MANAGED_BY_LABEL,
};
use crate::resources::ippool::{AllowedUse, EncapMode};
use crate::resources::{parse_documents, validate::validate, Resource};

fn installation(yaml: &str) -> Resource {
    let docs = parse_documents("test.yaml", yaml).expect("parses");
    docs.into_iter().next().expect("one document").resource
}

/// The problems of `yaml`, as `field: message` lines.
fn problems(yaml: &str) -> Vec<String> {
    let mut r = installation(yaml);
    validate(&mut r).iter().map(|p| p.to_string()).collect()
}

const HEAD: &str =
    "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata: {name: default}\n";

fn with_network(net: &str) -> String {
    format!("{HEAD}spec:\n  calicoNetwork:\n{net}")
}

#[test]
fn a_full_installation_renders_the_operators_pools() {
    let y = with_network(
        "    bgp: Disabled\n    mtu: 1400\n    ipPools:\n    - cidr: 10.244.0.0/16\n      encapsulation: VXLAN\n      natOutgoing: Disabled\n      blockSize: 24\n      nodeSelector: zone == 'a'\n      disableBGPExport: true\n      disableNewAllocations: true\n      allowedUses: [Workload]\n    - name: second\n      cidr: 10.96.0.0/16\n",
    );
    assert_eq!(problems(&y), Vec::<String>::new());
    let Resource::Installation(i) = installation(&y) else {
        panic!("not an Installation")
    };
    assert!(!bgp_enabled(i.spec.calico_network.as_ref()));
    let pools = ip_pools(&i.spec);
    assert_eq!(pools.len(), 2);
    let p = &pools[0];
    assert_eq!(p.metadata.name, "default-ipv4-ippool");
    assert_eq!(p.metadata.labels[MANAGED_BY_LABEL], "tabby");
    assert_eq!(p.spec.vxlan_mode, Some(EncapMode::Always));
    assert_eq!(p.spec.ipip_mode, Some(EncapMode::Never));
    assert!(!p.spec.nat_outgoing && p.spec.disabled && p.spec.disable_bgp_export);
    assert_eq!(p.spec.block_size, Some(24));
    assert_eq!(p.spec.node_selector.as_deref(), Some("zone == 'a'"));
    assert_eq!(p.spec.allowed_uses, vec![AllowedUse::Workload]);
    // The second pool: every default, and the deliberate deviation — an
    // unset encapsulation is VXLANCrossSubnet, not the operator's IPIP.
    let q = &pools[1];
    assert_eq!(q.metadata.name, "second");
    assert_eq!(q.spec.vxlan_mode, Some(EncapMode::CrossSubnet));
    assert!(q.spec.nat_outgoing && !q.spec.disabled);
    assert_eq!(q.spec.block_size, Some(26));
    assert_eq!(q.spec.node_selector.as_deref(), Some("all()"));
    let c = computed(&i.spec);
    assert_eq!(
        c["calicoNetwork"]["ipPools"][1]["encapsulation"],
        "VXLANCrossSubnet"
    );
    assert_eq!(c["calicoNetwork"]["ipPools"][1]["natOutgoing"], "Enabled");
    assert_eq!(c["calicoNetwork"]["bgp"], "Disabled");
    assert_eq!(
        c["calicoNetwork"]["nodeAddressAutodetectionV4"]["firstFound"],
        true
    );
}

#[test]
fn each_autodetection_field_is_its_env_form() {
    let cases = [
        ("interface: eth.*", "interface=eth.*"),
        ("skipInterface: ens3", "skip-interface=ens3"),
        ("canReach: 10.0.0.1", "can-reach=10.0.0.1"),
        ("firstFound: true", "first-found"),
        (
            "cidrs: [10.0.0.0/24, 10.1.0.0/24]",
            "cidr=10.0.0.0/24,10.1.0.0/24",
        ),
        ("kubernetes: NodeInternalIP", "kubernetes-internal-ip"),
    ];
    for (field, env) in cases {
        let y = with_network(&format!("    nodeAddressAutodetectionV4: {{{field}}}\n"));
        assert_eq!(problems(&y), Vec::<String>::new(), "{field}");
        let Resource::Installation(i) = installation(&y) else {
            panic!()
        };
        let a = i
            .spec
            .calico_network
            .unwrap()
            .node_address_autodetection_v4
            .unwrap();
        assert_eq!(autodetection_method(&a).as_deref(), Some(env), "{field}");
    }
    let y = with_network("    nodeAddressAutodetectionV4: {firstFound: false}\n");
    let Resource::Installation(i) = installation(&y) else {
        panic!()
    };
    let a = i
        .spec
        .calico_network
        .unwrap()
        .node_address_autodetection_v4
        .unwrap();
    assert_eq!(autodetection_method(&a), None, "no method: IP=none");
}

#[test]
fn ipip_is_refused_by_name() {
    let p = problems(&with_network(
        "    ipPools:\n    - cidr: 10.244.0.0/16\n      encapsulation: IPIPCrossSubnet\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with(
            "spec.calicoNetwork.ipPools[0].encapsulation: IPIPCrossSubnet: Tabby has no IPIP"
        ) && p[0].contains("VXLANCrossSubnet"),
        "{p:?}"
    );
}

#[test]
fn an_unknown_encapsulation_names_the_field() {
    let p = problems(&with_network(
        "    ipPools:\n    - cidr: 10.244.0.0/16\n      encapsulation: GRE\n",
    ));
    assert_eq!(
        p,
        vec!["spec.calicoNetwork.ipPools[0].encapsulation: \"GRE\" is not one of VXLAN, VXLANCrossSubnet, None"]
    );
}

#[test]
fn two_autodetection_methods_in_one_block_are_refused() {
    let p = problems(&with_network(
        "    nodeAddressAutodetectionV4: {interface: eth0, canReach: 8.8.8.8}\n",
    ));
    assert_eq!(
        p,
        vec!["spec.calicoNetwork.nodeAddressAutodetectionV4: interface and canReach are all set: one autodetection block takes exactly one method"]
    );
}

#[test]
fn overlapping_pools_are_refused_naming_the_later_one() {
    let p = problems(&with_network(
        "    ipPools:\n    - cidr: 10.244.0.0/16\n    - name: inner\n      cidr: 10.244.8.0/24\n",
    ));
    assert_eq!(
        p,
        vec![
            "spec.calicoNetwork.ipPools[1].cidr: 10.244.8.0/24 overlaps ipPools[0] (10.244.0.0/16)"
        ]
    );
}

#[test]
fn pool_rules_are_ippools_under_the_installations_field_names() {
    let p = problems(&with_network(
        "    ipPools:\n    - cidr: 10.244.0.1/16\n      blockSize: 12\n      natOutgoing: Yes\n      allowedUses: [Pods]\n",
    ));
    let joined = p.join("\n");
    for want in [
        "ipPools[0].cidr: 10.244.0.1/16 has host bits set",
        "ipPools[0].blockSize: 12 is outside 20..32",
        "ipPools[0].natOutgoing: \"Yes\" is not one of Enabled, Disabled",
        "ipPools[0].allowedUses[0]: \"Pods\" is not one of",
    ] {
        assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
    }
}

#[test]
fn operator_fields_are_kept_and_typos_refused() {
    let y = format!(
        "{HEAD}spec:\n  variant: Calico\n  registry: quay.io/\n  calicoNetwork:\n    linuxDataplane: Iptables\n    hostPorts: Enabled\n    ipPools: [{{cidr: 10.244.0.0/16}}]\n"
    );
    assert_eq!(problems(&y), Vec::<String>::new());
    let Resource::Installation(i) = installation(&y) else {
        panic!()
    };
    // Kept, so `get -o yaml` and the API show them as written.
    assert_eq!(i.spec.other["variant"], "Calico");
    let v = Resource::Installation(i).to_json_value();
    assert_eq!(v["spec"]["calicoNetwork"]["linuxDataplane"], "Iptables");
    assert_eq!(v["apiVersion"], "operator.tigera.io/v1");
    let p = problems(&format!(
        "{HEAD}spec:\n  calicoNetwrk: {{}}\n  calicoNetwork:\n    ipPools: [{{cidr: 10.244.0.0/16, encapsulaton: VXLAN}}]\n"
    ));
    assert_eq!(
        p,
        vec![
            "spec.calicoNetwrk: unknown field (not a field of the operator's Installation)",
            "spec.calicoNetwork.ipPools[0].encapsulaton: unknown field (not a field of the operator's Installation)",
        ]
    );
}

#[test]
fn only_default_and_only_the_operators_api_version() {
    let p =
        problems("apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata: {name: mine}\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("metadata.name: \"mine\""), "{p:?}");
    let e = parse_documents(
        "t.yaml",
        "apiVersion: projectcalico.org/v3\nkind: Installation\nmetadata: {name: default}\n",
    )
    .unwrap_err();
    assert_eq!(e[0].field.as_deref(), Some("apiVersion"));
    assert!(e[0].message.contains("operator.tigera.io/v1"), "{e:?}");
}

#[test]
fn an_autodetection_regex_is_checked_by_the_env_parser() {
    let p = problems(&with_network(
        "    nodeAddressAutodetectionV4: {interface: \"eth(\"}\n",
    ));
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("spec.calicoNetwork.nodeAddressAutodetectionV4.interface:"),
        "{p:?}"
    );
}

#[test]
fn the_shipped_example_installation_is_valid() {
    let y = crate::manifests::installation::installation_yaml();
    assert_eq!(problems(&y), Vec::<String>::new(), "{y}");
}
