//! tabby-node as the tigera operator: it reads the Installation `default`
//! and applies `spec.calicoNetwork` as the operator would render it
//! (`resources::installation_render`), without a DaemonSet in between.
//!
//! - cluster-wide, by any node ([`pools`]): the IPPools, created, updated
//!   or deleted; every write is a compare-and-swap of a value that is a
//!   pure function of the Installation, so nodes doing it at once converge
//!   (a lost race rereads, finds the pool as wanted, and writes nothing);
//! - per node ([`overlay`]): autodetection, backend and VXLAN MTU, each
//!   only where the node's own environment says nothing;
//! - `status` ([`status`]): `mtu`, `computed` and the Ready / Progressing
//!   / Degraded conditions, rewritten only when they change.
//!
//! An invalid Installation (one written past `tabbyctl apply`, straight
//! into the API) is applied not at all: status Degraded names the field.

mod apply;
pub mod pools;
pub mod status;

pub use apply::apply;

use super::config::{Backend, NodeConfig};
use crate::resources::installation::{InstallationSpec, INSTALLATION_NAME};
use crate::resources::installation_render::{autodetection_method, bgp_enabled};
use crate::resources::{validate, Installation, Kind, Resource};
use tabby_felix_lite::autodetect::{IpSetting, Method};

/// The Installation as this node read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluated {
    /// An Installation `default` exists (valid or not): the operator then
    /// sets NO_DEFAULT_POOLS, so no `CALICO_IPV4POOL_*` pool is made.
    pub present: bool,
    /// Its spec, when it passed validation.
    pub spec: Option<InstallationSpec>,
    /// `field: message` for each problem; non-empty means nothing of it
    /// is applied.
    pub problems: Vec<String>,
    pub object: Option<Installation>,
}

/// Validates what the datastore (or cache) holds for `default`.
pub fn evaluate(r: Option<&Resource>) -> Evaluated {
    let Some(Resource::Installation(o)) = r else {
        return Evaluated::default();
    };
    let mut checked = Resource::Installation(o.clone());
    let problems: Vec<String> = validate::validate(&mut checked)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let spec = match (&checked, problems.is_empty()) {
        (Resource::Installation(c), true) => Some(c.spec.clone()),
        _ => None,
    };
    Evaluated {
        present: true,
        spec,
        problems,
        object: Some(o.clone()),
    }
}

/// Reads the Installation straight from the datastore (at start, before
/// the cache runs). Absent, or no Installation CRD in Kubernetes: none.
pub async fn read(ds: &dyn crate::datastore::Datastore) -> Evaluated {
    match ds.get(Kind::Installation, INSTALLATION_NAME).await {
        Ok(r) => evaluate(Some(&r)),
        Err(crate::datastore::Error::NotFound { .. }) => Evaluated::default(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the Installation; going on without it");
            Evaluated::default()
        }
    }
}

/// One setting both the environment and the Installation can give, and
/// which one this node uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub setting: &'static str,
    /// `environment` or `Installation`.
    pub winner: &'static str,
    pub value: String,
    /// What the loser asked for.
    pub other: String,
}

/// `cfg` with the Installation's per-node settings laid over it where the
/// environment did not set them explicitly, and what was decided (only
/// where the Installation says something). The caller logs the decisions.
pub fn overlay(cfg: &NodeConfig, spec: Option<&InstallationSpec>) -> (NodeConfig, Vec<Decision>) {
    let mut out = cfg.clone();
    let mut d = Vec::new();
    let Some(net) = spec.and_then(|s| s.calico_network.as_ref()) else {
        return (out, d);
    };
    if let Some(a) = &net.node_address_autodetection_v4 {
        let wanted = autodetection_method(a);
        let shown = wanted.clone().unwrap_or_else(|| "IP=none".into());
        if cfg.env_set.ip || cfg.env_set.autodetect {
            let env = if cfg.env_set.ip {
                format!("IP={:?}", cfg.ip)
            } else {
                format!("IP_AUTODETECTION_METHOD={:?}", cfg.autodetect)
            };
            d.push(Decision {
                setting: "node address autodetection",
                winner: "environment",
                value: env,
                other: shown,
            });
        } else {
            // Validation ran the same parser: this cannot fail here, and
            // if it did the node keeps its own method.
            match wanted.as_deref().map(str::parse::<Method>) {
                Some(Ok(m)) => out.autodetect = m,
                Some(Err(_)) => {}
                None => out.ip = IpSetting::None,
            }
            d.push(Decision {
                setting: "node address autodetection",
                winner: "Installation",
                value: shown,
                other: format!("{:?}", cfg.autodetect),
            });
        }
    }
    if net.bgp.is_some() {
        let wanted = if bgp_enabled(Some(net)) {
            Backend::Bird
        } else {
            Backend::Vxlan
        };
        let env = cfg.env_set.backend;
        if !env {
            out.backend = wanted;
        }
        d.push(Decision {
            setting: "networking backend",
            winner: if env { "environment" } else { "Installation" },
            value: out.backend.as_str().into(),
            other: if env { wanted } else { cfg.backend }.as_str().into(),
        });
    }
    if let Some(mtu) = net.mtu {
        let env = cfg.env_set.vxlan_mtu;
        if !env {
            out.vxlan_mtu = Some(mtu);
        }
        let show = |m: Option<u32>| m.map_or("auto".to_string(), |m| m.to_string());
        d.push(Decision {
            setting: "VXLAN MTU",
            winner: if env { "environment" } else { "Installation" },
            value: show(out.vxlan_mtu),
            other: if env {
                mtu.to_string()
            } else {
                show(cfg.vxlan_mtu)
            },
        });
    }
    (out, d)
}

/// Logs each decision once: which source won and what the other wanted.
pub fn log_decisions(decisions: &[Decision]) {
    for d in decisions {
        tracing::info!(
            setting = d.setting,
            winner = d.winner,
            value = %d.value,
            overridden = %d.other,
            "Installation setting: {} from the {} ({}); not {}",
            d.setting,
            d.winner,
            d.value,
            d.other
        );
    }
}

#[cfg(test)]
mod tests;
