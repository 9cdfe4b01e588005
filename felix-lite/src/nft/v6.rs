//! NAT66 and IPv6 forwarding for IPv6 pools: the IPv6 twin of the IPv4
//! rules in this module.
//!
//! **What Tabby owns.** `table ip6 tabby` with the sets `all-pools` and
//! `masq-pools` (`ipv6_addr`, interval) and a `nat-outgoing` chain (nat,
//! postrouting, srcnat priority) holding `ip6 saddr @masq-pools ip6 daddr
//! != @all-pools masquerade` while some IPv6 pool has natOutgoing (Calico's
//! `cali-nat-outgoing` of `ip6tables`). Present while any IPv6 pool exists.
//!
//! **Forward accepts.** In every forward-hook base chain of the `ip6` and
//! `inet` families in other tables (kube-proxy's skipped, for the reason
//! given in the module docs), two rules tagged `tabby:forward6`: `ip6 saddr
//! {pools} accept` and `ip6 daddr {pools} accept`. They sit in the leading
//! run of Tabby's rules: the IPv4 pair (`tabby:forward`) always goes to the
//! very top of an `inet` chain, so the IPv6 pair goes right after it (or to
//! the top when there is none), and neither pass ever moves the other's.

use super::ruleset::{FORWARD_TAG, SKIP_TABLES, TABLE};
use super::{Nft, NftError, NftReport};
use crate::model::Pool6;
use ipnet::Ipv6Net;
use serde_json::{json, Value};
use std::net::Ipv6Addr;

pub const FAMILY6: &str = "ip6";
pub const FORWARD6_TAG: &str = "tabby:forward6";
pub const NAT6_TAG: &str = "tabby:nat-outgoing6";
const SET_ALL: &str = "all-pools";
const SET_MASQ: &str = "masq-pools";
const CHAIN_NAT: &str = "nat-outgoing";

type Ranges6 = Vec<(u128, u128)>;

fn ranges_of(nets: &[Ipv6Net]) -> Ranges6 {
    let mut v: Ranges6 = nets
        .iter()
        .map(|n| (u128::from(n.network()), u128::from(n.broadcast())))
        .collect();
    merge(&mut v);
    v
}

fn merge(v: &mut Ranges6) {
    v.sort_unstable();
    let mut out: Ranges6 = Vec::with_capacity(v.len());
    for &(s, e) in v.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *v = out;
}

fn element(v: &Value) -> Option<(u128, u128)> {
    if let Some(s) = v.as_str() {
        let a: Ipv6Addr = s.parse().ok()?;
        return Some((a.into(), a.into()));
    }
    if let Some(p) = v.get("prefix") {
        let addr: Ipv6Addr = p.get("addr")?.as_str()?.parse().ok()?;
        let n = Ipv6Net::new(addr, u8::try_from(p.get("len")?.as_u64()?).ok()?).ok()?;
        return Some((n.network().into(), n.broadcast().into()));
    }
    if let Some(r) = v.get("range").and_then(Value::as_array) {
        let a: Ipv6Addr = r.first()?.as_str()?.parse().ok()?;
        let b: Ipv6Addr = r.get(1)?.as_str()?.parse().ok()?;
        return Some((a.into(), b.into()));
    }
    v.get("elem").and_then(|e| element(e.get("val")?))
}

fn ranges_in(v: &Value) -> Option<Ranges6> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        _ => match v.get("set").and_then(Value::as_array) {
            Some(a) => a.iter().collect(),
            None => vec![v],
        },
    };
    let mut out = items
        .into_iter()
        .map(element)
        .collect::<Option<Ranges6>>()?;
    merge(&mut out);
    Some(out)
}

fn prefix_json(n: &Ipv6Net) -> Value {
    json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix_len()}})
}

fn payload(field: &str) -> Value {
    json!({"payload": {"protocol": "ip6", "field": field}})
}

fn forward_rule_expr(field: &str, nets: &[Ipv6Net]) -> Value {
    let set: Vec<Value> = nets.iter().map(prefix_json).collect();
    json!([
        {"match": {"op": "==", "left": payload(field), "right": {"set": set}}},
        {"accept": null}
    ])
}

fn parse_forward_rule(expr: &Value) -> Option<(String, Ranges6)> {
    let e = expr.as_array()?;
    if e.len() != 2 || e[1] != json!({"accept": null}) {
        return None;
    }
    let m = e[0].get("match")?;
    if m.get("op")?.as_str()? != "==" {
        return None;
    }
    let p = m.get("left")?.get("payload")?;
    if p.get("protocol")?.as_str()? != "ip6" {
        return None;
    }
    Some((
        p.get("field")?.as_str()?.to_string(),
        ranges_in(m.get("right")?)?,
    ))
}

/// `ip6 saddr @masq-pools ip6 daddr != @all-pools masquerade`, as nft
/// prints it back.
pub fn nat66_rule_expr() -> Value {
    json!([
        {"match": {"op": "==", "left": payload("saddr"), "right": format!("@{SET_MASQ}")}},
        {"match": {"op": "!=", "left": payload("daddr"), "right": format!("@{SET_ALL}")}},
        {"masquerade": null}
    ])
}

/// [`Nft::drift6`]'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift6 {
    /// `table ip6 tabby` is missing or its sets/chain are not the pools'.
    pub table_differs: bool,
    /// Some pool has natOutgoing and the NAT66 rule or its sets are not
    /// as they should be.
    pub nat66_missing: bool,
    /// Forward-hook chains (ip6/inet) lacking Tabby's two accepts.
    pub chains_without_accepts: Vec<Chain6Ref>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain6Ref {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// `accept` or `drop`.
    pub policy: String,
}

struct Desired6 {
    all: Vec<Ipv6Net>,
    masq: Vec<Ipv6Net>,
}

/// What `nft -j list ruleset` shows of Tabby's IPv6 state.
#[derive(Default)]
struct Current6 {
    table: bool,
    /// Everything in `table ip6 tabby`, normalised for comparison.
    own: Vec<String>,
    chains: Vec<Chain6>,
    /// Tagged rules outside any forward chain.
    strays: Vec<(String, String, String, u64)>,
}

struct Chain6 {
    family: String,
    table: String,
    name: String,
    policy: String,
    rules: Vec<(u64, Option<String>, Value)>,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn parse(doc: &Value) -> Result<Current6, NftError> {
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| NftError::Parse("no \"nftables\" array".into()))?;
    let mut cur = Current6::default();
    let own = |v: &Value| s(v, "family") == FAMILY6 && s(v, "table") == TABLE;
    for item in items {
        if let Some(t) = item.get("table") {
            cur.table |= s(t, "family") == FAMILY6 && s(t, "name") == TABLE;
        } else if let Some(set) = item.get("set") {
            if own(set) {
                let r = ranges_in(set.get("elem").unwrap_or(&json!([])));
                cur.own
                    .push(format!("set {} {} {r:?}", s(set, "name"), s(set, "type")));
            }
        } else if let Some(c) = item.get("chain") {
            if own(c) {
                cur.own.push(format!(
                    "chain {} {} {} {} {}",
                    s(c, "name"),
                    s(c, "type"),
                    s(c, "hook"),
                    c.get("prio").and_then(Value::as_i64).unwrap_or(i64::MIN),
                    s(c, "policy")
                ));
            } else if s(c, "hook") == "forward"
                && matches!(s(c, "family").as_str(), "ip6" | "inet")
                && !SKIP_TABLES.contains(&s(c, "table").as_str())
            {
                cur.chains.push(Chain6 {
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
            if own(r) {
                cur.own.push(format!(
                    "rule {} {:?} {expr}",
                    s(r, "chain"),
                    comment.unwrap_or_default()
                ));
                continue;
            }
            let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
            let (fam, table, chain) = (s(r, "family"), s(r, "table"), s(r, "chain"));
            if let Some(fc) = cur
                .chains
                .iter_mut()
                .find(|c| c.family == fam && c.table == table && c.name == chain)
            {
                fc.rules.push((handle, comment, expr));
            } else if comment.as_deref() == Some(FORWARD6_TAG) {
                cur.strays.push((fam, table, chain, handle));
            }
        }
    }
    Ok(cur)
}

impl Desired6 {
    fn new(pools: &[Pool6]) -> Self {
        let all: Vec<Ipv6Net> = pools.iter().map(|p| p.cidr.trunc()).collect();
        let masq: Vec<Ipv6Net> = pools
            .iter()
            .filter(|p| p.nat_outgoing)
            .map(|p| p.cidr.trunc())
            .collect();
        Desired6 {
            all: Ipv6Net::aggregate(&all),
            masq: Ipv6Net::aggregate(&masq),
        }
    }

    /// The own table as [`parse`] normalises it.
    fn own(&self) -> Vec<String> {
        let mut v = vec![
            format!("set {SET_ALL} ipv6_addr {:?}", Some(ranges_of(&self.all))),
            format!("set {SET_MASQ} ipv6_addr {:?}", Some(ranges_of(&self.masq))),
            format!("chain {CHAIN_NAT} nat postrouting 100 accept"),
        ];
        if !self.masq.is_empty() {
            v.push(format!(
                "rule {CHAIN_NAT} {NAT6_TAG:?} {}",
                nat66_rule_expr()
            ));
        }
        v
    }

    fn table_commands(&self) -> Vec<Value> {
        let set = |name: &str, nets: &[Ipv6Net]| {
            let mut s = json!({"family": FAMILY6, "table": TABLE, "name": name,
                               "type": "ipv6_addr", "flags": ["interval"]});
            if !nets.is_empty() {
                s["elem"] = Value::Array(nets.iter().map(prefix_json).collect());
            }
            json!({"add": {"set": s}})
        };
        let mut cmds = vec![
            json!({"add": {"table": {"family": FAMILY6, "name": TABLE}}}),
            set(SET_ALL, &self.all),
            set(SET_MASQ, &self.masq),
            json!({"add": {"chain": {"family": FAMILY6, "table": TABLE, "name": CHAIN_NAT,
                   "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
        ];
        if !self.masq.is_empty() {
            cmds.push(json!({"add": {"rule": {"family": FAMILY6, "table": TABLE,
                "chain": CHAIN_NAT, "comment": NAT6_TAG, "expr": nat66_rule_expr()}}}));
        }
        cmds
    }

    /// Exactly our two rules, both within the chain's leading run of
    /// Tabby-tagged rules.
    fn chain_ok(&self, c: &Chain6) -> bool {
        let want = ranges_of(&self.all);
        let tagged = |r: &(u64, Option<String>, Value)| r.1.as_deref() == Some(FORWARD6_TAG);
        let lead: Vec<_> = c
            .rules
            .iter()
            .take_while(|r| tagged(r) || r.1.as_deref() == Some(FORWARD_TAG))
            .filter(|r| tagged(r))
            .collect();
        let fields: Vec<Option<(String, Ranges6)>> =
            lead.iter().map(|r| parse_forward_rule(&r.2)).collect();
        c.rules.iter().filter(|r| tagged(r)).count() == 2
            && fields.len() == 2
            && fields.contains(&Some(("saddr".into(), want.clone())))
            && fields.contains(&Some(("daddr".into(), want)))
    }
}

fn delete_rule(family: &str, table: &str, chain: &str, handle: u64) -> Value {
    json!({"delete": {"rule": {"family": family, "table": table, "chain": chain, "handle": handle}}})
}

impl Nft {
    fn list6(&self) -> Result<Current6, NftError> {
        parse(&self.list_json()?)
    }

    /// How the IPv6 nftables state differs from what `pools6` want, read
    /// only (for `node doctor`): nothing is written.
    pub fn drift6(&self, pools6: &[Pool6]) -> Result<Drift6, NftError> {
        let cur = self.list6()?;
        let mut out = Drift6::default();
        if pools6.is_empty() {
            return Ok(out);
        }
        let d = Desired6::new(pools6);
        let own = d.own();
        out.table_differs = !cur.table || cur.own != own;
        out.nat66_missing = !d.masq.is_empty() && !own.iter().all(|o| cur.own.contains(o));
        // Any accept of the pools' shape will do here, tagged or not (an
        // operator's own, or the doctor's printed fix): the question is
        // whether pod traffic passes, not whether the rules are Tabby's.
        let want = ranges_of(&d.all);
        let covers = |field: &str, c: &Chain6| {
            c.rules.iter().any(|r| match parse_forward_rule(&r.2) {
                Some((f, got)) => {
                    f == field
                        && want
                            .iter()
                            .all(|&(s, e)| got.iter().any(|&(gs, ge)| gs <= s && e <= ge))
                }
                None => false,
            })
        };
        for c in &cur.chains {
            let passes = d.chain_ok(c) || (covers("saddr", c) && covers("daddr", c));
            if !passes {
                out.chains_without_accepts.push(Chain6Ref {
                    family: c.family.clone(),
                    table: c.table.clone(),
                    chain: c.name.clone(),
                    policy: c.policy.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Makes the IPv6 state match `pools6` (no pools: removes it all).
    /// Writes nothing when it matches; reads back after writing.
    pub fn reconcile6(&self, pools6: &[Pool6]) -> Result<NftReport, NftError> {
        let cur = self.list6()?;
        let mut report = NftReport::default();
        let mut cmds = Vec::new();
        let desired = (!pools6.is_empty()).then(|| Desired6::new(pools6));
        let own_ok = match &desired {
            Some(d) => cur.table && cur.own == d.own(),
            None => !cur.table,
        };
        if !own_ok {
            if cur.table {
                cmds.push(json!({"delete": {"table": {"family": FAMILY6, "name": TABLE}}}));
            }
            if let Some(d) = &desired {
                cmds.extend(d.table_commands());
            }
            report.table_written = true;
        }
        for c in &cur.chains {
            let ok = match &desired {
                Some(d) => d.chain_ok(c),
                None => !c.rules.iter().any(|r| r.1.as_deref() == Some(FORWARD6_TAG)),
            };
            if ok {
                if desired.is_some() {
                    report.forward_chains.push(format!(
                        "{} {} {} (policy {})",
                        c.family, c.table, c.name, c.policy
                    ));
                }
                continue;
            }
            report.forward_chains.push(format!(
                "{} {} {} (policy {})",
                c.family, c.table, c.name, c.policy
            ));
            for (handle, comment, _) in &c.rules {
                if comment.as_deref() == Some(FORWARD6_TAG) {
                    cmds.push(delete_rule(&c.family, &c.table, &c.name, *handle));
                    report.rules_deleted += 1;
                }
            }
            let Some(d) = &desired else { continue };
            // Right after the IPv4 pair at the top (nft's rule "index" is
            // the position; the pass's own deletions all lie below it), or
            // at the top when there is none. Each goes to the same spot:
            // daddr first leaves saddr first.
            let lead4 = c
                .rules
                .iter()
                .take_while(|r| r.1.as_deref() == Some(FORWARD_TAG))
                .count();
            for field in ["daddr", "saddr"] {
                let mut rule = json!({"family": c.family, "table": c.table, "chain": c.name,
                    "comment": FORWARD6_TAG, "expr": forward_rule_expr(field, &d.all)});
                let verb = if lead4 == 0 {
                    "insert"
                } else {
                    rule["index"] = json!(lead4 - 1);
                    "add"
                };
                cmds.push(json!({verb: {"rule": rule}}));
                report.rules_inserted += 1;
            }
        }
        for (f, t, c, h) in &cur.strays {
            cmds.push(delete_rule(f, t, c, *h));
            report.rules_deleted += 1;
        }
        if cmds.is_empty() {
            return Ok(report);
        }
        self.apply(cmds)?;
        report.changed = true;
        if let Some(d) = &desired {
            let after = self.list6()?;
            if !after.table || after.own != d.own() {
                return Err(NftError::Readback(format!(
                    "table {FAMILY6} {TABLE} is not as written"
                )));
            }
            if let Some(c) = after.chains.iter().find(|c| !d.chain_ok(c)) {
                return Err(NftError::Readback(format!(
                    "IPv6 forward rules in {} {} {} are not as written",
                    c.family, c.table, c.name
                )));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_ranges_merge_and_read_like_nft_prints_them() {
        let nets: Vec<Ipv6Net> = vec![
            "fd00:10::/64".parse().unwrap(),
            "fd00:10:0:1::/64".parse().unwrap(),
        ];
        let printed = json!([{"prefix": {"addr": "fd00:10::", "len": 63}}]);
        assert_eq!(ranges_in(&printed), Some(ranges_of(&nets)));
        let rule = forward_rule_expr("saddr", &nets);
        assert_eq!(
            parse_forward_rule(&rule),
            Some(("saddr".into(), ranges_of(&nets)))
        );
    }
}
