//! The `tabby-node` DaemonSet and the `tabby-controllers` Deployment, in
//! calico-node's and calico-kube-controllers' shape (CALICO.md §12, §14).

use super::options::{Options, CONFIG_MAP};
use super::rbac::{CONTROLLERS_SA, NAMESPACE, NODE_SA};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, DeploymentSpec,
    DeploymentStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, Container, EnvVar, EnvVarSource, ExecAction, HTTPGetAction,
    HostPathVolumeSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Felix's health port, where tabby-node serves /liveness and /readiness.
pub const HEALTH_PORT: i32 = 9099;

fn labels(app: &str) -> BTreeMap<String, String> {
    [("k8s-app".to_string(), app.to_string())].into()
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(source),
        ..Default::default()
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    env_from(
        name,
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

fn config_key(name: &str, key: &str) -> EnvVar {
    env_from(
        name,
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: CONFIG_MAP.into(),
                key: key.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

fn host_path(name: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn toleration(key: Option<&str>, effect: Option<&str>) -> Toleration {
    Toleration {
        key: key.map(str::to_string),
        effect: effect.map(str::to_string),
        operator: Some("Exists".into()),
        ..Default::default()
    }
}

fn meta(name: &str, app: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NAMESPACE.into()),
        labels: Some(labels(app)),
        ..Default::default()
    }
}

fn template(app: &str, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(app)),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

fn linux() -> Option<BTreeMap<String, String>> {
    Some([("kubernetes.io/os".to_string(), "linux".to_string())].into())
}

fn install_cni(opts: &Options) -> Container {
    Container {
        name: "install-cni".into(),
        image: Some(opts.image.clone()),
        command: Some(vec!["tabby".into(), "install-cni".into()]),
        env: Some(vec![
            env("CNI_CONF_NAME", crate::cni::install::DEFAULT_CONF_NAME),
            config_key("CNI_NETWORK_CONFIG", "cni_network_config"),
            field("KUBERNETES_NODE_NAME", "spec.nodeName"),
            config_key("CNI_MTU", "veth_mtu"),
        ]),
        volume_mounts: Some(vec![
            mount("cni-bin-dir", "/host/opt/cni/bin"),
            mount("cni-net-dir", "/host/etc/cni/net.d"),
        ]),
        ..Default::default()
    }
}

fn node_env(opts: &Options) -> Vec<EnvVar> {
    let mut e = vec![
        env("DATASTORE_TYPE", "kubernetes"),
        field("NODENAME", "spec.nodeName"),
        config_key("CALICO_NETWORKING_BACKEND", "calico_backend"),
        env("IP", "autodetect"),
        config_key("FELIX_VXLANMTU", "veth_mtu"),
        env("FELIX_HEALTHENABLED", "true"),
        env("FELIX_HEALTHPORT", &HEALTH_PORT.to_string()),
        env("TABBY_RUN_DIR", crate::grpc::DEFAULT_RUN_DIR),
        env(
            "TABBY_CNI_KUBECONFIG",
            &format!(
                "/host/{}/{}",
                crate::cni::install::NET_DIR,
                crate::cni::install::KUBECONFIG_NAME
            ),
        ),
    ];
    e.extend(opts.node_env.iter().map(|(k, v)| env(k, v)));
    e
}

fn tabby_node(opts: &Options) -> Container {
    Container {
        name: "tabby-node".into(),
        image: Some(opts.image.clone()),
        command: Some(vec!["tabby-node".into()]),
        env: Some(node_env(opts)),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                host: Some("localhost".into()),
                path: Some("/liveness".into()),
                port: IntOrString::Int(HEALTH_PORT),
                ..Default::default()
            }),
            period_seconds: Some(10),
            initial_delay_seconds: Some(10),
            failure_threshold: Some(6),
            timeout_seconds: Some(10),
            ..Default::default()
        }),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["tabby-node".into(), "health".into(), "--ready".into()]),
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(10),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("var-run-tabby", crate::grpc::DEFAULT_RUN_DIR),
            mount("cni-net-dir", "/host/etc/cni/net.d"),
        ]),
        ..Default::default()
    }
}

pub fn daemon_set(opts: &Options) -> DaemonSet {
    DaemonSet {
        metadata: meta("tabby-node", "tabby-node"),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels("tabby-node")),
                ..Default::default()
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
            }),
            template: template(
                "tabby-node",
                PodSpec {
                    node_selector: linux(),
                    host_network: Some(true),
                    tolerations: Some(vec![
                        toleration(None, Some("NoSchedule")),
                        toleration(Some("CriticalAddonsOnly"), None),
                        toleration(None, Some("NoExecute")),
                    ]),
                    service_account_name: Some(NODE_SA.into()),
                    termination_grace_period_seconds: Some(0),
                    priority_class_name: Some("system-node-critical".into()),
                    init_containers: Some(vec![install_cni(opts)]),
                    containers: vec![tabby_node(opts)],
                    volumes: Some(vec![
                        host_path("var-run-tabby", crate::grpc::DEFAULT_RUN_DIR),
                        host_path("cni-bin-dir", "/opt/cni/bin"),
                        host_path("cni-net-dir", "/etc/cni/net.d"),
                    ]),
                    ..Default::default()
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn controllers(opts: &Options) -> Deployment {
    Deployment {
        metadata: meta("tabby-controllers", "tabby-controllers"),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels("tabby-controllers")),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template: template(
                "tabby-controllers",
                PodSpec {
                    node_selector: linux(),
                    tolerations: Some(vec![
                        toleration(Some("CriticalAddonsOnly"), None),
                        toleration(
                            Some("node-role.kubernetes.io/control-plane"),
                            Some("NoSchedule"),
                        ),
                    ]),
                    service_account_name: Some(CONTROLLERS_SA.into()),
                    priority_class_name: Some("system-cluster-critical".into()),
                    containers: vec![Container {
                        name: "tabby-controllers".into(),
                        image: Some(opts.image.clone()),
                        command: Some(vec!["tabby-node".into(), "controllers".into()]),
                        env: Some(vec![
                            env("DATASTORE_TYPE", "kubernetes"),
                            field("POD_NAME", "metadata.name"),
                            field("POD_NAMESPACE", "metadata.namespace"),
                        ]),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}
