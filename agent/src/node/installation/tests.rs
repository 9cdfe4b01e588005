use super::status::{render, Pass};
use super::{evaluate, overlay};
use crate::node::config::{Backend, NodeConfig};
use crate::resources::{parse_documents, Resource};
use std::collections::HashMap;
use tabby_felix_lite::autodetect::{IpSetting, Method};

fn cfg(env: &[(&str, &str)]) -> NodeConfig {
    let mut m: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("NODENAME".into(), "n1".into());
    NodeConfig::from_map(&m).expect("a valid environment")
}

fn installation(net: &str) -> Resource {
    let y = format!(
        "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata: {{name: default}}\nspec:\n  calicoNetwork:\n{net}"
    );
    parse_documents("t.yaml", &y).unwrap().remove(0).resource
}

const FULL: &str =
    "    bgp: Disabled\n    mtu: 1350\n    nodeAddressAutodetectionV4: {interface: eth1}\n";

#[test]
fn the_installation_sets_what_the_environment_leaves_unset() {
    let ev = evaluate(Some(&installation(FULL)));
    assert!(ev.problems.is_empty(), "{:?}", ev.problems);
    let (c, d) = overlay(&cfg(&[]), ev.spec.as_ref());
    assert_eq!(c.backend, Backend::Vxlan);
    assert_eq!(c.vxlan_mtu, Some(1350));
    assert_eq!(c.autodetect, "interface=eth1".parse::<Method>().unwrap());
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|d| d.winner == "Installation"), "{d:?}");
}

#[test]
fn the_environment_wins_where_it_is_set_and_the_decision_says_so() {
    let ev = evaluate(Some(&installation(FULL)));
    let env = cfg(&[
        ("CALICO_NETWORKING_BACKEND", "bird"),
        ("FELIX_VXLANMTU", "1400"),
        ("IP_AUTODETECTION_METHOD", "can-reach=10.0.0.1"),
    ]);
    let (c, d) = overlay(&env, ev.spec.as_ref());
    assert_eq!(c, env, "nothing of the environment is overridden");
    assert!(d.iter().all(|d| d.winner == "environment"), "{d:?}");
    let mtu = d.iter().find(|d| d.setting == "VXLAN MTU").unwrap();
    assert_eq!((mtu.value.as_str(), mtu.other.as_str()), ("1400", "1350"));
    // A fixed IP is explicit too: no autodetection from the Installation.
    let (c, d) = overlay(&cfg(&[("IP", "none")]), ev.spec.as_ref());
    assert_eq!(c.ip, IpSetting::None);
    assert_eq!(c.autodetect, "first-found".parse::<Method>().unwrap());
    assert!(d
        .iter()
        .any(|d| d.setting == "node address autodetection" && d.winner == "environment"));
}

#[test]
fn an_empty_autodetection_block_means_no_address() {
    let ev = evaluate(Some(&installation("    nodeAddressAutodetectionV4: {}\n")));
    let (c, _) = overlay(&cfg(&[]), ev.spec.as_ref());
    assert_eq!(c.ip, IpSetting::None);
}

#[test]
fn an_invalid_installation_overlays_nothing_and_is_degraded_by_field() {
    let ev = evaluate(Some(&installation(
        "    mtu: 1350\n    ipPools: [{cidr: 10.244.0.0/16, encapsulation: IPIP}]\n",
    )));
    assert!(ev.present && ev.spec.is_none());
    let (c, d) = overlay(&cfg(&[]), ev.spec.as_ref());
    assert_eq!(c.vxlan_mtu, None);
    assert!(d.is_empty());
    let s = render(
        None,
        &Pass::Invalid(ev.problems.clone()),
        None,
        Some(1450),
        "T0",
    );
    let degraded = &s["conditions"][2];
    assert_eq!(degraded["type"], "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "InvalidInstallation");
    let msg = degraded["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.calicoNetwork.ipPools[0].encapsulation: IPIP: Tabby has no IPIP"),
        "{msg}"
    );
    assert_eq!(s["conditions"][0]["status"], "False");
    assert!(s.get("computed").is_none());
}

#[test]
fn status_keeps_transition_times_and_the_smallest_mtu() {
    let ev = evaluate(Some(&installation(
        "    ipPools: [{cidr: 10.244.0.0/16}]\n",
    )));
    let spec = ev.spec.as_ref();
    let first = render(spec, &Pass::Applied { pools: 1 }, None, Some(1450), "T0");
    assert_eq!(first["mtu"], 1450);
    assert_eq!(first["conditions"][0]["status"], "True");
    assert_eq!(
        first["computed"]["calicoNetwork"]["ipPools"][0]["encapsulation"],
        "VXLANCrossSubnet"
    );
    // Another node with a larger MTU renders the same status: no write.
    let again = render(
        spec,
        &Pass::Applied { pools: 1 },
        Some(&first),
        Some(8950),
        "T1",
    );
    assert_eq!(again, first);
    // A smaller one lowers it; Ready's transition time is kept.
    let lower = render(
        spec,
        &Pass::Applied { pools: 1 },
        Some(&first),
        Some(1400),
        "T2",
    );
    assert_eq!(lower["mtu"], 1400);
    assert_eq!(lower["conditions"][0]["lastTransitionTime"], "T0");
    // Going Degraded moves the time, and the last computed spec stays.
    let bad = render(
        spec,
        &Pass::PoolConflict("x".into()),
        Some(&lower),
        None,
        "T3",
    );
    assert_eq!(bad["conditions"][0]["lastTransitionTime"], "T3");
    assert_eq!(bad["computed"], lower["computed"]);
}
