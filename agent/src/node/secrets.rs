//! BGP passwords (`BGPPeer.password`, `BGPConfiguration.nodeMeshPassword`):
//! Calico reads `secretKeyRef {name, key}` from a Kubernetes Secret. With
//! the sqlite and etcd datastores Tabby reads the file
//! `$TABBY_BGP_SECRETS_DIR/<name>/<key>` (default `/etc/tabby/bgp-secrets`),
//! the layout a Secret mounted as a volume has (one file per key, under a
//! directory per Secret). The file's bytes are the password; one trailing
//! newline (as `echo` writes) is dropped. Reading the Secret from the
//! Kubernetes API comes later: today a Kubernetes-datastore node reads the
//! same files (mount the Secret there).

use crate::resources::meta::SecretKeyRef;
use std::path::PathBuf;

/// Where the secrets live.
pub const SECRETS_DIR_ENV: &str = "TABBY_BGP_SECRETS_DIR";
pub const DEFAULT_SECRETS_DIR: &str = "/etc/tabby/bgp-secrets";

/// TCP-MD5 keys are at most 80 bytes (Linux's TCP_MD5SIG_MAXKEYLEN).
const MAX_LEN: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    pub dir: PathBuf,
}

impl Secrets {
    pub fn from_env() -> Secrets {
        Secrets {
            dir: std::env::var_os(SECRETS_DIR_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR)),
        }
    }

    /// The password `r` names, or why there is none (naming the secret and
    /// the file; the caller names the peer).
    pub fn read(&self, r: &SecretKeyRef) -> Result<String, String> {
        // validate.rs refuses such names at apply time; a resource written
        // around it must still not read outside the directory.
        let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/');
        if !safe(&r.name) || !safe(&r.key) {
            return Err(format!(
                "secret {:?} key {:?}: not a Secret name and key",
                r.name, r.key
            ));
        }
        let path = self.dir.join(&r.name).join(&r.key);
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "secret {} key {}: cannot read {} ({e}; set {SECRETS_DIR_ENV} or create the file)",
                r.name,
                r.key,
                path.display()
            )
        })?;
        let mut text = String::from_utf8(bytes).map_err(|_| {
            format!(
                "secret {} key {}: {} is not UTF-8",
                r.name,
                r.key,
                path.display()
            )
        })?;
        if text.ends_with('\n') {
            text.pop();
        }
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(format!(
                "secret {} key {}: {} holds {} bytes, expected 1 to {MAX_LEN} (a TCP-MD5 key)",
                r.name,
                r.key,
                path.display(),
                text.len()
            ));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn reads_the_mounted_key_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bgp-secrets")).unwrap();
        std::fs::write(dir.path().join("bgp-secrets/rack1"), "s3cr3t\n").unwrap();
        let s = Secrets {
            dir: dir.path().to_path_buf(),
        };
        assert_eq!(s.read(&r("bgp-secrets", "rack1")).unwrap(), "s3cr3t");
        let e = s.read(&r("bgp-secrets", "rack2")).unwrap_err();
        assert!(
            e.contains("secret bgp-secrets key rack2") && e.contains("rack2"),
            "{e}"
        );
        assert!(s.read(&r("..", "rack1")).is_err());
        std::fs::write(dir.path().join("bgp-secrets/long"), "x".repeat(81)).unwrap();
        assert!(s
            .read(&r("bgp-secrets", "long"))
            .unwrap_err()
            .contains("81 bytes"));
    }
}
