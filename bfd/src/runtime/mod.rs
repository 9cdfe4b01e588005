//! The tokio side of BFD: single-hop sessions over UDP (RFC 5881).
//!
//! ```text
//!                 UDP 3784 (IPv4 socket, IPv6 socket; IP_RECVTTL)
//!                        │
//!               receive task per socket ── TTL ≠ 255 → drop (GTSM)
//!                        │  decode (§6.8.6 checks) → demultiplex:
//!                        │  Your Discriminator ≠ 0 → that session,
//!                        │  else the session whose peer is the source
//!                        ▼
//!     ┌──── mpsc<Input> per session ────┐
//!     ▼                                 ▼
//!  session task (peer A, local X)   session task (peer B, local Y) ...
//!   owns its Session FSM, timers, and a send socket bound to
//!   local:49152–65535 with TTL 255; sends to peer:3784
//!     │ watch<SessionStatus>  (SessionHandle::status: latest state)
//!     └ broadcast<StateChange> (Bfd::subscribe: every transition, all sessions)
//! ```
//!
//! [`Bfd`] is a cheap clone; the registry of sessions is shared state
//! guarded by a mutex held only for map lookups (never across `.await`).
//! Dropping a [`SessionHandle`] ends its task, which first tells the peer
//! AdminDown so the peer does not mistake the removal for a failure.

mod socket;
mod task;

use crate::packet::{Diag, State};
use crate::session::SessionConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use socket::SOURCE_PORTS;

/// RFC 5881 §4: single-hop control packets go to this port.
pub const CONTROL_PORT: u16 = 3784;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen on UDP port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("a BFD session to {peer} from {local} already exists")]
    Duplicate { peer: IpAddr, local: IpAddr },
    #[error("BFD session to {peer}: local address {local} is of the other family")]
    FamilyMismatch { peer: IpAddr, local: IpAddr },
    #[error("BFD session to {peer}: detect multiplier must be 1-255, interval nonzero")]
    BadConfig { peer: IpAddr },
}

/// A session is one (peer, local address) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub peer: IpAddr,
    pub local: IpAddr,
}

/// The latest view of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStatus {
    pub state: State,
    pub remote_state: State,
    pub local_diag: Diag,
    pub local_discr: u32,
    pub remote_discr: u32,
    /// Current detection time (zero until the peer was heard).
    pub detection_time: Duration,
    /// Current transmit interval before jitter.
    pub tx_interval: Option<Duration>,
}

/// One transition of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub key: SessionKey,
    pub from: State,
    pub to: State,
    pub diag: Diag,
    /// The remote's state as last heard: a remote AdminDown (RFC 5882
    /// §3.2) is a removal on the other side, not a failure of the path.
    pub remote: State,
}

impl StateChange {
    /// Up to Down because the path failed (detection expiry, or the remote
    /// saying Down) — what clients act on; a remote AdminDown is not.
    pub fn is_failure(&self) -> bool {
        self.from == State::Up && self.to == State::Down && self.remote != State::AdminDown
    }
}

#[derive(Debug)]
enum Input {
    Packet(crate::packet::ControlPacket),
    Reconfigure(SessionConfig),
}

#[derive(Default)]
struct Registry {
    by_discr: HashMap<u32, mpsc::Sender<Input>>,
    by_key: HashMap<SessionKey, u32>,
}

struct Inner {
    registry: Mutex<Registry>,
    changes: broadcast::Sender<StateChange>,
    next_discr: AtomicU32,
    /// Where sessions send to (CONTROL_PORT but for tests).
    peer_port: u16,
}

impl Inner {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic elsewhere while holding it leaves plain maps: still usable.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The BFD runtime of one network namespace.
#[derive(Clone)]
pub struct Bfd {
    inner: Arc<Inner>,
    _rx_tasks: Arc<RxTasks>,
}

struct RxTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for RxTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Owner of one session: its status, and its lifetime.
pub struct SessionHandle {
    pub key: SessionKey,
    pub status: watch::Receiver<SessionStatus>,
    input: mpsc::Sender<Input>,
    stop: Option<oneshot::Sender<()>>,
}

impl SessionHandle {
    /// New intervals or multiplier (a Poll Sequence tells the peer).
    pub fn reconfigure(&self, config: SessionConfig) {
        let _ = self.input.try_send(Input::Reconfigure(config));
    }

    pub fn state(&self) -> State {
        self.status.borrow().state
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Bfd {
    /// Listens on UDP 3784 (IPv4, and IPv6 where the namespace has it).
    /// Call inside a tokio runtime: it spawns the receive tasks.
    pub fn start() -> Result<Bfd, RuntimeError> {
        Self::start_on(CONTROL_PORT, CONTROL_PORT)
    }

    /// Like [`Bfd::start`] with other ports: for tests that run two
    /// runtimes in one namespace.
    pub fn start_on(listen_port: u16, peer_port: u16) -> Result<Bfd, RuntimeError> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ std::process::id())
            .unwrap_or(1);
        let inner = Arc::new(Inner {
            registry: Mutex::new(Registry::default()),
            changes: broadcast::channel(256).0,
            next_discr: AtomicU32::new(seed.max(1)),
            peer_port,
        });
        let v4 = socket::listen(false, listen_port).map_err(|source| RuntimeError::Listen {
            port: listen_port,
            source,
        })?;
        let mut tasks = vec![task::spawn_receiver(v4, inner.clone())?];
        match socket::listen(true, listen_port) {
            Ok(v6) => tasks.push(task::spawn_receiver(v6, inner.clone())?),
            Err(e) => tracing::info!(error = %e, "BFD over IPv6 unavailable"),
        }
        Ok(Bfd {
            inner,
            _rx_tasks: Arc::new(RxTasks(tasks)),
        })
    }

    /// Every state change of every session.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.inner.changes.subscribe()
    }

    /// Starts a session; it runs until the handle is dropped.
    pub fn add(
        &self,
        key: SessionKey,
        config: SessionConfig,
    ) -> Result<SessionHandle, RuntimeError> {
        if key.peer.is_ipv4() != key.local.is_ipv4() {
            return Err(RuntimeError::FamilyMismatch {
                peer: key.peer,
                local: key.local,
            });
        }
        if config.detect_mult == 0
            || config.desired_min_tx.is_zero()
            || config.required_min_rx.is_zero()
        {
            return Err(RuntimeError::BadConfig { peer: key.peer });
        }
        let (tx, rx) = mpsc::channel(64);
        let discr = {
            let mut r = self.inner.registry();
            if r.by_key.contains_key(&key) {
                return Err(RuntimeError::Duplicate {
                    peer: key.peer,
                    local: key.local,
                });
            }
            let discr = loop {
                let d = self.inner.next_discr.fetch_add(1, Ordering::Relaxed);
                if d != 0 && !r.by_discr.contains_key(&d) {
                    break d;
                }
            };
            r.by_discr.insert(discr, tx.clone());
            r.by_key.insert(key, discr);
            discr
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let status = task::spawn_session(self.inner.clone(), key, config, discr, rx, stop_rx);
        Ok(SessionHandle {
            key,
            status,
            input: tx,
            stop: Some(stop_tx),
        })
    }
}
