//! Kubernetes mode (`"datastore_type": "kubernetes"`): before assigning,
//! ADD reads the Pod and its Namespace from the API server, as Calico's
//! plugin does, for the IPAM annotations ([`super::annotations`]). Only
//! reads: the pod's status annotations (`cni.projectcalico.org/podIP`,
//! `podIPs`, `containerID`) are written by tabby-node when the plugin
//! registers the workload, because there the WorkloadEndpoint is the Pod.

use super::annotations::{Assignment, PodAnnotations};
use super::config::{KubeConf, NetConf};
use super::env::CniEnv;
use super::error::{CniError, INVALID_CONFIG, INVALID_ENV, TRY_AGAIN_LATER};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::Api;
use kube::Client;
use std::collections::BTreeMap;
use std::time::Duration;

/// Per API request: the runtime's own ADD deadline is minutes, but an
/// unreachable API server should give "try again later" well before it.
const API_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client as Calico's plugin builds one: the conflist's kubeconfig (or
/// kube's inference without one), the server replaced by `k8s_api_root`.
/// Any failure here is the configuration's, not the API server's.
async fn client(k: &KubeConf) -> Result<Client, CniError> {
    let bad = |what: String| CniError::new(INVALID_CONFIG, what);
    let mut config = match &k.kubeconfig {
        Some(path) => {
            let at = |e: &dyn std::fmt::Display| {
                bad(format!("kubernetes.kubeconfig {}: {e}", path.display()))
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| at(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| at(&e))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            bad(format!(
                "datastore_type \"kubernetes\" without kubernetes.kubeconfig, and no API server \
                 could be inferred (KUBECONFIG, ~/.kube/config or in-cluster): {e}"
            ))
        })?,
    };
    if let Some(root) = &k.api_root {
        // Calico's older conflists gave the root with `/api/v1` appended.
        let root = root.split("/api/").next().unwrap_or(root);
        config.cluster_url = root.parse().map_err(|e| {
            bad(format!(
                "kubernetes.k8s_api_root {root:?} is not a URL: {e}"
            ))
        })?;
    }
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(API_TIMEOUT);
    Client::try_from(config).map_err(|e| bad(format!("Kubernetes client: {e}")))
}

/// Reading one object: not found means CNI_ARGS named something that
/// isn't there (the runtime's error); anything else is the API server's,
/// which the runtime should retry.
async fn read<K>(api: Api<K>, name: &str, what: &str, arg: &str) -> Result<K, CniError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match tokio::time::timeout(API_TIMEOUT, api.get(name)).await {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Err(CniError::new(
            INVALID_ENV,
            format!("CNI_ARGS {arg}: {what} does not exist in the Kubernetes API"),
        )),
        Ok(Err(e)) => Err(CniError::new(
            TRY_AGAIN_LATER,
            format!("Kubernetes API: reading {what}: {e}; try again later"),
        )),
        Err(_) => Err(CniError::new(
            TRY_AGAIN_LATER,
            format!(
                "Kubernetes API: reading {what}: no answer within {API_TIMEOUT:?}; try again later"
            ),
        )),
    }
}

/// The pod's and its namespace's annotations.
async fn annotations(
    k: &KubeConf,
    env: &CniEnv,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), CniError> {
    let client = client(k).await?;
    let (ns, name) = (env.pod_namespace.as_str(), env.pod_name.as_str());
    let pod_what = format!("pod {ns}/{name}");
    let ns_what = format!("namespace {ns}");
    let (pod, namespace) = tokio::join!(
        read(
            Api::<Pod>::namespaced(client.clone(), ns),
            name,
            &pod_what,
            "K8S_POD_NAME"
        ),
        read(
            Api::<Namespace>::all(client),
            ns,
            &ns_what,
            "K8S_POD_NAMESPACE"
        ),
    );
    Ok((
        pod?.metadata.annotations.unwrap_or_default(),
        namespace?.metadata.annotations.unwrap_or_default(),
    ))
}

/// What ADD asks the node's IPAM for: outside Kubernetes mode, or for a
/// container the runtime names no pod for, the conflist's pools; else as
/// the pod's annotations say.
pub async fn assignment(conf: &NetConf, env: &CniEnv) -> Result<Assignment, CniError> {
    let from_conf = || Assignment::Pools {
        v4: conf.ipam.ipv4_pools.clone(),
        v6: None,
    };
    let Some(k) = conf.kubernetes.as_ref().filter(|_| env.k8s_pod) else {
        return Ok(from_conf());
    };
    let (pod_annotations, namespace_annotations) = annotations(k, env).await?;
    PodAnnotations {
        namespace: &env.pod_namespace,
        pod: &env.pod_name,
        pod_annotations: &pod_annotations,
        namespace_annotations: &namespace_annotations,
    }
    .assignment(&conf.ipam.ipv4_pools)
}
