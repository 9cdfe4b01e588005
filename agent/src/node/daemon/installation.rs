//! A change to the Installation, applied in the running node: the pools
//! and status (cluster-wide, `node::installation::apply`), then this
//! node's VXLAN MTU, backend (the BGP speaker started or stopped) and
//! address autodetection (the address detected again; a new address is
//! written to the Node and the speaker restarted on it).

use super::{connected_subnets, Daemon};
use crate::node::bgp::Bgp;
use crate::node::config::Backend;
use crate::node::installation::{self, evaluate};
use crate::node::startup;
use crate::resources::installation::INSTALLATION_NAME;
use crate::resources::Kind;

impl Daemon {
    /// True when something the routes depend on changed.
    ///
    /// Runs when the Installation or any IPPool changed: a pool conflict
    /// resolved by deleting the pool in the way, or a managed pool edited
    /// by hand, is seen without waiting for the Installation to change (as
    /// the operator's pool controller watches pools). The pass writes
    /// nothing when the pools are as wanted, so its own writes settle.
    pub(super) async fn on_installation(&mut self) -> bool {
        let generation = (
            self.cache.generation(Kind::Installation),
            self.cache.generation(Kind::IpPool),
        );
        if Some(generation) == self.installation_gen {
            return false;
        }
        self.installation_gen = Some(generation);
        let current = self
            .cache
            .get(Kind::Installation, INSTALLATION_NAME)
            .map(|(_, r)| r);
        let ev = evaluate(current.as_deref());
        let pass = installation::apply(&*self.ds, &ev, self.node_mtu).await;
        // A datastore failure is retried from the tick (see on_tick).
        self.installation_retry = matches!(pass, Some(installation::status::Pass::Unavailable(_)));
        if ev.present && ev.spec.is_none() {
            // Invalid: nothing of it is applied, the node keeps what it has.
            return false;
        }
        let (cfg, decisions) = installation::overlay(&self.base_cfg, ev.spec.as_ref());
        if cfg == self.cfg {
            return false;
        }
        installation::log_decisions(&decisions);
        let old = std::mem::replace(&mut self.cfg, cfg);
        if self.cfg.vxlan_mtu != old.vxlan_mtu {
            tracing::info!(from = ?old.vxlan_mtu, to = ?self.cfg.vxlan_mtu, "VXLAN MTU changed by the Installation");
            self.inputs.local.vxlan_mtu = self.cfg.vxlan_mtu;
        }
        let mut restart_bgp = false;
        if self.cfg.ip != old.ip || self.cfg.autodetect != old.autodetect {
            restart_bgp = self.redetect().await;
        }
        if self.cfg.backend != old.backend || restart_bgp {
            self.switch_backend(old.backend).await;
        }
        self.tunnel
            .on_cluster(&*self.ds, &self.ipam, &self.cfg, &self.cluster)
            .await;
        true
    }

    /// Detects the node address by the new method. True when it moved
    /// (the speaker must then restart on it). A failure keeps the old
    /// address: a running node is not taken down by a bad method.
    async fn redetect(&mut self) -> bool {
        let d = match startup::detect_address(&self.cfg, &*self.ds).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the Installation's autodetection found no address; keeping {:?}", self.node_ip);
                return false;
            }
        };
        let ip = d.as_ref().map(|d| d.address);
        if ip == self.node_ip {
            return false;
        }
        tracing::info!(from = ?self.node_ip, to = ?ip, "node address changed by the Installation's autodetection");
        if let Err(e) = startup::write_node_address(&*self.ds, &self.cfg, ip).await {
            tracing::warn!(error = %format!("{e:#}"), "writing the new node address");
        }
        self.node_ip = ip;
        self.node_mtu = super::start::node_vxlan_mtu(&self.cfg, d.as_ref());
        self.inputs.local.ip = ip;
        self.inputs.local.interface = d.map(|d| d.interface).unwrap_or_default();
        self.inputs.local.connected = connected_subnets(ip, self.inputs.local.ip6).await;
        self.bgp.is_some()
    }

    /// Stops the speaker (Cease to every peer) and starts it again when
    /// the backend is, or stays, bird.
    pub(super) async fn switch_backend(&mut self, old: Backend) {
        if let Some(b) = self.bgp.take() {
            b.shutdown().await;
        }
        let want = self.cfg.backend;
        let my = crate::node::session_addrs::MyAddrs {
            v4: self.node_ip.map(|n| n.addr()),
            v6: self.inputs.local.ip6.map(|n| n.addr()),
        };
        if want == Backend::Bird && !my.is_empty() {
            match Bgp::start(&self.cfg, &self.cluster, my).await {
                Ok(b) => self.bgp = Some(b),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "starting BGP for the Installation")
                }
            }
        }
        if old != want {
            tracing::info!(
                from = old.as_str(),
                to = want.as_str(),
                "networking backend changed by the Installation"
            );
        }
        if let Ok(mut s) = self.speaker.write() {
            *s = self.bgp.as_ref().map(|b| b.speaker.clone());
        }
        self.inputs.bgp = self.bgp.is_some();
        self.inputs.routing = want != Backend::None;
        self.inputs.mesh = Default::default();
        self.inputs.learned = Default::default();
        self.inputs.peers = Default::default();
        self.refresh_bgp_inputs().await;
    }
}
