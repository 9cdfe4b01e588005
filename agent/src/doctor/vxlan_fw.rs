//! Host firewall rules that drop VXLAN (UDP 4789), read from `nft -j list
//! ruleset`, so that a failed VXLAN probe names the rule to delete rather
//! than a generic "allow UDP 4789".

use serde_json::Value;
use std::time::Duration;
use tabby_felix_lite::model::VXLAN_PORT;

/// A rule that drops or rejects UDP to the VXLAN port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// The rule as nft lists it, roughly: `udp dport 4789 drop`.
    pub text: String,
}

impl Blocker {
    pub fn delete_command(&self) -> String {
        format!(
            "nft delete rule {} {} {} handle {}",
            self.family, self.table, self.chain, self.handle
        )
    }
}

/// An input base chain whose policy drops what no rule accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropPolicy {
    pub family: String,
    pub table: String,
    pub chain: String,
}

/// `nft -j list ruleset`; None when nft is missing or fails (then the fix
/// stays generic).
pub async fn ruleset() -> Option<Value> {
    let mut c = tokio::process::Command::new("nft");
    c.args(["-j", "list", "ruleset"]).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(5), c.output())
        .await
        .ok()?
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Whether an nft port value (a number, a set, a range) covers `port`.
fn covers(v: &Value, port: u16) -> bool {
    let p = u64::from(port);
    match v {
        Value::Number(n) => n.as_u64() == Some(p),
        Value::Object(o) => {
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                let lo = r.first().and_then(Value::as_u64).unwrap_or(u64::MAX);
                let hi = r.get(1).and_then(Value::as_u64).unwrap_or(0);
                return lo <= p && p <= hi;
            }
            o.get("set").is_some_and(|s| covers(s, port))
        }
        Value::Array(a) => a.iter().any(|x| covers(x, port)),
        _ => false,
    }
}

/// A `match` on the UDP (or transport-header) destination port 4789.
fn matches_vxlan_port(e: &Value) -> bool {
    let Some(m) = e.get("match") else {
        return false;
    };
    let left = &m["left"]["payload"];
    let proto = left["protocol"].as_str().unwrap_or_default();
    let op = m["op"].as_str().unwrap_or("==");
    matches!(proto, "udp" | "th")
        && left["field"] == "dport"
        && matches!(op, "==" | "in")
        && covers(&m["right"], VXLAN_PORT)
}

fn is_drop(e: &Value) -> bool {
    e.get("drop").is_some() || e.get("reject").is_some()
}

/// Rules in any table but Tabby's own that drop UDP 4789, and input
/// chains with a drop policy.
pub fn scan(doc: &Value) -> (Vec<Blocker>, Vec<DropPolicy>) {
    let mut blockers = Vec::new();
    let mut policies = Vec::new();
    let items = doc["nftables"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for item in items {
        if let Some(c) = item.get("chain") {
            if c["hook"] == "input" && c["policy"] == "drop" {
                policies.push(DropPolicy {
                    family: c["family"].as_str().unwrap_or_default().into(),
                    table: c["table"].as_str().unwrap_or_default().into(),
                    chain: c["name"].as_str().unwrap_or_default().into(),
                });
            }
        }
        let Some(r) = item.get("rule") else { continue };
        if r["table"] == tabby_felix_lite::nft::TABLE {
            continue;
        }
        let exprs = r["expr"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if exprs.iter().any(matches_vxlan_port) && exprs.iter().any(is_drop) {
            let verdict = if exprs.iter().any(|e| e.get("reject").is_some()) {
                "reject"
            } else {
                "drop"
            };
            blockers.push(Blocker {
                family: r["family"].as_str().unwrap_or_default().into(),
                table: r["table"].as_str().unwrap_or_default().into(),
                chain: r["chain"].as_str().unwrap_or_default().into(),
                handle: r["handle"].as_u64().unwrap_or_default(),
                text: format!("udp dport {VXLAN_PORT} {verdict}"),
            });
        }
    }
    (blockers, policies)
}

/// The fix for UDP 4789 not getting through: delete the rule found, or
/// accept VXLAN in a dropping input chain, or (nothing here) the network's
/// firewall between the node addresses.
pub fn fix(blockers: &[Blocker], policies: &[DropPolicy]) -> String {
    if !blockers.is_empty() {
        return blockers
            .iter()
            .map(Blocker::delete_command)
            .collect::<Vec<_>>()
            .join("; ");
    }
    if let Some(p) = policies.first() {
        return format!(
            "nft insert rule {} {} {} udp dport {VXLAN_PORT} accept",
            p.family, p.table, p.chain
        );
    }
    format!(
        "allow UDP {VXLAN_PORT} between the node addresses in the network's firewall or security group (on the remote node too), e.g. iptables -I INPUT -p udp --dport {VXLAN_PORT} -j ACCEPT"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_drop_rule_and_skips_tabbys() {
        let doc = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"chain": {"family": "inet", "table": "host-firewall", "name": "input",
                       "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "inet", "table": "host-firewall", "chain": "input", "handle": 2,
                      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}},
                               {"drop": null}]}},
            {"rule": {"family": "inet", "table": "host-firewall", "chain": "input", "handle": 3,
                      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"set": [53, {"range": [4000, 5000]}]}}},
                               {"reject": null}]}},
            {"rule": {"family": "inet", "table": "host-firewall", "chain": "input", "handle": 4,
                      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}},
                               {"accept": null}]}},
            {"rule": {"family": "ip", "table": "tabby", "chain": "x", "handle": 5,
                      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}},
                               {"drop": null}]}},
        ]});
        let (b, p) = scan(&doc);
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(p.is_empty());
        assert_eq!(
            b[0].delete_command(),
            "nft delete rule inet host-firewall input handle 2"
        );
        assert_eq!(b[1].text, "udp dport 4789 reject");
        assert_eq!(
            fix(&b[..1], &p),
            "nft delete rule inet host-firewall input handle 2"
        );
    }

    #[test]
    fn drop_policy_gets_an_accept() {
        let doc = json!({"nftables": [
            {"chain": {"family": "inet", "table": "filter", "name": "input",
                       "hook": "input", "policy": "drop"}},
        ]});
        let (b, p) = scan(&doc);
        assert!(b.is_empty());
        assert_eq!(
            fix(&b, &p),
            "nft insert rule inet filter input udp dport 4789 accept"
        );
        assert!(fix(&[], &[]).contains("UDP 4789"));
    }
}
