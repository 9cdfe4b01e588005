//! The tigera operator's Installation CRD (`installations.operator.tigera.io`,
//! v1, cluster-scoped, with a status subresource), generated from Tabby's
//! [`InstallationSpec`] into `operator-crds.yaml`. Only the part Tabby
//! reads is typed; the rest of the operator's many fields is kept
//! (`x-kubernetes-preserve-unknown-fields`), so an Installation written
//! for the operator is stored as written.

use super::schema::spec_schema;
use crate::datastore::kdd::OPERATOR_GROUP;
use crate::resources::installation::InstallationSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
    CustomResourceDefinitionVersion, CustomResourceSubresourceStatus, CustomResourceSubresources,
    CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

pub fn installation_crd() -> CustomResourceDefinition {
    let root = json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema::<InstallationSpec>(),
            // Written by tabby-node: mtu, computed, conditions.
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
        // The operator reads only `default`; so does tabby-node. A rule on
        // metadata.name must sit at the root, where the API server allows it.
        "x-kubernetes-validations": [{
            "rule": "self.metadata.name == 'default'",
            "message": "the Installation must be named default"
        }],
    });
    let schema: JSONSchemaProps = match serde_json::from_value(root) {
        Ok(s) => s,
        // From our own types: a shape JSONSchemaProps can't hold is a bug
        // the manifests test reports.
        Err(e) => panic!("Installation: the generated schema is not a JSONSchemaProps: {e}"),
    };
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("installations.{OPERATOR_GROUP}")),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: OPERATOR_GROUP.into(),
            names: CustomResourceDefinitionNames {
                kind: "Installation".into(),
                list_kind: Some("InstallationList".into()),
                plural: "installations".into(),
                singular: Some("installation".into()),
                ..Default::default()
            },
            scope: "Cluster".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: "v1".into(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(json!({}))),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

/// `operator-crds.yaml`: the Installation CRD, for clusters where no
/// tigera operator installed it.
pub fn operator_crds_yaml() -> String {
    let mut out = String::from(
        "# The tigera operator's Installation CRD (operator.tigera.io/v1), as far as\n\
         # Tabby reads it. Generated from Tabby's types by `tabbyctl manifests`;\n\
         # do not edit. Skip it where the operator's own CRDs are installed.\n",
    );
    out.push_str("---\n");
    out.push_str(&super::to_yaml(&installation_crd()));
    out
}
