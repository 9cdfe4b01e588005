//! The receive tasks and the per-session tasks of [`super`]'s picture.

use super::socket;
use super::{Inner, Input, SessionKey, SessionStatus, StateChange};
use crate::packet::ControlPacket;
use crate::session::{Action, Event, Session, SessionConfig};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

/// How often a session retries binding its send socket (the local
/// address may not be configured yet).
const BIND_RETRY: Duration = Duration::from_secs(1);

pub(super) fn spawn_receiver(
    sock: UdpSocket,
    inner: Arc<Inner>,
) -> Result<tokio::task::JoinHandle<()>, super::RuntimeError> {
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    let sock = tokio::net::UdpSocket::from_std(sock)
        .map_err(|source| super::RuntimeError::Listen { port, source })?;
    Ok(tokio::spawn(receive(sock, inner)))
}

async fn receive(sock: tokio::net::UdpSocket, inner: Arc<Inner>) {
    let mut buf = [0u8; 512];
    loop {
        if sock.readable().await.is_err() {
            return;
        }
        let fd = sock.as_raw_fd();
        let got = sock.try_io(Interest::READABLE, || socket::recv_with_ttl(fd, &mut buf));
        let (n, src, ttl) = match got {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "BFD receive failed");
                continue;
            }
        };
        if ttl != Some(255) {
            // RFC 5881 §5 (GTSM): a single-hop peer sends with TTL 255.
            tracing::debug!(%src, ?ttl, "BFD packet dropped: TTL is not 255");
            continue;
        }
        match ControlPacket::decode(&buf[..n]) {
            Ok(p) => {
                tracing::trace!(%src, state = %p.state, "BFD receive");
                deliver(&inner, src, p)
            }
            Err(e) => tracing::debug!(%src, error = %e, "BFD packet discarded"),
        }
    }
}

/// RFC 5880 §6.8.6: by Your Discriminator when set, else by the source
/// (one session per peer address is what single hop needs).
fn deliver(inner: &Inner, src: SocketAddr, p: ControlPacket) {
    let tx = {
        let r = inner.registry();
        if p.your_discriminator != 0 {
            r.by_discr.get(&p.your_discriminator).cloned()
        } else {
            r.by_key
                .iter()
                .find(|(k, _)| k.peer == src.ip())
                .and_then(|(_, d)| r.by_discr.get(d).cloned())
        }
    };
    match tx {
        Some(tx) => {
            let _ = tx.try_send(Input::Packet(p));
        }
        None => tracing::debug!(%src, discr = p.your_discriminator, "BFD packet for no session"),
    }
}

pub(super) fn spawn_session(
    inner: Arc<Inner>,
    key: SessionKey,
    config: SessionConfig,
    discr: u32,
    input: mpsc::Receiver<Input>,
    stop: oneshot::Receiver<()>,
) -> watch::Receiver<SessionStatus> {
    let session = Session::new(config, discr, u64::from(discr) << 17 ^ 0x9e37_79b9);
    let (status_tx, status_rx) = watch::channel(status(&session));
    let span = tracing::info_span!("bfd", peer = %key.peer, local = %key.local);
    let run = SessionTask {
        inner,
        key,
        session,
        status: status_tx,
        sock: None,
        tx_at: None,
        detect_at: None,
    };
    tokio::spawn(run.run(input, stop).instrument(span));
    status_rx
}

fn status(s: &Session) -> SessionStatus {
    SessionStatus {
        state: s.state(),
        remote_state: s.remote_state(),
        local_diag: s.local_diag(),
        local_discr: s.local_discr(),
        remote_discr: s.remote_discr(),
        detection_time: s.detection_time(),
        tx_interval: s.tx_interval(),
    }
}

struct SessionTask {
    inner: Arc<Inner>,
    key: SessionKey,
    session: Session,
    status: watch::Sender<SessionStatus>,
    sock: Option<tokio::net::UdpSocket>,
    tx_at: Option<Instant>,
    detect_at: Option<Instant>,
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86400)
}

impl SessionTask {
    async fn run(mut self, mut input: mpsc::Receiver<Input>, mut stop: oneshot::Receiver<()>) {
        tracing::info!("BFD session started");
        let mut bind_at = Some(Instant::now());
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep_until(bind_at.unwrap_or_else(far)), if bind_at.is_some() => {
                    bind_at = (!self.bind()).then(|| Instant::now() + BIND_RETRY);
                    if bind_at.is_none() {
                        let a = self.session.start(Instant::now().into_std());
                        self.apply(a).await;
                    }
                }
                i = input.recv() => match i {
                    Some(Input::Packet(p)) => self.event(Event::Packet(p)).await,
                    Some(Input::Reconfigure(c)) => self.event(Event::Reconfigure(c)).await,
                    None => break,
                },
                _ = tokio::time::sleep_until(self.tx_at.unwrap_or_else(far)), if self.tx_at.is_some() => {
                    self.event(Event::TxTimer).await;
                }
                _ = tokio::time::sleep_until(self.detect_at.unwrap_or_else(far)), if self.detect_at.is_some() => {
                    self.event(Event::DetectTimer).await;
                }
            }
        }
        // Tell the peer this is a removal, not a failure (RFC 5880 §6.8.16).
        if self.sock.is_some() {
            self.event(Event::AdminDown).await;
        }
        let mut r = self.inner.registry();
        if let Some(d) = r.by_key.remove(&self.key) {
            r.by_discr.remove(&d);
        }
        tracing::info!("BFD session removed");
    }

    fn bind(&mut self) -> bool {
        let start = 49152 + (self.session.local_discr() % 16384) as u16;
        match socket::sender(self.key.local, start).and_then(tokio::net::UdpSocket::from_std) {
            Ok(s) => {
                self.sock = Some(s);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "BFD cannot bind its send socket; retrying");
                false
            }
        }
    }

    async fn event(&mut self, e: Event) {
        if self.sock.is_none() {
            // Not started yet: nothing to say, nothing to time; only a new
            // configuration is kept (start() arms the timers from it).
            if let Event::Reconfigure(_) = e {
                let _ = self.session.handle(Instant::now().into_std(), e);
            }
            return;
        }
        let a = self.session.handle(Instant::now().into_std(), e);
        self.apply(a).await;
    }

    async fn apply(&mut self, actions: Vec<Action>) {
        let mut changes = Vec::new();
        for a in actions {
            match a {
                Action::Send(p) => {
                    if let Some(s) = &self.sock {
                        let to = SocketAddr::new(self.key.peer, self.inner.peer_port);
                        tracing::trace!(state = %p.state, poll = p.poll, fin = p.final_, "BFD send");
                        if let Err(e) = s.send_to(&p.encode(), to).await {
                            tracing::debug!(error = %e, "BFD send failed");
                        }
                    }
                }
                Action::StateChanged { from, to, diag } => {
                    tracing::info!(%from, %to, %diag, "BFD session state changed");
                    changes.push(StateChange {
                        key: self.key,
                        from,
                        to,
                        diag,
                        remote: self.session.remote_state(),
                    });
                }
                Action::ArmTx(t) => self.tx_at = Some(Instant::from_std(t)),
                Action::ArmDetect(t) => self.detect_at = Some(Instant::from_std(t)),
                Action::DisarmDetect => self.detect_at = None,
            }
        }
        let st = status(&self.session);
        self.status.send_if_modified(|s| {
            let changed = *s != st;
            *s = st;
            changed
        });
        // After the watch: whoever reacts to a change reads the new status.
        for c in changes {
            let _ = self.inner.changes.send(c);
        }
    }
}
