//! Helpers for the `node doctor` tests: inject a fault with `lab fault`,
//! run the doctor on a node as an operator would (`lab exec NODE --
//! tabbyctl node doctor`), run the fix it printed, and clear the fault.
//! Include next to `e2e_common`.

#![allow(dead_code)]

use crate::e2e_common::{wait_until, Lab};
use serde_json::Value;
use std::time::Duration;

pub struct Report {
    /// The doctor's exit status was zero (no error-level finding).
    pub ok: bool,
    pub findings: Vec<Value>,
    /// Everything it printed, for failure messages.
    pub text: String,
}

impl Report {
    pub fn of(&self, check: &str) -> Vec<&Value> {
        self.findings
            .iter()
            .filter(|f| f["check"] == check)
            .collect()
    }

    /// The first finding of `check` whose `what` contains `needle`.
    pub fn find(&self, check: &str, needle: &str) -> Option<&Value> {
        self.of(check)
            .into_iter()
            .find(|f| f["what"].as_str().unwrap_or_default().contains(needle))
    }
}

/// `tabbyctl node doctor -o json ARGS` on `node`.
pub fn doctor(lab: &Lab, node: &str, args: &[&str]) -> Report {
    let mut a = vec![
        "exec", node, "--", "tabbyctl", "node", "doctor", "-o", "json",
    ];
    a.extend_from_slice(args);
    let (ok, out) = lab.lab(&a);
    let start = out.find('{').unwrap_or(0);
    let v: Value = serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("node doctor printed no JSON report:\n{out}"));
    Report {
        ok,
        findings: v["findings"].as_array().cloned().unwrap_or_default(),
        text: out,
    }
}

/// `tabbyctl lab fault ACTION NAME --node NODE`; panics with its output
/// on failure.
pub fn fault(lab: &Lab, action: &str, name: &str, node: &str) {
    let (ok, out) = lab.lab(&["fault", action, name, "--node", node]);
    assert!(
        ok,
        "lab fault {action} {name} --node {node}:\n{out}\n{}",
        lab.logs()
    );
}

/// Runs the doctor until `pred` holds for its report (faults and repairs
/// take a moment to show), returning the last report.
pub fn wait_report(
    lab: &Lab,
    node: &str,
    args: &[&str],
    timeout: Duration,
    mut pred: impl FnMut(&Report) -> bool,
) -> Report {
    let mut last = None;
    wait_until(timeout, || {
        let r = doctor(lab, node, args);
        let done = pred(&r);
        last = Some(r);
        done
    });
    last.expect("the doctor ran at least once")
}

/// Runs a finding's `fix` (a shell command) on `node`, as the operator
/// would paste it.
pub fn run_fix(lab: &Lab, node: &str, finding: &Value) {
    let fix = finding["fix"].as_str().unwrap_or_default();
    let (ok, out) = lab.lab(&["exec", node, "--", "sh", "-c", fix]);
    assert!(ok, "the fix {fix:?} failed on {node}:\n{out}");
}

/// Asserts the doctor finds nothing at all on `node`.
pub fn assert_clean(lab: &Lab, node: &str, args: &[&str]) {
    let r = wait_report(lab, node, args, Duration::from_secs(20), |r| {
        r.findings.is_empty()
    });
    assert!(
        r.findings.is_empty() && r.ok,
        "node doctor on {node} of a healthy lab found:\n{}",
        r.text
    );
}
