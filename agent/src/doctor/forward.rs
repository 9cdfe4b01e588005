//! `forward`: forward chains that drop pod traffic before anything accepts
//! it (seed 001: a host firewall's `policy drop` forward chain, and pods on
//! other nodes unreachable while every route is right).
//!
//! nftables runs every base chain on the forward hook and a packet must
//! pass them all, so Tabby inserts `ip saddr/daddr {pools} accept` at the
//! top of each foreign forward chain (see felix-lite's nft module). A chain
//! that drops (by policy or an unconditional drop/reject rule) with no such
//! accept for every pool ahead of the drop is a finding — tabby-node down,
//! or its nft pass failing. iptables-legacy's FORWARD chain is out of nft's
//! reach entirely: there only the operator can add the accepts.

use super::{Ctx, Finding};
use ipnet::Ipv4Net;
use serde_json::Value;
use tabby_felix_lite::firewall::{self, LegacyChain};
use tabby_felix_lite::nft::ruleset::{parse_forward_rule, ForwardChain, Ranges};
use tabby_felix_lite::nft::Nft;

const CHECK: &str = "forward";

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(cluster) = ctx.cluster() else {
        return Vec::new();
    };
    let pools: Vec<Ipv4Net> = cluster
        .pools
        .iter()
        .filter(|p| !p.spec.disabled)
        .filter_map(|p| p.spec.cidr.parse::<Ipv4Net>().ok())
        .collect();
    if pools.is_empty() {
        return Vec::new();
    }
    let agent_up = ctx.agent().is_some();
    let mut out = Vec::new();
    match Nft::default().list() {
        Ok(rs) => {
            for c in &rs.forward_chains {
                out.extend(nft_chain(c, &pools, agent_up));
            }
        }
        // No nft (or unreadable): nothing in nftables to judge; an
        // unreadable nft is reported once, as it also stops Tabby's pass.
        Err(tabby_felix_lite::nft::NftError::Missing(_)) => {}
        Err(e) => out.push(
            Finding::warning(CHECK, "cannot read the nftables ruleset")
                .evidence(e.to_string())
                .fix("check that `nft list ruleset` works on this node (nftables installed, run as root)"),
        ),
    }
    if let Ok(Some(legacy)) = firewall::iptables_legacy_forward() {
        out.extend(legacy_chain(&legacy, &pools));
    }
    out
}

fn covers(ranges: &Ranges, net: &Ipv4Net) -> bool {
    let (a, b) = (u32::from(net.network()), u32::from(net.broadcast()));
    ranges.iter().any(|&(s, e)| s <= a && b <= e)
}

/// A rule that ends the chain for every packet: drop or reject with no
/// match before it (counters and logs are not conditions).
fn unconditional_drop(expr: &Value) -> Option<&'static str> {
    let e = expr.as_array()?;
    if e.iter().any(|s| s.get("match").is_some()) {
        return None;
    }
    let last = e.last()?;
    if last.get("drop").is_some() {
        Some("drop")
    } else if last.get("reject").is_some() {
        Some("reject")
    } else {
        None
    }
}

fn set_text(pools: &[Ipv4Net]) -> String {
    let v: Vec<String> = pools.iter().map(ToString::to_string).collect();
    format!("{{ {} }}", v.join(", "))
}

/// The finding for one nftables forward chain, if it drops pool traffic.
pub fn nft_chain(c: &ForwardChain, pools: &[Ipv4Net], agent_up: bool) -> Option<Finding> {
    let terminal = c
        .rules
        .iter()
        .position(|(_, _, e)| unconditional_drop(e).is_some());
    let how = match terminal {
        Some(i) => format!(
            "{} rule handle {}",
            unconditional_drop(&c.rules[i].2).unwrap_or("drop"),
            c.rules[i].0
        ),
        None if c.policy == "drop" => "policy drop".to_string(),
        None => return None,
    };
    let before = &c.rules[..terminal.unwrap_or(c.rules.len())];
    let accepted = |field: &str| {
        let r: Ranges = before
            .iter()
            .filter_map(|(_, _, e)| parse_forward_rule(e))
            .filter(|(f, _)| f == field)
            .flat_map(|(_, r)| r)
            .collect();
        pools.iter().all(|p| covers(&r, p))
    };
    if accepted("saddr") && accepted("daddr") {
        return None;
    }
    let label = c.label();
    let who = if agent_up {
        "tabby-node runs but has not inserted its accepts (yet: it re-checks nftables; if this \
         stays, its log names the nft error)"
    } else {
        "tabby-node, which inserts accepts for the pools at the top of every forward chain, is \
         not running (starting it fixes this too)"
    };
    let set = set_text(pools);
    Some(
        Finding::error(
            CHECK,
            format!(
                "the nftables forward chain {label} drops pod traffic ({how}) and no accept for \
                 the pools precedes it: pods on other nodes are unreachable; {who}"
            ),
        )
        .evidence(format!(
            "{label}: policy {}, {} rule(s), no `ip saddr {set} accept` and `ip daddr {set} accept` before the drop",
            c.policy,
            c.rules.len()
        ))
        .fix(format!(
            "nft insert rule {label} ip daddr {set} accept && nft insert rule {label} ip saddr {set} accept"
        )),
    )
}

/// The finding for iptables-legacy's FORWARD chain, if it drops pool
/// traffic.
pub fn legacy_chain(c: &LegacyChain, pools: &[Ipv4Net]) -> Option<Finding> {
    let terminal = c.rules.iter().position(|r| {
        let w: Vec<&str> = r.split_whitespace().collect();
        matches!(w.as_slice(), ["-A", "FORWARD", "-j", "DROP" | "REJECT", ..])
    });
    let how = match terminal {
        Some(i) => format!("`{}`", c.rules[i]),
        None if c.policy == "DROP" => "policy DROP".to_string(),
        None => return None,
    };
    let before = &c.rules[..terminal.unwrap_or(c.rules.len())];
    let accepts = |flag: &str, p: &Ipv4Net| {
        before.iter().any(|r| {
            let w: Vec<&str> = r.split_whitespace().collect();
            w.windows(2).any(|x| {
                x[0] == flag
                    && x[1]
                        .parse::<Ipv4Net>()
                        .or_else(|_| x[1].parse::<std::net::Ipv4Addr>().map(Ipv4Net::from))
                        .is_ok_and(|n| n.contains(p))
            }) && w.ends_with(&["-j", "ACCEPT"])
                && !w.contains(&"!")
        })
    };
    let missing: Vec<&Ipv4Net> = pools
        .iter()
        .filter(|p| !accepts("-s", p) || !accepts("-d", p))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let fix = missing
        .iter()
        .map(|p| {
            format!("iptables-legacy -I FORWARD 1 -s {p} -j ACCEPT && iptables-legacy -I FORWARD 1 -d {p} -j ACCEPT")
        })
        .collect::<Vec<_>>()
        .join(" && ");
    let missing_text: Vec<String> = missing.iter().map(ToString::to_string).collect();
    Some(
        Finding::error(
            CHECK,
            format!(
                "iptables-legacy's FORWARD chain drops pod traffic ({how}) with no ACCEPT for \
                 pool {} before it: pods on other nodes are unreachable, and Tabby (nftables) \
                 cannot see or change legacy tables, so only this fix helps",
                missing_text.join(", ")
            ),
        )
        .evidence(format!(
            "iptables-legacy -S FORWARD: -P FORWARD {}{}",
            c.policy,
            c.rules.iter().map(|r| format!("; {r}")).collect::<String>()
        ))
        .fix(fix),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tabby_felix_lite::firewall::parse_legacy;
    use tabby_felix_lite::nft::ruleset::forward_rule_expr;

    fn pools() -> Vec<Ipv4Net> {
        vec!["172.30.0.0/16".parse().unwrap()]
    }

    fn chain(policy: &str, rules: Vec<Value>) -> ForwardChain {
        ForwardChain {
            family: "inet".into(),
            table: "filter".into(),
            name: "forward".into(),
            policy: policy.into(),
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, e)| (i as u64 + 2, None, e))
                .collect(),
        }
    }

    #[test]
    fn a_drop_policy_without_accepts_is_found_with_the_insert_commands() {
        let f = nft_chain(&chain("drop", vec![]), &pools(), false).unwrap();
        assert!(f
            .what
            .contains("inet filter forward drops pod traffic (policy drop)"));
        assert!(f.what.contains("is not running"));
        assert_eq!(
            f.fix,
            "nft insert rule inet filter forward ip daddr { 172.30.0.0/16 } accept && \
             nft insert rule inet filter forward ip saddr { 172.30.0.0/16 } accept"
        );
    }

    #[test]
    fn accepts_for_every_pool_before_the_drop_clear_it() {
        let p = pools();
        let both = vec![
            forward_rule_expr("saddr", &p),
            forward_rule_expr("daddr", &p),
        ];
        assert!(nft_chain(&chain("drop", both.clone()), &p, true).is_none());
        // Only one direction is not enough.
        let one = vec![forward_rule_expr("saddr", &p)];
        assert!(nft_chain(&chain("drop", one), &p, true).is_some());
        // An accept chain is fine, unless it ends in an unconditional drop
        // that comes before the accepts.
        assert!(nft_chain(&chain("accept", vec![]), &p, true).is_none());
        let mut late = vec![json!([{"counter": null}, {"reject": null}])];
        late.extend(both);
        let f = nft_chain(&chain("accept", late), &p, true).unwrap();
        assert!(f.what.contains("(reject rule handle 2)"), "{}", f.what);
        // A second pool not covered by the accepts.
        let two: Vec<Ipv4Net> = vec![p[0], "10.99.0.0/16".parse().unwrap()];
        let acc = vec![
            forward_rule_expr("saddr", &p),
            forward_rule_expr("daddr", &p),
        ];
        assert!(nft_chain(&chain("drop", acc), &two, true).is_some());
    }

    #[test]
    fn legacy_drop_policy_needs_both_accepts_per_pool() {
        let p = pools();
        let c = parse_legacy("-P FORWARD DROP\n");
        let f = legacy_chain(&c, &p).unwrap();
        assert!(f.what.contains("cannot see or change legacy tables"));
        assert_eq!(
            f.fix,
            "iptables-legacy -I FORWARD 1 -s 172.30.0.0/16 -j ACCEPT && \
             iptables-legacy -I FORWARD 1 -d 172.30.0.0/16 -j ACCEPT"
        );
        let fixed = parse_legacy(
            "-P FORWARD DROP\n-A FORWARD -d 172.30.0.0/16 -j ACCEPT\n-A FORWARD -s 172.30.0.0/16 -j ACCEPT\n",
        );
        assert!(legacy_chain(&fixed, &p).is_none());
        assert!(legacy_chain(&parse_legacy("-P FORWARD ACCEPT\n"), &p).is_none());
        // A trailing DROP rule with the accepts after it still drops.
        let late = parse_legacy(
            "-P FORWARD ACCEPT\n-A FORWARD -j DROP\n-A FORWARD -d 172.30.0.0/16 -j ACCEPT\n-A FORWARD -s 172.30.0.0/16 -j ACCEPT\n",
        );
        assert!(legacy_chain(&late, &p).is_some());
    }
}
