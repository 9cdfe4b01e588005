//! Whether the local tabby-node follows the datastore. Revisions keep
//! moving in a busy cluster, so "behind" is judged against what the doctor
//! itself read: for each kind tabby-node caches, the newest object the
//! doctor's list showed. tabby-node has applied every change up to that
//! revision once its own revision for the kind reaches it; the doctor asks
//! again for [`WAIT`] before calling it behind, so a healthy watch a few
//! milliseconds late is never flagged. Deletions are not in a list, so a
//! missed deletion goes unseen here; nothing healthy is ever reported.

use super::super::{Cluster, Ctx, Finding};
use crate::resources::{Kind, Object};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tabby_proto::node::StatusResponse;

const CHECK: &str = "datastore";
/// How long tabby-node gets to catch up with what the doctor read.
pub const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(250);

fn newest<T>(items: &[Object<T>]) -> u64 {
    items
        .iter()
        .filter_map(|o| o.metadata.resource_version.as_deref()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Per kind (plural), the revision of the newest object the doctor read.
pub fn targets(c: &Cluster) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        (Kind::Node.plural(), newest(&c.nodes)),
        (Kind::IpPool.plural(), newest(&c.pools)),
        (Kind::IpamBlock.plural(), newest(&c.blocks)),
        (Kind::BlockAffinity.plural(), newest(&c.affinities)),
        (Kind::BgpConfiguration.plural(), newest(&c.bgp_configs)),
        (Kind::BgpPeer.plural(), newest(&c.bgp_peers)),
    ])
}

/// The kinds tabby-node caches whose revision is below the target:
/// (kind, tabby-node's revision, the datastore's).
pub fn behind(
    targets: &BTreeMap<&'static str, u64>,
    agent: &HashMap<String, u64>,
) -> Vec<(&'static str, u64, u64)> {
    targets
        .iter()
        .filter_map(|(k, t)| {
            let a = *agent.get(*k)?;
            (a < *t).then_some((*k, a, *t))
        })
        .collect()
}

/// Whether `s` shows tabby-node caught up with `targets`.
fn current(s: &StatusResponse, targets: &BTreeMap<&'static str, u64>) -> bool {
    s.datastore_synced && behind(targets, &s.datastore_revisions).is_empty()
}

/// The findings for tabby-node's status `s` after the wait.
pub fn judge(s: &StatusResponse, targets: &BTreeMap<&'static str, u64>, fix: &str) -> Vec<Finding> {
    if !s.datastore_synced {
        return vec![Finding::error(
            CHECK,
            "tabby-node is not following the datastore: new nodes, blocks and pools do not reach this node's routes",
        )
        .evidence(format!(
            "tabby-node's cache has not been in sync for {} s: {}",
            WAIT.as_secs(),
            s.datastore_error
        ))
        .fix(fix.to_string())];
    }
    let late = behind(targets, &s.datastore_revisions);
    if late.is_empty() {
        return Vec::new();
    }
    vec![Finding::warning(
        CHECK,
        format!(
            "tabby-node's copy of the datastore is behind: changes to {} are not in it {} s after the doctor read them",
            late.iter().map(|l| l.0).collect::<Vec<_>>().join(", "),
            WAIT.as_secs()
        ),
    )
    .evidence(
        late.iter()
            .map(|(k, a, t)| format!("{k}: datastore at revision {t}, tabby-node at {a}"))
            .collect::<Vec<_>>()
            .join("; "),
    )
    .fix("restart tabby-node on this node (it lists everything again); if it recurs, its log says why its watch stalls")]
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let (Some(cluster), Some(agent)) = (ctx.cluster(), ctx.agent()) else {
        return Vec::new();
    };
    // A tabby-node from before these fields: nothing to compare.
    if agent.status.datastore_revisions.is_empty() {
        return Vec::new();
    }
    let targets = targets(cluster);
    let mut last = agent.status.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !current(&last, &targets) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        match crate::ctl::client::node_status(&ctx.opts.socket).await {
            Ok(s) => last = s,
            // It answered a moment ago; going away is the agent source's
            // business, not a lag.
            Err(_) => return Vec::new(),
        }
    }
    let env = |k: &str| ctx.env(k).map(str::to_string);
    judge(&last, &targets, &super::unreachable_fix(&env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(synced: bool, revs: &[(&str, u64)]) -> StatusResponse {
        StatusResponse {
            datastore_synced: synced,
            datastore_revisions: revs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            datastore_error: if synced {
                ""
            } else {
                "watching nodes: connection refused"
            }
            .into(),
            ..Default::default()
        }
    }

    fn targets() -> BTreeMap<&'static str, u64> {
        BTreeMap::from([("nodes", 40), ("ipamblocks", 55), ("bgppeers", 0)])
    }

    #[test]
    fn caught_up_or_ahead_is_clean_and_uncached_kinds_do_not_count() {
        // Ahead: it saw a later change (or a deletion) the list did not show.
        let s = status(true, &[("nodes", 40), ("ipamblocks", 90)]);
        assert!(judge(&s, &targets(), "fix").is_empty());
    }

    #[test]
    fn a_kind_below_what_the_doctor_read_is_behind() {
        let s = status(true, &[("nodes", 40), ("ipamblocks", 50), ("bgppeers", 0)]);
        let f = judge(&s, &targets(), "fix");
        assert_eq!(f.len(), 1);
        assert!(
            f[0].what.contains("changes to ipamblocks are not in it"),
            "{}",
            f[0].what
        );
        assert_eq!(
            f[0].evidence,
            "ipamblocks: datastore at revision 55, tabby-node at 50"
        );
    }

    #[test]
    fn a_broken_watch_is_an_error_quoting_it() {
        let f = judge(&status(false, &[("nodes", 40)]), &targets(), "etcdctl ...");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, crate::doctor::Severity::Error);
        assert!(f[0]
            .evidence
            .ends_with("watching nodes: connection refused"));
        assert_eq!(f[0].fix, "etcdctl ...");
    }

    #[test]
    fn the_targets_are_the_newest_listed_revisions() {
        let mut c = Cluster::default();
        for (name, rv) in [("a", "7"), ("b", "12"), ("c", "x")] {
            let mut n = crate::resources::Node::new("Node", name, Default::default());
            n.metadata.resource_version = Some(rv.into());
            c.nodes.push(n);
        }
        let t = super::targets(&c);
        assert_eq!(t["nodes"], 12);
        assert_eq!(t["ippools"], 0);
    }
}
