//! Read-only views of the host firewall rules that break what Tabby needs,
//! for `tabbyctl node doctor`: nftables rules that drop or reject a TCP
//! port (BGP's 179), and iptables-legacy's FORWARD chain, which nft can
//! neither see nor change (so Tabby's forward accepts never reach it).
//!
//! Reading only: nothing here writes a rule. The commands are children of
//! the calling thread, so they read that thread's network namespace.

use serde_json::Value;
use std::io::ErrorKind;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("`{cmd}` printed what cannot be read: {why}")]
    Parse { cmd: String, why: String },
}

/// Runs `prog args`; `Ok(None)` when the program is not installed.
fn output(prog: &str, args: &[&str]) -> Result<Option<String>, FirewallError> {
    let cmd = format!("{prog} {}", args.join(" "));
    let out = match Command::new(prog).args(args).stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FirewallError::Spawn { cmd, source }),
    };
    if !out.status.success() {
        return Err(FirewallError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// `nft -j list ruleset` as JSON; `Ok(None)` without the nft command.
pub fn nft_ruleset() -> Result<Option<Value>, FirewallError> {
    let Some(text) = output("nft", &["-j", "list", "ruleset"])? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| FirewallError::Parse {
            cmd: "nft -j list ruleset".into(),
            why: e.to_string(),
        })
}

/// An nftables rule (or a chain's drop policy) that stops TCP to a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBlock {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// `input` or `output`.
    pub hook: String,
    /// The rule's handle; None when it is the chain's `policy drop` with
    /// no rule accepting the port.
    pub handle: Option<u64>,
    /// `drop` or `reject`.
    pub verdict: String,
    /// The rule as `nft list` prints it (close enough to paste).
    pub text: String,
}

impl PortBlock {
    /// `inet filter input`.
    pub fn chain_label(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.chain)
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Whether a match's right-hand side (a number, `{"set": [...]}`, or
/// `{"range": [a, b]}`) includes `port`.
fn includes_port(right: &Value, port: u16) -> bool {
    let p = u64::from(port);
    if let Some(n) = right.as_u64() {
        return n == p;
    }
    if let Some(r) = right.get("range").and_then(Value::as_array) {
        return matches!((r.first().and_then(Value::as_u64), r.get(1).and_then(Value::as_u64)),
            (Some(a), Some(b)) if a <= p && p <= b);
    }
    if let Some(items) = right.get("set").and_then(Value::as_array) {
        return items.iter().any(|i| includes_port(i, port));
    }
    false
}

/// How a rule's matches relate to TCP `port`: Some(true) if it matches
/// the port in `field` (`dport`/`sport`) with `==`, Some(false) if it has
/// port matches that exclude it, None if it does not look at ports.
fn port_match(expr: &[Value], field: &str, port: u16) -> Option<bool> {
    let mut seen = None;
    for e in expr {
        let Some(m) = e.get("match") else { continue };
        let Some(p) = m.get("left").and_then(|l| l.get("payload")) else {
            continue;
        };
        if s(p, "protocol") != "tcp" || s(p, "field") != field {
            continue;
        }
        let hit = includes_port(m.get("right").unwrap_or(&Value::Null), port);
        let hit = match s(m, "op") {
            "==" | "in" => hit,
            "!=" => !hit,
            _ => false,
        };
        if !hit {
            return Some(false);
        }
        seen = Some(true);
    }
    seen
}

fn verdict(expr: &[Value]) -> Option<&'static str> {
    match expr.last()? {
        v if v.get("drop").is_some() => Some("drop"),
        v if v.get("reject").is_some() => Some("reject"),
        v if v.get("accept").is_some() => Some("accept"),
        _ => None,
    }
}

/// A right-hand side as nft prints it.
fn value_text(v: &Value) -> String {
    if let Some(r) = v.get("range").and_then(Value::as_array) {
        let parts: Vec<String> = r.iter().map(value_text).collect();
        return parts.join("-");
    }
    if let Some(items) = v.get("set").and_then(Value::as_array) {
        let parts: Vec<String> = items.iter().map(value_text).collect();
        return format!("{{ {} }}", parts.join(", "));
    }
    if let Some(p) = v.get("prefix") {
        return format!("{}/{}", value_text(&p["addr"]), value_text(&p["len"]));
    }
    if let Some(a) = v.as_array() {
        let parts: Vec<String> = a.iter().map(value_text).collect();
        return parts.join(",");
    }
    match v {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

/// One statement as nft prints it; unknown statements as their JSON.
fn statement_text(e: &Value) -> String {
    if let Some(m) = e.get("match") {
        let left = &m["left"];
        let l = if let Some(p) = left.get("payload") {
            format!("{} {}", s(p, "protocol"), s(p, "field"))
        } else if let Some(k) = left.get("meta") {
            format!("meta {}", s(k, "key"))
        } else if let Some(k) = left.get("ct") {
            format!("ct {}", s(k, "key"))
        } else {
            left.to_string()
        };
        let op = match s(m, "op") {
            "==" | "in" => String::new(),
            other => format!("{other} "),
        };
        return format!("{l} {op}{}", value_text(&m["right"]));
    }
    if let Some(r) = e.get("reject") {
        return match r.get("type").and_then(Value::as_str) {
            Some("tcp reset") => "reject with tcp reset".into(),
            _ => "reject".into(),
        };
    }
    if let Some(obj) = e.as_object() {
        if let Some((k, v)) = obj.iter().next() {
            if v.is_null() {
                return k.clone();
            }
        }
    }
    e.to_string()
}

/// A rule's statements as one line of `nft list`.
pub fn rule_text(expr: &[Value]) -> String {
    expr.iter()
        .map(statement_text)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rules in `ip`/`inet` base chains on the input and output hooks that
/// drop or reject TCP to `port` (input: `tcp dport`; output: `tcp dport`
/// for our own connections out), and input chains whose policy drops while
/// no rule in them accepts the port.
pub fn tcp_port_blocks(doc: &Value, port: u16) -> Vec<PortBlock> {
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // (family, table, name) -> (hook, policy)
    let mut chains: Vec<(String, String, String, String, String)> = Vec::new();
    let mut out = Vec::new();
    let mut accepted: Vec<(String, String, String)> = Vec::new();
    for item in &items {
        if let Some(c) = item.get("chain") {
            let hook = s(c, "hook");
            if matches!(hook, "input" | "output") && matches!(s(c, "family"), "ip" | "inet") {
                chains.push((
                    s(c, "family").into(),
                    s(c, "table").into(),
                    s(c, "name").into(),
                    hook.into(),
                    s(c, "policy").into(),
                ));
            }
        } else if let Some(r) = item.get("rule") {
            let key = (s(r, "family"), s(r, "table"), s(r, "chain"));
            let Some(chain) = chains
                .iter()
                .find(|c| (c.0.as_str(), c.1.as_str(), c.2.as_str()) == key)
            else {
                continue;
            };
            let expr = r
                .get("expr")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ports = port_match(&expr, "dport", port);
            let hits = ports == Some(true);
            // An accept that looks at no port (`ip saddr 10.0.0.0/8
            // accept`) may let 179 through: not blamed. One on conntrack
            // state (`ct state established accept`) never admits a SYN.
            let broad = ports.is_none()
                && !expr
                    .iter()
                    .any(|e| e.get("match").and_then(|m| m["left"].get("ct")).is_some());
            match verdict(&expr) {
                Some(v @ ("drop" | "reject")) if hits => out.push(PortBlock {
                    family: chain.0.clone(),
                    table: chain.1.clone(),
                    chain: chain.2.clone(),
                    hook: chain.3.clone(),
                    handle: r.get("handle").and_then(Value::as_u64),
                    verdict: v.into(),
                    text: rule_text(&expr),
                }),
                Some("accept") if hits || broad => {
                    accepted.push((chain.0.clone(), chain.1.clone(), chain.2.clone()))
                }
                _ => {}
            }
        }
    }
    for (family, table, name, hook, policy) in chains {
        let key = (family.clone(), table.clone(), name.clone());
        if hook == "input" && policy == "drop" && !accepted.contains(&key) {
            out.push(PortBlock {
                family,
                table,
                chain: name,
                hook,
                handle: None,
                verdict: "drop".into(),
                text: "policy drop".into(),
            });
        }
    }
    out
}

/// iptables-legacy's FORWARD chain as `iptables-legacy -S FORWARD` prints
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyChain {
    /// `ACCEPT` or `DROP`.
    pub policy: String,
    /// The `-A FORWARD ...` lines, in order.
    pub rules: Vec<String>,
}

/// `iptables-legacy -S FORWARD`; `Ok(None)` when this namespace has no
/// legacy filter table (then it holds no legacy rules) or iptables-legacy
/// is not installed. The table is looked for first in
/// `/proc/net/ip_tables_names` because listing it would create it, and a
/// legacy table's mere presence makes iptables-nft warn on every call.
pub fn iptables_legacy_forward() -> Result<Option<LegacyChain>, FirewallError> {
    let tables = std::fs::read_to_string("/proc/net/ip_tables_names").unwrap_or_default();
    if !tables.lines().any(|t| t.trim() == "filter") {
        return Ok(None);
    }
    Ok(output("iptables-legacy", &["-S", "FORWARD"])?.map(|t| parse_legacy(&t)))
}

pub fn parse_legacy(text: &str) -> LegacyChain {
    let mut c = LegacyChain::default();
    for line in text.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("-P FORWARD ") {
            c.policy = p.trim().to_string();
        } else if line.starts_with("-A FORWARD") {
            c.rules.push(line.to_string());
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        // As nft 1.0.6 prints `tcp dport 179 drop`, `tcp dport {22,179}
        // reject`, a range with reject with tcp reset, and an unrelated rule.
        json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "filter", "handle": 1}},
            {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                       "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2,
                       "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 3,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 179]}}}, {"reject": {"type": "icmpx", "expr": "port-unreachable"}}]}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}},
                         {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [170, 180]}}}, {"reject": {"type": "tcp reset"}}]}},
            {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 7,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 8,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}}, {"drop": null}]}}
        ]})
    }

    #[test]
    fn rules_dropping_the_port_are_found_with_their_handles_and_text() {
        let b = tcp_port_blocks(&doc(), 179);
        let handles: Vec<Option<u64>> = b.iter().map(|b| b.handle).collect();
        // Not 7 (port 22) nor 8 (a forward chain).
        assert_eq!(handles, [Some(3), Some(5), Some(6)]);
        assert_eq!(b[0].text, "tcp dport 179 drop");
        assert_eq!(b[0].chain_label(), "inet filter input");
        assert_eq!(b[1].text, "tcp dport { 22, 179 } reject");
        assert_eq!(b[1].verdict, "reject");
        assert_eq!(
            b[2].text,
            "ip saddr 10.0.0.0/8 tcp dport 170-180 reject with tcp reset"
        );
        assert!(tcp_port_blocks(&doc(), 80).is_empty());
    }

    #[test]
    fn a_drop_policy_counts_unless_a_rule_accepts_the_port() {
        let mut d = json!({"nftables": [
            {"chain": {"family": "ip", "table": "fw", "name": "in", "hook": "input", "policy": "drop"}},
            {"rule": {"family": "ip", "table": "fw", "chain": "in", "handle": 2,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}
        ]});
        let ct = json!({"rule": {"family": "ip", "table": "fw", "chain": "in", "handle": 4,
            "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}});
        d["nftables"].as_array_mut().unwrap().push(ct);
        let b = tcp_port_blocks(&d, 179);
        assert_eq!(
            b.len(),
            1,
            "neither port 22 nor established admits a SYN to 179"
        );
        assert_eq!((b[0].handle, b[0].text.as_str()), (None, "policy drop"));
        d["nftables"].as_array_mut().unwrap().push(json!(
            {"rule": {"family": "ip", "table": "fw", "chain": "in", "handle": 3,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}}, {"accept": null}]}}));
        assert!(tcp_port_blocks(&d, 179).is_empty());
        // A source-address accept may admit it: not blamed either.
        d["nftables"].as_array_mut().unwrap().pop();
        d["nftables"].as_array_mut().unwrap().push(json!(
            {"rule": {"family": "ip", "table": "fw", "chain": "in", "handle": 5,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "172.31.0.0", "len": 16}}}}, {"accept": null}]}}));
        assert!(tcp_port_blocks(&d, 179).is_empty());
    }

    #[test]
    fn negated_port_matches_do_not_count() {
        let expr = vec![
            json!({"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 179}}),
            json!({"drop": null}),
        ];
        assert_eq!(port_match(&expr, "dport", 179), Some(false));
        assert_eq!(port_match(&expr, "dport", 22), Some(true));
        assert_eq!(rule_text(&expr), "tcp dport != 179 drop");
    }

    #[test]
    fn legacy_forward_chain_is_parsed() {
        let c = parse_legacy(
            "-P FORWARD DROP\n-A FORWARD -s 172.30.0.0/16 -j ACCEPT\n-A FORWARD -j DOCKER-USER\n",
        );
        assert_eq!(c.policy, "DROP");
        assert_eq!(
            c.rules,
            [
                "-A FORWARD -s 172.30.0.0/16 -j ACCEPT",
                "-A FORWARD -j DOCKER-USER"
            ]
        );
        assert_eq!(parse_legacy("").policy, "");
    }
}
