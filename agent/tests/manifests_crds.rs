//! The CRDs `tabbyctl manifests` generates: the committed
//! `manifests/crds.yaml` is what the types generate, every CRD has
//! Calico's name, group, version and scope, the schemas are structural,
//! they carry `tabbyctl apply`'s validations, and they accept the objects
//! Calico writes.

mod crd_validator;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tabby_agent::manifests::{self, crd, crd_kinds, crds};
use tabby_agent::resources::Kind;

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");

#[test]
fn committed_manifests_are_what_the_types_generate() {
    for f in manifests::files() {
        let path = std::path::Path::new(MANIFESTS).join(f.name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = (f.render)();
        assert!(
            committed == generated,
            "manifests/{} differs from what Tabby's types generate; run \
             `cargo run -p tabby-agent --bin tabbyctl -- manifests` and commit the result",
            f.name
        );
    }
}

/// The openAPIV3Schema of `kind`'s CRD, read back from the rendered YAML
/// (what `kubectl apply` would send).
fn schema(kind: Kind) -> Value {
    let yaml = manifests::crds_yaml();
    let found = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|c| c["spec"]["names"]["kind"] == kind.as_str());
    found
        .map(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("{kind} has no CRD in crds.yaml"))
}

fn spec(kind: Kind) -> Value {
    schema(kind)["properties"]["spec"].clone()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not a list"))
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_crds_are_calicos_kinds_names_group_version_and_scope() {
    let kinds: BTreeSet<&str> = crd_kinds().iter().map(|k| k.as_str()).collect();
    // Node and WorkloadEndpoint are core Nodes and Pods in Calico's
    // Kubernetes datastore, not CRDs.
    let want: BTreeSet<&str> = [
        "IPPool",
        "BGPPeer",
        "BGPConfiguration",
        "IPAMBlock",
        "BlockAffinity",
        "IPAMHandle",
        "IPAMConfig",
        "IPReservation",
    ]
    .into();
    assert_eq!(kinds, want);
    let all: Vec<CustomResourceDefinition> = crds();
    assert_eq!(all.len(), want.len());
    for c in &all {
        let s = &c.spec;
        let plural = &s.names.plural;
        assert_eq!(
            c.metadata.name.as_deref(),
            Some(format!("{plural}.crd.projectcalico.org").as_str())
        );
        assert_eq!(s.group, "crd.projectcalico.org");
        assert_eq!(s.scope, "Cluster", "{plural}");
        assert_eq!(s.versions.len(), 1, "{plural}");
        let v = &s.versions[0];
        assert!(v.name == "v1" && v.served && v.storage, "{plural}");
        // Calico's CRDs declare no short names (they would clash with
        // other projects' `ippool`s); neither do Tabby's.
        assert!(s.names.short_names.is_none(), "{plural}");
        let kind = &s.names.kind;
        assert_eq!(
            s.names.list_kind.as_deref(),
            Some(format!("{kind}List").as_str())
        );
        assert_eq!(
            s.names.singular.as_deref(),
            Some(kind.to_lowercase().as_str())
        );
    }
    let ipam_config = crd(Kind::IpamConfig).unwrap();
    assert_eq!(ipam_config.spec.names.kind, "IPAMConfig");
    assert_eq!(ipam_config.spec.names.plural, "ipamconfigs");
    assert!(crd(Kind::Node).is_none() && crd(Kind::WorkloadEndpoint).is_none());
}

/// Kubernetes' structural-schema rules, as far as these schemas can
/// break them: no references, a type on every node (or int-or-string),
/// and inside anyOf only value validations.
fn assert_structural(v: &Value, path: &str) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{path}: a schema must be an object, got {v}"));
    for banned in [
        "$ref",
        "definitions",
        "$defs",
        "oneOf",
        "allOf",
        "not",
        "const",
    ] {
        assert!(!o.contains_key(banned), "{path}: has {banned}");
    }
    assert!(
        o.keys().all(|k| !k.starts_with("x-tabby")),
        "{path}: a Tabby marker was left in: {v}"
    );
    assert_ne!(o.get("uniqueItems"), Some(&json!(true)), "{path}");
    if o.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        assert!(!o.contains_key("type"), "{path}: int-or-string has a type");
    } else {
        assert!(
            o.get("type").is_some_and(Value::is_string),
            "{path}: no type"
        );
    }
    if let Some(e) = o.get("enum") {
        let t = o["type"].as_str().unwrap_or_default();
        for x in e.as_array().unwrap() {
            let ok = x.is_null() && o.get("nullable") == Some(&json!(true))
                || (t == "string" && x.is_string());
            assert!(ok, "{path}: enum value {x} does not fit type {t}");
        }
    }
    if let Some(f) = o.get("format").and_then(Value::as_str) {
        assert!(
            ["int32", "int64", "cidr", "ipv4", "ipv6"].contains(&f),
            "{path}: format {f} is not one Kubernetes knows"
        );
    }
    for branch in o
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for k in branch.as_object().unwrap().keys() {
            assert!(
                ["format", "pattern", "minimum", "maximum", "enum"].contains(&k.as_str()),
                "{path}.anyOf: {k} is not allowed inside anyOf"
            );
        }
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        assert_eq!(o["type"], "object", "{path}");
        for (k, p) in props {
            assert_structural(p, &format!("{path}.{k}"));
        }
    }
    if let Some(items) = o.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(ap) = o.get("additionalProperties") {
        assert!(
            !o.contains_key("properties"),
            "{path}: properties and additionalProperties"
        );
        assert_structural(ap, &format!("{path}{{}}"));
    }
}

#[test]
fn the_schemas_are_structural() {
    for k in crd_kinds() {
        let s = schema(k);
        assert_structural(&s, k.as_str());
        assert_eq!(s["properties"]["spec"]["type"], "object", "{k}");
        // Only the envelope Calico's CRDs have: no status.
        assert_eq!(
            s["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["apiVersion", "kind", "metadata", "spec"],
            "{k}"
        );
    }
    let yaml = manifests::crds_yaml();
    assert!(yaml.starts_with("# ") && yaml.contains("tabbyctl manifests"));
    assert!(!yaml.contains("$ref") && !yaml.contains("x-tabby"));
    assert_eq!(
        yaml.matches("\nkind: CustomResourceDefinition\n").count(),
        8
    );
}

#[test]
fn ippool_schema_carries_the_pool_validations() {
    let s = spec(Kind::IpPool);
    let p = &s["properties"];
    for mode in ["ipipMode", "vxlanMode"] {
        assert_eq!(
            strings(&p[mode]["enum"]),
            set(&["Always", "CrossSubnet", "Never"]),
            "{mode}"
        );
        // Calico's CRD defaults both on the server; no other field has a
        // default (serde's fill-ins are not API defaults).
        assert_eq!(p[mode]["default"], "Never", "{mode}");
    }
    let defaults: Vec<&String> = p
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.get("default").is_some())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(defaults, ["ipipMode", "vxlanMode"]);
    assert_eq!(p["blockSize"]["minimum"], 20);
    assert_eq!(p["blockSize"]["maximum"], 128);
    assert_eq!(p["cidr"]["format"], "cidr");
    assert_eq!(strings(&s["required"]), set(&["cidr"]));
    assert_eq!(
        strings(&p["allowedUses"]["items"]["enum"]),
        set(&["Workload", "Tunnel", "LoadBalancer"])
    );
    let rules: Vec<&str> = s["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.iter().any(|r| r.contains("116") && r.contains("32")),
        "{rules:?}"
    );
    assert!(rules
        .iter()
        .any(|r| r.contains("ipipMode") && r.contains("vxlanMode")));
}

#[test]
fn ipam_schemas_type_fields_as_calicos_crds_do() {
    let ba = spec(Kind::BlockAffinity);
    // A string in Calico's CRD, for old releases; not Tabby's v3 bool.
    assert_eq!(ba["properties"]["deleted"]["type"], "string");
    assert_eq!(
        strings(&ba["properties"]["deleted"]["enum"]),
        set(&["true", "false"])
    );
    assert_eq!(ba["properties"]["state"]["type"], "string");
    assert_eq!(
        strings(&ba["properties"]["state"]["enum"]),
        set(&["pending", "confirmed", "pendingDeletion"])
    );
    assert_eq!(
        strings(&ba["required"]),
        set(&["cidr", "deleted", "node", "state"])
    );

    let block = spec(Kind::IpamBlock);
    let bp = &block["properties"];
    assert_eq!(bp["deleted"]["type"], "boolean");
    assert_eq!(bp["allocations"]["items"]["type"], "integer");
    assert_eq!(bp["allocations"]["items"]["nullable"], true);
    assert_eq!(bp["sequenceNumber"]["format"], "int64");
    assert_eq!(
        bp["attributes"]["items"]["properties"]["handle_id"]["type"],
        "string"
    );
    assert_eq!(
        strings(&block["required"]),
        set(&[
            "allocations",
            "attributes",
            "cidr",
            "sequenceNumber",
            "strictAffinity",
            "unallocated"
        ])
    );

    let handle = spec(Kind::IpamHandle);
    assert_eq!(strings(&handle["required"]), set(&["block", "handleID"]));
    assert_eq!(
        handle["properties"]["block"]["additionalProperties"]["type"],
        "integer"
    );

    let config = spec(Kind::IpamConfig);
    assert_eq!(
        strings(&config["required"]),
        set(&["autoAllocateBlocks", "strictAffinity"])
    );
    assert_eq!(
        config["properties"]["maxBlocksPerHost"]["maximum"],
        2147483647
    );
}

#[test]
fn bgp_schemas_carry_the_bgp_validations() {
    let peer = spec(Kind::BgpPeer);
    let pp = &peer["properties"];
    let asn = &pp["asNumber"];
    assert_eq!(asn["x-kubernetes-int-or-string"], true);
    assert_eq!(asn["minimum"], 1);
    assert_eq!(asn["maximum"], 4294967295u64);
    assert_eq!(
        strings(&pp["sourceAddress"]["enum"]),
        set(&["UseNodeIP", "None"])
    );
    assert_eq!(
        pp["maxRestartTime"]["pattern"],
        tabby_agent::resources::duration::GO_DURATION_PATTERN
    );
    assert!(
        pp.get("numAllowedLocalASNumbers").is_some(),
        "Calico's spelling"
    );
    assert_eq!(strings(&pp["password"]["required"]), set(&["secretKeyRef"]));

    let config = spec(Kind::BgpConfiguration);
    let cp = &config["properties"];
    assert_eq!(cp["listenPort"]["minimum"], 1);
    assert_eq!(cp["listenPort"]["maximum"], 65535);
    assert_eq!(strings(&cp["bindMode"]["enum"]), set(&["None", "NodeIP"]));
    assert!(cp["communities"]["items"]["properties"]["value"]["pattern"].is_string());
    assert_eq!(cp["asNumber"], *asn);
}

#[path = "manifests_crds/calico_written.rs"]
mod calico_written;

/// operator-crds.yaml: the operator's Installation CRD, structural, with a
/// status subresource, keeping the operator's fields Tabby does not model
/// and refusing the values `tabbyctl apply` refuses where OpenAPI can.
#[test]
fn the_installation_crd_is_the_operators() {
    use tabby_agent::manifests::installation_crd::{installation_crd, operator_crds_yaml};
    let c = installation_crd();
    assert_eq!(
        c.metadata.name.as_deref(),
        Some("installations.operator.tigera.io")
    );
    assert_eq!(c.spec.group, "operator.tigera.io");
    assert_eq!(c.spec.scope, "Cluster");
    let v = &c.spec.versions[0];
    assert!(v.name == "v1" && v.served && v.storage);
    assert!(v.subresources.as_ref().is_some_and(|s| s.status.is_some()));
    let yaml = operator_crds_yaml();
    let doc: Value = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|d| !d.is_null())
        .unwrap();
    let schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    assert_structural(&schema, "Installation");
    let net = &schema["properties"]["spec"]["properties"]["calicoNetwork"];
    assert_eq!(net["x-kubernetes-preserve-unknown-fields"], true);
    let good = json!({"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"variant": "Calico", "calicoNetwork": {"linuxDataplane": "Iptables", "mtu": 1400,
            "ipPools": [{"cidr": "10.244.0.0/16", "encapsulation": "VXLANCrossSubnet", "natOutgoing": "Enabled"}]}}});
    assert_eq!(
        crd_validator::validate(&schema, &good),
        Vec::<String>::new()
    );
    let bad = json!({"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {"mtu": 10, "ipPools": [{"cidr": "nope", "encapsulation": "GRE"}]}}});
    let errors = crd_validator::validate(&schema, &bad).join("\n");
    for field in [
        "calicoNetwork.mtu",
        "ipPools[0].cidr",
        "ipPools[0].encapsulation",
    ] {
        assert!(errors.contains(field), "{field} not refused:\n{errors}");
    }
}
