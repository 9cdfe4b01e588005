//! The running speaker: one core task owns every peer's FSMs and the RIBs
//! (no locks on the route path, like BIRD's single event loop); per
//! connection, a reader task frames and decodes messages in parallel and a
//! writer task batches what the core queues. Timers are tokio tasks that
//! post back to the core.
//!
//! ```text
//!  Speaker handles ──Command (+ oneshot reply)──┐
//!  (agent, gRPC)                                │
//!                                               ▼
//!  accept task ───────CoreMsg::Incoming────►┌────────┐──Vec<u8> (WriteQueue)──► writer task ──► TCP
//!  (transport::Listener, one)               │  core  │   one per connection;    (conn.rs attach)
//!                                           │ (core, │   holds a `flushed`
//!  connect task ──────CoreMsg::Connected───►│ drive) │   guard until shut down
//!  (one per attempt, conn.rs)               │        │
//!                                           │ FSMs,  │──broadcast Arc<Vec<BestPathEvent>>──► watchers
//!  reader task ───────CoreMsg::Read────────►│ RIBs   │──broadcast PeerEvent────────────────► watchers
//!  (one per connection, conn.rs read_loop)  │        │
//!                                           │        │
//!  timer tasks ───CoreMsg::Timer/Restart/──►│        │
//!  (conn.rs start_timer,   RestartTimer     │        │
//!   core.rs restart timer, drive.rs wait)   │        │
//!  BFD forwarder ─────CoreMsg::Bfd─────────►└────────┘
//!  (bfd.rs: tabby_bfd's state changes;
//!   one session per peer with PeerConfig.bfd)
//! ```
//!
//! Who spawns what: [`Speaker::start`] spawns the core; the core spawns
//! the accept task (`Core::run`), the RFC 4724 restart timers
//! (`Core::start_restart_timer`) and the error-wait restarts
//! (`Core::settle`); a [`conn::Conn`] spawns its connect attempt, its reader
//! and writer tasks, and its FSM timers. Every spawned task only ever posts
//! a [`msg::CoreMsg`] back, tagged with a link or generation id so a message
//! from a connection or timer already replaced is ignored; only the core
//! touches FSM or RIB state. Shutdown: `Command::Shutdown` queues Cease on
//! every session, drops the core (and so every queue), and replies once the
//! last writer has dropped its `flushed` sender — the Cease is on the wire.

mod bfd;
mod conn;
mod core;
mod drive;
mod md5watch;
mod msg;
mod status;
mod watch;

pub use status::PeerStatus;
pub use watch::{BestPath, BestPathEvent, BestPathWatch, PeerEvent};

use crate::peer_config::{LocalConfig, PeerConfig};
use crate::transport::Listener;
use crate::wire::LargeCommunity;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Everything the speaker needs to start.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    pub local: LocalConfig,
    /// `None`: no listening socket (every peer is connected to actively).
    pub listen: Option<SocketAddr>,
    pub peers: Vec<PeerConfig>,
    /// Prefixes originated from the start, before any session comes up, so
    /// a restarted speaker's first dump (and End-of-RIB) already holds them.
    pub originate: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("peer {0} is already configured")]
    DuplicatePeer(IpAddr),
    #[error("peer {0} is not configured")]
    UnknownPeer(IpAddr),
    #[error("peer {peer}: TCP-MD5 password: {source}")]
    Password {
        peer: IpAddr,
        source: std::io::Error,
    },
    #[error("the speaker has stopped")]
    Stopped,
}

pub(crate) enum Command {
    /// Boxed: a peer's configuration is several times any other command.
    AddPeer(Box<PeerConfig>, oneshot::Sender<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, oneshot::Sender<Result<(), SpeakerError>>),
    Originate(
        Vec<IpNet>,
        Vec<u32>,
        Vec<LargeCommunity>,
        oneshot::Sender<()>,
    ),
    Withdraw(Vec<IpNet>, oneshot::Sender<()>),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Watch(oneshot::Sender<BestPathWatch>),
    /// Stop every session with Cease and end the core.
    Shutdown(oneshot::Sender<()>),
}

/// A handle on the running speaker; cheap to clone.
#[derive(Clone)]
pub struct Speaker {
    tx: mpsc::UnboundedSender<msg::CoreMsg>,
    listen: Option<SocketAddr>,
    /// The listener's count of refused strangers (see
    /// [`Speaker::refused_connections`]).
    refused: Arc<AtomicU64>,
}

impl Speaker {
    /// Binds the listener and starts the core and every configured peer.
    /// Must run inside a tokio runtime.
    pub async fn start(config: SpeakerConfig) -> Result<Speaker, SpeakerError> {
        let listener = match config.listen {
            Some(addr) => {
                Some(Listener::bind(addr).map_err(|source| SpeakerError::Listen { addr, source })?)
            }
            None => None,
        };
        let listen = listener.as_ref().and_then(|l| l.local_addr().ok());
        let refused = listener.as_ref().map(Listener::refused).unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut core = core::Core::new(config.local, listener, tx.clone());
        core.originate(&config.originate, &[], &[]);
        for peer in config.peers {
            core.add_peer(peer)?;
        }
        tokio::spawn(core.run(rx));
        Ok(Speaker {
            tx,
            listen,
            refused,
        })
    }

    /// The bound listening address (useful with port 0).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// Connections closed since start because their source address is no
    /// configured peer (each logged at most once a window per source).
    pub fn refused_connections(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    async fn ask<T>(
        &self,
        f: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(msg::CoreMsg::Command(f(reply)))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        self.ask(|r| Command::AddPeer(Box::new(peer), r)).await?
    }

    /// Ends the session with Cease (administrative shutdown, 6/2) and drops
    /// the peer's routes.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        self.ask(|r| Command::RemovePeer(address, r)).await?
    }

    /// Originates `prefixes` with the given standard communities
    /// (`asn << 16 | value`); re-originating replaces the communities.
    pub async fn originate(
        &self,
        prefixes: Vec<IpNet>,
        communities: Vec<u32>,
    ) -> Result<(), SpeakerError> {
        self.originate_with(prefixes, communities, Vec::new()).await
    }

    /// [`Speaker::originate`] with RFC 8092 large communities as well;
    /// re-originating replaces both kinds.
    pub async fn originate_with(
        &self,
        prefixes: Vec<IpNet>,
        communities: Vec<u32>,
        large: Vec<LargeCommunity>,
    ) -> Result<(), SpeakerError> {
        self.ask(|r| Command::Originate(prefixes, communities, large, r))
            .await
    }

    pub async fn withdraw(&self, prefixes: Vec<IpNet>) -> Result<(), SpeakerError> {
        self.ask(|r| Command::Withdraw(prefixes, r)).await
    }

    pub async fn peers(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.ask(Command::Peers).await
    }

    pub async fn peer(&self, address: IpAddr) -> Result<PeerStatus, SpeakerError> {
        self.peers()
            .await?
            .into_iter()
            .find(|p| p.config.address == address)
            .ok_or(SpeakerError::UnknownPeer(address))
    }

    /// The Loc-RIB now, then every best-path change after it.
    pub async fn watch(&self) -> Result<BestPathWatch, SpeakerError> {
        self.ask(Command::Watch).await
    }

    /// The current best paths (the snapshot part of [`Speaker::watch`]).
    pub async fn best_paths(&self) -> Result<Vec<BestPath>, SpeakerError> {
        Ok(self.watch().await?.snapshot)
    }

    /// Sends Cease to every peer and stops the core; returns once every
    /// connection's queue is written out and shut down (Cease on the wire),
    /// or after a bounded wait for a peer that stopped reading.
    pub async fn shutdown(&self) -> Result<(), SpeakerError> {
        self.ask(Command::Shutdown).await
    }
}
