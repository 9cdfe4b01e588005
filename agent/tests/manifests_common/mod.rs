//! What the manifest tests share: splitting a generated file into its
//! documents and finding one by kind and name.

#![allow(dead_code)]

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeSet;
use tabby_agent::manifests::tabby;

/// The documents of a multi-document YAML file, with their text.
pub fn documents(yaml: &str) -> Vec<(String, Value)> {
    yaml.split("\n---\n")
        .map(|d| d.strip_prefix("---\n").unwrap_or(d).to_string())
        .filter(|d| {
            d.lines()
                .any(|l| !l.starts_with('#') && !l.trim().is_empty())
        })
        .map(|d| {
            let v: Value = serde_yaml::from_str(&d).unwrap_or_else(|e| panic!("{e}:\n{d}"));
            (d, v)
        })
        .collect()
}

pub fn tabby_docs() -> Vec<(String, Value)> {
    documents(&tabby::tabby_yaml())
}

pub fn find<T: DeserializeOwned>(kind: &str, name: &str) -> T {
    let (_, v) = tabby_docs()
        .into_iter()
        .find(|(_, v)| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in tabby.yaml"));
    serde_json::from_value(v).unwrap()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}
