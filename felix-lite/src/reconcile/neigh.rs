//! Keeping the host's neighbour-table limits above what the desired state
//! brings (the rule and what was measured about namespaces are in
//! [`crate::neigh_limits`]).
//!
//! Run by the loop before each pass writes its permanent ARP/NDP entries.
//! The kernel is read only when a family's demand changed or on a full
//! pass (first, scheduled, requested), so an operator lowering a value is
//! noticed within a resync interval. A raise is logged once, at INFO, with
//! every sysctl old → new. A raise that cannot be written is logged once,
//! at ERROR, and not tried again until the values it needs change: the
//! same write would fail the same way on every pass. Until then it stays
//! in every [`PassReport::standing`], which the node's status shows.

use super::{ItemError, PassReport};
use crate::neigh_limits::{self, Family, RaiseError, Thresholds};
use crate::netlink::ntable;
use crate::netlink::NlSocket;

#[derive(Debug, Default)]
struct FamilyState {
    /// The demand the kernel was last compared with.
    checked: Option<u64>,
    /// The raise that failed, and what it said.
    failed: Option<(Thresholds, ItemError)>,
}

#[derive(Debug, Default)]
pub(super) struct NeighLimits {
    v4: FamilyState,
    v6: FamilyState,
}

impl NeighLimits {
    /// `demand` per family ([`neigh_limits::demand4`], `demand6`); `full`
    /// reads the kernel even when no demand changed.
    pub fn reconcile(
        &mut self,
        sock: &mut NlSocket,
        demand: [(Family, u64); 2],
        full: bool,
        report: &mut PassReport,
    ) {
        let mut tables = None;
        for (family, want) in demand {
            let st = match family {
                Family::V4 => &mut self.v4,
                Family::V6 => &mut self.v6,
            };
            if want == 0 {
                // Nothing of Tabby's in this table; a failure about it
                // no longer applies.
                *st = FamilyState::default();
                continue;
            }
            if full || st.checked != Some(want) {
                if tables.is_none() {
                    match ntable::dump_tables(sock) {
                        Ok(t) => tables = Some(t),
                        Err(e) => {
                            report.netlink_fail(
                                "neighbour tables",
                                format!("reading the kernel's neighbour tables: {e}"),
                            );
                            return;
                        }
                    }
                }
                let t = tables.as_deref().unwrap_or_default();
                // No IPv6 table: IPv6 is disabled, and the IPv6 part of
                // the pass reports that.
                if let Some(table) = t.iter().find(|t| Family::of(t) == family) {
                    check(st, family, Thresholds::of(table), want, report);
                }
            }
            if let Some((_, e)) = &st.failed {
                report.standing.push(e.clone());
            }
        }
    }
}

fn check(
    st: &mut FamilyState,
    family: Family,
    now: Thresholds,
    demand: u64,
    report: &mut PassReport,
) {
    st.checked = Some(demand);
    let Some(target) = neigh_limits::size(now, demand) else {
        if st.failed.take().is_some() {
            tracing::info!(
                table = family.table(),
                thresholds = %now.slashed(),
                entries = demand,
                "the neighbour table limits fit Tabby's entries now"
            );
        }
        return;
    };
    if st.failed.as_ref().is_some_and(|(t, _)| *t == target) {
        return; // said once; the same write would fail again
    }
    match neigh_limits::raise(family, now, target, demand) {
        Ok(changes) => {
            st.failed = None;
            tracing::info!(
                table = family.table(),
                changed = %neigh_limits::describe(&changes),
                entries = demand,
                "raised the host's neighbour table limits: Tabby's permanent entries and the \
                 neighbours they bring would approach them (the table is shared by every \
                 network namespace)"
            );
            for c in &changes {
                report.applied(format!("sysctl {}={} (was {})", c.key, c.new, c.old));
            }
        }
        Err(e) => {
            tracing::error!(sysctl = %e.key, error = %e, "cannot raise the neighbour table limits");
            st.failed = Some((target, item(&e)));
        }
    }
}

fn item(e: &RaiseError) -> ItemError {
    ItemError::new(&e.key, e.to_string())
}
