//! The `Node` gRPC service: what `tabbyctl node status` prints, in
//! calicoctl's layout (BGP peer rows as BIRD reports them) plus Tabby's
//! block-paths section.

use crate::node::peers::PeerType;
use crate::node::routes::BlockPathRow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tabby_bgp::fsm::State;
use tabby_bgp::speaker::{PeerStatus, Speaker};
use tabby_bgp::wire::Family;
use tabby_proto::node as pb;
use tonic::{Request, Response, Status};

/// What the run loop publishes for the status service.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub node_ip: String,
    pub interface: String,
    pub as_number: u32,
    pub tunnel: String,
    pub mac: String,
    pub rows: Vec<BlockPathRow>,
    pub peer_types: HashMap<IpAddr, PeerType>,
    /// Per peer, transitions out of Established since start.
    pub flaps: HashMap<IpAddr, u64>,
    /// Times a block moved onto the VXLAN fallback path since start.
    pub fallback_activations: u64,
    /// The backend in use, once the run loop has published (an
    /// Installation can change it live); None: the one started with.
    pub backend: Option<&'static str>,
    /// BGP sessions left out, each naming the peer and why.
    pub bgp_errors: Vec<String>,
    /// Per session address, the peer node's address of the other family
    /// (its IPv6 address for an IPv4 session), for the other table.
    pub other_family_addr: HashMap<IpAddr, IpAddr>,
}

/// Whether a session carries the family other than its own: negotiated
/// when Established, else offered (we have a next hop of it to give).
fn carries_other_family(p: &PeerStatus) -> bool {
    let other = match p.config.address {
        IpAddr::V4(_) => Family::IPV6_UNICAST,
        IpAddr::V6(_) => Family::IPV4_UNICAST,
    };
    if p.state == State::Established {
        p.families.contains(&other)
    } else {
        p.config.other_family_next_hop.is_some() && p.config.families.contains(&other)
    }
}

/// The peer types the run loop last published, for the node socket's
/// `Bgp` service: ListPeers then types each peer as `node status` does.
pub fn bgp_peer_types(snapshot: Arc<RwLock<Snapshot>>) -> crate::grpc::bgp::PeerTypes {
    Arc::new(move || match snapshot.read() {
        Ok(s) => s
            .peer_types
            .iter()
            .map(|(a, t)| (*a, t.to_bgp_proto()))
            .collect(),
        // A writer panicked mid-update: report no types rather than fail
        // the listing.
        Err(_) => HashMap::new(),
    })
}

#[derive(Clone)]
pub struct NodeService {
    pub node_name: String,
    pub backend: &'static str,
    pub vxlan_fallback: bool,
    pub hold_time_seconds: u32,
    pub started: SystemTime,
    /// The running speaker; replaced when an Installation switches the
    /// backend or moves the node address.
    pub speaker: Arc<RwLock<Option<Speaker>>>,
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// The cluster cache, whose revisions `node doctor` compares with the
    /// datastore's (None: not reported).
    pub cache: Option<Arc<crate::cache::ClusterCache>>,
}

impl NodeService {
    pub fn into_server(self) -> pb::node_server::NodeServer<Self> {
        pb::node_server::NodeServer::new(self)
    }
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// BIRD's "since": the time of day for today, else the date (UTC).
pub fn since_text(t: SystemTime, now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(t).to_string();
    let today = humantime::format_rfc3339_seconds(now).to_string();
    if stamp.get(..10) == today.get(..10) {
        stamp.get(11..19).unwrap_or(&stamp).to_string()
    } else {
        stamp.get(..10).unwrap_or(&stamp).to_string()
    }
}

pub fn peer_row(p: &PeerStatus, peer_type: Option<PeerType>, now: SystemTime) -> pb::BgpPeerRow {
    let established = p.state == State::Established;
    let info = if established {
        "Established".to_string()
    } else if p.md5_mismatch_since.is_some() {
        // What the FSM saw (a timeout, or nothing at all) is a symptom:
        // the kernel dropped the segments for their signature.
        format!(
            "{}: TCP-MD5 signature mismatch ({} segments dropped by the kernel)",
            p.state, p.md5_mismatches
        )
    } else {
        match &p.last_error {
            Some(e) => e.to_string(),
            None => p.state.to_string(),
        }
    };
    pb::BgpPeerRow {
        peer_address: p.config.address.to_string(),
        peer_type: peer_type.map_or("global", PeerType::as_str).to_string(),
        state: if established { "up" } else { "start" }.to_string(),
        since: since_text(p.since, now),
        info,
        bfd_state: p.bfd.map(|b| b.state.to_string()).unwrap_or_default(),
        bfd_info: p.bfd.map(bfd_info).unwrap_or_default(),
    }
}

/// Up: the detection time; otherwise why it last went down.
fn bfd_info(b: tabby_bfd::runtime::SessionStatus) -> String {
    if b.state == tabby_bfd::State::Up {
        format!("detect time {:.1} s", b.detection_time.as_secs_f64())
    } else if b.local_diag == tabby_bfd::Diag::None {
        String::new()
    } else {
        b.local_diag.to_string()
    }
}

/// The cache's part of the status: revisions per kind, and whether (since
/// when) every kind is synced, else the first unsynced kind's error.
fn cache_fields(cache: Option<&crate::cache::ClusterCache>) -> pb::StatusResponse {
    let Some(cache) = cache else {
        return pb::StatusResponse::default();
    };
    let status = cache.status();
    let synced = status.iter().all(|k| k.ready);
    let since = status.iter().filter_map(|k| k.ready_since).max();
    let error = status
        .iter()
        .find(|k| !k.ready)
        .map(|k| {
            k.error
                .clone()
                .unwrap_or_else(|| format!("{} not listed and watched yet", k.kind.plural()))
        })
        .unwrap_or_default();
    pb::StatusResponse {
        datastore_revisions: status
            .iter()
            .map(|k| (k.kind.plural().to_string(), k.revision))
            .collect(),
        datastore_synced: synced,
        datastore_synced_unix: match (synced, since) {
            (true, Some(t)) => unix(t),
            _ => 0,
        },
        datastore_error: error,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl pb::node_server::Node for NodeService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let snap = self
            .snapshot
            .read()
            .map_err(|_| Status::internal("status snapshot lock poisoned"))?
            .clone();
        let now = SystemTime::now();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let speaker = self.speaker.read().ok().and_then(|s| s.clone());
        if let Some(s) = &speaker {
            let peers = s
                .peers()
                .await
                .map_err(|e| Status::unavailable(format!("BGP speaker: {e}")))?;
            for p in &peers {
                let row = peer_row(p, snap.peer_types.get(&p.config.address).copied(), now);
                // A session carrying the other family (IPv6 over an IPv4
                // session) is listed in that family's table too, under the
                // peer node's address of that family when it is known.
                if carries_other_family(p) {
                    let mut other = row.clone();
                    if let Some(a) = snap.other_family_addr.get(&p.config.address) {
                        other.peer_address = a.to_string();
                    }
                    match p.config.address {
                        IpAddr::V4(_) => v6.push(other),
                        IpAddr::V6(_) => v4.push(other),
                    }
                }
                if p.config.address.is_ipv4() {
                    v4.push(row);
                } else {
                    v6.push(row);
                }
            }
            v4.sort_by(|a, b| a.peer_address.cmp(&b.peer_address));
            v6.sort_by(|a, b| a.peer_address.cmp(&b.peer_address));
        }
        Ok(Response::new(pb::StatusResponse {
            node_name: self.node_name.clone(),
            running: true,
            networking_backend: snap.backend.unwrap_or(self.backend).to_string(),
            ipv4_peers: v4,
            ipv6_peers: v6,
            node_ip: snap.node_ip.clone(),
            interface: snap.interface.clone(),
            block_paths: snap
                .rows
                .iter()
                .map(|r| pb::BlockPathRow {
                    block: r.block.to_string(),
                    node: r.node.clone(),
                    path: r.path.clone(),
                    via: r.via.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
            as_number: snap.as_number,
            vxlan_tunnel_address: snap.tunnel.clone(),
            vxlan_mac: snap.mac.clone(),
            bgp_errors: snap.bgp_errors.clone(),
            vxlan_fallback: self.vxlan_fallback,
            hold_time_seconds: self.hold_time_seconds,
            started_unix: unix(self.started),
            ..cache_fields(self.cache.as_deref())
        }))
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::cache::ClusterCache;
    use crate::resources::Kind;

    #[test]
    fn the_status_carries_the_caches_revisions_and_sync_state() {
        let c = ClusterCache::new(&[Kind::Node, Kind::IpPool]);
        c.replace(Kind::Node, vec![], 12);
        let s = cache_fields(Some(&c));
        assert_eq!(s.datastore_revisions["nodes"], 12);
        assert_eq!(s.datastore_revisions["ippools"], 0);
        assert!(!s.datastore_synced && s.datastore_synced_unix == 0);
        assert_eq!(s.datastore_error, "ippools not listed and watched yet");
        c.replace(Kind::IpPool, vec![], 14);
        let s = cache_fields(Some(&c));
        assert!(s.datastore_synced && s.datastore_synced_unix > 0);
        assert!(s.datastore_error.is_empty());
        assert!(cache_fields(None).datastore_revisions.is_empty());
    }
}

#[cfg(test)]
mod peer_row_tests {
    use super::*;
    use tabby_bgp::peer_config::PeerConfig;

    #[test]
    fn an_md5_mismatch_is_named_in_info_while_the_session_is_down() {
        let now = SystemTime::now();
        let mut p = PeerStatus {
            md5_mismatches: 4,
            md5_mismatch_since: Some(now),
            ..PeerStatus::new(
                PeerConfig::new("10.0.0.2".parse().unwrap(), 64512),
                State::Active,
                now,
            )
        };
        assert_eq!(
            peer_row(&p, None, now).info,
            "Active: TCP-MD5 signature mismatch (4 segments dropped by the kernel)"
        );
        p.md5_mismatch_since = None;
        assert_eq!(peer_row(&p, None, now).info, "Active");
    }
}
