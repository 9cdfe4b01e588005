//! kube-rs errors as the datastore's typed errors. The apiserver's Status
//! codes follow the API conventions: 404 NotFound, 409 AlreadyExists or
//! Conflict (a stale resourceVersion), 410 Gone/Expired (compacted
//! history), 400/422 for a request it refuses.

use crate::datastore::Error;
use crate::resources::Kind;

/// What a failed call was about, to fill in the error.
pub(super) struct Target<'a> {
    pub kind: Kind,
    pub name: &'a str,
}

pub(super) fn map(e: kube::Error, t: Target<'_>) -> Error {
    let (kind, name) = (t.kind, t.name.to_string());
    match e {
        kube::Error::Api(s) => match s.code {
            404 => Error::NotFound { kind, name },
            409 if s.reason == "AlreadyExists" => Error::AlreadyExists { kind, name },
            // The caller reads the current revision to fill these in.
            409 => Error::Conflict {
                kind,
                name,
                expected: 0,
                current: 0,
            },
            410 => Error::Compacted {
                requested: 0,
                compacted: 0,
            },
            400 | 422 => Error::Invalid(format!("{kind} {name:?}: {}", s.message)),
            401 | 403 => Error::Unavailable(format!(
                "the Kubernetes API refused {kind} {name:?} ({} {}): check the service \
                 account's RBAC (ClusterRole calico-node) or the kubeconfig's credentials",
                s.code, s.message
            )),
            _ => Error::Unavailable(format!(
                "Kubernetes API: {kind} {name:?}: {} ({})",
                s.message, s.code
            )),
        },
        other => Error::Unavailable(format!("Kubernetes API unreachable: {other}")),
    }
}

/// A resourceVersion as a revision. Kubernetes documents it as opaque; it is
/// the etcd revision in every apiserver, which is what Tabby's revisions
/// model, so anything else is refused rather than guessed at.
pub(super) fn revision(kind: Kind, name: &str, rv: Option<&str>) -> Result<u64, Error> {
    rv.and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Corrupt {
            kind,
            name: name.to_string(),
            reason: format!(
                "metadata.resourceVersion {rv:?} is not a decimal revision (expected the etcd revision an apiserver sets)"
            ),
        })
}
