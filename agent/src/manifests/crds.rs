//! Calico's CustomResourceDefinitions (`crd.projectcalico.org/v1`) for the
//! kinds Tabby stores as CRs in the Kubernetes datastore, generated from
//! the spec types in [`crate::resources`].
//!
//! Names, scope and version are Calico's, so a cluster Calico ran on keeps
//! its objects; the schemas are Tabby's types, so the API server rejects
//! what `tabbyctl apply` would.

use super::schema::spec_schema;
use crate::resources::bgp::{BgpConfigurationSpec, BgpPeerSpec};
use crate::resources::ipam::{BlockAffinitySpec, IpamBlockSpec, IpamConfigSpec, IpamHandleSpec};
use crate::resources::ippool::IpPoolSpec;
use crate::resources::reservation::IpReservationSpec;
use crate::resources::Kind;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
    CustomResourceDefinitionVersion, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

/// The CRD API group.
pub const GROUP: &str = "crd.projectcalico.org";
/// The one version each CRD serves and stores.
pub const VERSION: &str = "v1";

/// The spec schema of a kind Calico stores as a CRD, or None for the kinds
/// the Kubernetes datastore maps onto core objects instead (Node is the
/// core v1 Node, a WorkloadEndpoint is derived from its Pod).
fn spec_schema_of(kind: Kind) -> Option<Value> {
    Some(match kind {
        Kind::IpPool => spec_schema::<IpPoolSpec>(),
        Kind::BgpPeer => spec_schema::<BgpPeerSpec>(),
        Kind::BgpConfiguration => spec_schema::<BgpConfigurationSpec>(),
        Kind::IpamBlock => spec_schema::<IpamBlockSpec>(),
        Kind::BlockAffinity => spec_schema::<BlockAffinitySpec>(),
        Kind::IpamHandle => spec_schema::<IpamHandleSpec>(),
        Kind::IpamConfig => spec_schema::<IpamConfigSpec>(),
        Kind::IpReservation => spec_schema::<IpReservationSpec>(),
        // The Installation is the operator's CRD: `installation_crd.rs`.
        Kind::Node | Kind::WorkloadEndpoint | Kind::Installation => return None,
    })
}

/// The kinds that are CRDs, in [`Kind::ALL`] order.
pub fn crd_kinds() -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| spec_schema_of(*k).is_some())
        .collect()
}

/// Every CRD, in [`Kind::ALL`] order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Kind::ALL.into_iter().filter_map(crd).collect()
}

/// The CRD of `kind`, or None if it is not stored as one.
pub fn crd(kind: Kind) -> Option<CustomResourceDefinition> {
    let spec = spec_schema_of(kind)?;
    // The envelope as Calico's CRDs declare it: metadata is the API
    // server's own, and these kinds have no status.
    let root = json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    });
    let schema: JSONSchemaProps = match serde_json::from_value(root) {
        Ok(s) => s,
        // The schema comes from our own types; a shape JSONSchemaProps
        // can't hold is a bug that the manifests test reports.
        Err(e) => panic!("{kind}: the generated schema is not a JSONSchemaProps: {e}"),
    };
    let plural = kind.plural();
    Some(CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{plural}.{GROUP}")),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.into(),
            names: CustomResourceDefinitionNames {
                kind: kind.as_str().into(),
                list_kind: Some(format!("{}List", kind.as_str())),
                plural: plural.into(),
                singular: Some(kind.as_str().to_ascii_lowercase()),
                ..Default::default()
            },
            // Calico's namespaced CRDs (network policies and sets) are
            // not kinds Tabby stores.
            scope: "Cluster".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.into(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    })
}

/// The CRDs as one multi-document YAML file, `crds.yaml`.
pub fn crds_yaml() -> String {
    let mut out = String::from(
        "# Calico's CRDs (crd.projectcalico.org/v1) for the kinds Tabby stores in the\n\
         # Kubernetes datastore. Generated from Tabby's resource types by\n\
         # `tabbyctl manifests`; do not edit.\n",
    );
    for c in crds() {
        out.push_str("---\n");
        out.push_str(&super::to_yaml(&c));
    }
    out
}
