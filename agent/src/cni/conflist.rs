//! A whole conflist (`/etc/cni/net.d/*.conflist`), as libcni reads it:
//! `cniVersion`, `name` and `plugins`, each plugin entry handed to its
//! plugin with the list's `cniVersion` and `name` copied in. install-cni
//! checks what it is about to write with this, so a conflist the `tabby`
//! plugin would refuse on every ADD never reaches the host.

use super::config::{self, PLUGIN_TYPE};
use serde_json::Value;

/// Why `text` is not a conflist the runtime and the `tabby` plugin accept.
#[derive(Debug, thiserror::Error)]
pub enum ConflistError {
    #[error("not valid JSON: {}", config::json_error(.0))]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Shape(String),
    #[error("plugins[{index}] (type {PLUGIN_TYPE:?}): {message}")]
    Plugin { index: usize, message: String },
}

/// Parses and validates a conflist; returns it as JSON. Every entry of
/// type `tabby` goes through the plugin's own parser (the one ADD runs);
/// other plugins (portmap, bandwidth, ...) are the runtime's business and
/// only need a `type`.
pub fn validate(text: &str) -> Result<Value, ConflistError> {
    let list: Value = serde_json::from_str(text)?;
    let shape = |m: &str| Err(ConflistError::Shape(m.to_string()));
    let Some(obj) = list.as_object() else {
        return shape("a conflist must be a JSON object");
    };
    let Some(version) = obj.get("cniVersion").and_then(Value::as_str) else {
        return shape("cniVersion is missing or not a string");
    };
    let Some(name) = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return shape("name is missing, empty or not a string");
    };
    let Some(plugins) = obj.get("plugins").and_then(Value::as_array) else {
        return shape("plugins is missing or not a list");
    };
    if plugins.is_empty() {
        return shape("plugins is empty");
    }
    let mut tabby = 0;
    for (index, p) in plugins.iter().enumerate() {
        let Some(entry) = p.as_object() else {
            return Err(ConflistError::Shape(format!(
                "plugins[{index}] is not an object"
            )));
        };
        match entry.get("type").and_then(Value::as_str) {
            None => {
                return Err(ConflistError::Shape(format!(
                    "plugins[{index}] has no type"
                )))
            }
            Some(PLUGIN_TYPE) => {
                tabby += 1;
                let mut rendered = entry.clone();
                rendered.insert("cniVersion".into(), version.into());
                rendered.insert("name".into(), name.into());
                config::parse(Value::Object(rendered), false).map_err(|e| {
                    ConflistError::Plugin {
                        index,
                        message: e.msg,
                    }
                })?;
            }
            Some(_) => {}
        }
    }
    if tabby == 0 {
        return shape(
            "no plugin of type \"tabby\": this conflist would not network pods with Tabby",
        );
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"name":"k8s-pod-network","cniVersion":"1.0.0","plugins":[
        {"type":"tabby","ipam":{"type":"tabby-ipam"}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn a_tabby_conflist_with_other_plugins_is_accepted() {
        let v = validate(GOOD).unwrap();
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }

    #[test]
    fn the_tabby_entry_is_checked_by_the_plugins_own_parser() {
        let bad = GOOD.replace("tabby-ipam", "host-local");
        let e = validate(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("plugins[0]") && e.contains("host-local"),
            "{e}"
        );
        let bad = GOOD.replace(r#""type":"tabby","#, r#""type":"tabby","mtu":7,"#);
        let e = validate(&bad).unwrap_err().to_string();
        assert!(e.contains("mtu 7 is out of range"), "{e}");
    }

    #[test]
    fn broken_json_and_wrong_shapes_are_named() {
        let e = validate("{\"name\": ").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = validate(r#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "plugins is empty");
        let e = validate(r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no plugin of type \"tabby\""), "{e}");
    }
}
