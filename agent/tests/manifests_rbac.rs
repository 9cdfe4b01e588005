//! The RBAC in tabby.yaml: every rule says why it exists (a comment above
//! it), the grants are exactly the listed ones (Calico's cut to what
//! Tabby's code calls), and every binding binds roles and ServiceAccounts
//! that the file defines.

mod manifests_common;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use manifests_common::*;
use std::collections::BTreeSet;

#[test]
fn every_rbac_rule_has_a_comment_above_it() {
    let mut roles = 0;
    for (text, doc) in tabby_docs() {
        if doc["kind"] != "ClusterRole" && doc["kind"] != "Role" {
            continue;
        }
        roles += 1;
        let rules = doc["rules"].as_array().unwrap().len();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.iter().position(|l| *l == "rules:").unwrap();
        let mut commented = 0;
        let mut reasons = BTreeSet::new();
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            if l.starts_with("- ") {
                let mut j = i;
                let mut reason = String::new();
                while j > 0 && lines[j - 1].starts_with("# ") {
                    j -= 1;
                    reason = format!("{} {reason}", &lines[j][2..]);
                }
                assert!(
                    reason.trim().len() > 20,
                    "{} rule at line {i} has no comment saying why:\n{text}",
                    doc["metadata"]["name"]
                );
                reasons.insert(reason);
                commented += 1;
            }
        }
        assert_eq!(commented, rules, "{text}");
        assert_eq!(reasons.len(), rules, "two rules share a reason:\n{text}");
    }
    assert_eq!(roles, 4);
}

/// (group, resource, verb) for every rule of a role, resource names as
/// `resource/name`.
fn grants(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                let names: Vec<String> = match &r.resource_names {
                    Some(n) => n.iter().map(|n| format!("{res}={n}")).collect(),
                    None => vec![res.clone()],
                };
                for n in names {
                    for v in &r.verbs {
                        out.insert(format!("{g}:{n}:{v}"));
                    }
                }
            }
        }
    }
    out
}

fn expand(group: &str, resources: &[&str], verbs: &[&str]) -> Vec<String> {
    resources
        .iter()
        .flat_map(|r| verbs.iter().map(move |v| format!("{group}:{r}:{v}")))
        .collect()
}

#[test]
fn the_rbac_grants_exactly_what_tabby_calls() {
    let c = "crd.projectcalico.org";
    let ipam = ["ipamblocks", "blockaffinities", "ipamhandles"];
    let all = [
        "ippools",
        "bgppeers",
        "bgpconfigurations",
        "ipamblocks",
        "blockaffinities",
        "ipamhandles",
        "ipamconfigs",
        "ipreservations",
    ];
    let node: ClusterRole = find("ClusterRole", "tabby-node");
    let mut want: BTreeSet<String> = set(&[
        ":nodes:get",
        ":nodes:list",
        ":nodes:watch",
        ":nodes:update",
        ":nodes/status:patch",
        ":pods:get",
        ":pods:list",
        ":pods:watch",
        ":pods/status:patch",
        ":serviceaccounts/token=tabby-cni-plugin:create",
        "operator.tigera.io:installations:get",
        "operator.tigera.io:installations:list",
        "operator.tigera.io:installations:watch",
        "operator.tigera.io:installations/status:update",
        "operator.tigera.io:installations/status:patch",
    ]);
    want.extend(expand(c, &all, &["get", "list", "watch"]));
    want.extend(expand(c, &["ippools"], &["create", "update", "delete"]));
    want.extend(expand(c, &ipam, &["create", "update", "delete"]));
    assert_eq!(grants(node.rules.as_deref().unwrap()), want);

    let cni: ClusterRole = find("ClusterRole", "tabby-cni-plugin");
    assert_eq!(
        grants(cni.rules.as_deref().unwrap()),
        set(&[":pods:get", ":namespaces:get"])
    );

    let ctl: ClusterRole = find("ClusterRole", "tabby-controllers");
    let mut want = set(&[":nodes:get", ":nodes:list", ":pods:get", ":pods:list"]);
    want.extend(expand(c, &ipam, &["get", "list", "update", "delete"]));
    want.extend(expand(
        c,
        &["ippools", "ipreservations", "ipamconfigs"],
        &["get", "list"],
    ));
    assert_eq!(grants(ctl.rules.as_deref().unwrap()), want);

    let lease: Role = find("Role", "tabby-controllers");
    assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-system"));
    assert_eq!(
        grants(lease.rules.as_deref().unwrap()),
        set(&[
            "coordination.k8s.io:leases:create",
            "coordination.k8s.io:leases=tabby-kube-controllers:get",
            "coordination.k8s.io:leases=tabby-kube-controllers:update",
        ])
    );
    assert_eq!(
        tabby_agent::controllers::config::DEFAULT_LEASE_NAMESPACE,
        "kube-system"
    );
}

#[test]
fn every_binding_binds_an_existing_role_to_an_existing_service_account() {
    let docs = tabby_docs();
    let has = |kind: &str, name: &str| {
        docs.iter()
            .any(|(_, v)| v["kind"] == kind && v["metadata"]["name"] == name)
    };
    let mut bindings = 0;
    for (_, v) in &docs {
        if v["kind"] != "ClusterRoleBinding" && v["kind"] != "RoleBinding" {
            continue;
        }
        bindings += 1;
        let role_kind = v["roleRef"]["kind"].as_str().unwrap();
        assert!(
            has(role_kind, v["roleRef"]["name"].as_str().unwrap()),
            "{v}"
        );
        for s in v["subjects"].as_array().unwrap() {
            assert_eq!(s["namespace"], "kube-system");
            assert!(has("ServiceAccount", s["name"].as_str().unwrap()), "{v}");
        }
    }
    assert_eq!(bindings, 4);
    let ds: DaemonSet = find("DaemonSet", "tabby-node");
    let dep: Deployment = find("Deployment", "tabby-controllers");
    for (spec, sa) in [
        (ds.spec.unwrap().template.spec.unwrap(), "tabby-node"),
        (
            dep.spec.unwrap().template.spec.unwrap(),
            "tabby-controllers",
        ),
    ] {
        assert_eq!(spec.service_account_name.as_deref(), Some(sa));
        assert!(has("ServiceAccount", sa));
    }
}
