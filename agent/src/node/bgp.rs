//! The BGP side of tabby-node: starting the speaker, keeping its peers and
//! originated prefixes (blocks, service CIDRs: `advertise`) in line with
//! the datastore, and tracking how long
//! each mesh session has been down (the VXLAN fallback timer), from the
//! speaker's peer events.

use super::advertise::{originations, Communities, Originations};
use super::cluster::Cluster;
use super::config::NodeConfig;
use super::peers::{desired_peers_with, node_as, DesiredPeer, Timers};
use super::routes::{BgpPeerInfo, LearnedRoute, PeerHealth};
use super::secrets::Secrets;
use super::session_addrs::MyAddrs;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabby_bgp::fsm::State;
use tabby_bgp::peer_config::{LocalConfig, DEFAULT_RESTART_TIME};
use tabby_bgp::speaker::{BestPath, BestPathEvent, PeerEvent, PeerStatus, Speaker, SpeakerConfig};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

/// A marker in the run dir: present at start means the previous run did
/// not stop cleanly, so we announce the Restart State bit and peers keep
/// (and then refresh) our routes.
const RUNNING_MARKER: &str = "bgp.running";

/// What the speaker itself is started with (not a peer's configuration):
/// a change of any of these needs a new speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpeakerSettings {
    asn: u32,
    port: u16,
    bind: IpAddr,
    /// `routeReflectorClusterID`: the speaker reflects when set.
    cluster_id: Option<Ipv4Addr>,
}

fn speaker_settings(cluster: &Cluster, me: &str, my: MyAddrs) -> SpeakerSettings {
    let bgp_cfg = cluster.bgp_config(me);
    // `::` takes IPv4 connections too (a dual-stack socket): an IPv6-only
    // or dual-stack node listens on it.
    let any = match my.v6 {
        Some(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    SpeakerSettings {
        asn: node_as(cluster, me),
        port: bgp_cfg.map_or(179, |c| c.spec.effective_listen_port()),
        bind: match bgp_cfg.and_then(|c| c.spec.bind_mode.as_deref()) {
            Some("NodeIP") => my
                .v4
                .map(IpAddr::V4)
                .or(my.v6.map(IpAddr::V6))
                .unwrap_or(any),
            _ => any,
        },
        cluster_id: cluster
            .nodes
            .get(me)
            .and_then(super::peer_select::cluster_id),
    }
}

pub struct Bgp {
    pub speaker: Speaker,
    settings: SpeakerSettings,
    me: String,
    my: MyAddrs,
    timers: Timers,
    secrets: Secrets,
    /// Sessions left out (a password that cannot be read), for node status.
    errors: Vec<String>,
    peers: BTreeMap<IpAddr, DesiredPeer>,
    /// When each peer was configured (a never-Established session counts
    /// down from then).
    added: HashMap<IpAddr, Instant>,
    health: HashMap<IpAddr, PeerHealth>,
    originated: Originations,
    learned: BTreeMap<IpNet, LearnedRoute>,
    events: Option<Events>,
    marker: std::path::PathBuf,
    /// Transitions out of Established per peer (kept after removal: a
    /// counter never goes back).
    flaps: HashMap<IpAddr, u64>,
}

/// The speaker's two streams after a snapshot.
struct Events {
    best: Receiver<Arc<Vec<BestPathEvent>>>,
    peers: Receiver<PeerEvent>,
}

enum Got {
    Best(Arc<Vec<BestPathEvent>>),
    Peer(PeerEvent),
}

/// What the route calculation needs of a best path (either family).
fn learned_route(p: &BestPath) -> (IpNet, LearnedRoute) {
    (
        p.prefix,
        LearnedRoute {
            prefix: p.prefix,
            next_hop: p.next_hop,
            from_peer: p.from_peer,
        },
    )
}

/// The sessions to run; a peer whose password cannot be read is left out,
/// logged (once, while it stays so) with the peer and the secret, and kept
/// in `errors` for node status.
fn desired(
    cluster: &Cluster,
    me: &str,
    my: MyAddrs,
    timers: Timers,
    secrets: &Secrets,
    errors: &mut Vec<String>,
) -> BTreeMap<IpAddr, DesiredPeer> {
    let d = desired_peers_with(cluster, me, my, timers, secrets);
    for e in d.errors.iter().filter(|e| !errors.contains(e)) {
        tracing::error!("BGP session not configured: {e}");
    }
    *errors = d.errors;
    d.peers
}

impl Bgp {
    pub async fn start(cfg: &NodeConfig, cluster: &Cluster, my: MyAddrs) -> anyhow::Result<Bgp> {
        let me = &cfg.node_name;
        let router_id =
            super::router_id::resolve(cfg.router_id, me, my.v4).map_err(anyhow::Error::msg)?;
        let settings = speaker_settings(cluster, me, my);
        let (port, bind) = (settings.port, settings.bind);
        let marker = cfg.run_dir.join(RUNNING_MARKER);
        let restarting = marker.exists();
        std::fs::create_dir_all(&cfg.run_dir)?;
        std::fs::write(&marker, b"")?;
        let restart_time = cluster
            .default_bgp_config()
            .and_then(|c| c.spec.node_mesh_max_restart_time.as_deref())
            .and_then(|t| crate::resources::duration::parse_go_duration(t).ok())
            .map_or(DEFAULT_RESTART_TIME, |d| {
                d.as_secs().min(u64::from(u16::MAX)) as u16
            });
        let mut local = LocalConfig::new(router_id, settings.asn);
        local.graceful_restart = Some(restart_time);
        local.restarting = restarting;
        local.cluster_id = settings.cluster_id;
        let timers = Timers {
            hold_time: cfg.hold_time,
            connect_retry: cfg.connect_retry,
        };
        let secrets = super::secrets::Secrets::from_env();
        let mut errors = Vec::new();
        let peers = desired(cluster, me, my, timers, &secrets, &mut errors);
        let originated = originations(cluster, me);
        // The speaker starts with the prefixes that carry no communities;
        // the others follow at once with theirs.
        let speaker = Speaker::start(SpeakerConfig {
            local: local.clone(),
            listen: Some(SocketAddr::new(bind, port)),
            peers: peers.values().map(|p| p.config.clone()).collect(),
            originate: originated
                .iter()
                .filter(|(_, c)| c.is_empty())
                .map(|(p, _)| *p)
                .collect(),
        })
        .await?;
        for (p, c) in originated.iter().filter(|(_, c)| !c.is_empty()) {
            speaker
                .originate_with(vec![*p], c.standard.clone(), c.large.clone())
                .await?;
        }
        tracing::info!(router_id = %router_id, asn = local.asn, port, peers = peers.len(), restarting, "BGP speaker running");
        let now = Instant::now();
        let mut b = Bgp {
            speaker,
            settings,
            me: me.clone(),
            my,
            timers,
            secrets,
            errors,
            added: peers.keys().map(|a| (*a, now)).collect(),
            peers,
            health: HashMap::new(),
            originated,
            learned: BTreeMap::new(),
            events: None,
            marker,
            flaps: HashMap::new(),
        };
        b.rewatch().await;
        Ok(b)
    }

    /// Takes a fresh snapshot of best paths and peers, and the streams of
    /// changes after it (at start, and after falling behind).
    async fn rewatch(&mut self) {
        match self.speaker.watch().await {
            Ok(w) => {
                self.learned = w.snapshot.iter().map(learned_route).collect();
                let now = Instant::now();
                let mut seen = std::collections::HashSet::new();
                for p in &w.peers {
                    seen.insert(p.config.address);
                    self.on_peer(p, now);
                }
                self.health.retain(|a, _| seen.contains(a));
                self.events = Some(Events {
                    best: w.changes,
                    peers: w.peer_changes,
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch the BGP speaker"),
        }
    }

    /// The speaker's own AS, port or bind address changed in the
    /// datastore: it must be started again (every session is concerned).
    pub fn needs_restart(&self, cluster: &Cluster) -> bool {
        speaker_settings(cluster, &self.me, self.my) != self.settings
    }

    /// Brings peers and originated blocks in line with the datastore.
    pub async fn sync(&mut self, cluster: &Cluster) {
        let want = desired(
            cluster,
            &self.me,
            self.my,
            self.timers,
            &self.secrets,
            &mut self.errors,
        );
        for (addr, old) in &self.peers {
            if want.get(addr).map(|w| &w.config) != Some(&old.config) {
                if let Err(e) = self.speaker.remove_peer(*addr).await {
                    tracing::warn!(peer = %addr, error = %e, "removing BGP peer");
                }
                self.added.remove(addr);
                self.health.remove(addr);
            }
        }
        for (addr, p) in &want {
            if self.peers.get(addr).map(|o| &o.config) != Some(&p.config) {
                match self.speaker.add_peer(p.config.clone()).await {
                    Ok(()) => {
                        tracing::info!(peer = %addr, kind = p.peer_type.as_str(), "BGP peer added");
                        self.added.insert(*addr, Instant::now());
                    }
                    Err(e) => tracing::warn!(peer = %addr, error = %e, "adding BGP peer"),
                }
            }
        }
        self.peers = want;

        let want = originations(cluster, &self.me);
        let gone: Vec<IpNet> = self
            .originated
            .keys()
            .filter(|p| !want.contains_key(p))
            .copied()
            .collect();
        if !gone.is_empty() {
            if let Err(e) = self.speaker.withdraw(gone).await {
                tracing::warn!(error = %e, "withdrawing prefixes");
            }
        }
        // New prefixes, and those whose communities changed (originating
        // again replaces them), grouped by their communities.
        let mut new: BTreeMap<&Communities, Vec<IpNet>> = BTreeMap::new();
        for (p, c) in &want {
            if self.originated.get(p) != Some(c) {
                new.entry(c).or_default().push(*p);
            }
        }
        for (c, prefixes) in new {
            let (std, large) = (c.standard.clone(), c.large.clone());
            if let Err(e) = self.speaker.originate_with(prefixes, std, large).await {
                tracing::warn!(error = %e, "originating prefixes");
            }
        }
        self.originated = want;
    }

    /// A mesh session's health from the speaker's report of it.
    fn on_peer(&mut self, s: &PeerStatus, now: Instant) {
        let addr = s.config.address;
        let h = if s.state == State::Established {
            PeerHealth::Established
        } else {
            let bfd_down = s.last_error.as_ref().is_some_and(|e| e.error.is_bfd_down());
            match self.health.get(&addr) {
                // BFD's verdict stands until the session is back.
                Some(PeerHealth::Failed(t)) => PeerHealth::Failed(*t),
                _ if bfd_down => PeerHealth::Failed(now),
                Some(PeerHealth::DownSince(t)) => PeerHealth::DownSince(*t),
                // A hold-timer expiry means the peer has already been
                // silent for a hold time: the outage began then, so
                // fallback follows at once instead of a hold time later.
                Some(PeerHealth::Established) => {
                    *self.flaps.entry(addr).or_default() += 1;
                    let silent = s
                        .last_error
                        .as_ref()
                        .is_some_and(|e| e.error.is_hold_timer_expired());
                    let hold = Duration::from_secs(u64::from(s.config.hold_time));
                    PeerHealth::DownSince(if silent {
                        now.checked_sub(hold).unwrap_or(now)
                    } else {
                        now
                    })
                }
                None => PeerHealth::DownSince(*self.added.get(&addr).unwrap_or(&now)),
            }
        };
        self.health.insert(addr, h);
    }

    /// Waits for the next best-path or peer change from the speaker and
    /// applies it (and whatever else is queued). Cancel-safe; pends
    /// forever once the speaker has stopped.
    pub async fn next_change(&mut self) {
        let Some(ev) = self.events.as_mut() else {
            return std::future::pending().await;
        };
        let got = tokio::select! {
            b = ev.best.recv() => b.map(Got::Best),
            p = ev.peers.recv() => p.map(Got::Peer),
        };
        let mut got = match got {
            Ok(g) => g,
            Err(RecvError::Lagged(_)) => return self.rewatch().await,
            Err(RecvError::Closed) => {
                self.events = None;
                return;
            }
        };
        loop {
            match got {
                Got::Best(batch) => {
                    for ev in batch.iter() {
                        match ev {
                            BestPathEvent::Updated(p) => {
                                let (prefix, route) = learned_route(p);
                                self.learned.insert(prefix, route);
                            }
                            BestPathEvent::Withdrawn(p) => {
                                self.learned.remove(p);
                            }
                        }
                    }
                }
                Got::Peer(PeerEvent::Changed(s)) => self.on_peer(&s, Instant::now()),
                Got::Peer(PeerEvent::Removed(a)) => {
                    self.health.remove(&a);
                }
            }
            let Some(ev) = self.events.as_mut() else {
                return;
            };
            // One stream at a time: a value taken from the second while the
            // first had one would be lost.
            got = match ev.best.try_recv() {
                Ok(b) => Got::Best(b),
                Err(TryRecvError::Lagged(_)) => return self.rewatch().await,
                Err(_) => match ev.peers.try_recv() {
                    Ok(p) => Got::Peer(p),
                    Err(TryRecvError::Lagged(_)) => return self.rewatch().await,
                    Err(_) => return,
                },
            };
        }
    }

    pub fn mesh_health(&self) -> HashMap<IpAddr, PeerHealth> {
        self.peers
            .iter()
            .filter(|(_, p)| p.peer_type == super::peers::PeerType::Mesh)
            .filter_map(|(a, _)| {
                Some((
                    *a,
                    *self
                        .health
                        .get(a)
                        .unwrap_or(&PeerHealth::DownSince(*self.added.get(a)?)),
                ))
            })
            .collect()
    }

    /// Every non-mesh peer (ToR, route reflector, BGPPeer) with its health,
    /// for the route calculation's rule 2 and its reasons.
    pub fn peer_infos(&self) -> HashMap<IpAddr, BgpPeerInfo> {
        self.peers
            .iter()
            .filter(|(_, p)| p.peer_type != super::peers::PeerType::Mesh)
            .filter_map(|(a, p)| {
                Some((
                    *a,
                    BgpPeerInfo {
                        kind: p.peer_type.as_str().to_string(),
                        asn: p.config.remote_as,
                        health: *self
                            .health
                            .get(a)
                            .unwrap_or(&PeerHealth::DownSince(*self.added.get(a)?)),
                    },
                ))
            })
            .collect()
    }

    /// The learned routes the route calculation uses, converted once on
    /// arrival.
    pub fn learned(&self) -> Vec<LearnedRoute> {
        self.learned.values().cloned().collect()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.clone()
    }

    pub fn flaps(&self) -> HashMap<IpAddr, u64> {
        self.flaps.clone()
    }

    pub fn peer_types(&self) -> HashMap<IpAddr, super::peers::PeerType> {
        self.peers.iter().map(|(a, p)| (*a, p.peer_type)).collect()
    }

    /// Cease to every peer, returning once it is on the wire; the marker
    /// goes so the next start is a fresh one.
    pub async fn shutdown(&self) {
        if let Err(e) = self.speaker.shutdown().await {
            tracing::warn!(error = %e, "BGP shutdown");
        }
        let _ = std::fs::remove_file(&self.marker);
    }
}
