//! Choosing a backend the way calicoctl and calico-node do: from
//! `DATASTORE_TYPE` and its companion variables.

use super::{etcd::EtcdStore, kdd::KubeStore, sqlite::SqliteStore, Datastore, Error};
use std::path::PathBuf;
use std::sync::Arc;

pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/tabby/tabby.db";
pub const DEFAULT_ETCD_ENDPOINTS: &str = "http://127.0.0.1:2379";

#[derive(Clone, Debug, PartialEq)]
pub enum DatastoreConfig {
    Sqlite {
        path: PathBuf,
    },
    Etcd {
        endpoints: Vec<String>,
    },
    /// The Kubernetes API; `None` infers the client as kube does
    /// (in-cluster service account when there is no kubeconfig).
    Kubernetes {
        kubeconfig: Option<PathBuf>,
    },
}

impl DatastoreConfig {
    /// Reads `DATASTORE_TYPE` (`sqlite` default, `etcdv3`, `kubernetes`),
    /// `TABBY_DATASTORE`, `ETCD_ENDPOINTS` and `KUBECONFIG`. The error
    /// names the variable.
    pub fn from_env() -> Result<DatastoreConfig, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<DatastoreConfig, String> {
        let ty = get("DATASTORE_TYPE").unwrap_or_default();
        match ty.as_str() {
            "" | "sqlite" => Ok(DatastoreConfig::Sqlite {
                path: get("TABBY_DATASTORE")
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| DEFAULT_SQLITE_PATH.to_string())
                    .into(),
            }),
            "etcdv3" => {
                let raw = get("ETCD_ENDPOINTS")
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| DEFAULT_ETCD_ENDPOINTS.to_string());
                let endpoints: Vec<String> = raw
                    .split(',')
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty())
                    .collect();
                if let Some(bad) = endpoints
                    .iter()
                    .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
                {
                    return Err(format!(
                        "ETCD_ENDPOINTS: {bad:?} is not an endpoint URL (expected e.g. http://127.0.0.1:2379)"
                    ));
                }
                Ok(DatastoreConfig::Etcd { endpoints })
            }
            "kubernetes" => Ok(DatastoreConfig::Kubernetes {
                kubeconfig: get("KUBECONFIG").filter(|p| !p.is_empty()).map(PathBuf::from),
            }),
            other => Err(format!(
                "DATASTORE_TYPE: {other:?} is not a datastore type (expected sqlite, etcdv3 or kubernetes)"
            )),
        }
    }
}

pub async fn connect(cfg: &DatastoreConfig) -> Result<Arc<dyn Datastore>, Error> {
    Ok(match cfg {
        DatastoreConfig::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        DatastoreConfig::Etcd { endpoints } => Arc::new(EtcdStore::connect(endpoints).await?),
        DatastoreConfig::Kubernetes { kubeconfig } => {
            Arc::new(KubeStore::connect(kubeconfig.as_deref()).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_selects_backend_and_names_bad_variables() {
        let cfg = DatastoreConfig::from_lookup(|_| None).unwrap();
        assert_eq!(
            cfg,
            DatastoreConfig::Sqlite {
                path: DEFAULT_SQLITE_PATH.into()
            }
        );
        let cfg = DatastoreConfig::from_lookup(|k| match k {
            "DATASTORE_TYPE" => Some("etcdv3".into()),
            "ETCD_ENDPOINTS" => Some("http://127.0.0.1:1,http://127.0.0.1:2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            cfg,
            DatastoreConfig::Etcd {
                endpoints: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()]
            }
        );
        let e = DatastoreConfig::from_lookup(|k| (k == "DATASTORE_TYPE").then(|| "mysql".into()))
            .unwrap_err();
        assert!(e.starts_with("DATASTORE_TYPE:"), "{e}");
        let e = DatastoreConfig::from_lookup(|k| match k {
            "DATASTORE_TYPE" => Some("etcdv3".into()),
            "ETCD_ENDPOINTS" => Some("127.0.0.1:2379".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.starts_with("ETCD_ENDPOINTS:"), "{e}");
        let cfg = DatastoreConfig::from_lookup(|k| match k {
            "DATASTORE_TYPE" => Some("kubernetes".into()),
            "KUBECONFIG" => Some("/etc/tabby/kubeconfig".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            cfg,
            DatastoreConfig::Kubernetes {
                kubeconfig: Some("/etc/tabby/kubeconfig".into())
            }
        );
    }
}
