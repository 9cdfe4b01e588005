//! The Prometheus metrics, with prometheus-client (OpenMetrics text).
//! Gauges are set from what the node knows at scrape time — the same
//! speaker listing and block-path rows `node status` shows — and counters
//! are advanced to the totals the parts keep as plain numbers (felix-lite's
//! passes and netlink errors, the BGP flaps, the fallback activations), so
//! nothing is counted twice and no other crate knows of Prometheus.

use crate::grpc::node::Snapshot;
use crate::node::peers::PeerType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use tabby_bgp::fsm::State;
use tabby_bgp::speaker::PeerStatus;
use tabby_felix_lite::reconcile::Status;

/// Every FSM state, so a type's series exist at 0 (an alert on
/// `tabby_bgp_peers{state="Established"} == 0` needs the series).
const STATES: [State; 6] = [
    State::Idle,
    State::Connect,
    State::Active,
    State::OpenSent,
    State::OpenConfirm,
    State::Established,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: String,
}

/// IPAM on this node, from the cluster cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpamUse {
    pub blocks: i64,
    pub addresses: i64,
}

pub struct Metrics {
    registry: Registry,
    peers: Family<StateLabels, Gauge>,
    received: Family<PeerLabels, Gauge>,
    advertised: Family<PeerLabels, Gauge>,
    flaps: Family<PeerLabels, Counter>,
    treated_as_withdraw: Family<PeerLabels, Counter>,
    refused: Family<PeerLabels, Counter>,
    refused_strangers: Counter,
    routes: Family<PathLabels, Gauge>,
    passes: Counter,
    pass_seconds: Histogram,
    netlink_errors: Counter,
    ipam_blocks: Gauge,
    ipam_addresses: Gauge,
    fallbacks: Counter,
}

/// Moves a counter up to a total kept elsewhere (never down).
fn advance(c: &Counter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("tabby");
        let m = Metrics {
            peers: Family::default(),
            received: Family::default(),
            advertised: Family::default(),
            flaps: Family::default(),
            treated_as_withdraw: Family::default(),
            refused: Family::default(),
            refused_strangers: Counter::default(),
            routes: Family::default(),
            passes: Counter::default(),
            // 0.5 ms to ~16 s: a pass over a few routes is milliseconds,
            // 100k routes about a second.
            pass_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            netlink_errors: Counter::default(),
            ipam_blocks: Gauge::default(),
            ipam_addresses: Gauge::default(),
            fallbacks: Counter::default(),
            registry: Registry::default(),
        };
        r.register(
            "bgp_peers",
            "BGP peers by session state and peer type (node-to-node mesh, global, node specific)",
            m.peers.clone(),
        );
        r.register(
            "bgp_prefixes_received",
            "Prefixes in the peer's Adj-RIB-In",
            m.received.clone(),
        );
        r.register(
            "bgp_prefixes_advertised",
            "Prefixes in the peer's Adj-RIB-Out",
            m.advertised.clone(),
        );
        r.register(
            "bgp_session_flaps",
            "Transitions of the session out of Established",
            m.flaps.clone(),
        );
        r.register(
            "bgp_updates_treated_as_withdraw",
            "UPDATEs from the peer handled as withdraw (RFC 7606); logged at most once a window",
            m.treated_as_withdraw.clone(),
        );
        r.register(
            "bgp_connections_refused",
            "Connections from the peer refused because both of its connection slots were taken",
            m.refused.clone(),
        );
        r.register(
            "bgp_connections_refused_unconfigured",
            "Connections closed because their source address is no configured peer",
            m.refused_strangers.clone(),
        );
        r.register(
            "block_routes",
            "Blocks by the path the node routes them on (native, vxlan, vxlan-fallback, blackhole; none = no route)",
            m.routes.clone(),
        );
        r.register(
            "reconcile_passes",
            "Dataplane reconcile passes",
            m.passes.clone(),
        );
        r.register_with_unit(
            "reconcile_pass_duration",
            "How long each dataplane reconcile pass took",
            Unit::Seconds,
            m.pass_seconds.clone(),
        );
        r.register(
            "netlink_errors",
            "Netlink requests the kernel refused or that failed on the socket",
            m.netlink_errors.clone(),
        );
        r.register(
            "ipam_blocks",
            "IPAM blocks affine to this node",
            m.ipam_blocks.clone(),
        );
        r.register(
            "ipam_addresses_in_use",
            "Addresses allocated in this node's blocks",
            m.ipam_addresses.clone(),
        );
        r.register(
            "vxlan_fallback_activations",
            "Times a block moved to the VXLAN fallback path",
            m.fallbacks.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// Advances the reconcile counters and observes the durations of the
    /// passes since the last call (felix-lite keeps the recent ones).
    pub fn observe_dataplane(&self, s: &Status) {
        let new = s.passes.saturating_sub(self.passes.get());
        let kept = s.recent_durations.len() as u64;
        for d in s
            .recent_durations
            .iter()
            .skip(kept.saturating_sub(new) as usize)
        {
            self.pass_seconds.observe(d.as_secs_f64());
        }
        advance(&self.passes, s.passes);
        advance(&self.netlink_errors, s.netlink_errors);
    }

    /// Sets everything from one consistent view and encodes it.
    /// `refused_strangers` is the speaker's count of connections from
    /// addresses that are no peer.
    pub fn render(
        &self,
        peers: &[PeerStatus],
        refused_strangers: u64,
        snap: &Snapshot,
        dataplane: &Status,
        ipam: IpamUse,
    ) -> Result<String, std::fmt::Error> {
        self.peers.clear();
        self.received.clear();
        self.advertised.clear();
        let mut by_state: BTreeMap<(String, String), i64> = BTreeMap::new();
        for p in peers {
            let t = snap
                .peer_types
                .get(&p.config.address)
                .map_or("global", |t: &PeerType| t.as_str());
            for s in STATES {
                *by_state.entry((t.to_string(), s.to_string())).or_default() +=
                    i64::from(s == p.state);
            }
            let peer = PeerLabels {
                peer: p.config.address.to_string(),
            };
            self.received
                .get_or_create(&peer)
                .set(p.prefixes_received as i64);
            self.advertised
                .get_or_create(&peer)
                .set(p.prefixes_advertised as i64);
            advance(
                &self.treated_as_withdraw.get_or_create(&peer),
                p.updates_treated_as_withdraw,
            );
            advance(&self.refused.get_or_create(&peer), p.connections_refused);
        }
        advance(&self.refused_strangers, refused_strangers);
        for ((t, s), n) in by_state {
            self.peers
                .get_or_create(&StateLabels {
                    state: s,
                    r#type: t,
                })
                .set(n);
        }
        for (addr, n) in &snap.flaps {
            advance(
                &self.flaps.get_or_create(&PeerLabels {
                    peer: addr.to_string(),
                }),
                *n,
            );
        }
        self.routes.clear();
        for path in ["native", "vxlan", "vxlan-fallback", "blackhole"] {
            self.routes
                .get_or_create(&PathLabels { path: path.into() })
                .set(0);
        }
        for r in &snap.rows {
            self.routes
                .get_or_create(&PathLabels {
                    path: r.path.clone(),
                })
                .inc();
        }
        advance(&self.fallbacks, snap.fallback_activations);
        self.observe_dataplane(dataplane);
        self.ipam_blocks.set(ipam.blocks);
        self.ipam_addresses.set(ipam.addresses);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_bgp::peer_config::PeerConfig;

    #[test]
    fn the_speakers_refusal_and_withdraw_counters_are_exported() {
        let peer = PeerStatus {
            connections_refused: 3,
            updates_treated_as_withdraw: 13000,
            ..PeerStatus::new(
                PeerConfig::new("10.0.0.2".parse().unwrap(), 64512),
                State::Established,
                std::time::SystemTime::now(),
            )
        };
        let m = Metrics::new();
        let out = m
            .render(
                &[peer],
                42,
                &Snapshot::default(),
                &Status::default(),
                IpamUse::default(),
            )
            .unwrap();
        assert!(
            out.contains("tabby_bgp_updates_treated_as_withdraw_total{peer=\"10.0.0.2\"} 13000"),
            "{out}"
        );
        assert!(
            out.contains("tabby_bgp_connections_refused_total{peer=\"10.0.0.2\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("tabby_bgp_connections_refused_unconfigured_total 42"),
            "{out}"
        );
    }
}
