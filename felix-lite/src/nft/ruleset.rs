//! Reading `nft -j list ruleset` into what reconciliation compares, and
//! building the JSON commands it sends. Address lists are compared as merged
//! ranges because nft auto-merges anonymous interval sets (10.1/16 and
//! 10.2/16 read back as `10.1.0.0-10.2.255.255`).

use ipnet::Ipv4Net;
use serde_json::{json, Value};
use std::net::Ipv4Addr;

pub const TABLE: &str = "tabby";
pub const FAMILY: &str = "ip";
pub const SET_ALL: &str = "all-pools";
pub const SET_MASQ: &str = "masq-pools";
pub const CHAIN_NAT: &str = "nat-outgoing";
/// Comment on every rule Tabby places in a chain it does not own.
pub const FORWARD_TAG: &str = "tabby:forward";
pub const NAT_TAG: &str = "tabby:nat-outgoing";
/// Tables whose owner rewrites them wholesale and whose forward rejects
/// are service semantics, not a host firewall: kube-proxy's nftables mode
/// rejects traffic to services without endpoints in its forward chain, and
/// an accept above that would turn a fast reject into a timeout.
pub const SKIP_TABLES: &[&str] = &["kube-proxy"];

/// Inclusive IPv4 ranges, sorted, with overlapping and adjacent ones merged.
pub type Ranges = Vec<(u32, u32)>;

pub fn ranges_of(nets: impl IntoIterator<Item = Ipv4Net>) -> Ranges {
    let mut v: Vec<(u32, u32)> = nets
        .into_iter()
        .map(|n| (u32::from(n.network()), u32::from(n.broadcast())))
        .collect();
    merge(&mut v);
    v
}

fn merge(v: &mut Ranges) {
    v.sort_unstable();
    let mut out: Ranges = Vec::with_capacity(v.len());
    for &(s, e) in v.iter() {
        match out.last_mut() {
            Some(last) if u64::from(s) <= u64::from(last.1) + 1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *v = out;
}

/// One element as nft prints it: `"10.0.0.1"`, `{"prefix":…}`, `{"range":[…]}`.
fn element_range(v: &Value) -> Option<(u32, u32)> {
    if let Some(s) = v.as_str() {
        let a: Ipv4Addr = s.parse().ok()?;
        return Some((a.into(), a.into()));
    }
    if let Some(p) = v.get("prefix") {
        let addr: Ipv4Addr = p.get("addr")?.as_str()?.parse().ok()?;
        let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
        let n = Ipv4Net::new(addr, len).ok()?;
        return Some((n.network().into(), n.broadcast().into()));
    }
    if let Some(r) = v.get("range").and_then(Value::as_array) {
        let a: Ipv4Addr = r.first()?.as_str()?.parse().ok()?;
        let b: Ipv4Addr = r.get(1)?.as_str()?.parse().ok()?;
        return Some((a.into(), b.into()));
    }
    // Set elements carrying a comment or timeout wrap the value in "elem".
    v.get("elem").and_then(|e| element_range(e.get("val")?))
}

/// A list of elements (a set's `elem`, or a rule's right-hand side which
/// is either one element or `{"set": [...]}`); `None` if any is unreadable.
pub fn ranges_in(v: &Value) -> Option<Ranges> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        _ => match v.get("set").and_then(Value::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![v],
        },
    };
    let mut out = items
        .into_iter()
        .map(element_range)
        .collect::<Option<Ranges>>()?;
    merge(&mut out);
    Some(out)
}

fn prefix_json(n: &Ipv4Net) -> Value {
    json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix_len()}})
}

fn payload(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

/// `ip <field> { nets } accept`: the rule put into foreign forward chains.
pub fn forward_rule_expr(field: &str, nets: &[Ipv4Net]) -> Value {
    let set: Vec<Value> = nets.iter().map(prefix_json).collect();
    json!([
        {"match": {"op": "==", "left": payload(field), "right": {"set": set}}},
        {"accept": null}
    ])
}

/// The field (`saddr`/`daddr`) and address ranges of one of our forward
/// rules, if it has exactly the shape [`forward_rule_expr`] builds.
pub fn parse_forward_rule(expr: &Value) -> Option<(String, Ranges)> {
    let e = expr.as_array()?;
    if e.len() != 2 || e[1] != json!({"accept": null}) {
        return None;
    }
    let m = e[0].get("match")?;
    if m.get("op")?.as_str()? != "==" {
        return None;
    }
    let p = m.get("left")?.get("payload")?;
    if p.get("protocol")?.as_str()? != "ip" {
        return None;
    }
    let field = p.get("field")?.as_str()?.to_string();
    Some((field, ranges_in(m.get("right")?)?))
}

/// `ip saddr @masq-pools ip daddr != @all-pools masquerade`, exactly as
/// nft prints it back (so the read-back compares equal).
pub fn nat_rule_expr() -> Value {
    json!([
        {"match": {"op": "==", "left": payload("saddr"), "right": format!("@{SET_MASQ}")}},
        {"match": {"op": "!=", "left": payload("daddr"), "right": format!("@{SET_ALL}")}},
        {"masquerade": null}
    ])
}

/// Commands that create Tabby's whole table from nothing.
pub fn table_commands(all: &[Ipv4Net], masq: &[Ipv4Net]) -> Vec<Value> {
    let set = |name: &str, nets: &[Ipv4Net]| {
        let mut s = json!({"family": FAMILY, "table": TABLE, "name": name,
                           "type": "ipv4_addr", "flags": ["interval"]});
        if !nets.is_empty() {
            s["elem"] = Value::Array(nets.iter().map(prefix_json).collect());
        }
        json!({"add": {"set": s}})
    };
    let mut cmds = vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        set(SET_ALL, all),
        set(SET_MASQ, masq),
        json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": CHAIN_NAT,
               "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
    ];
    if !masq.is_empty() {
        cmds.push(json!({"add": {"rule": {"family": FAMILY, "table": TABLE,
            "chain": CHAIN_NAT, "comment": NAT_TAG, "expr": nat_rule_expr()}}}));
    }
    cmds
}

/// Tabby's table as read back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OwnTable {
    pub all: Option<Ranges>,
    pub masq: Option<Ranges>,
    /// (type, hook, prio, policy) of the nat chain.
    pub nat_chain: Option<(String, String, i64, String)>,
    /// Rules in the nat chain: (comment, expr).
    pub nat_rules: Vec<(Option<String>, Value)>,
    /// Anything else found in the table (sets, chains or rules Tabby did
    /// not create): their presence means the table must be rebuilt.
    pub foreign: Vec<String>,
}

/// A base chain on the forward hook in a table that isn't Tabby's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardChain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub policy: String,
    /// Rules in order: (handle, comment, expr).
    pub rules: Vec<(u64, Option<String>, Value)>,
}

impl ForwardChain {
    pub fn label(&self) -> String {
        format!("{} {} {}", self.family, self.table, self.name)
    }
}

/// A tagged rule in a chain that isn't a forward base chain (left behind
/// when a chain stopped being one): always removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrayRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
}

#[derive(Debug, Default)]
pub struct Ruleset {
    pub own: Option<OwnTable>,
    pub forward_chains: Vec<ForwardChain>,
    pub strays: Vec<StrayRule>,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Parses `nft -j list ruleset`.
pub fn parse(doc: &Value) -> Result<Ruleset, String> {
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no \"nftables\" array in nft's JSON output")?;
    let mut rs = Ruleset::default();
    let is_own = |v: &Value| s(v, "family") == FAMILY && s(v, "table") == TABLE;
    for item in items {
        if let Some(t) = item.get("table") {
            if s(t, "family") == FAMILY && s(t, "name") == TABLE {
                rs.own.get_or_insert_with(OwnTable::default);
            }
        } else if let Some(set) = item.get("set") {
            if is_own(set) {
                let own = rs.own.get_or_insert_with(OwnTable::default);
                let ranges = ranges_in(set.get("elem").unwrap_or(&json!([])));
                match s(set, "name").as_str() {
                    SET_ALL if s(set, "type") == "ipv4_addr" => own.all = ranges,
                    SET_MASQ if s(set, "type") == "ipv4_addr" => own.masq = ranges,
                    other => own.foreign.push(format!("set {other}")),
                }
            }
        } else if let Some(c) = item.get("chain") {
            if is_own(c) {
                let own = rs.own.get_or_insert_with(OwnTable::default);
                if s(c, "name") == CHAIN_NAT {
                    own.nat_chain = Some((
                        s(c, "type"),
                        s(c, "hook"),
                        c.get("prio").and_then(Value::as_i64).unwrap_or(i64::MIN),
                        s(c, "policy"),
                    ));
                } else {
                    own.foreign.push(format!("chain {}", s(c, "name")));
                }
            } else if s(c, "hook") == "forward"
                && matches!(s(c, "family").as_str(), "ip" | "inet")
                && !SKIP_TABLES.contains(&s(c, "table").as_str())
            {
                rs.forward_chains.push(ForwardChain {
                    family: s(c, "family"),
                    table: s(c, "table"),
                    name: s(c, "name"),
                    policy: s(c, "policy"),
                    rules: Vec::new(),
                });
            }
        } else if let Some(r) = item.get("rule") {
            let comment = r.get("comment").and_then(Value::as_str).map(str::to_string);
            let expr = r.get("expr").cloned().unwrap_or(Value::Null);
            if is_own(r) {
                let own = rs.own.get_or_insert_with(OwnTable::default);
                if s(r, "chain") == CHAIN_NAT {
                    own.nat_rules.push((comment, expr));
                } else {
                    own.foreign.push(format!("rule in chain {}", s(r, "chain")));
                }
                continue;
            }
            let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
            let (fam, table, chain) = (s(r, "family"), s(r, "table"), s(r, "chain"));
            // nft lists a chain before its rules.
            if let Some(fc) = rs
                .forward_chains
                .iter_mut()
                .find(|c| c.family == fam && c.table == table && c.name == chain)
            {
                fc.rules.push((handle, comment, expr));
            } else if comment.as_deref() == Some(FORWARD_TAG) {
                rs.strays.push(StrayRule {
                    family: fam,
                    table,
                    chain,
                    handle,
                });
            }
        }
    }
    Ok(rs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_like_nft() {
        let nets: Vec<Ipv4Net> = ["10.2.0.0/16", "10.1.0.0/16", "10.1.5.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let r = ranges_of(nets.clone());
        assert_eq!(r.len(), 1);
        let read = json!({"set": [{"range": ["10.1.0.0", "10.2.255.255"]}]});
        assert_eq!(ranges_in(&read).unwrap(), r);
        let (field, got) = parse_forward_rule(&forward_rule_expr("saddr", &nets)).unwrap();
        assert_eq!((field.as_str(), got), ("saddr", r));
        assert_eq!(
            ranges_in(&json!("10.3.0.1")).unwrap(),
            vec![(0x0a03_0001, 0x0a03_0001)]
        );
        assert!(ranges_in(&json!({"set": ["bogus"]})).is_none());
    }
}
