//! Multi-document YAML (or JSON) to typed resources, with errors that name
//! the source, the document, the resource and the field.

use super::installation::API_OPERATOR_V1;
use super::limits::{shorten, too_deep, MAX_INPUT_BYTES, MAX_NESTING, MAX_RESOURCES};
use super::{Kind, Object, Resource, API_CRD_V1, API_V3};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;

/// A resource read from a file, with the 1-based document it came from.
#[derive(Clone, Debug)]
pub struct ParsedDocument {
    pub document: usize,
    pub resource: Resource,
}

/// Why a document could not be read or validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub source: String,
    pub document: usize,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Document 0: the input as a whole (too large, too many resources).
        if self.document == 0 {
            return write!(f, "{}: {}", self.source, self.message);
        }
        write!(f, "{}: document {}", self.source, self.document)?;
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) if !n.is_empty() => write!(f, " ({k} {:?})", shorten(n))?,
            (Some(k), _) => write!(f, " ({k})")?,
            _ => {}
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ParseError {}

/// A field-level problem before the source and document are known.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldProblem {
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Reads every document of `text`. `source` names the file in errors.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<ParsedDocument>, Vec<ParseError>> {
    let (docs, errors) = parse_documents_lenient(source, text);
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors)
    }
}

/// Like [`parse_documents`], but also returns the documents that did parse,
/// so a caller can validate them and report every problem in one run.
pub fn parse_documents_lenient(source: &str, text: &str) -> (Vec<ParsedDocument>, Vec<ParseError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let whole = |document: usize, message: String| ParseError {
        source: source.to_string(),
        document,
        kind: None,
        name: None,
        field: None,
        message,
    };
    if text.len() > MAX_INPUT_BYTES {
        errors.push(whole(
            0,
            // The reader stops one byte past the limit, so the size itself
            // is not known here.
            format!(
                "larger than the limit of one input ({MAX_INPUT_BYTES} bytes, 64 MiB); split it into several files"
            ),
        ));
        return (out, errors);
    }
    // Checked before serde_yaml reads the documents: its scanner takes
    // time quadratic in the depth.
    // serde_yaml only sees the documents before a too deep one.
    let deep = too_deep(text);
    let readable = deep.map_or(text, |d| text.get(..d.start).unwrap_or(""));
    for (i, doc) in serde_yaml::Deserializer::from_str(readable).enumerate() {
        let document = i + 1;
        if out.len() + errors.len() >= MAX_RESOURCES {
            errors.push(whole(0, too_many()));
            break;
        }
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                errors.push(ParseError {
                    source: source.to_string(),
                    document,
                    kind: None,
                    name: None,
                    field: None,
                    message: format!("not valid YAML: {e}"),
                });
                // The YAML stream is broken; later documents can't be trusted.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let kind = str_field(&value, "kind");
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let err = |p: FieldProblem, kind: Option<String>, name: Option<String>| ParseError {
            source: source.to_string(),
            document,
            kind,
            name,
            field: p.field,
            message: p.message,
        };
        // calicoctl's `get -o yaml` of many resources writes a `<Kind>List`;
        // reading it back must work for get/apply to round-trip.
        if let Some(list_kind) = kind.as_deref().filter(|k| k.ends_with("List")) {
            let list_kind = list_kind.to_string();
            let items = match value {
                serde_yaml::Value::Mapping(mut m) => m.remove("items"),
                _ => None,
            };
            let Some(serde_yaml::Value::Sequence(items)) = items else {
                errors.push(err(
                    FieldProblem {
                        field: Some("items".into()),
                        message: format!("a {list_kind} needs an items list"),
                    },
                    kind.clone(),
                    None,
                ));
                continue;
            };
            if out.len() + items.len() > MAX_RESOURCES {
                errors.push(whole(0, too_many()));
                break;
            }
            // Each item is moved out of the list, not copied: the parsed
            // tree is the largest thing an apply holds.
            for (j, item) in items.into_iter().enumerate() {
                let ik = str_field(&item, "kind");
                let iname = item
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_string);
                match resource_from_value(item) {
                    Ok(r) => out.push(ParsedDocument {
                        document,
                        resource: r,
                    }),
                    Err(mut p) => {
                        p.field = Some(match p.field {
                            Some(f) => format!("items[{j}].{f}"),
                            None => format!("items[{j}]"),
                        });
                        errors.push(err(p, ik, iname));
                    }
                }
            }
            continue;
        }
        match resource_from_value(value) {
            Ok(r) => out.push(ParsedDocument {
                document,
                resource: r,
            }),
            Err(p) => errors.push(err(p, kind, name)),
        }
    }
    if let Some(d) = deep {
        errors.push(whole(
            d.document,
            format!(
                "nested deeper than {MAX_NESTING} levels (at line {}); no resource is",
                d.line
            ),
        ));
    }
    (out, errors)
}

fn too_many() -> String {
    format!(
        "more than {MAX_RESOURCES} resources in one input; split it into several files \
         (each is applied all-or-nothing on its own)"
    )
}

fn str_field(v: &serde_yaml::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|k| k.as_str()).map(str::to_string)
}

/// Reads one resource from a parsed document.
pub(crate) fn resource_from_value(value: serde_yaml::Value) -> Result<Resource, FieldProblem> {
    if !value.is_mapping() {
        return Err(FieldProblem {
            field: None,
            message: "expected a resource (a mapping with apiVersion, kind, metadata, spec)".into(),
        });
    }
    let api = str_field(&value, "apiVersion").ok_or_else(|| FieldProblem {
        field: Some("apiVersion".into()),
        message: format!("required (expected {API_V3} or {API_CRD_V1})"),
    })?;
    let kind_s = str_field(&value, "kind").ok_or_else(|| FieldProblem {
        field: Some("kind".into()),
        message: "required".into(),
    })?;
    let kind = Kind::from_kind_field(&kind_s).ok_or_else(|| FieldProblem {
        field: Some("kind".into()),
        message: format!(
            "unknown kind {kind_s:?} (expected one of {})",
            Kind::ALL.map(|k| k.as_str()).join(", ")
        ),
    })?;
    // The Installation is the operator's kind, in the operator's group
    // only; Calico's kinds come in calicoctl's or the CRDs' version.
    if kind == Kind::Installation {
        if api != API_OPERATOR_V1 {
            return Err(FieldProblem {
                field: Some("apiVersion".into()),
                message: format!("{api:?}: an Installation is {API_OPERATOR_V1}"),
            });
        }
    } else if api != API_V3 && api != API_CRD_V1 {
        return Err(FieldProblem {
            field: Some("apiVersion".into()),
            message: format!("unknown apiVersion {api:?} (expected {API_V3} or {API_CRD_V1})"),
        });
    }
    let mut r = match kind {
        Kind::IpPool => Resource::IpPool(typed(value)?),
        Kind::BgpPeer => Resource::BgpPeer(typed(value)?),
        Kind::BgpConfiguration => Resource::BgpConfiguration(typed(value)?),
        Kind::Node => Resource::Node(typed(value)?),
        Kind::IpamBlock => Resource::IpamBlock(typed(value)?),
        Kind::BlockAffinity => Resource::BlockAffinity(typed(value)?),
        Kind::IpamHandle => Resource::IpamHandle(typed(value)?),
        Kind::IpamConfig => Resource::IpamConfig(typed(value)?),
        Kind::WorkloadEndpoint => Resource::WorkloadEndpoint(typed(value)?),
        Kind::IpReservation => Resource::IpReservation(typed(value)?),
        Kind::Installation => Resource::Installation(typed(value)?),
    };
    // One canonical kind spelling inside Tabby, whatever the file said.
    r.canonicalize_kind();
    Ok(r)
}

fn typed<S: DeserializeOwned + Default>(
    value: serde_yaml::Value,
) -> Result<Object<S>, FieldProblem> {
    serde_path_to_error::deserialize::<_, Object<S>>(value).map_err(|e| {
        let path = e.path().to_string();
        FieldProblem {
            field: (path != ".").then_some(path),
            message: e.into_inner().to_string(),
        }
    })
}
