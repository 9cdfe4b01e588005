//! A small validator for the subset of OpenAPI v3 that Tabby's CRD schemas
//! use, following the Kubernetes API server's rules (null in a
//! non-nullable field is pruned, unknown fields are pruned, int-or-string,
//! the cidr/ipv4/ipv6 formats). CEL rules (`x-kubernetes-validations`) are
//! not evaluated. It lets tests check that the generated schemas accept
//! what Calico writes and reject what `tabbyctl apply` rejects, without a
//! running API server.

#![allow(dead_code)]

use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Every problem found, each naming its path (`spec.blockSize`).
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |m: String| errors.push(format!("{}: {m}", display(path)));
    if value.is_null() {
        // Nullable accepts null; otherwise the server prunes it, and an
        // absent field is checked by its parent's `required`.
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == Value::Bool(true);
    if int_or_string {
        if !(value.is_string() || is_integer(value)) {
            fail(format!("{value} is neither an integer nor a string"));
            return;
        }
    } else if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => is_integer(value),
            "number" => value.is_number(),
            other => {
                fail(format!("unknown schema type {other:?}"));
                return;
            }
        };
        if !ok {
            fail(format!("{value} is not of type {t}"));
            return;
        }
    }
    let mut scalar_errors = Vec::new();
    scalar(schema, value, &mut scalar_errors);
    for e in scalar_errors {
        fail(e);
    }
    if let Some(branches) = schema["anyOf"].as_array() {
        let any = branches.iter().any(|b| {
            let mut e = Vec::new();
            scalar(b, value, &mut e);
            e.is_empty()
        });
        if !any {
            fail(format!("{value} matches none of anyOf"));
        }
    }
    if let Some(obj) = value.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let name = r.as_str().unwrap_or_default();
            if obj.get(name).is_none_or(Value::is_null) {
                fail(format!("required field {name} is missing"));
            }
        }
        for (k, v) in obj {
            let sub = format!("{path}.{k}");
            if let Some(p) = schema["properties"].get(k) {
                check(p, v, &sub, errors);
            } else if let Some(ap) = schema.get("additionalProperties") {
                check(ap, v, &sub, errors);
            }
            // Anything else is pruned by the server, not rejected.
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            check(items, v, &format!("{path}[{i}]"), errors);
        }
    }
}

/// The value validations that don't recurse: enum, bounds, length,
/// pattern, format. Each applies only to values of its own kind, as in
/// the API server.
fn scalar(schema: &Value, value: &Value, errors: &mut Vec<String>) {
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{value} is not one of {allowed:?}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            errors.push(format!("{value} is below minimum {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            errors.push(format!("{value} is above maximum {}", schema["maximum"]));
        }
    }
    if let Some(s) = value.as_str() {
        if schema["minLength"]
            .as_u64()
            .is_some_and(|m| (s.chars().count() as u64) < m)
        {
            errors.push(format!("{s:?} is shorter than {}", schema["minLength"]));
        }
        if let Some(p) = schema["pattern"].as_str() {
            match regex::Regex::new(p) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => errors.push(format!("{s:?} does not match {p}")),
                Err(e) => errors.push(format!("pattern {p} does not compile: {e}")),
            }
        }
        let format_ok = match schema["format"].as_str() {
            Some("cidr") => s.parse::<ipnet::IpNet>().is_ok(),
            Some("ipv4") => s.parse::<Ipv4Addr>().is_ok(),
            Some("ipv6") => s.parse::<Ipv6Addr>().is_ok(),
            _ => true,
        };
        if !format_ok {
            errors.push(format!("{s:?} is not a {}", schema["format"]));
        }
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

fn display(path: &str) -> &str {
    path.strip_prefix('.')
        .unwrap_or(if path.is_empty() { "." } else { path })
}
