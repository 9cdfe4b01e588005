//! The Installation's `status`, as the operator keeps it: `mtu`,
//! `computed` (the spec as applied, defaults filled) and the conditions
//! `Ready`, `Progressing` and `Degraded` (metav1.Condition: type, status,
//! CamelCase reason, a message a person can act on, lastTransitionTime).
//!
//! Every node computes the same status from the same Installation, so
//! whichever writes it the content is the same; a condition keeps its
//! `lastTransitionTime` while its status, reason and message stay, and an
//! unchanged status is not written at all — nodes never take turns
//! rewriting it.

use crate::resources::installation::InstallationSpec;
use crate::resources::installation_render::computed;
use serde_json::{json, Value};

/// How the last pass went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    Applied {
        pools: usize,
    },
    /// The Installation failed validation: `field: message` each.
    Invalid(Vec<String>),
    /// Stored pools stand in the way (a person must act).
    PoolConflict(String),
    /// The datastore failed; retried on the next change.
    Unavailable(String),
}

/// The status for `outcome`. `previous` is the stored status (transition
/// times are kept from it); `node_mtu` is this node's VXLAN MTU when the
/// Installation sets none (the status then reports the smallest any node
/// has reported, which only goes down, so nodes with different MTUs
/// converge instead of overwriting each other).
pub fn render(
    spec: Option<&InstallationSpec>,
    outcome: &Pass,
    previous: Option<&Value>,
    node_mtu: Option<u32>,
    now: &str,
) -> Value {
    let (ready, progressing, degraded) = match outcome {
        Pass::Applied { pools } => (
            cond("Ready", true, "Applied", &format!("calicoNetwork applied: {pools} IP pool(s) in place; autodetection, backend and MTU are applied by each tabby-node where its environment does not set them")),
            cond("Progressing", false, "Applied", "nothing left to apply"),
            cond("Degraded", false, "Applied", "the Installation is valid and applied"),
        ),
        Pass::Invalid(problems) => {
            let msg = format!(
                "nothing of the Installation is applied until it is fixed: {}",
                problems.join("; ")
            );
            (
                cond("Ready", false, "InvalidInstallation", &msg),
                cond("Progressing", false, "InvalidInstallation", "waiting for a valid Installation"),
                cond("Degraded", true, "InvalidInstallation", &msg),
            )
        }
        Pass::PoolConflict(why) => {
            let msg = format!("no IP pool was changed: {why}");
            (
                cond("Ready", false, "PoolConflict", &msg),
                cond("Progressing", false, "PoolConflict", "waiting for the conflict to be resolved"),
                cond("Degraded", true, "PoolConflict", &msg),
            )
        }
        Pass::Unavailable(why) => {
            let msg = format!("the datastore failed while applying (retried on the next change): {why}");
            (
                cond("Ready", false, "DatastoreError", &msg),
                cond("Progressing", true, "DatastoreError", &msg),
                cond("Degraded", true, "DatastoreError", &msg),
            )
        }
    };
    let prev_conds = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let conditions: Vec<Value> = [ready, progressing, degraded]
        .into_iter()
        .map(|mut c| {
            let same = prev_conds.iter().find(|p| {
                p["type"] == c["type"]
                    && p["status"] == c["status"]
                    && p["reason"] == c["reason"]
                    && p["message"] == c["message"]
            });
            c["lastTransitionTime"] = match same.and_then(|p| p.get("lastTransitionTime")) {
                Some(t) => t.clone(),
                None => now.into(),
            };
            c
        })
        .collect();
    let mut status = json!({ "conditions": conditions });
    let spec_mtu = spec
        .and_then(|s| s.calico_network.as_ref())
        .and_then(|n| n.mtu);
    let prev_mtu = previous
        .and_then(|p| p.get("mtu"))
        .and_then(Value::as_u64)
        .map(|m| m as u32);
    let mtu = spec_mtu.or(match (prev_mtu, node_mtu) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    });
    if let Some(m) = mtu {
        status["mtu"] = m.into();
    }
    match (spec, outcome) {
        (Some(s), Pass::Applied { .. }) => status["computed"] = computed(s),
        // While the spec cannot be applied, what was last applied stays.
        _ => {
            if let Some(c) = previous.and_then(|p| p.get("computed")) {
                status["computed"] = c.clone();
            }
        }
    }
    status
}

fn cond(kind: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
    })
}
