//! One pass of the cluster-wide part: the pools, then the status.

use super::pools::{self, PoolError};
use super::status::{self, Pass};
use super::Evaluated;
use crate::datastore::{Datastore, Error as DsError};
use crate::resources::installation::INSTALLATION_NAME;
use crate::resources::installation_render::ip_pools;
use crate::resources::{Kind, Resource};

/// Applies the pools of a valid Installation and writes its status; for
/// an invalid one writes only the status (Degraded, naming the fields).
/// None when there is no Installation.
pub async fn apply(ds: &dyn Datastore, ev: &Evaluated, node_mtu: Option<u32>) -> Option<Pass> {
    if !ev.present {
        return None;
    }
    let pass = match &ev.spec {
        None => {
            tracing::warn!(problems = %ev.problems.join("; "), "the Installation is invalid: nothing of it is applied");
            Pass::Invalid(ev.problems.clone())
        }
        Some(spec) => {
            let wanted = ip_pools(spec);
            match pools::apply(ds, &wanted).await {
                Ok(o) => {
                    if o != pools::Outcome::default() {
                        tracing::info!(created = ?o.created, updated = ?o.updated, deleted = ?o.deleted, "applied the Installation's IP pools");
                    }
                    Pass::Applied {
                        pools: wanted.len(),
                    }
                }
                Err(PoolError::Conflict(why)) => {
                    tracing::warn!(%why, "the Installation's IP pools conflict with stored pools: none changed");
                    Pass::PoolConflict(why)
                }
                Err(PoolError::Datastore(why)) => {
                    tracing::warn!(%why, "applying the Installation's IP pools");
                    Pass::Unavailable(why)
                }
            }
        }
    };
    write_status(ds, ev, &pass, node_mtu).await;
    Some(pass)
}

/// Writes the status if it changed, CAS against a fresh read; gives up
/// (the next pass writes it) when the spec changed meanwhile.
async fn write_status(ds: &dyn Datastore, ev: &Evaluated, pass: &Pass, node_mtu: Option<u32>) {
    let Some(seen) = &ev.object else { return };
    for _ in 0..5 {
        let mut cur = match ds.get(Kind::Installation, INSTALLATION_NAME).await {
            Ok(Resource::Installation(o)) => o,
            Ok(_) | Err(DsError::NotFound { .. }) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading the Installation to write its status");
                return;
            }
        };
        if cur.spec != seen.spec {
            return;
        }
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let next = status::render(ev.spec.as_ref(), pass, cur.status.as_ref(), node_mtu, &now);
        if cur.status.as_ref() == Some(&next) {
            return;
        }
        cur.status = Some(next);
        match ds.update_status(Resource::Installation(cur)).await {
            Ok(_) => return,
            Err(DsError::Conflict { .. }) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "writing the Installation's status");
                return;
            }
        }
    }
}
