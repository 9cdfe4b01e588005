//! Typed configuration of the local speaker and of each peer, shared by the
//! session FSM, the RIBs and the transport. Plain data: validation of user
//! input (YAML, gRPC) happens where that input is parsed.

use crate::policy::{ExportPolicy, ImportPolicy};
use crate::wire::Family;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// RFC 4271 §10 suggested hold time.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Calico's `graceful restart time` (BIRD's default too).
pub const DEFAULT_RESTART_TIME: u16 = 120;
/// Calico's BIRD template uses `connect retry time 5`.
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(5);
/// How long a connection may take from TCP up to Established (the peer's
/// OPEN, then its KEEPALIVE). RFC 4271 suggests a 4-minute hold time
/// while waiting for the OPEN; a real peer sends it at once, so anything
/// this slow is a stuck or hostile connection that would otherwise hold
/// a connection slot (and with a hold time of 0, forever).
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Calico's BIRD template uses `error wait time 5,30`.
pub const DEFAULT_ERROR_WAIT: (Duration, Duration) =
    (Duration::from_secs(5), Duration::from_secs(30));

/// BFD (RFC 5880) defaults: 300 ms × 3 detects a dead peer within 0.9 s.
pub const DEFAULT_BFD_INTERVAL: Duration = Duration::from_millis(300);
pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;

/// A BFD session to the peer (RFC 5882): when it goes from Up to Down the
/// BGP session is closed at once and the peer's routes are withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdSettings {
    /// Required Min RX Interval: how fast we can receive.
    pub min_rx: Duration,
    /// Desired Min TX Interval once Up (1 s while not Up, RFC 5880 §6.8.3).
    pub min_tx: Duration,
    /// Detect Mult: packets missed before the peer is declared down.
    pub multiplier: u8,
}

impl Default for BfdSettings {
    fn default() -> Self {
        BfdSettings {
            min_rx: DEFAULT_BFD_INTERVAL,
            min_tx: DEFAULT_BFD_INTERVAL,
            multiplier: DEFAULT_BFD_MULTIPLIER,
        }
    }
}

/// What the whole speaker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    pub router_id: Ipv4Addr,
    pub asn: u32,
    /// Set when this speaker is a route reflector (Calico's
    /// `routeReflectorClusterID`).
    pub cluster_id: Option<Ipv4Addr>,
    /// Graceful restart as a restarting speaker: advertised restart time, or
    /// `None` to not advertise the capability.
    pub graceful_restart: Option<u16>,
    /// R bit of our GR capability: set for the first sessions after Tabby
    /// itself restarted, so peers know their stale copies are being refreshed.
    pub restarting: bool,
    /// F bit: forwarding state (kernel routes) survives our restart.
    pub forwarding_preserved: bool,
}

impl LocalConfig {
    pub fn new(router_id: Ipv4Addr, asn: u32) -> Self {
        LocalConfig {
            router_id,
            asn,
            cluster_id: None,
            graceful_restart: Some(DEFAULT_RESTART_TIME),
            restarting: false,
            forwarding_preserved: true,
        }
    }
}

/// One configured neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    pub address: IpAddr,
    pub remote_as: u32,
    /// Never initiate a TCP connection; wait for the peer.
    pub passive: bool,
    /// Hold time we propose in our OPEN (0 disables keepalives).
    pub hold_time: u16,
    pub connect_retry: Duration,
    /// The bound on OpenSent and OpenConfirm ([`DEFAULT_OPEN_TIMEOUT`]):
    /// it replaces RFC 4271's 4-minute OpenSent hold time, and also bounds
    /// OpenConfirm when the peer's OPEN proposed a hold time of 0. Expiry
    /// is a hold-timer expiry (NOTIFICATION 4/0).
    pub open_timeout: Duration,
    /// Automatic restart after an error: first wait, doubled per
    /// consecutive failure up to the second value.
    pub error_wait: (Duration, Duration),
    /// Families we offer; the session runs the intersection with the peer's.
    pub families: Vec<Family>,
    /// Accept graceful restart from this peer (helper mode) and keep its
    /// routes stale at most this long, even if it asks for more.
    pub max_restart_time: u16,
    pub keep_original_next_hop: bool,
    /// Calico's `numAllowedLocalASNumbers` (BIRD's `allow local as N`):
    /// routes whose AS_PATH holds our AS up to this many times pass the
    /// loop check (AS per rack: a rack's nodes share an AS). 0: none.
    pub allow_local_as: u8,
    /// Calico's `ttlSecurity` (GTSM, RFC 5082): the peer is this many hops
    /// away; we send with TTL 255 and drop what arrives below 256 − hops.
    pub ttl_security: Option<u8>,
    pub route_reflector_client: bool,
    /// 0 means no limit.
    pub max_prefixes: u32,
    /// Decision-process weight of routes learned from this peer.
    pub weight: u32,
    pub import: ImportPolicy,
    pub export: ExportPolicy,
    /// TCP-MD5 (RFC 2385); used by the transport only.
    pub password: Option<String>,
    pub source_address: Option<IpAddr>,
    /// Our next hop for the family other than the session's (an IPv6
    /// address for IPv6 prefixes over an IPv4 session, RFC 4760). Without
    /// it that family is not exported: we have no address of it to offer.
    pub other_family_next_hop: Option<IpAddr>,
    pub port: u16,
    /// Run BFD to the peer from the session's local address (None: off).
    pub bfd: Option<BfdSettings>,
}

impl PeerConfig {
    pub fn new(address: IpAddr, remote_as: u32) -> Self {
        PeerConfig {
            address,
            remote_as,
            passive: false,
            hold_time: DEFAULT_HOLD_TIME,
            connect_retry: DEFAULT_CONNECT_RETRY,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            error_wait: DEFAULT_ERROR_WAIT,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            max_restart_time: DEFAULT_RESTART_TIME,
            keep_original_next_hop: false,
            allow_local_as: 0,
            ttl_security: None,
            route_reflector_client: false,
            max_prefixes: 0,
            weight: 0,
            import: ImportPolicy::default(),
            export: ExportPolicy::default(),
            password: None,
            source_address: None,
            other_family_next_hop: None,
            port: 179,
            bfd: None,
        }
    }

    pub fn is_ibgp(&self, local: &LocalConfig) -> bool {
        self.remote_as == local.asn
    }
}
