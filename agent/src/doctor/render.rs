//! How findings are printed: one line each, severity first, so `grep
//! ERROR` works, then a summary line per node, like `kubectl`'s terse
//! status lines; `-o json` for scripts and `--all-nodes`.

use super::{Finding, Severity};

/// One line: `ERROR [check] what (evidence: ...) -> fix: ...`.
pub fn line(f: &Finding, with_node: bool) -> String {
    let mut s = format!("{:<7} [{}] ", f.severity.to_string(), f.check);
    if with_node {
        s.push_str(&format!("{}: ", f.node));
    }
    s.push_str(&f.what);
    if !f.evidence.is_empty() {
        s.push_str(&format!(" (evidence: {})", f.evidence));
    }
    if !f.fix.is_empty() {
        s.push_str(&format!(" -> fix: {}", f.fix));
    }
    s
}

/// `node-1: 2 errors, 1 warning` or `node-1: no problems found`.
pub fn summary(node: &str, findings: &[Finding]) -> String {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    if findings.is_empty() {
        return format!("{node}: no problems found");
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{node}: {}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

pub fn render_text(node: &str, findings: &[Finding], with_node: bool) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&line(f, with_node));
        out.push('\n');
    }
    out.push_str(&summary(node, findings));
    out.push('\n');
    out
}

/// `{"node": ..., "findings": [...]}`.
pub fn render_json(node: &str, findings: &[Finding]) -> String {
    let v = serde_json::json!({"node": node, "findings": findings});
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_finding_then_a_summary() {
        let mut f = Finding::error("route", "next hop 10.0.0.0 is a network address")
            .evidence("10.1.0.0/26 via 10.0.0.0 dev eth0 proto static")
            .fix("ip route del 10.1.0.0/26 via 10.0.0.0 dev eth0 proto static");
        f.node = "node-1".into();
        let w = Finding::warning("bgp", "peer 10.0.0.2 not Established");
        let text = render_text("node-1", &[f.clone(), w], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ERROR   [route] next hop"), "{text}");
        assert!(lines[0]
            .ends_with("-> fix: ip route del 10.1.0.0/26 via 10.0.0.0 dev eth0 proto static"));
        assert_eq!(lines[2], "node-1: 1 error, 1 warning");
        assert_eq!(summary("n", &[]), "n: no problems found");
        let json: serde_json::Value = serde_json::from_str(&render_json("node-1", &[f])).unwrap();
        assert_eq!(json["findings"][0]["check"], "route");
        assert_eq!(json["findings"][0]["severity"], "error");
    }
}
