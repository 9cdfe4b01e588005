//! Driving each connection's FSM with real events and carrying out its
//! actions: connects, sends, timers, collisions, session up/down.

use super::conn::Conn;
use super::core::Core;
use super::msg::CoreMsg;
use crate::fsm::{
    resolve_collision, Action, Direction, Event, Fsm, State, Survivor, TcpError, TcpErrorKind,
    TimerKind,
};
use crate::rib::SessionInfo;
use crate::transport::{ConnectOptions, Incoming, ReadError};
use crate::wire::{Message, Open};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;

/// An outbound connect gives up after this; the ConnectRetry timer
/// usually replaces the attempt sooner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Core {
    fn conn_mut(&mut self, peer: IpAddr, conn: u64) -> Option<&mut Conn> {
        self.peers
            .get_mut(&peer)?
            .conns
            .iter_mut()
            .find(|c| c.id == conn)
    }

    pub(crate) fn drive(&mut self, peer: IpAddr, conn: u64, event: Event) {
        let Some(c) = self.conn_mut(peer, conn) else {
            return;
        };
        let actions = c.fsm.handle(event);
        for a in actions {
            self.apply(peer, conn, a);
        }
        self.drop_leftovers(peer);
        self.settle(peer);
    }

    /// While the peer's session is Established, any other connection of
    /// its that has no TCP connection (Connect, Active) is a leftover of the
    /// race to connect: a dial still in flight, or the FSM of an inbound
    /// connection the peer gave up on (it took ours), waiting for its
    /// ConnectRetry. Left running, it dials a second or so later and sends
    /// an OPEN, which both sides take for the peer restarting (RFC 4724
    /// §4.2, as BIRD does too): the session flaps once, for nothing. A
    /// connection with a TCP link is left to the collision rules when its
    /// OPEN comes, so a peer that really restarts still gets the restart
    /// treatment.
    fn drop_leftovers(&mut self, peer: IpAddr) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        if !p.conns.iter().any(|c| c.fsm.state() == State::Established) {
            return;
        }
        let leftovers: Vec<u64> = p
            .conns
            .iter()
            // An inbound connection is attached before its FSM is started
            // and told of it: that one has its link already.
            .filter(|c| matches!(c.fsm.state(), State::Connect | State::Active))
            .filter(|c| c.link.is_none())
            .map(|c| c.id)
            .collect();
        for id in leftovers {
            self.drive(peer, id, Event::OpenCollisionDump);
        }
    }

    fn apply(&mut self, peer: IpAddr, conn: u64, action: Action) {
        let tx = self.tx.clone();
        let id = self.next_id();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let cfg = &p.config;
        let Some(c) = p.conns.iter_mut().find(|c| c.id == conn) else {
            return;
        };
        match action {
            Action::Connect => {
                let opts = ConnectOptions {
                    source: cfg.source_address,
                    password: cfg.password.clone(),
                    ttl_security: cfg.ttl_security,
                };
                let to = SocketAddr::new(peer, cfg.port);
                c.start_connect(to, opts, CONNECT_TIMEOUT, id, &tx);
            }
            Action::CancelConnect => c.cancel_connect(),
            Action::Disconnect => c.detach(),
            Action::Send(m) => {
                c.send(&m);
            }
            Action::StartTimer(kind, after) => c.start_timer(kind, after, peer, id, &tx),
            Action::StopTimer(kind) => c.stop_timer(kind),
            Action::SessionUp(n) => {
                c.ctx.four_octet_as = n.four_octet_as;
                c.ctx.extended_message = n.extended_message;
                let local = c.link.as_ref().map(|l| l.local.ip().to_canonical());
                p.session = Some(conn);
                p.md5_mismatch_since = None;
                let other = cfg.other_family_next_hop;
                let info = SessionInfo {
                    next_hop_v4: match (local, other) {
                        (Some(IpAddr::V4(a)), _) | (_, Some(IpAddr::V4(a))) => Some(a),
                        _ => None,
                    },
                    next_hop_v6: match (local, other) {
                        (Some(IpAddr::V6(a)), _) | (_, Some(IpAddr::V6(a))) => Some(a),
                        _ => None,
                    },
                    negotiated: n,
                };
                tracing::info!(%peer, "session established");
                let changes = self.rib.session_up(peer, info);
                if self.rib.stale_families(peer).is_empty() {
                    self.stop_restart_timer(peer);
                }
                self.dispatch(changes, None);
            }
            Action::SessionDown(reason) => {
                if p.session == Some(conn) {
                    p.session = None;
                }
                tracing::info!(%peer, error = %reason.error, "session down");
                let changes = self.rib.session_down(peer, reason.graceful_restart_time);
                match reason.graceful_restart_time {
                    Some(secs) if !self.rib.stale_families(peer).is_empty() => {
                        tracing::info!(%peer, secs, "peer may be restarting: keeping its routes stale");
                        self.start_restart_timer(peer, secs);
                    }
                    _ => self.stop_restart_timer(peer),
                }
                self.dispatch(changes, None);
            }
        }
    }

    /// Housekeeping after an FSM step: drop connections that lost, keep one
    /// FSM running, and copy state and errors into the peer status.
    fn settle(&mut self, peer: IpAddr) {
        let local = self.local.clone();
        let restart_id = self.next_id();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let mut changed = false;
        for c in &mut p.conns {
            if let Some(asn) = c.fsm.peer_open_as() {
                p.peer_open_as = Some(asn);
            }
            let n = c.fsm.failures();
            if n != c.seen_failures {
                c.seen_failures = n;
                if let Some(e) = c.fsm.last_error() {
                    p.last_error = Some(e.clone());
                    changed = true;
                }
            }
        }
        if p.conns.len() > 1 {
            p.conns.retain(|c| c.fsm.state() != State::Idle);
        }
        if p.conns.is_empty()
            || (p.conns.len() == 1
                && p.conns[0].fsm.state() == State::Idle
                && p.conns[0].timers.is_empty())
        {
            // Every FSM stopped without scheduling a restart (a collision
            // loser, say): start over after the error wait.
            p.conns.clear();
            p.conns.push(Conn::new(
                restart_id,
                Direction::Outbound,
                Fsm::new(local, p.config.clone()),
            ));
            let tx = self.tx.clone();
            let wait = p.config.error_wait.0;
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = tx.send(CoreMsg::Restart {
                    peer,
                    conn: restart_id,
                });
            });
        }
        let state = p
            .conns
            .iter()
            .map(|c| c.fsm.state())
            .max_by_key(|s| progress(*s))
            .unwrap_or(State::Idle);
        if state != p.state {
            p.state = state;
            p.since = SystemTime::now();
            changed = true;
        }
        if changed {
            self.peer_changed(peer);
        }
        self.bfd_settle(peer);
    }

    pub(crate) fn incoming(&mut self, inc: Incoming) {
        let Incoming { stream, peer } = inc;
        let Some(p) = self.peers.get(&peer) else {
            tracing::warn!(%peer, "connection from a peer removed meanwhile");
            return;
        };
        if p.conns.len() >= 2 && !waiting(p.conns.first()) {
            // Both slots taken. A slot held by a connection from the peer
            // that has not sent its OPEN is the one to free: a real peer
            // sends it at once, so the oldest silent one is the least
            // likely to be it, and refusing the newcomer instead would let
            // two silent connections lock the peer out.
            let silent = p
                .conns
                .iter()
                .filter(|c| c.direction == Direction::Inbound && c.fsm.state() == State::OpenSent)
                .min_by_key(|c| c.link.as_ref().map_or(0, |l| l.id))
                .map(|c| c.id);
            let Some(victim) = silent else {
                self.refuse_third(peer);
                return;
            };
            if let Some(suppressed) = self.limited(peer, "silent") {
                tracing::warn!(%peer, suppressed, "closing a connection that sent no OPEN to admit a new one");
            }
            self.drive(peer, victim, Event::OpenCollisionDump);
        }
        let tx = self.tx.clone();
        let flushed = self.flushed.clone();
        let link = self.next_id();
        let new_id = self.next_id();
        let local = self.local.clone();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        // A peer always keeps one connection slot (housekeeping refills it),
        // but this runs on a network event, so an empty list must not panic:
        // it just takes the new-connection path below.
        let target = if let Some(primary) = p.conns.first_mut().filter(|c| waiting(Some(c))) {
            primary.direction = Direction::Inbound;
            primary.attach(stream, peer, link, &tx, &flushed);
            primary.id
        } else if p.conns.len() >= 2 {
            self.refuse_third(peer);
            return;
        } else {
            let mut c = Conn::new(
                new_id,
                Direction::Inbound,
                Fsm::new(local, p.config.clone()),
            );
            c.attach(stream, peer, link, &tx, &flushed);
            p.conns.push(c);
            self.drive(peer, new_id, Event::ManualStartPassive);
            new_id
        };
        self.drive(peer, target, Event::TcpConnectionConfirmed);
    }

    /// Both of the peer's connection slots are busy: the newcomer is
    /// dropped (counted for the status).
    fn refuse_third(&mut self, peer: IpAddr) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.connections_refused += 1;
        }
        if let Some(suppressed) = self.limited(peer, "third") {
            tracing::warn!(%peer, suppressed, "third concurrent connection refused");
        }
    }

    pub(crate) fn connected(&mut self, peer: IpAddr, link: u64, result: io::Result<TcpStream>) {
        let tx = self.tx.clone();
        let flushed = self.flushed.clone();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(c) = p
            .conns
            .iter_mut()
            .find(|c| c.connecting.as_ref().is_some_and(|(l, _)| *l == link))
        else {
            // Cancelled meanwhile: the stream (if any) is dropped.
            return;
        };
        c.connecting = None;
        let id = c.id;
        match result {
            Ok(stream) => {
                c.direction = Direction::Outbound;
                c.attach(stream, peer, link, &tx, &flushed);
                self.drive(peer, id, Event::TcpConnectionAcknowledged);
            }
            Err(e) => self.drive(peer, id, Event::TcpConnectionFails((&e).into())),
        }
    }

    pub(crate) fn read(
        &mut self,
        peer: IpAddr,
        link: u64,
        msgs: Vec<Message>,
        end: Option<ReadError>,
    ) {
        let find = |core: &Core| -> Option<u64> {
            core.peers
                .get(&peer)?
                .conns
                .iter()
                .find(|c| c.link.as_ref().is_some_and(|l| l.id == link))
                .map(|c| c.id)
        };
        let mut hold_restarted = false;
        for msg in msgs {
            // The FSM may have closed this connection mid-batch.
            let Some(conn) = find(self) else {
                return;
            };
            match msg {
                Message::Open(open) => self.open(peer, conn, open),
                Message::Update(update) => {
                    // Restarting the hold timer once per batch is enough.
                    if !hold_restarted {
                        self.drive(peer, conn, Event::UpdateMsg);
                        hold_restarted = true;
                    }
                    let session = self.peers.get(&peer).and_then(|p| p.session);
                    if session == Some(conn) {
                        if let Some(why) = &update.treat_as_withdraw {
                            if let Some(p) = self.peers.get_mut(&peer) {
                                p.updates_treated_as_withdraw += 1;
                            }
                            if let Some(suppressed) = self.limited(peer, "withdraw") {
                                tracing::warn!(%peer, reason = %why, suppressed, "malformed UPDATE treated as withdraw");
                            }
                        }
                        let changes = self.rib.apply_update(peer, &update);
                        self.dispatch(changes, Some(peer));
                        if update.end_of_rib().is_some() {
                            self.end_of_rib(peer);
                        }
                    }
                }
                Message::Keepalive => self.drive(peer, conn, Event::KeepAliveMsg),
                Message::Notification(n) => self.drive(peer, conn, Event::NotifMsg(n)),
                Message::RouteRefresh(rr) => {
                    tracing::debug!(%peer, family = ?rr.family, "ROUTE-REFRESH received");
                    self.drive(peer, conn, Event::RouteRefreshMsg);
                    let session = self.peers.get(&peer).and_then(|p| p.session);
                    if session == Some(conn) {
                        let changes = self.rib.route_refresh(peer);
                        self.dispatch(changes, None);
                    }
                }
            }
        }
        let Some(end) = end else {
            return;
        };
        let Some(conn) = find(self) else {
            return;
        };
        let event = match end {
            ReadError::Decode(d) => {
                tracing::warn!(%peer, error = %d, "bad message");
                Event::MessageError(d.notification())
            }
            ReadError::Closed => Event::TcpConnectionFails(TcpError::closed_by_peer()),
            ReadError::Io(e) => Event::TcpConnectionFails((&e).into()),
        };
        self.drive(peer, conn, event);
    }

    /// The peer's OPEN: first settle any collision with another connection.
    fn open(&mut self, peer: IpAddr, conn: u64, open: Open) {
        let router_id = self.local.router_id;
        let new_dir = self
            .peers
            .get(&peer)
            .and_then(|p| p.conns.iter().find(|c| c.id == conn))
            .map_or(Direction::Inbound, |c| c.direction);
        let other = self.peers.get(&peer).and_then(|p| {
            p.conns
                .iter()
                .find(|c| c.id != conn && c.fsm.state() != State::Idle)
                .map(|c| {
                    let survivor =
                        resolve_collision(router_id, open.bgp_id, &c.fsm, c.direction, new_dir);
                    (c.id, c.fsm.state(), survivor)
                })
        });
        match other {
            None | Some((_, _, Survivor::Both)) => self.drive(peer, conn, Event::BgpOpen(open)),
            Some((_, _, Survivor::Existing)) => {
                tracing::info!(%peer, "collision: keeping the existing connection");
                self.drive(peer, conn, Event::OpenCollisionDump);
            }
            Some((old, old_state, Survivor::New)) => {
                tracing::info!(%peer, "collision: keeping the new connection");
                if old_state == State::Established {
                    // RFC 4724 §4.2: a new OPEN on a GR session means the
                    // peer restarted; its routes stay stale.
                    self.drive(
                        peer,
                        old,
                        Event::TcpConnectionFails(TcpError::new(
                            TcpErrorKind::PeerRestarted,
                            "peer restarted (new connection)",
                        )),
                    );
                } else {
                    self.drive(peer, old, Event::OpenCollisionDump);
                }
                self.drive(peer, conn, Event::BgpOpen(open));
            }
        }
    }

    /// After the RIB swept what End-of-RIB did not refresh: once no family
    /// of the peer is stale any more, its graceful restart is over, so the
    /// restart timer must not fire later.
    fn end_of_rib(&mut self, peer: IpAddr) {
        let waiting = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.restart_timer.is_some());
        if waiting && self.rib.stale_families(peer).is_empty() {
            tracing::info!(%peer, "End-of-RIB: graceful restart complete");
            self.stop_restart_timer(peer);
        }
    }

    pub(crate) fn timer(&mut self, peer: IpAddr, conn: u64, kind: TimerKind, gen: u64) {
        self.check_md5();
        let Some(c) = self.conn_mut(peer, conn) else {
            return;
        };
        if c.timers.get(&kind).is_some_and(|(g, _)| *g == gen) {
            c.timers.remove(&kind);
            self.drive(peer, conn, Event::timer_expired(kind));
        }
    }
}

/// A connection slot waiting for TCP (no stream yet): an inbound
/// connection is adopted into it.
fn waiting(c: Option<&Conn>) -> bool {
    c.is_some_and(|c| c.link.is_none() && matches!(c.fsm.state(), State::Connect | State::Active))
}

/// How far a state is towards Established, for the status of a peer with
/// two connections.
fn progress(s: State) -> u8 {
    match s {
        State::Idle => 0,
        State::Connect | State::Active => 1,
        State::OpenSent => 2,
        State::OpenConfirm => 3,
        State::Established => 4,
    }
}
