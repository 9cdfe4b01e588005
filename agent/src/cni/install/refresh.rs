//! tabby-node keeps the plugin's kubeconfig fresh, as calico-node does:
//! the `tabby-cni-plugin` token install-cni wrote lasts 24 h, and an init
//! container runs again only when the pod is recreated, not when the
//! container restarts. From the file's age, a new token is asked for a
//! third of the validity in (so two attempts fail before the plugin
//! notices), and the file replaced atomically. A failed TokenRequest
//! leaves the file alone and is retried every minute: the pod's own token
//! is no better a fallback here than the one already written.
//!
//! On when `TABBY_CNI_KUBECONFIG` names the kubeconfig (as mounted in the
//! tabby-node container) and `KUBERNETES_SERVICE_HOST` is set.

use super::kubeconfig::{self, Cluster, TokenSource, TOKEN_VALIDITY};
use super::{files, InstallError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

pub const REFRESH_AFTER: Duration = Duration::from_secs(TOKEN_VALIDITY.as_secs() / 3);
const RETRY: Duration = Duration::from_secs(60);

pub struct Refresher {
    pub path: PathBuf,
    pub cluster: Cluster,
    pub service_account_dir: PathBuf,
}

impl Refresher {
    /// None when the environment does not ask for it; an error when it
    /// does but the CA can't be read.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Refresher>, InstallError> {
        let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let (Some(path), Some(host)) = (
            nonempty("TABBY_CNI_KUBECONFIG"),
            nonempty("KUBERNETES_SERVICE_HOST"),
        ) else {
            return Ok(None);
        };
        let port = nonempty("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
        let service_account_dir: PathBuf = nonempty("TABBY_SERVICEACCOUNT_DIR")
            .unwrap_or_else(|| super::SERVICE_ACCOUNT_DIR.into())
            .into();
        let ca = service_account_dir.join("ca.crt");
        let pem = std::fs::read(&ca).map_err(|source| InstallError::Read { path: ca, source })?;
        Ok(Some(Refresher {
            path: path.into(),
            cluster: Cluster::new(&host, &port, pem),
            service_account_dir,
        }))
    }

    /// One refresh: a new token, written. Err leaves the file untouched.
    pub async fn refresh(&self) -> Result<(), String> {
        let (token, source) = kubeconfig::plugin_token(&self.cluster, &self.service_account_dir)
            .await
            .map_err(|e| e.to_string())?;
        if source != TokenSource::TokenRequest {
            return Err("the TokenRequest failed; the kubeconfig keeps its token".into());
        }
        files::write_atomic(
            &self.path,
            kubeconfig::render(&self.cluster, &token).as_bytes(),
            0o600,
        )
        .map_err(|e| e.to_string())
    }

    /// Runs forever (spawn it).
    pub async fn run(self) {
        loop {
            let wait = due_in(&self.path, SystemTime::now());
            tokio::time::sleep(wait).await;
            match self.refresh().await {
                Ok(()) => info!(path = %self.path.display(), "refreshed the CNI plugin's token"),
                Err(e) => {
                    warn!(path = %self.path.display(), "refreshing the CNI plugin's token: {e}; retrying in {RETRY:?}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

/// How long until the kubeconfig at `path` is due: [`REFRESH_AFTER`]
/// past its last write; now if it is missing or already due.
pub fn due_in(path: &Path, now: SystemTime) -> Duration {
    let written = std::fs::metadata(path).and_then(|m| m.modified());
    match written {
        Err(_) => Duration::ZERO,
        Ok(t) => {
            let age = now.duration_since(t).unwrap_or(Duration::ZERO);
            REFRESH_AFTER.saturating_sub(age)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_is_due_a_third_of_the_validity_later_an_old_or_missing_one_now() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kc");
        assert_eq!(due_in(&p, SystemTime::now()), Duration::ZERO);
        std::fs::write(&p, "x").unwrap();
        let written = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(due_in(&p, written), Duration::from_secs(8 * 3600));
        assert_eq!(
            due_in(&p, written + Duration::from_secs(3600)),
            Duration::from_secs(7 * 3600)
        );
        assert_eq!(
            due_in(&p, written + Duration::from_secs(9 * 3600)),
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn a_failed_token_request_leaves_the_kubeconfig_alone() {
        let d = tempfile::tempdir().unwrap();
        let sa = d.path().join("sa");
        std::fs::create_dir(&sa).unwrap();
        std::fs::write(sa.join("ca.crt"), "CA").unwrap();
        std::fs::write(sa.join("token"), "pod").unwrap();
        let kc = d.path().join("tabby-kubeconfig");
        std::fs::write(&kc, "old").unwrap();
        let env = |k: &str| match k {
            "TABBY_CNI_KUBECONFIG" => Some(kc.display().to_string()),
            "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".into()),
            "KUBERNETES_SERVICE_PORT" => Some("1".into()),
            "TABBY_SERVICEACCOUNT_DIR" => Some(sa.display().to_string()),
            _ => None,
        };
        let r = Refresher::from_env(env).unwrap().unwrap();
        let e = r.refresh().await.unwrap_err();
        assert!(e.contains("keeps its token"), "{e}");
        assert_eq!(std::fs::read_to_string(&kc).unwrap(), "old");
        assert!(Refresher::from_env(|_| None).unwrap().is_none());
    }
}
