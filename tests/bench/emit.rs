//! The benches' machine-readable results: when `BENCH_RESULTS` names a
//! file, each printed figure is also appended to it as one JSON line
//! (section, bench, case, metric, unit, value, reference, reference_value,
//! ratio, goal, met), which `tests/bench/report` turns into report.md and
//! its charts. Without `BENCH_RESULTS` nothing is written. Included with
//! `#[path]` by the benches of several crates, hence a file, not a crate.

use serde_json::{json, Value};
use std::io::Write;

/// One figure; `write` appends it.
pub struct Line(serde_json::Map<String, Value>);

pub fn figure(
    section: &str,
    bench: &str,
    case: &str,
    metric: &str,
    unit: &str,
    value: f64,
) -> Line {
    let Value::Object(m) = json!({
        "section": section, "bench": bench, "case": case, "metric": metric, "unit": unit,
        // JSON has no NaN: a figure that could not be measured is null.
        "value": value.is_finite().then_some(value),
        "reference": null, "reference_value": null, "ratio": null, "goal": null, "met": null,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    Line(m)
}

impl Line {
    /// The same-run reference; the ratio is value / reference.
    pub fn reference(mut self, name: &str, value: f64) -> Line {
        let ratio = self.0["value"]
            .as_f64()
            .map(|v| v / value)
            .filter(|r| r.is_finite());
        self.0.insert("reference".into(), name.into());
        self.0.insert(
            "reference_value".into(),
            json!(value.is_finite().then_some(value)),
        );
        self.0.insert("ratio".into(), json!(ratio));
        self
    }

    /// The goal in words, and whether this run met it.
    // Not every bench including this file has a goal to state.
    #[allow(dead_code)]
    pub fn goal(mut self, goal: &str, met: bool) -> Line {
        self.0.insert("goal".into(), goal.into());
        self.0.insert("met".into(), met.into());
        self
    }

    pub fn write(self) {
        let Some(path) = std::env::var_os("BENCH_RESULTS") else {
            return;
        };
        let line = format!("{}\n", Value::Object(self.0));
        // One write of the whole line on an O_APPEND file: lines from
        // benches running at once do not interleave.
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = r {
            eprintln!("BENCH_RESULTS {}: {e}", path.to_string_lossy());
        }
    }
}
