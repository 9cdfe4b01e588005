//! The plugin's kubeconfig, as Calico's install writes
//! `calico-kubeconfig`: the API server from `KUBERNETES_SERVICE_HOST`/
//! `_PORT`, the service account's CA inline, and a token of the
//! `tabby-cni-plugin` ServiceAccount from a TokenRequest (24 h, Calico's
//! default). The plugin runs on the host, outside any pod, so it cannot
//! read the pod's projected token itself.

use super::InstallError;
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tracing::{info, warn};

pub const CNI_SERVICE_ACCOUNT: &str = "tabby-cni-plugin";
/// Calico's `CNI_TOKEN_VALIDITY` default.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(24 * 3600);
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API server is and how it is trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// `https://HOST:PORT` (an IPv6 host in brackets).
    pub server: String,
    /// PEM, as in the service account's `ca.crt`.
    pub ca_pem: Vec<u8>,
}

impl Cluster {
    pub fn new(host: &str, port: &str, ca_pem: Vec<u8>) -> Cluster {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Cluster {
            server: format!("https://{host}:{port}"),
            ca_pem,
        }
    }
}

/// The kubeconfig YAML.
pub fn render(cluster: &Cluster, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(&cluster.ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": CNI_SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "tabby-context", "context": {
            "cluster": "local",
            "user": CNI_SERVICE_ACCOUNT,
        }}],
        "current-context": "tabby-context",
    });
    format!(
        "# The tabby CNI plugin's kubeconfig, written by `tabby install-cni`.\n{}",
        serde_yaml::to_string(&doc).unwrap_or_default()
    )
}

/// Where the token in the kubeconfig came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// A TokenRequest for `tabby-cni-plugin`.
    TokenRequest,
    /// The pod's own token (the TokenRequest failed).
    PodToken,
}

/// A `tabby-cni-plugin` token, asked for with the pod's own credentials;
/// if the API refuses or can't be reached, the pod's token itself, with a
/// warning (it carries the node's rights, not the plugin's, and expires
/// with the pod's projection).
pub async fn plugin_token(
    cluster: &Cluster,
    sa_dir: &Path,
) -> Result<(String, TokenSource), InstallError> {
    let token_file = sa_dir.join("token");
    let pod_token = std::fs::read_to_string(&token_file)
        .map_err(|source| InstallError::Read {
            path: token_file.clone(),
            source,
        })?
        .trim()
        .to_string();
    let namespace = std::fs::read_to_string(sa_dir.join("namespace"))
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|_| "kube-system".into());
    match request(cluster, &pod_token, &namespace).await {
        Ok(t) => {
            info!(serviceaccount = CNI_SERVICE_ACCOUNT, %namespace, "token from a TokenRequest");
            Ok((t, TokenSource::TokenRequest))
        }
        Err(e) => {
            warn!(
                "TokenRequest for ServiceAccount {namespace}/{CNI_SERVICE_ACCOUNT} failed ({e}); \
                 the plugin's kubeconfig gets this pod's own token from {}",
                token_file.display()
            );
            Ok((pod_token, TokenSource::PodToken))
        }
    }
}

async fn request(cluster: &Cluster, pod_token: &str, namespace: &str) -> Result<String, String> {
    // The client is built from the very kubeconfig being written, with the
    // pod's token: one code path for the server URL and the CA.
    let kc: kube::config::Kubeconfig =
        serde_yaml::from_str(&render(cluster, pod_token)).map_err(|e| e.to_string())?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client, namespace);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(TOKEN_VALIDITY.as_secs() as i64),
            ..Default::default()
        },
        ..Default::default()
    };
    let pp = kube::api::PostParams::default();
    let call = api.create_token_request(CNI_SERVICE_ACCOUNT, &pp, &req);
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Err(_) => Err(format!("no answer within {API_TIMEOUT:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(r)) => r
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "the answer carried no token".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_is_one_kube_reads_with_the_server_ca_and_token() {
        let c = Cluster::new("fd00::1", "6443", b"-----BEGIN CERTIFICATE-----\n".to_vec());
        assert_eq!(c.server, "https://[fd00::1]:6443");
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&render(&c, "tok")).unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://[fd00::1]:6443"));
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster.certificate_authority_data.as_ref().unwrap())
            .unwrap();
        assert_eq!(ca, c.ca_pem);
        assert!(kc.auth_infos[0].auth_info.as_ref().unwrap().token.is_some());
        let raw: serde_json::Value = serde_yaml::from_str(&render(&c, "tok")).unwrap();
        assert_eq!(raw["users"][0]["user"]["token"], "tok");
        assert_eq!(kc.current_context.as_deref(), Some("tabby-context"));
    }
}
