//! The conflist template and its placeholders, as Calico's `install`
//! fills in `calico-config`'s `cni_network_config`. The template's
//! datastore and socket directory are placeholders too (Calico's are
//! literal), so the same built-in default serves a Kubernetes cluster and
//! a node on the embedded store.

use super::InstallError;

pub const NODE_NAME: &str = "__KUBERNETES_NODE_NAME__";
pub const MTU: &str = "__CNI_MTU__";
pub const KUBECONFIG: &str = "__KUBECONFIG_FILEPATH__";
pub const DATASTORE: &str = "__DATASTORE_TYPE__";
pub const RUN_DIR: &str = "__TABBY_RUN_DIR__";

/// The conflist template with `datastore` and `run_dir` as given (the
/// ConfigMap's copy spells them out as Calico's does; the built-in default
/// keeps them placeholders). `portmap`/`bandwidth` are left out: they are
/// not Tabby's binaries and may not be on the host.
pub fn template(datastore: &str, run_dir: &str) -> String {
    format!(
        r#"{{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [
    {{
      "type": "tabby",
      "datastore_type": "{datastore}",
      "nodename": "{NODE_NAME}",
      "mtu": {MTU},
      "run_dir": "{run_dir}",
      "ipam": {{
        "type": "tabby-ipam"
      }},
      "kubernetes": {{
        "kubeconfig": "{KUBECONFIG}"
      }}
    }}
  ]
}}
"#
    )
}

/// What `CNI_NETWORK_CONFIG` unset means.
pub fn builtin() -> String {
    template(DATASTORE, RUN_DIR)
}

/// The values substituted for the placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub node_name: String,
    pub mtu: u32,
    pub kubeconfig: String,
    pub datastore: String,
    pub run_dir: String,
}

/// A JSON string's inside: the template puts every value but the MTU
/// between quotes, so a value with `"` or `\` cannot break out of it.
fn json_inner(s: &str) -> String {
    let quoted = serde_json::Value::from(s).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Fills in every placeholder. A placeholder-shaped word left over
/// (`__FOO__`) is an error: it would be written to the host verbatim.
pub fn render(template: &str, v: &Values) -> Result<String, InstallError> {
    let out = template
        .replace(NODE_NAME, &json_inner(&v.node_name))
        .replace(MTU, &v.mtu.to_string())
        .replace(KUBECONFIG, &json_inner(&v.kubeconfig))
        .replace(DATASTORE, &json_inner(&v.datastore))
        .replace(RUN_DIR, &json_inner(&v.run_dir));
    if let Some(p) = leftover_placeholder(&out) {
        return Err(InstallError::Template(format!(
            "placeholder {p} is not one install-cni fills in ({NODE_NAME}, {MTU}, {KUBECONFIG}, \
             {DATASTORE}, {RUN_DIR})"
        )));
    }
    Ok(out)
}

fn leftover_placeholder(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(i) = rest.find("__") {
        let tail = &rest[i + 2..];
        let word = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .map_or(tail, |end| &tail[..end]);
        if let Some(inner) = word.strip_suffix("__").filter(|w| !w.is_empty()) {
            if inner.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
                return Some(&rest[i..i + 2 + word.len()]);
            }
        }
        rest = &rest[i + 2..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            node_name: "node-1".into(),
            mtu: 1450,
            kubeconfig: "/etc/cni/net.d/tabby-kubeconfig".into(),
            datastore: "kubernetes".into(),
            run_dir: "/var/run/tabby".into(),
        }
    }

    #[test]
    fn every_placeholder_of_the_builtin_template_is_filled_in() {
        let out = render(&builtin(), &values()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let p = &v["plugins"][0];
        assert_eq!(p["nodename"], "node-1");
        assert_eq!(p["mtu"], 1450);
        assert_eq!(p["datastore_type"], "kubernetes");
        assert_eq!(p["run_dir"], "/var/run/tabby");
        assert_eq!(
            p["kubernetes"]["kubeconfig"],
            "/etc/cni/net.d/tabby-kubeconfig"
        );
        assert!(!out.contains("__"), "{out}");
    }

    #[test]
    fn a_value_with_quotes_stays_inside_its_string() {
        let mut v = values();
        v.run_dir = r#"/tmp/a"b\c"#.into();
        let out = render(&builtin(), &v).unwrap();
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["plugins"][0]["run_dir"], r#"/tmp/a"b\c"#);
    }

    #[test]
    fn an_unknown_placeholder_is_refused_by_name() {
        let t = builtin().replace(
            "\"tabby\",",
            "\"tabby\", \"x\": \"__SERVICEACCOUNT_TOKEN__\",",
        );
        let e = render(&t, &values()).unwrap_err().to_string();
        assert!(e.contains("__SERVICEACCOUNT_TOKEN__"), "{e}");
        // Dunder words that are not placeholders are left alone.
        let t = builtin().replace("k8s-pod-network", "k8s__pod__net");
        assert!(render(&t, &values()).is_ok());
    }
}
