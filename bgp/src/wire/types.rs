//! The BGP message model shared by the codec, the session FSM and the RIBs.
//! Owned values: the codec decodes into them (NLRI may also be walked
//! zero-copy, see the codec) and encodes from them.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// AS_TRANS (RFC 6793): the 2-octet stand-in for a 4-octet AS.
pub const AS_TRANS: u16 = 23456;
pub const BGP_VERSION: u8 = 4;
pub const HEADER_LEN: usize = 19;
/// RFC 4271 maximum message size, and the limit of every session that
/// did not negotiate RFC 8654 extended messages.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 8654: the limit once both sides advertised extended messages
/// (OPEN and KEEPALIVE stay within 4096 regardless).
pub const EXTENDED_MESSAGE_LEN: usize = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Safi {
    Unicast,
}

/// An address family Tabby speaks. Others are decoded as unknown and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::Ipv4,
        safi: Safi::Unicast,
    };
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub family: Family,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760.
    Multiprotocol(Family),
    /// RFC 2918.
    RouteRefresh,
    /// RFC 6793: the speaker's real AS.
    FourOctetAs(u32),
    /// RFC 8654: messages other than OPEN and KEEPALIVE may be up to
    /// 65,535 octets once both sides advertised it.
    ExtendedMessage,
    /// RFC 4724.
    GracefulRestart {
        /// R bit: the sender has restarted.
        restarting: bool,
        /// Seconds, 12 bits on the wire.
        restart_time: u16,
        families: Vec<GracefulRestartFamily>,
    },
    /// Any capability Tabby does not act on (including AFI/SAFI pairs it
    /// does not speak), kept so the session can report it.
    Unknown { code: u8, data: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet My AS field (AS_TRANS when the real AS needs 4 octets).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS: the 4-octet AS capability when present.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    /// A global next hop, and for IPv6 optionally a link-local one.
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<IpNet>,
}

/// An attribute Tabby does not interpret; optional transitive ones are
/// passed on with the Partial bit set (RFC 4271 §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub code: u8,
    pub data: Vec<u8>,
}

/// An RFC 8092 large community: `global:local1:local2`, the global part
/// an AS number by convention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl LargeCommunity {
    pub fn new(global: u32, local1: u32, local2: u32) -> Self {
        LargeCommunity {
            global,
            local1,
            local2,
        }
    }

    /// `aa:nn:mm`, each part a 32-bit number.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(':').map(|p| p.trim().parse::<u32>().ok());
        let c = LargeCommunity::new(it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(c)
    }
}

impl std::fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    /// Always 4-octet ASNs here: the codec merges AS_PATH/AS4_PATH for
    /// 2-octet sessions and writes AS_TRANS on the way out.
    pub as_path: Vec<AsSegment>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// RFC 1997 standard communities, `asn << 16 | value`.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities, in the order received.
    pub large_communities: Vec<LargeCommunity>,
    /// RFC 4456.
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub other: Vec<RawAttribute>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attrs: PathAttributes,
    pub nlri: Vec<Ipv4Net>,
    /// Set by the decoder when RFC 7606 says "treat-as-withdraw": every
    /// prefix in `nlri` and `attrs.mp_reach` must be handled as withdrawn.
    /// The text says which attribute was malformed, for the log.
    pub treat_as_withdraw: Option<String>,
}

impl Update {
    /// RFC 4724 End-of-RIB: an empty UPDATE (IPv4) or an MP_UNREACH with
    /// no prefixes and no other attributes (other families).
    pub fn end_of_rib(&self) -> Option<Family> {
        let a = &self.attrs;
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let only_unreach = a.origin.is_none()
            && a.as_path.is_empty()
            && a.next_hop.is_none()
            && a.mp_reach.is_none()
            && a.other.is_empty();
        match &a.mp_unreach {
            None if *a == PathAttributes::default() => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() && only_unreach => Some(u.family),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
}

// An UPDATE is by far the most common message, so boxing it would cost an
// allocation on the hot path to save stack space on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// What the codec needs to know about the session (RFC 6793: AS_PATH
/// width; RFC 8654: the message size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionContext {
    pub four_octet_as: bool,
    /// Both sides advertised extended messages (RFC 8654).
    pub extended_message: bool,
}

impl SessionContext {
    /// The largest message this session may carry.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

impl Default for SessionContext {
    /// Before the OPENs are exchanged: 4-octet AS, 4096-octet messages.
    fn default() -> Self {
        SessionContext {
            four_octet_as: true,
            extended_message: false,
        }
    }
}
