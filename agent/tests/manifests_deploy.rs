//! The deployment manifests `tabbyctl manifests` generates (tabby.yaml,
//! installation.yaml; the byte-for-byte check of every file is in
//! manifests_crds.rs, the RBAC in manifests_rbac.rs): every document is
//! exactly what its k8s-openapi type reads (a misspelt field, which the
//! type would silently drop, fails), and the DaemonSet and Deployment run
//! as calico-node and calico-kube-controllers do.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use tabby_agent::manifests::{self, installation, tabby};

mod manifests_common;
use manifests_common::*;

/// The first place `a` and `b` differ, as a JSON path.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{path}.{k}")),
                _ => Some(format!("{path}.{k}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        // YAML's 1 and k8s-openapi's 1.0 (CRD minimum/maximum) are the same number.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

fn typed<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let t: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    match first_difference(doc, &back, "") {
        None => Ok(()),
        Some(p) => Err(format!("{p} does not survive the k8s-openapi type")),
    }
}

/// Parses `doc` into the k8s-openapi type of its kind and compares the
/// re-serialised object with the document.
fn round_trip(doc: &Value) -> Result<(), String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    match kind {
        "ServiceAccount" => typed::<ServiceAccount>(doc),
        "ClusterRole" => typed::<ClusterRole>(doc),
        "ClusterRoleBinding" => typed::<ClusterRoleBinding>(doc),
        "Role" => typed::<Role>(doc),
        "RoleBinding" => typed::<RoleBinding>(doc),
        "ConfigMap" => typed::<ConfigMap>(doc),
        "DaemonSet" => typed::<DaemonSet>(doc),
        "Deployment" => typed::<Deployment>(doc),
        "CustomResourceDefinition" => typed::<CustomResourceDefinition>(doc),
        other => Err(format!("no k8s-openapi type for kind {other:?}")),
    }
}

#[test]
fn every_document_is_exactly_what_its_k8s_openapi_type_reads() {
    let mut kinds = BTreeSet::new();
    for f in manifests::files() {
        for (_, doc) in documents(&(f.render)()) {
            if doc["apiVersion"] == "operator.tigera.io/v1" {
                // The Installation has no k8s-openapi type; its own type is
                // checked where the Installation is applied.
                assert_eq!(doc["kind"], "Installation");
                continue;
            }
            round_trip(&doc).unwrap_or_else(|e| panic!("{}: {e}\n{doc:#}", f.name));
            kinds.insert(doc["kind"].as_str().unwrap().to_string());
        }
    }
    let want: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Deployment",
        "CustomResourceDefinition",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds, want);
}

#[test]
fn a_misspelt_field_fails_the_round_trip() {
    let yaml = tabby::tabby_yaml();
    for (right, wrong, path) in [
        (
            "hostNetwork: true",
            "hostNetwrok: true",
            ".spec.template.spec.hostNetwrok",
        ),
        (
            "readinessProbe:",
            "readynessProbe:",
            ".spec.template.spec.containers[0].readynessProbe",
        ),
        ("resourceNames:", "resourceName:", ".rules[9].resourceName"),
    ] {
        assert!(yaml.contains(right), "{right}");
        let bad = yaml.replacen(right, wrong, 1);
        let errors: Vec<String> = documents(&bad)
            .iter()
            .filter_map(|(_, d)| round_trip(d).err())
            .collect();
        assert_eq!(
            errors,
            vec![format!("{path} does not survive the k8s-openapi type")],
            "{wrong}"
        );
    }
}

fn env_value(c: &Container, name: &str) -> Value {
    let e = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{} has no {name}", c.name));
    serde_json::to_value(e).unwrap()
}

fn pod_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec.clone().unwrap().template.spec.unwrap()
}

#[test]
fn the_daemonset_runs_tabby_node_as_calico_node_runs() {
    let ds: DaemonSet = find("DaemonSet", "tabby-node");
    let spec = ds.spec.clone().unwrap();
    let strategy = spec.update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        serde_json::to_value(strategy.rolling_update.unwrap().max_unavailable).unwrap(),
        1
    );
    let pod = pod_spec(&ds);
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(0));
    assert_eq!(
        pod.node_selector
            .unwrap()
            .get("kubernetes.io/os")
            .map(String::as_str),
        Some("linux")
    );
    // Tolerate everything: a key-less Exists for each effect that evicts.
    let tol = pod.tolerations.unwrap();
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(tol.iter().any(|t| t.key.is_none()
            && t.operator.as_deref() == Some("Exists")
            && t.effect.as_deref() == Some(effect)));
    }
    let node = &pod.containers[0];
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(
        node.command.as_deref(),
        Some(&["tabby-node".to_string()][..])
    );
    assert_eq!(
        node.security_context.as_ref().unwrap().privileged,
        Some(true)
    );
    assert_eq!(env_value(node, "DATASTORE_TYPE")["value"], "kubernetes");
    assert_eq!(
        env_value(node, "NODENAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(env_value(node, "TABBY_RUN_DIR")["value"], "/var/run/tabby");
    assert_eq!(env_value(node, "FELIX_HEALTHPORT")["value"], "9099");
    assert_eq!(
        env_value(node, "TABBY_CNI_KUBECONFIG")["value"],
        "/host/etc/cni/net.d/tabby-kubeconfig"
    );
    let live = serde_json::to_value(&node.liveness_probe).unwrap();
    assert_eq!(live["httpGet"]["host"], "localhost");
    assert_eq!(live["httpGet"]["path"], "/liveness");
    assert_eq!(live["httpGet"]["port"], 9099);
    let ready = serde_json::to_value(&node.readiness_probe).unwrap();
    assert_eq!(
        ready["exec"]["command"],
        serde_json::json!(["tabby-node", "health", "--ready"])
    );
    assert!(
        node.lifecycle.is_none(),
        "no preStop: SIGTERM is the shutdown"
    );

    let init = pod.init_containers.as_ref().unwrap();
    assert_eq!(init.len(), 1);
    let install = &init[0];
    assert_eq!(install.name, "install-cni");
    assert_eq!(
        install.command.as_deref(),
        Some(&["tabby".to_string(), "install-cni".to_string()][..])
    );
    assert_eq!(
        env_value(install, "CNI_NETWORK_CONFIG")["valueFrom"]["configMapKeyRef"]["name"],
        "tabby-config"
    );
    // Every mount names a volume, and the host paths are the ones install-cni
    // and the plugin use.
    let volumes: Vec<(String, String)> = pod
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.host_path.unwrap().path))
        .collect();
    let host = |name: &str| {
        volumes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mounts = |c: &Container| -> BTreeSet<(String, String)> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| (host(&m.name), m.mount_path.clone()))
            .collect()
    };
    assert_eq!(
        mounts(install),
        [
            ("/opt/cni/bin".into(), "/host/opt/cni/bin".into()),
            ("/etc/cni/net.d".into(), "/host/etc/cni/net.d".into()),
        ]
        .into()
    );
    assert_eq!(
        mounts(node),
        [
            ("/var/run/tabby".into(), "/var/run/tabby".into()),
            ("/etc/cni/net.d".into(), "/host/etc/cni/net.d".into()),
        ]
        .into()
    );
    assert_eq!(volumes.len(), 3, "{volumes:?}");
}

#[test]
fn the_controllers_run_once_with_their_pod_identity() {
    let d: Deployment = find("Deployment", "tabby-controllers");
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(
        c.command.as_deref(),
        Some(&["tabby-node".to_string(), "controllers".to_string()][..])
    );
    assert_eq!(
        env_value(c, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env_value(c, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(env_value(c, "DATASTORE_TYPE")["value"], "kubernetes");
}

fn images(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn one_image_everywhere_and_image_overrides_it() {
    assert_eq!(images(&tabby::tabby_yaml()), set(&[tabby::IMAGE]));
    let opts = tabby::Options {
        image: "registry.example/tabby:dev".into(),
        ..Default::default()
    };
    let yaml = tabby::render(&opts);
    assert_eq!(images(&yaml), set(&["registry.example/tabby:dev"]));
    assert_eq!(yaml.matches("image: ").count(), 3);
}

#[test]
fn the_configmaps_template_is_one_install_cni_accepts() {
    let cm: ConfigMap = find("ConfigMap", "tabby-config");
    let data = cm.data.unwrap();
    let template = &data["cni_network_config"];
    for p in [
        "__KUBERNETES_NODE_NAME__",
        "__CNI_MTU__",
        "__KUBECONFIG_FILEPATH__",
    ] {
        assert!(template.contains(p), "{p}");
    }
    let values = tabby_agent::cni::install::template::Values {
        node_name: "n1".into(),
        mtu: data["veth_mtu"].parse().unwrap(),
        kubeconfig: "/etc/cni/net.d/tabby-kubeconfig".into(),
        datastore: "sqlite".into(),
        run_dir: "/x".into(),
    };
    let text = tabby_agent::cni::install::template::render(template, &values).unwrap();
    let list = tabby_agent::cni::conflist::validate(&text).unwrap();
    let p = &list["plugins"][0];
    // Spelled out as in Calico's calico-config, whatever the env says.
    assert_eq!(p["datastore_type"], "kubernetes");
    assert_eq!(
        p["kubernetes"]["kubeconfig"],
        "/etc/cni/net.d/tabby-kubeconfig"
    );
    assert_eq!(p["run_dir"], "/var/run/tabby");
}

#[test]
fn an_installation_sets_the_daemonsets_pool_mtu_and_backend() {
    let mut inst = installation::example();
    inst["spec"]["calicoNetwork"]["mtu"] = 1400.into();
    inst["spec"]["calicoNetwork"]["bgp"] = "Disabled".into();
    let o = installation::options_from(&serde_yaml::to_string(&inst).unwrap(), Default::default())
        .unwrap();
    assert_eq!((o.veth_mtu.as_str(), o.backend.as_str()), ("1400", "vxlan"));
    let env: BTreeSet<String> = o.node_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        env,
        set(&[
            "CALICO_IPV4POOL_CIDR=192.168.0.0/16",
            "CALICO_IPV4POOL_BLOCK_SIZE=26",
            "CALICO_IPV4POOL_VXLAN=CrossSubnet",
            "CALICO_IPV4POOL_NAT_OUTGOING=true",
        ])
    );
    let yaml = tabby::render(&o);
    assert!(
        yaml.contains("name: CALICO_IPV4POOL_VXLAN\n          value: CrossSubnet"),
        "{yaml}"
    );
    for (_, d) in documents(&yaml) {
        round_trip(&d).unwrap();
    }
    inst["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] = "IPIP".into();
    let e = installation::options_from(&serde_yaml::to_string(&inst).unwrap(), Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("encapsulation \"IPIP\"") && e.contains("no IPIP"),
        "{e}"
    );
}

#[test]
fn the_example_installation_is_the_default_one_with_a_vxlan_cross_subnet_pool() {
    let docs = documents(&installation::installation_yaml());
    assert_eq!(docs.len(), 1);
    let v = &docs[0].1;
    assert_eq!(v["apiVersion"], "operator.tigera.io/v1");
    assert_eq!(v["metadata"]["name"], "default");
    let pools = v["spec"]["calicoNetwork"]["ipPools"].as_array().unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0]["encapsulation"], "VXLANCrossSubnet");
}
