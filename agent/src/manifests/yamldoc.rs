//! Multi-document YAML with comments. k8s-openapi's types cannot carry a
//! comment, so the reasons a manifest gives (why an RBAC rule exists, why
//! a volume is or isn't mounted) are rendered as `#` lines here, above the
//! document or above each rule of a role.

use super::to_yaml;
use serde::Serialize;

/// `# ` + each line.
fn comment_lines(lines: &[&str], indent: &str) -> String {
    lines
        .iter()
        .map(|l| {
            if l.is_empty() {
                format!("{indent}#\n")
            } else {
                format!("{indent}# {l}\n")
            }
        })
        .collect()
}

/// One document: `---`, the comment, the object.
pub fn document<T: Serialize>(comment: &[&str], object: &T) -> String {
    format!("---\n{}{}", comment_lines(comment, ""), to_yaml(object))
}

/// A Role or ClusterRole with `reasons[i]` written above `rules[i]`.
/// serde_yaml writes `rules:` at the top level with each rule as a `- `
/// item at column 0 and nothing else at column 0 until the next key, so a
/// rule starts exactly at those lines.
pub fn role_document<T: Serialize>(comment: &[&str], role: &T, reasons: &[&str]) -> String {
    let yaml = to_yaml(role);
    let mut out = String::new();
    let mut in_rules = false;
    let mut next = reasons.iter();
    for line in yaml.lines() {
        if !line.starts_with([' ', '-']) {
            in_rules = line == "rules:";
        } else if in_rules && line.starts_with("- ") {
            if let Some(why) = next.next() {
                let parts: Vec<&str> = why.lines().collect();
                out.push_str(&comment_lines(&parts, ""));
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    format!("---\n{}{}", comment_lines(comment, ""), out)
}
