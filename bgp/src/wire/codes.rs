//! On-the-wire numbers: message types, attribute type codes and flags,
//! capability codes, AFI/SAFI values.

/// Message type codes (RFC 4271 §4.1, RFC 2918).
pub mod msg_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Path attribute type codes.
pub mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    /// RFC 8092.
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Path attribute flag bits.
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Capability codes (IANA registry).
pub mod cap {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    /// RFC 8654.
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// OPEN optional parameter type carrying capabilities (RFC 5492).
pub const OPT_PARAM_CAPABILITIES: u8 = 2;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065).
pub const AS_SET: u8 = 1;
pub const AS_SEQUENCE: u8 = 2;
pub const AS_CONFED_SEQUENCE: u8 = 3;
pub const AS_CONFED_SET: u8 = 4;

use super::types::{Afi, Family, Safi};

impl Family {
    /// The family for an AFI/SAFI pair, when Tabby speaks it.
    pub fn from_wire(afi: u16, safi: u8) -> Option<Family> {
        let afi = match afi {
            AFI_IPV4 => Afi::Ipv4,
            AFI_IPV6 => Afi::Ipv6,
            _ => return None,
        };
        match safi {
            SAFI_UNICAST => Some(Family {
                afi,
                safi: Safi::Unicast,
            }),
            _ => None,
        }
    }

    pub fn afi_wire(self) -> u16 {
        match self.afi {
            Afi::Ipv4 => AFI_IPV4,
            Afi::Ipv6 => AFI_IPV6,
        }
    }

    pub fn safi_wire(self) -> u8 {
        match self.safi {
            Safi::Unicast => SAFI_UNICAST,
        }
    }
}
