//! NAT outgoing and forwarding for IP pools, in nftables.
//!
//! **Interface.** Tabby drives the `nft` command's JSON interface
//! (`nft -j -f -` to apply, `nft -j list ruleset` to read back) rather than
//! raw nf_tables netlink: every change goes in as one atomic nft transaction,
//! the read-back is the same JSON the admin sees with `nft -j`, and nft's
//! own expression compiler (payload offsets, interval sets, the `inet`
//! family's implicit IPv4 match) is used instead of re-implemented. The cost
//! is a process spawn per pass, negligible at the reconcile rate; the
//! nftables package becomes a runtime dependency and its absence is a clear
//! error.
//!
//! **What Tabby owns.** `table ip tabby` with the sets `all-pools` and
//! `masq-pools` and a `nat-outgoing` chain (nat, postrouting, srcnat
//! priority) holding `ip saddr @masq-pools ip daddr != @all-pools
//! masquerade`, present only while some pool has natOutgoing (Calico's
//! `cali-nat-outgoing`).
//!
//! **Why forwarding rules go into other tables' chains.** nftables runs
//! every base chain on a hook, and a packet must be accepted by all of them:
//! an `accept` in Tabby's own forward chain ends only Tabby's chain, and a
//! host firewall's `policy drop` forward chain still drops the packet (the
//! seed 001 failure). Calico solves the same problem by inserting its jump
//! at the top of iptables' FORWARD chain. Tabby likewise inserts, at the top
//! of every forward-hook base chain of the `ip` and `inet` families in other
//! tables, two rules tagged with the comment `tabby:forward`:
//! `ip saddr {pools} accept` and `ip daddr {pools} accept`. Chains with an
//! accept policy get them too, since they can still end in a drop or reject
//! rule (firewalld does). kube-proxy's own table is skipped: its forward
//! rejects (services without endpoints) are meant for pods too. Only rules
//! carrying that tag are ever changed or deleted. A firewall reload that
//! rebuilds its chains removes them; the reload is an nftables commit, which
//! the kernel announces on `NFNLGRP_NFTABLES`, and the reconcile pass that
//! announcement wakes puts them back (see `reconcile`; without the
//! notifications, the next scheduled resync does).
//!
//! Limits: rules in iptables-legacy (not nftables) are out of reach of nft;
//! iptables-nft users will see Tabby's rules in `nft list`, and
//! `iptables-nft -L` may warn that the table holds rules it cannot render.
//!
//! `nft` is a child process and inherits the namespace of the thread that
//! spawns it: call these functions on the thread that is in the target
//! namespace (not from `spawn_blocking` in a multi-namespace process).

pub mod ruleset;
pub mod v6;

pub use ruleset::{FORWARD_TAG, NAT_TAG, SET_ALL, SET_MASQ, TABLE};

use crate::model::Pool;
use ipnet::Ipv4Net;
use ruleset::{ForwardChain, OwnTable, Ruleset};
use serde_json::{json, Value};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("the `{0}` command was not found: install the nftables package (Debian/Ubuntu: apt-get install nftables)")]
    Missing(String),
    #[error("cannot run {bin}: {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`nft {args}` failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("nft printed JSON Tabby cannot read: {0}")]
    Parse(String),
    #[error("after applying, `nft list ruleset` still differs: {0}")]
    Readback(String),
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftReport {
    /// Anything was written.
    pub changed: bool,
    /// `table ip tabby` was (re)created or deleted.
    pub table_written: bool,
    /// The foreign forward chains that carry (or carried) Tabby's rules,
    /// as `family table chain (policy P)`.
    pub forward_chains: Vec<String>,
    pub rules_inserted: usize,
    pub rules_deleted: usize,
}

/// The `nft` binary to run (tests point it elsewhere to check the error).
#[derive(Debug, Clone)]
pub struct Nft {
    pub bin: PathBuf,
}

impl Default for Nft {
    fn default() -> Self {
        Nft { bin: "nft".into() }
    }
}

/// [`Nft::reconcile`] with the `nft` on `PATH`.
pub fn reconcile(pools: &[Pool]) -> Result<NftReport, NftError> {
    Nft::default().reconcile(pools)
}

/// [`Nft::remove`] with the `nft` on `PATH`.
pub fn remove() -> Result<NftReport, NftError> {
    Nft::default().remove()
}

struct Desired {
    all: Vec<Ipv4Net>,
    masq: Vec<Ipv4Net>,
}

impl Desired {
    fn new(pools: &[Pool]) -> Desired {
        let all: Vec<Ipv4Net> = pools.iter().map(|p| p.cidr.trunc()).collect();
        let masq: Vec<Ipv4Net> = pools
            .iter()
            .filter(|p| p.nat_outgoing)
            .map(|p| p.cidr.trunc())
            .collect();
        Desired {
            all: Ipv4Net::aggregate(&all),
            masq: Ipv4Net::aggregate(&masq),
        }
    }

    /// Why the own table differs, or None when it matches.
    fn own_diff(&self, own: Option<&OwnTable>) -> Option<String> {
        let Some(own) = own else {
            return Some(format!("table {} {TABLE} is missing", ruleset::FAMILY));
        };
        if !own.foreign.is_empty() {
            return Some(format!("unexpected {}", own.foreign.join(", ")));
        }
        if own.all != Some(ruleset::ranges_of(self.all.iter().copied())) {
            return Some(format!("set {SET_ALL} differs"));
        }
        if own.masq != Some(ruleset::ranges_of(self.masq.iter().copied())) {
            return Some(format!("set {SET_MASQ} differs"));
        }
        let chain = Some(("nat".into(), "postrouting".into(), 100, "accept".into()));
        if own.nat_chain != chain {
            return Some(format!("chain {} differs", ruleset::CHAIN_NAT));
        }
        let rules: Vec<(Option<String>, Value)> = if self.masq.is_empty() {
            vec![]
        } else {
            vec![(Some(NAT_TAG.to_string()), ruleset::nat_rule_expr())]
        };
        (own.nat_rules != rules).then(|| format!("rules in {} differ", ruleset::CHAIN_NAT))
    }

    /// Whether a foreign chain starts with exactly our two rules and holds
    /// no other tagged rule.
    fn chain_ok(&self, c: &ForwardChain) -> bool {
        let want = ruleset::ranges_of(self.all.iter().copied());
        let tagged = c
            .rules
            .iter()
            .filter(|r| r.1.as_deref() == Some(FORWARD_TAG))
            .count();
        let head_is = |i: usize, field: &str| {
            c.rules.get(i).is_some_and(|(_, comment, expr)| {
                comment.as_deref() == Some(FORWARD_TAG)
                    && ruleset::parse_forward_rule(expr)
                        .is_some_and(|(f, r)| f == field && r == want)
            })
        };
        tagged == 2 && head_is(0, "saddr") && head_is(1, "daddr")
    }
}

fn rule_ref(family: &str, table: &str, chain: &str, handle: u64) -> Value {
    json!({"delete": {"rule": {"family": family, "table": table, "chain": chain, "handle": handle}}})
}

impl Nft {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
        let bin = self.bin.display().to_string();
        let mut child = Command::new(&self.bin)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => NftError::Missing(bin.clone()),
                _ => NftError::Spawn {
                    bin: bin.clone(),
                    source,
                },
            })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(|source| NftError::Spawn {
                    bin: bin.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| NftError::Spawn { bin, source })?;
        if !out.status.success() {
            return Err(NftError::Failed {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `nft -j list ruleset`, parsed: what `node doctor` reads as well.
    pub fn list(&self) -> Result<Ruleset, NftError> {
        ruleset::parse(&self.list_json()?).map_err(NftError::Parse)
    }

    fn list_json(&self) -> Result<Value, NftError> {
        let text = self.run(&["-j", "list", "ruleset"], None)?;
        serde_json::from_str(&text).map_err(|e| NftError::Parse(e.to_string()))
    }

    fn apply(&self, cmds: Vec<Value>) -> Result<(), NftError> {
        let doc = json!({"nftables": cmds}).to_string();
        tracing::debug!(%doc, "nft transaction");
        self.run(&["-j", "-f", "-"], Some(&doc)).map(|_| ())
    }

    /// Makes Tabby's nftables state match `pools`: the own table exactly,
    /// and the tagged forward rules at the head of every foreign forward
    /// chain. Writes nothing when everything already matches; reads back
    /// after writing. No pools at all means [`Nft::remove`].
    pub fn reconcile(&self, pools: &[Pool]) -> Result<NftReport, NftError> {
        if pools.is_empty() {
            return self.remove();
        }
        let desired = Desired::new(pools);
        let current = self.list()?;
        let mut report = NftReport::default();
        let mut cmds = Vec::new();
        if let Some(why) = desired.own_diff(current.own.as_ref()) {
            tracing::info!(%why, "rewriting nft table ip tabby");
            if current.own.is_some() {
                cmds.push(json!({"delete": {"table": {"family": ruleset::FAMILY, "name": TABLE}}}));
            }
            cmds.extend(ruleset::table_commands(&desired.all, &desired.masq));
            report.table_written = true;
        }
        for c in &current.forward_chains {
            report
                .forward_chains
                .push(format!("{} (policy {})", c.label(), c.policy));
            if desired.chain_ok(c) {
                continue;
            }
            tracing::info!(chain = %c.label(), policy = %c.policy, "placing pool forward rules");
            for (handle, comment, _) in &c.rules {
                if comment.as_deref() == Some(FORWARD_TAG) {
                    cmds.push(rule_ref(&c.family, &c.table, &c.name, *handle));
                    report.rules_deleted += 1;
                }
            }
            // Each insert goes to the head: daddr first leaves saddr on top.
            for field in ["daddr", "saddr"] {
                cmds.push(json!({"insert": {"rule": {
                    "family": c.family, "table": c.table, "chain": c.name,
                    "comment": FORWARD_TAG,
                    "expr": ruleset::forward_rule_expr(field, &desired.all)}}}));
                report.rules_inserted += 1;
            }
        }
        for s in &current.strays {
            cmds.push(rule_ref(&s.family, &s.table, &s.chain, s.handle));
            report.rules_deleted += 1;
        }
        if cmds.is_empty() {
            return Ok(report);
        }
        self.apply(cmds)?;
        report.changed = true;

        let after = self.list()?;
        if let Some(why) = desired.own_diff(after.own.as_ref()) {
            return Err(NftError::Readback(why));
        }
        if let Some(c) = after.forward_chains.iter().find(|c| !desired.chain_ok(c)) {
            return Err(NftError::Readback(format!(
                "forward rules in {} are not as written",
                c.label()
            )));
        }
        Ok(report)
    }

    /// Deletes `table ip tabby` and every rule tagged `tabby:forward`, and
    /// nothing else.
    pub fn remove(&self) -> Result<NftReport, NftError> {
        let current = self.list()?;
        let mut report = NftReport::default();
        let mut cmds = Vec::new();
        if current.own.is_some() {
            cmds.push(json!({"delete": {"table": {"family": ruleset::FAMILY, "name": TABLE}}}));
            report.table_written = true;
        }
        for c in &current.forward_chains {
            let mut had = false;
            for (handle, comment, _) in &c.rules {
                if comment.as_deref() == Some(FORWARD_TAG) {
                    cmds.push(rule_ref(&c.family, &c.table, &c.name, *handle));
                    report.rules_deleted += 1;
                    had = true;
                }
            }
            if had {
                report
                    .forward_chains
                    .push(format!("{} (policy {})", c.label(), c.policy));
            }
        }
        for s in &current.strays {
            cmds.push(rule_ref(&s.family, &s.table, &s.chain, s.handle));
            report.rules_deleted += 1;
        }
        if !cmds.is_empty() {
            self.apply(cmds)?;
            report.changed = true;
        }
        Ok(report)
    }
}
