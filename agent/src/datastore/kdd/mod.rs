//! The Kubernetes datastore (`DATASTORE_TYPE=kubernetes`): Calico's kinds
//! exactly as Calico stores them in a cluster, through kube-rs.
//!
//! - IPPool, BGPPeer, BGPConfiguration, IPAMConfig, IPReservation, IPAMBlock,
//!   BlockAffinity and IPAMHandle are `crd.projectcalico.org/v1` custom
//!   resources ([`crs`], names in [`names`]).
//! - The Installation is the operator's own `operator.tigera.io/v1` CR
//!   (cluster-scoped, its metadata its own, `status` a subresource).
//! - A Node is the core v1 Node; its Calico fields are annotations
//!   ([`node`]). Tabby never creates or deletes one.
//! - A WorkloadEndpoint is derived from its Pod; writing one patches the
//!   Pod's status annotations ([`pod`]).
//!
//! Revisions are resourceVersions. Kubernetes has no multi-object
//! transaction and no compare-and-delete of Calico's IPAM kinds; see
//! [`txn`] and [`ops`] for how Tabby keeps IPAM's guarantees anyway.

pub mod crs;
mod error;
pub mod names;
pub mod node;
mod ops;
pub mod pod;
mod txn;
mod watch;

use super::{Datastore, Error, FollowStream, ListResult, Revision, TxnWrite, WatchStream};
use crate::resources::{Kind, Resource};
use async_trait::async_trait;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::Client;
use std::path::Path;

/// The group and version of Calico's CRDs.
pub const CRD_GROUP: &str = "crd.projectcalico.org";
pub const CRD_VERSION: &str = "v1";
/// The tigera operator's group: the Installation is its CR.
pub const OPERATOR_GROUP: &str = "operator.tigera.io";

/// A datastore over a Kubernetes API server.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
}

impl KubeStore {
    /// A client from `kubeconfig`, else as kube's `Config::infer`:
    /// `KUBECONFIG`, `~/.kube/config`, then the pod's service account.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<KubeStore, Error> {
        let config = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    Error::Unavailable(format!("kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| {
                        Error::Unavailable(format!("kubeconfig {}: {e}", path.display()))
                    })?
            }
            None => kube::Config::infer().await.map_err(|e| {
                Error::Unavailable(format!(
                    "no Kubernetes API configuration (set KUBECONFIG, or run in a pod with a \
                     service account): {e}"
                ))
            })?,
        };
        let client = Client::try_from(config)
            .map_err(|e| Error::Unavailable(format!("Kubernetes client: {e}")))?;
        Ok(KubeStore { client })
    }

    pub fn from_client(client: Client) -> KubeStore {
        KubeStore { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API resource a kind is stored as.
    pub fn api_resource(kind: Kind) -> ApiResource {
        match kind {
            Kind::Node => core("Node", "nodes"),
            Kind::WorkloadEndpoint => core("Pod", "pods"),
            Kind::Installation => ApiResource {
                group: OPERATOR_GROUP.into(),
                version: "v1".into(),
                api_version: crate::resources::installation::API_OPERATOR_V1.into(),
                kind: "Installation".into(),
                plural: "installations".into(),
            },
            k => ApiResource {
                group: CRD_GROUP.into(),
                version: CRD_VERSION.into(),
                api_version: format!("{CRD_GROUP}/{CRD_VERSION}"),
                kind: k.as_str().into(),
                plural: k.plural().into(),
            },
        }
    }

    /// The cluster-wide API of a kind (for Pods: across all namespaces).
    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &Self::api_resource(kind))
    }

    fn pods(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            namespace,
            &Self::api_resource(Kind::WorkloadEndpoint),
        )
    }

    /// Sets the Node's `NetworkUnavailable` condition as calico-node does:
    /// False (`CalicoIsUp`) once this node's networking is up, True
    /// (`CalicoIsDown`) when it shuts down.
    pub async fn set_network_unavailable(&self, node: &str, up: bool) -> Result<(), Error> {
        ops::set_network_condition(self, node, up).await
    }
}

fn core(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

#[async_trait]
impl Datastore for KubeStore {
    fn backend(&self) -> &'static str {
        "kubernetes"
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Resource, Error> {
        ops::get(self, kind, name).await
    }

    async fn list(&self, kind: Kind, name_prefix: Option<&str>) -> Result<ListResult, Error> {
        ops::list(self, kind, name_prefix).await
    }

    async fn create(&self, resource: Resource) -> Result<Resource, Error> {
        ops::create(self, resource).await
    }

    async fn update(&self, resource: Resource) -> Result<Resource, Error> {
        ops::update(self, resource).await
    }

    async fn update_status(&self, resource: Resource) -> Result<Resource, Error> {
        ops::update_status(self, resource).await
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        revision: Option<Revision>,
    ) -> Result<Resource, Error> {
        ops::delete(self, kind, name, revision).await
    }

    async fn transact(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, Error> {
        txn::transact(self, writes).await
    }

    async fn watch(&self, kinds: &[Kind], from: Revision) -> Result<WatchStream, Error> {
        watch::watch(self, kinds, from)
    }

    fn follow(&self, kind: Kind) -> Option<FollowStream> {
        Some(watch::follow(self, kind))
    }

    async fn report_node_network(&self, node: &str, up: bool) -> Result<(), Error> {
        self.set_network_unavailable(node, up).await
    }

    fn kube_client(&self) -> Option<Client> {
        Some(self.client.clone())
    }
}
