//! The core task: peers, RIB, commands, and the fan-out of RIB changes to
//! sessions and watchers. FSM driving lives in `drive.rs`.

use super::conn::Conn;
use super::md5watch::Md5Watch;
use super::msg::CoreMsg;
use super::status::PeerStatus;
use super::watch::{
    BestPath, BestPathEvent, BestPathWatch, PeerEvent, CHANNEL_BATCHES, PEER_EVENTS,
};
use super::{Command, SpeakerError};
use crate::fsm::{Direction, Event, Fsm, State};
use crate::log_limit::{LogLimiter, Verdict, WINDOW};
use crate::peer_config::{LocalConfig, PeerConfig};
use crate::rib::{family_of, PeerExport, Rib, RibChanges};
use crate::transport::Listener;
use crate::wire::{
    encode_announce, encode_end_of_rib, encode_withdraw, LargeCommunity, SessionContext,
};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

pub(crate) struct PeerEntry {
    pub config: PeerConfig,
    /// The first is the peer's main FSM; a second exists only while an
    /// inbound connection collides with it (RFC 4271 §6.8).
    pub conns: Vec<Conn>,
    pub state: State,
    pub since: SystemTime,
    pub last_error: Option<crate::fsm::LastError>,
    /// The AS of the peer's last OPEN (see [`Fsm::peer_open_as`]).
    pub peer_open_as: Option<u32>,
    /// The connection whose session is Established.
    pub session: Option<u64>,
    pub restart_timer: Option<(u64, AbortHandle)>,
    /// When `restart_timer` fires, for the status.
    pub restart_until: Option<SystemTime>,
    /// See [`PeerStatus::connections_refused`].
    pub connections_refused: u64,
    /// See [`PeerStatus::updates_treated_as_withdraw`].
    pub updates_treated_as_withdraw: u64,
    /// See [`PeerStatus::md5_mismatches`].
    pub md5_mismatches: u64,
    pub md5_mismatch_since: Option<SystemTime>,
    pub bfd: Option<tabby_bfd::runtime::SessionHandle>,
}

pub(crate) struct Core {
    pub local: LocalConfig,
    pub listener: Option<Listener>,
    pub peers: HashMap<IpAddr, PeerEntry>,
    pub rib: Rib,
    pub tx: mpsc::UnboundedSender<CoreMsg>,
    next_id: u64,
    watch: broadcast::Sender<Arc<Vec<BestPathEvent>>>,
    peer_events: broadcast::Sender<PeerEvent>,
    /// Cloned into every writer task; see [`Core::run`]'s shutdown.
    pub flushed: mpsc::Sender<()>,
    flushed_rx: Option<mpsc::Receiver<()>>,
    /// Warnings a peer can cause at wire speed (refused connections,
    /// treat-as-withdraw UPDATEs), limited per peer and kind.
    pub log_limit: LogLimiter<(IpAddr, &'static str)>,
    pub md5: Md5Watch,
    /// Started with the first peer that wants BFD (`bfd.rs`).
    pub bfd: Option<tabby_bfd::runtime::Bfd>,
}

/// How long shutdown waits for the writers: a peer that stopped reading
/// must not keep the process from exiting.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

impl Core {
    pub fn new(
        local: LocalConfig,
        listener: Option<Listener>,
        tx: mpsc::UnboundedSender<CoreMsg>,
    ) -> Self {
        let (watch, _) = broadcast::channel(CHANNEL_BATCHES);
        let (peer_events, _) = broadcast::channel(PEER_EVENTS);
        let (flushed, flushed_rx) = mpsc::channel(1);
        Core {
            rib: Rib::new(local.clone()),
            local,
            listener,
            peers: HashMap::new(),
            tx,
            next_id: 1,
            watch,
            peer_events,
            flushed,
            flushed_rx: Some(flushed_rx),
            log_limit: LogLimiter::new(WINDOW),
            md5: Md5Watch::new(),
            bfd: None,
        }
    }

    /// Whether this occurrence of `what` from `peer` is to be logged, and
    /// with how many folded since the last line.
    pub fn limited(&mut self, peer: IpAddr, what: &'static str) -> Option<u64> {
        match self
            .log_limit
            .check(&(peer, what), std::time::Instant::now())
        {
            Verdict::Log { suppressed } => Some(suppressed),
            Verdict::Suppress => None,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<CoreMsg>) {
        // The accept task holds the listening socket. Shutdown ends it and
        // waits until it is gone before replying: a speaker restarted in
        // the same process (a new AS) binds the same port right after.
        let mut accept = None;
        if let Some(l) = &self.listener {
            let (itx, mut irx) = mpsc::channel(64);
            accept = Some(l.spawn(itx));
            let tx = self.tx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        inc = irx.recv() => {
                            let Some(inc) = inc else { break };
                            if tx.send(CoreMsg::Incoming(inc)).is_err() {
                                break;
                            }
                        }
                        _ = tx.closed() => break,
                    }
                }
            });
        }
        while let Some(msg) = rx.recv().await {
            match msg {
                CoreMsg::Command(Command::Shutdown(reply)) => {
                    let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
                    for addr in addrs {
                        self.stop_peer(addr);
                    }
                    // The Ceases are queued. Dropping the core closes every
                    // queue; each writer writes out what it holds, shuts its
                    // socket down and drops its `flushed` sender, so the
                    // receiver ends when the last one is on the wire.
                    let mut flushed = self.flushed_rx.take();
                    drop(self);
                    if let Some(a) = accept.take() {
                        a.abort();
                        // Resolves once the task (and its socket) is dropped.
                        let _ = a.await;
                    }
                    if let Some(rx) = flushed.as_mut() {
                        if tokio::time::timeout(FLUSH_LIMIT, rx.recv()).await.is_err() {
                            tracing::warn!("a peer did not take its Cease within {FLUSH_LIMIT:?}");
                        }
                    }
                    let _ = reply.send(());
                    return;
                }
                CoreMsg::Command(c) => self.command(c),
                CoreMsg::Incoming(inc) => self.incoming(inc),
                CoreMsg::Connected { peer, link, result } => self.connected(peer, link, result),
                CoreMsg::Read {
                    peer,
                    link,
                    msgs,
                    end,
                } => self.read(peer, link, msgs, end),
                CoreMsg::Timer {
                    peer,
                    conn,
                    kind,
                    gen,
                } => self.timer(peer, conn, kind, gen),
                CoreMsg::RestartTimer { peer, gen } => {
                    let current = self.peers.get(&peer).and_then(|p| p.restart_timer.as_ref());
                    if current.is_some_and(|(g, _)| *g == gen) {
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.restart_timer = None;
                            p.restart_until = None;
                        }
                        tracing::info!(%peer, "graceful restart time over: dropping stale routes");
                        let changes = self.rib.restart_timer_expired(peer);
                        self.dispatch(changes, None);
                    }
                }
                CoreMsg::Restart { peer, conn } => self.drive(peer, conn, Event::ManualStart),
                CoreMsg::Bfd(change) => self.bfd_changed(change),
            }
        }
        if let Some(a) = accept {
            a.abort();
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::AddPeer(cfg, reply) => {
                let _ = reply.send(self.add_peer(*cfg));
            }
            Command::RemovePeer(addr, reply) => {
                let _ = reply.send(self.remove_peer(addr));
            }
            Command::Originate(prefixes, communities, large, reply) => {
                self.originate(&prefixes, &communities, &large);
                let _ = reply.send(());
            }
            Command::Withdraw(prefixes, reply) => {
                let changes = self.rib.withdraw_local(&prefixes);
                self.dispatch(changes, None);
                let _ = reply.send(());
            }
            Command::Peers(reply) => {
                self.check_md5();
                let _ = reply.send(self.statuses());
            }
            Command::Watch(reply) => {
                let changes = self.watch.subscribe();
                let peer_changes = self.peer_events.subscribe();
                let snapshot = self
                    .rib
                    .best_paths()
                    .map(|(prefix, path)| BestPath::from_path(prefix, path))
                    .collect();
                let _ = reply.send(BestPathWatch {
                    snapshot,
                    changes,
                    peers: self.statuses(),
                    peer_changes,
                });
            }
            Command::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    pub fn originate(&mut self, prefixes: &[IpNet], communities: &[u32], large: &[LargeCommunity]) {
        let changes = self.rib.originate_with(prefixes, communities, large);
        self.dispatch(changes, None);
    }

    pub fn add_peer(&mut self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        let addr = cfg.address;
        if self.peers.contains_key(&addr) {
            return Err(SpeakerError::DuplicatePeer(addr));
        }
        if let Some(l) = &self.listener {
            l.allow_with(addr, cfg.password.as_deref(), cfg.ttl_security)
                .map_err(|source| SpeakerError::Password { peer: addr, source })?;
        }
        let changes = self.rib.set_peer(cfg.clone());
        let id = self.next_id();
        let conn = Conn::new(
            id,
            Direction::Outbound,
            Fsm::new(self.local.clone(), cfg.clone()),
        );
        self.peers.insert(
            addr,
            PeerEntry {
                config: cfg,
                conns: vec![conn],
                state: State::Idle,
                since: SystemTime::now(),
                last_error: None,
                peer_open_as: None,
                session: None,
                restart_timer: None,
                restart_until: None,
                connections_refused: 0,
                updates_treated_as_withdraw: 0,
                md5_mismatches: 0,
                md5_mismatch_since: None,
                bfd: None,
            },
        );
        self.dispatch(changes, None);
        self.peer_changed(addr);
        // The core may not be running yet (start-up): post, don't drive.
        let _ = self.tx.send(CoreMsg::Restart {
            peer: addr,
            conn: id,
        });
        tracing::info!(peer = %addr, "peer added");
        Ok(())
    }

    fn remove_peer(&mut self, addr: IpAddr) -> Result<(), SpeakerError> {
        if !self.peers.contains_key(&addr) {
            return Err(SpeakerError::UnknownPeer(addr));
        }
        self.stop_peer(addr);
        self.peers.remove(&addr);
        if let Some(l) = &self.listener {
            l.disallow(addr);
        }
        let changes = self.rib.remove_peer(addr);
        self.dispatch(changes, None);
        if self.peer_events.receiver_count() > 0 {
            let _ = self.peer_events.send(PeerEvent::Removed(addr));
        }
        tracing::info!(peer = %addr, "peer removed");
        Ok(())
    }

    /// ManualStop on every connection (Cease to an open session).
    fn stop_peer(&mut self, addr: IpAddr) {
        let ids: Vec<u64> = self
            .peers
            .get(&addr)
            .map(|p| p.conns.iter().map(|c| c.id).collect())
            .unwrap_or_default();
        for id in ids {
            self.drive(addr, id, Event::ManualStop);
        }
    }

    fn status(&self, p: &PeerEntry) -> PeerStatus {
        let counts = self.rib.peer_counts(p.config.address).unwrap_or_default();
        PeerStatus {
            config: p.config.clone(),
            state: p.state,
            since: p.since,
            last_error: p.last_error.clone(),
            peer_open_as: p.peer_open_as,
            local_as: self.local.asn,
            prefixes_received: counts.received,
            prefixes_accepted: counts.accepted,
            prefixes_advertised: counts.advertised,
            prefixes_martian: counts.martians,
            graceful_restart_until: p.restart_until,
            connections_refused: p.connections_refused,
            updates_treated_as_withdraw: p.updates_treated_as_withdraw,
            md5_mismatches: p.md5_mismatches,
            md5_mismatch_since: p.md5_mismatch_since,
            bfd: p.bfd.as_ref().map(|h| *h.status.borrow()),
            families: PeerStatus::families_of(&p.conns),
        }
    }

    /// Puts a rise of the kernel's TCP-MD5 drop counters down to the down
    /// peers it can concern (see `md5watch.rs`), logs it once a window per
    /// peer and marks their status.
    pub(crate) fn check_md5(&mut self) {
        let Some((keyed, unkeyed)) = self.md5.rise() else {
            return;
        };
        let wall = SystemTime::now();
        let mut blamed: Vec<(IpAddr, u64, &'static str)> = Vec::new();
        for (addr, p) in self.peers.iter_mut() {
            if p.state == State::Established {
                continue;
            }
            let (n, why) = if p.config.password.is_some() {
                (keyed, "wrong or missing signature from the peer")
            } else {
                (unkeyed, "the peer signs, but no password is set here")
            };
            if n == 0 {
                continue;
            }
            p.md5_mismatches += n;
            p.md5_mismatch_since.get_or_insert(wall);
            blamed.push((*addr, n, why));
        }
        for (peer, dropped, why) in blamed {
            if let Some(suppressed) = self.limited(peer, "md5") {
                tracing::warn!(
                    %peer,
                    dropped,
                    suppressed,
                    "TCP-MD5 signature mismatch ({why}): the kernel drops the session's segments; check the BGP password on both sides"
                );
            }
            self.peer_changed(peer);
        }
    }

    fn statuses(&self) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = self.peers.values().map(|p| self.status(p)).collect();
        out.sort_by_key(|s| s.config.address);
        out
    }

    /// Tells watchers a peer's state or latest error changed.
    pub fn peer_changed(&self, addr: IpAddr) {
        if self.peer_events.receiver_count() == 0 {
            return;
        }
        if let Some(p) = self.peers.get(&addr) {
            let _ = self
                .peer_events
                .send(PeerEvent::Changed(Box::new(self.status(p))));
        }
    }

    /// Sends each peer its Adj-RIB-Out diff and each watcher the best-path
    /// changes. `from` is the peer whose UPDATE caused them (max-prefix).
    pub fn dispatch(&mut self, changes: RibChanges, from: Option<IpAddr>) {
        if !changes.best.is_empty() && self.watch.receiver_count() > 0 {
            let events = changes
                .best
                .iter()
                .map(BestPathEvent::from_change)
                .collect();
            let _ = self.watch.send(Arc::new(events));
        }
        for export in &changes.exports {
            let Some(p) = self.peers.get(&export.peer) else {
                continue;
            };
            let Some(conn) = p.session.and_then(|id| p.conns.iter().find(|c| c.id == id)) else {
                continue;
            };
            conn.send_raw(encode_export(export, &conn.ctx));
        }
        if let (Some(limit), Some(peer)) = (changes.max_prefix_exceeded, from) {
            if let Some(id) = self.peers.get(&peer).and_then(|p| p.session) {
                let n = crate::fsm::notify::max_prefixes_cease(limit);
                self.drive(peer, id, Event::MessageError(n));
            }
        }
    }

    /// Starts (or restarts) the RFC 4724 helper timer for `peer`.
    pub fn start_restart_timer(&mut self, peer: IpAddr, secs: u16) {
        let gen = self.next_id();
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs.into())).await;
            let _ = tx.send(CoreMsg::RestartTimer { peer, gen });
        });
        if let Some(p) = self.peers.get_mut(&peer) {
            if let Some((_, old)) = p.restart_timer.replace((gen, task.abort_handle())) {
                old.abort();
            }
            p.restart_until = Some(SystemTime::now() + Duration::from_secs(secs.into()));
        }
        self.peer_changed(peer);
    }

    pub fn stop_restart_timer(&mut self, peer: IpAddr) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.restart_until = None;
        if let Some((_, h)) = p.restart_timer.take() {
            h.abort();
            self.peer_changed(peer);
        }
    }
}

/// One peer's diff as UPDATE messages: withdrawals, announcements packed
/// per attribute set, then End-of-RIB markers.
///
/// An attribute set that cannot be encoded for this session (it grew past
/// the message limit on the way out, e.g. a 4,041-byte optional attribute
/// plus our prepended AS on a session without extended messages) is
/// withdrawn instead: left unsent, the peer would keep using the path it
/// had before, which is no longer ours. The RIB still counts those
/// prefixes as advertised, so a later change or withdrawal of them is
/// sent as usual (a withdrawal of one the peer does not have is harmless).
fn encode_export(e: &PeerExport, ctx: &SessionContext) -> Vec<u8> {
    let mut out = Vec::new();
    encode_withdraw(&e.withdraw, &mut out);
    for (attrs, prefixes) in &e.announce {
        let Some(first) = prefixes.first() else {
            continue;
        };
        let update = attrs.to_update(family_of(first), Vec::new());
        if let Err(err) = encode_announce(&update.attrs, prefixes, ctx, &mut out) {
            tracing::warn!(
                peer = %e.peer,
                error = %err,
                prefixes = prefixes.len(),
                first = %first,
                "cannot encode announcement: withdrawing its prefixes from this peer instead"
            );
            encode_withdraw(prefixes, &mut out);
        }
    }
    for family in &e.end_of_rib {
        encode_end_of_rib(*family, &mut out);
    }
    out
}
