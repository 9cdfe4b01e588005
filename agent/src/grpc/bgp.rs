//! The `Bgp` gRPC service (tabby-proto) over a running [`Speaker`].
//!
//! It is served in two places, with different rights:
//!
//! - [`BgpService::standalone`], for `tabby-node bgp`: the API is how the
//!   speaker is configured after start, so every RPC is served.
//! - [`BgpService::node`], on tabby-node's socket: tabby-node computes the
//!   peers (node-to-node mesh, BGPPeers) and the originated prefixes (this
//!   node's blocks) from the datastore and is the speaker's only writer,
//!   so the socket is read-only, as `Dataplane.SetDesiredState` is. A
//!   second writer would be undone on the node's next sync, and until then
//!   the speaker would advertise what the datastore does not say.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;
use tabby_bgp::fsm::{PeerError, State, TcpErrorKind};
use tabby_bgp::peer_config::{PeerConfig, DEFAULT_RESTART_TIME};
use tabby_bgp::speaker::{BestPath, BestPathEvent, PeerStatus, Speaker, SpeakerError};
use tabby_bgp::transport::md5::MAX_KEY_LEN;
use tabby_proto::bgp as pb;
use tabby_proto::bgp::best_path_event::Event as PbEvent;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The agent's peer type for each peer it configured, read on every
/// `ListPeers`: the proto's peer type is the agent's bookkeeping, not the
/// speaker's.
pub type PeerTypes = Arc<dyn Fn() -> HashMap<IpAddr, pb::PeerType> + Send + Sync>;

enum Mode {
    /// Peer types as the `AddPeer` calls gave them.
    Standalone(Mutex<HashMap<IpAddr, i32>>),
    /// Read-only; peer types from the agent.
    Node(PeerTypes),
}

pub struct BgpService {
    speaker: Speaker,
    mode: Mode,
}

impl BgpService {
    /// Every RPC, for the standalone daemon (`tabby-node bgp`).
    pub fn standalone(speaker: Speaker) -> Self {
        BgpService {
            speaker,
            mode: Mode::Standalone(Mutex::new(HashMap::new())),
        }
    }

    /// The node socket's service: `ListPeers` (with the types from
    /// `peer_types`) and `WatchBestPaths`; `AddPeer`, `RemovePeer`,
    /// `Originate` and `Withdraw` are refused with FAILED_PRECONDITION.
    pub fn node(speaker: Speaker, peer_types: PeerTypes) -> Self {
        BgpService {
            speaker,
            mode: Mode::Node(peer_types),
        }
    }

    pub fn into_server(self) -> pb::bgp_server::BgpServer<Self> {
        pb::bgp_server::BgpServer::new(self)
    }

    /// The peer types recorded from `AddPeer`; `None` on a node, whose
    /// types are the agent's.
    fn recorded(&self) -> Option<std::sync::MutexGuard<'_, HashMap<IpAddr, i32>>> {
        match &self.mode {
            Mode::Standalone(m) => Some(m.lock().unwrap_or_else(|p| p.into_inner())),
            Mode::Node(_) => None,
        }
    }

    fn peer_types(&self) -> HashMap<IpAddr, i32> {
        match &self.mode {
            Mode::Node(f) => f().into_iter().map(|(a, t)| (a, t as i32)).collect(),
            Mode::Standalone(_) => self.recorded().map(|t| t.clone()).unwrap_or_default(),
        }
    }

    /// On a node, the refusal of a write, saying what to change instead.
    fn writable(&self, write: Write) -> Result<(), Status> {
        match self.mode {
            Mode::Standalone(_) => Ok(()),
            Mode::Node(_) => Err(Status::failed_precondition(write.refusal())),
        }
    }
}

/// The RPCs that change the speaker.
#[derive(Debug, Clone, Copy)]
enum Write {
    AddPeer,
    RemovePeer,
    Originate,
    Withdraw,
}

impl Write {
    fn refusal(self) -> &'static str {
        match self {
            Write::AddPeer | Write::RemovePeer => {
                "tabby-node configures this node's BGP peers itself (the node-to-node mesh and \
                 the BGPPeers that select this node, from the datastore) and is the speaker's \
                 only writer; to add or remove a peer, change the BGPPeer resources (or \
                 BGPConfiguration's nodeToNodeMeshEnabled) with tabbyctl"
            }
            Write::Originate | Write::Withdraw => {
                "tabby-node originates this node's blocks itself (from its IPAM block \
                 affinities) and is the speaker's only writer; to change what is advertised, \
                 change the IPPool resources with tabbyctl"
            }
        }
    }
}

fn status_of(e: SpeakerError) -> Status {
    match e {
        SpeakerError::DuplicatePeer(_) => Status::already_exists(e.to_string()),
        SpeakerError::UnknownPeer(_) => Status::not_found(e.to_string()),
        SpeakerError::Password { .. } => Status::invalid_argument(e.to_string()),
        SpeakerError::Listen { .. } | SpeakerError::Stopped => Status::unavailable(e.to_string()),
    }
}

/// Checks a peer from the API; every error names the field.
pub fn peer_from_proto(p: &pb::PeerConfig) -> Result<PeerConfig, Status> {
    let bad = |field: &str, what: String| Status::invalid_argument(format!("peer.{field}: {what}"));
    let address: IpAddr = p
        .address
        .parse()
        .map_err(|_| bad("address", format!("{:?} is not an IP address", p.address)))?;
    if p.remote_as == 0 {
        return Err(bad("remote_as", "must be a non-zero AS number".into()));
    }
    let mut c = PeerConfig::new(address, p.remote_as);
    if !p.password.is_empty() {
        if p.password.len() > MAX_KEY_LEN {
            return Err(bad(
                "password",
                format!("at most {MAX_KEY_LEN} bytes for TCP-MD5"),
            ));
        }
        c.password = Some(p.password.clone());
    }
    c.keep_original_next_hop = p.keep_original_next_hop;
    c.route_reflector_client = p.route_reflector_client;
    c.max_restart_time = match p.max_restart_time_seconds {
        0 => DEFAULT_RESTART_TIME,
        t => u16::try_from(t)
            .ok()
            .filter(|t| *t <= 4095)
            .ok_or_else(|| bad("max_restart_time_seconds", format!("{t} exceeds 4095")))?,
    };
    c.max_prefixes = p.max_prefixes;
    if !p.source_address.is_empty() {
        let s: IpAddr = p.source_address.parse().map_err(|_| {
            bad(
                "source_address",
                format!("{:?} is not an IP address", p.source_address),
            )
        })?;
        if s.is_ipv4() != address.is_ipv4() {
            return Err(bad(
                "source_address",
                "must be of the same family as the address".into(),
            ));
        }
        c.source_address = Some(s);
    }
    c.port = match p.port {
        0 => 179,
        n => u16::try_from(n).map_err(|_| bad("port", format!("{n} is not a TCP port")))?,
    };
    Ok(c)
}

fn prefixes(list: &[String], field: &str) -> Result<Vec<IpNet>, Status> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|_| Status::invalid_argument(format!("{field}: {s:?} is not a CIDR")))
        })
        .collect()
}

/// "asn:value" as a 32-bit community.
pub fn parse_community(s: &str) -> Option<u32> {
    let (a, v) = s.split_once(':')?;
    Some(u32::from(a.trim().parse::<u16>().ok()?) << 16 | u32::from(v.trim().parse::<u16>().ok()?))
}

fn state_of(s: State) -> pb::SessionState {
    match s {
        State::Idle => pb::SessionState::Idle,
        State::Connect => pb::SessionState::Connect,
        State::Active => pb::SessionState::Active,
        State::OpenSent => pb::SessionState::OpenSent,
        State::OpenConfirm => pb::SessionState::OpenConfirm,
        State::Established => pb::SessionState::Established,
    }
}

fn status_to_proto(s: &PeerStatus, peer_type: i32) -> pb::PeerStatus {
    let c = &s.config;
    pb::PeerStatus {
        config: Some(pb::PeerConfig {
            address: c.address.to_string(),
            remote_as: c.remote_as,
            peer_type,
            password: String::new(),
            keep_original_next_hop: c.keep_original_next_hop,
            route_reflector_client: c.route_reflector_client,
            max_restart_time_seconds: c.max_restart_time.into(),
            max_prefixes: c.max_prefixes,
            source_address: c.source_address.map(|a| a.to_string()).unwrap_or_default(),
            port: c.port.into(),
        }),
        state: state_of(s.state) as i32,
        since_unix: s
            .since
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        last_error: s
            .last_error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        prefixes_received: s.prefixes_received,
        prefixes_accepted: s.prefixes_accepted,
        prefixes_advertised: s.prefixes_advertised,
        last_error_kind: s
            .last_error
            .as_ref()
            .map_or(0, |e| kind_of(&e.error) as i32),
        last_error_state: s
            .last_error
            .as_ref()
            .map_or(0, |e| state_of(e.state) as i32),
        notification_code: notification_of(s).map_or(0, |n| n.code.into()),
        notification_subcode: notification_of(s).map_or(0, |n| n.subcode.into()),
        peer_open_as: s.peer_open_as.unwrap_or(0),
        local_as: s.local_as,
        bfd_state: s.bfd.map(|b| b.state.to_string()).unwrap_or_default(),
    }
}

fn notification_of(s: &PeerStatus) -> Option<&tabby_bgp::wire::Notification> {
    Some(s.last_error.as_ref()?.error.notification()?.0)
}

fn kind_of(e: &PeerError) -> pb::ErrorKind {
    use pb::ErrorKind as K;
    match e {
        PeerError::NotificationSent(_) => K::NotificationSent,
        PeerError::NotificationReceived(_) => K::NotificationReceived,
        PeerError::Tcp(t) => match t.kind {
            TcpErrorKind::Refused => K::TcpRefused,
            TcpErrorKind::TimedOut => K::TcpTimedOut,
            TcpErrorKind::Closed => K::TcpClosed,
            TcpErrorKind::Reset => K::TcpReset,
            TcpErrorKind::Unreachable => K::TcpUnreachable,
            TcpErrorKind::PeerRestarted => K::TcpPeerRestarted,
            TcpErrorKind::Other => K::TcpOther,
        },
        PeerError::Unexpected(_) => K::UnexpectedMessage,
        PeerError::CollisionLost => K::CollisionLost,
        PeerError::AdminStopped => K::AdminStopped,
        PeerError::BfdDown(_) => K::BfdDown,
    }
}

fn path_to_proto(b: &BestPath) -> pb::BestPath {
    pb::BestPath {
        prefix: b.prefix.to_string(),
        next_hop: b.next_hop.map(|a| a.to_string()).unwrap_or_default(),
        from_peer: b.from_peer.map(|a| a.to_string()).unwrap_or_default(),
        as_path: b.as_path.clone(),
        local_pref: b.local_pref,
        med: b.med.unwrap_or(0),
        stale: b.stale,
    }
}

fn event(e: PbEvent, snapshot: bool) -> pb::BestPathEvent {
    pb::BestPathEvent {
        event: Some(e),
        snapshot,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::BestPathEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::bgp_server::Bgp for BgpService {
    async fn list_peers(
        &self,
        _: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let peers = self.speaker.peers().await.map_err(status_of)?;
        let types = self.peer_types();
        let peers = peers
            .iter()
            .map(|s| status_to_proto(s, types.get(&s.config.address).copied().unwrap_or(0)))
            .collect();
        Ok(Response::new(pb::ListPeersResponse { peers }))
    }

    async fn add_peer(
        &self,
        req: Request<pb::AddPeerRequest>,
    ) -> Result<Response<pb::AddPeerResponse>, Status> {
        self.writable(Write::AddPeer)?;
        let p = req
            .into_inner()
            .peer
            .ok_or_else(|| Status::invalid_argument("peer: missing"))?;
        let config = peer_from_proto(&p)?;
        let address = config.address;
        self.speaker.add_peer(config).await.map_err(status_of)?;
        if let Some(mut types) = self.recorded() {
            types.insert(address, p.peer_type);
        }
        Ok(Response::new(pb::AddPeerResponse {}))
    }

    async fn remove_peer(
        &self,
        req: Request<pb::RemovePeerRequest>,
    ) -> Result<Response<pb::RemovePeerResponse>, Status> {
        self.writable(Write::RemovePeer)?;
        let a = req.into_inner().address;
        let address: IpAddr = a.parse().map_err(|_| {
            Status::invalid_argument(format!("address: {a:?} is not an IP address"))
        })?;
        self.speaker.remove_peer(address).await.map_err(status_of)?;
        if let Some(mut types) = self.recorded() {
            types.remove(&address);
        }
        Ok(Response::new(pb::RemovePeerResponse {}))
    }

    async fn originate(
        &self,
        req: Request<pb::OriginateRequest>,
    ) -> Result<Response<pb::OriginateResponse>, Status> {
        self.writable(Write::Originate)?;
        let r = req.into_inner();
        let list = prefixes(&r.prefixes, "prefixes")?;
        let communities = r
            .communities
            .iter()
            .map(|c| {
                parse_community(c).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "communities: {c:?} is not \"asn:value\" (two 16-bit numbers)"
                    ))
                })
            })
            .collect::<Result<Vec<u32>, Status>>()?;
        self.speaker
            .originate(list, communities)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::OriginateResponse {}))
    }

    async fn withdraw(
        &self,
        req: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        self.writable(Write::Withdraw)?;
        let list = prefixes(&req.into_inner().prefixes, "prefixes")?;
        self.speaker.withdraw(list).await.map_err(status_of)?;
        Ok(Response::new(pb::WithdrawResponse {}))
    }

    type WatchBestPathsStream = EventStream;

    async fn watch_best_paths(
        &self,
        _: Request<pb::WatchBestPathsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (tx, rx) = mpsc::channel(1024);
        let speaker = self.speaker.clone();
        tokio::spawn(async move {
            // Each pass sends a snapshot, then changes until the consumer
            // falls too far behind, then starts over with a new snapshot.
            loop {
                let Ok(mut watch) = speaker.watch().await else {
                    let _ = tx.send(Err(Status::unavailable("speaker stopped"))).await;
                    return;
                };
                for b in &watch.snapshot {
                    if tx
                        .send(Ok(event(PbEvent::Updated(path_to_proto(b)), true)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if tx
                    .send(Ok(event(PbEvent::EndOfSnapshot(true), true)))
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    match watch.changes.recv().await {
                        Ok(batch) => {
                            for e in batch.iter() {
                                let e = match e {
                                    BestPathEvent::Updated(b) => PbEvent::Updated(path_to_proto(b)),
                                    BestPathEvent::Withdrawn(p) => {
                                        PbEvent::Withdrawn(p.to_string())
                                    }
                                };
                                if tx.send(Ok(event(e, false))).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(
                                missed = n,
                                "best-path watcher lagged; resending the snapshot"
                            );
                            break;
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
