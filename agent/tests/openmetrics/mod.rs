//! A strict parser of the OpenMetrics text exposition format (the format
//! prometheus-client writes; OpenMetrics 1.0 §"Text format"), written for
//! the tests from the specification because prometheus-client has no
//! parser: `# TYPE`/`# HELP`/`# UNIT` metadata, samples
//! `name{label="value",...} value [timestamp]` with `\\`, `\"` and `\n`
//! escapes in label values, and the mandatory final `# EOF`. Anything
//! else is an error naming the line, so a malformed exposition fails the
//! test instead of being half-read.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`, ...).
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Every sample named `name` whose labels include `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum over [`Self::matching`]; None when nothing matches.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let v: Vec<f64> = self.matching(name, labels).map(|s| s.value).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `{a="x",b="y"}` (the braces included) → labels, and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let key = &rest[..eq];
        if !is_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break eq + 1 + i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut lines = text.split('\n').enumerate().peekable();
    let mut saw_eof = false;
    while let Some((n, line)) = lines.next() {
        let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if saw_eof {
            if line.is_empty() && lines.peek().is_none() {
                break; // the newline after # EOF
            }
            return Err(at("content after # EOF".into()));
        }
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !is_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            match kind {
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "stateset",
                        "info",
                        "summary",
                        "unknown",
                    ];
                    if !known.contains(&t) {
                        return Err(at(format!("unknown type {t:?}")));
                    }
                    e.types.insert(name.to_string(), t.to_string());
                }
                "HELP" | "UNIT" => {}
                other => return Err(at(format!("unknown metadata {other:?}"))),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?
            .split(' ');
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| at("bad value".into()))?;
        if let Some(ts) = fields.next() {
            ts.parse::<f64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        // Every sample belongs to a declared family (name, or name plus
        // one of the family's suffixes).
        let family_known = e.types.contains_key(name)
            || ["_total", "_count", "_sum", "_bucket", "_created", "_info"]
                .iter()
                .any(|s| {
                    name.strip_suffix(s)
                        .is_some_and(|f| e.types.contains_key(f))
                });
        if !family_known {
            return Err(at(format!("sample {name} of no declared family")));
        }
        e.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    if !saw_eof {
        return Err("no # EOF at the end".into());
    }
    Ok(e)
}

#[test]
fn the_parser_reads_the_spec_and_refuses_what_is_not() {
    let ok = "# TYPE a counter\n# HELP a An \"a\".\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2 1700000000\n# EOF\n";
    let e = parse(ok).unwrap();
    assert_eq!(e.types["a"], "counter");
    assert_eq!(e.samples[0].labels["x"], "q\"\\\n");
    assert_eq!(e.sum("h_count", &[]), Some(2.0));
    for bad in [
        "a 1\n# EOF\n",                        // undeclared family
        "# TYPE a gauge\na 1\n",               // no EOF
        "# TYPE a gauge\na{x=1} 1\n# EOF\n",   // unquoted
        "# TYPE a gauge\na{x=\"1} 1\n# EOF\n", // unterminated
        "# TYPE a gauge\na one\n# EOF\n",
        "# TYPE a gauge\n# EOF\na 1\n",
        "# TYPE a nonsense\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
