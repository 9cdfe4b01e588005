//! `datastore`, `ipam` and `vtep`: what the cluster's records say that
//! breaks this node. The datastore itself (unreachable: a source finding
//! whose fix [`unreachable_fix`] words per `DATASTORE_TYPE`; or tabby-node
//! following it late, [`lag`]), IPAM records that disagree with each
//! other ([`ipam`], `tabbyctl ipam check`'s problems), and VXLAN tunnel
//! addresses that are some other host's ([`vtep`]).

mod ipam;
mod lag;
mod vtep;

use super::{Ctx, Finding};

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let mut out = lag::check(ctx).await;
    out.extend(ipam::check(ctx).await);
    out.extend(vtep::check(ctx));
    out
}

/// What to do when the datastore `DATASTORE_TYPE` names cannot be read.
pub fn unreachable_fix(env: &dyn Fn(&str) -> Option<String>) -> String {
    let ty = env("DATASTORE_TYPE").unwrap_or_default();
    match ty.as_str() {
        "" | "sqlite" => {
            let path = env("TABBY_DATASTORE")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| crate::datastore::DEFAULT_SQLITE_PATH.into());
            format!(
                "TABBY_DATASTORE={path} must be the SQLite database file every node shares (`ls -l {path}`): \
                 put it back, or point TABBY_DATASTORE (and DATASTORE_TYPE) at the cluster's datastore"
            )
        }
        "etcdv3" => {
            let eps = env("ETCD_ENDPOINTS")
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| crate::datastore::DEFAULT_ETCD_ENDPOINTS.into());
            format!(
                "etcdctl --endpoints={eps} endpoint health — start etcd there, or fix ETCD_ENDPOINTS \
                 (and the firewall between this node and etcd)"
            )
        }
        "kubernetes" => match env("KUBECONFIG").filter(|k| !k.is_empty()) {
            Some(k) => format!(
                "kubectl --kubeconfig {k} get --raw /readyz — bring the API server back, or fix KUBECONFIG"
            ),
            None => "kubectl get --raw /readyz — check KUBERNETES_SERVICE_HOST/PORT and the service account's RBAC".into(),
        },
        other => format!("DATASTORE_TYPE={other} is not a datastore type: set sqlite, etcdv3 or kubernetes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_fix_for_an_unreachable_datastore_names_its_type_and_address() {
        let f = unreachable_fix(&env(&[
            ("DATASTORE_TYPE", "etcdv3"),
            ("ETCD_ENDPOINTS", "http://10.0.0.5:2379"),
        ]));
        assert!(
            f.starts_with("etcdctl --endpoints=http://10.0.0.5:2379 endpoint health"),
            "{f}"
        );
        let f = unreachable_fix(&env(&[("TABBY_DATASTORE", "/var/lib/t.db")]));
        assert!(f.starts_with("TABBY_DATASTORE=/var/lib/t.db"), "{f}");
        let f = unreachable_fix(&env(&[
            ("DATASTORE_TYPE", "kubernetes"),
            ("KUBECONFIG", "/k"),
        ]));
        assert!(
            f.starts_with("kubectl --kubeconfig /k get --raw /readyz"),
            "{f}"
        );
        let f = unreachable_fix(&env(&[("DATASTORE_TYPE", "etcd")]));
        assert!(f.contains("DATASTORE_TYPE=etcd is not"), "{f}");
    }
}
