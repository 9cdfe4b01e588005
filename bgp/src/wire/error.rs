//! Decode and encode errors. Every decode error names the RFC 4271 §6
//! NOTIFICATION it maps to and, for path attributes, the RFC 7606 action.

use super::types::Notification;
use std::net::Ipv4Addr;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313).
pub mod code {
    pub const HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// What RFC 7606 tells the receiver to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc7606Action {
    /// Send the NOTIFICATION and close the session.
    SessionReset,
    /// Keep the session; withdraw every prefix the UPDATE carries.
    TreatAsWithdraw,
    /// Keep the session and the routes; drop the one attribute.
    AttributeDiscard,
    /// Drop the message silently (e.g. ROUTE-REFRESH for an unknown family).
    Ignore,
}

/// The action for a malformed path attribute, by type code (RFC 7606 §7,
/// RFC 6793 §6). MP_REACH/MP_UNREACH reset the session because the NLRI
/// they carry cannot be located once they are malformed.
pub fn attribute_action(code: u8) -> Rfc7606Action {
    use super::attr;
    match code {
        attr::ATOMIC_AGGREGATE | attr::AGGREGATOR | attr::AS4_PATH | attr::AS4_AGGREGATOR => {
            Rfc7606Action::AttributeDiscard
        }
        attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => Rfc7606Action::SessionReset,
        _ => Rfc7606Action::TreatAsWithdraw,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message header: marker is not all ones")]
    NotSynchronized,
    #[error("message header: length {len} is not valid for message type {msg_type}")]
    BadLength { len: u16, msg_type: u8 },
    #[error("message header: unknown message type {0}")]
    BadType(u8),

    #[error("OPEN: version {0} is not supported (expected 4)")]
    UnsupportedVersion(u8),
    #[error("OPEN: peer AS {got} is not the configured AS {expected}")]
    BadPeerAs { got: u32, expected: u32 },
    #[error("OPEN: BGP identifier {0} is not a unicast host address")]
    BadBgpId(Ipv4Addr),
    #[error("OPEN: optional parameter type {0} is not supported (expected 2, capabilities)")]
    UnsupportedOptionalParameter(u8),
    #[error("OPEN: hold time {0} s is not acceptable (expected 0 or at least 3)")]
    UnacceptableHoldTime(u16),
    /// `capability` is the capability TLV as on the wire.
    #[error("OPEN: capability {code} is not supported")]
    UnsupportedCapability { code: u8, capability: Vec<u8> },
    #[error("OPEN: {0}")]
    MalformedOpen(String),

    #[error("UPDATE: malformed attribute list: {0}")]
    MalformedAttributeList(String),
    /// `attr` is the whole attribute as on the wire (flags, type, length, value).
    #[error("UPDATE: unrecognized well-known attribute {code}")]
    UnrecognizedWellKnown { code: u8, attr: Vec<u8> },
    #[error("UPDATE: missing well-known attribute {0}")]
    MissingWellKnown(u8),
    #[error("UPDATE: attribute {code}: flags {flags:#04x} conflict with the attribute type")]
    AttributeFlags { code: u8, flags: u8, attr: Vec<u8> },
    #[error("UPDATE: attribute {code}: length {len} is invalid")]
    AttributeLength { code: u8, len: usize, attr: Vec<u8> },
    #[error("UPDATE: ORIGIN value {value} is undefined")]
    InvalidOrigin { value: u8, attr: Vec<u8> },
    #[error("UPDATE: NEXT_HOP {addr} is not a unicast host address")]
    InvalidNextHop { addr: Ipv4Addr, attr: Vec<u8> },
    #[error("UPDATE: optional attribute {code}: {reason}")]
    OptionalAttribute {
        code: u8,
        reason: String,
        attr: Vec<u8>,
    },
    #[error("UPDATE: invalid {field}: {reason}")]
    InvalidNetworkField { field: &'static str, reason: String },
    /// `code` is 2 (AS_PATH) or 17 (AS4_PATH).
    #[error("UPDATE: malformed AS path in attribute {code}: {reason}")]
    MalformedAsPath { code: u8, reason: String },

    #[error("ROUTE-REFRESH: AFI {afi} SAFI {safi} is not a family this speaker handles")]
    RouteRefreshFamily { afi: u16, safi: u8 },
}

impl DecodeError {
    /// The constructor for the FSM's peer AS check (RFC 4271 §6.2, 2/2).
    pub fn bad_peer_as(got: u32, expected: u32) -> Self {
        DecodeError::BadPeerAs { got, expected }
    }

    /// The constructor for a capability the FSM requires and the peer
    /// lacks, or one it cannot accept (RFC 5492, 2/7).
    pub fn unsupported_capability(code: u8, data: &[u8]) -> Self {
        let mut capability = vec![code, data.len().min(255) as u8];
        capability.extend_from_slice(data.get(..255).unwrap_or(data));
        DecodeError::UnsupportedCapability { code, capability }
    }

    /// The RFC 7606 action. Errors `decode` returns are always
    /// `SessionReset` or `Ignore`; the others appear inside it and end up as
    /// `Update::treat_as_withdraw` or a dropped attribute.
    pub fn action(&self) -> Rfc7606Action {
        use DecodeError::*;
        match self {
            // MP attributes with wrong flags still parsed, so their prefixes
            // can be withdrawn.
            AttributeFlags { code, .. }
                if *code == super::attr::MP_REACH_NLRI || *code == super::attr::MP_UNREACH_NLRI =>
            {
                Rfc7606Action::TreatAsWithdraw
            }
            AttributeFlags { code, .. }
            | AttributeLength { code, .. }
            | OptionalAttribute { code, .. }
            | MalformedAsPath { code, .. } => attribute_action(*code),
            InvalidOrigin { .. } | InvalidNextHop { .. } | MissingWellKnown(_) => {
                Rfc7606Action::TreatAsWithdraw
            }
            RouteRefreshFamily { .. } => Rfc7606Action::Ignore,
            _ => Rfc7606Action::SessionReset,
        }
    }

    /// The NOTIFICATION to send when this error resets the session.
    pub fn notification(&self) -> Notification {
        use DecodeError::*;
        let (code, subcode, data) = match self {
            NotSynchronized => (code::HEADER, 1, vec![]),
            BadLength { len, .. } => (code::HEADER, 2, len.to_be_bytes().to_vec()),
            BadType(t) => (code::HEADER, 3, vec![*t]),
            UnsupportedVersion(_) => (
                code::OPEN,
                1,
                u16::from(super::BGP_VERSION).to_be_bytes().to_vec(),
            ),
            BadPeerAs { .. } => (code::OPEN, 2, vec![]),
            BadBgpId(_) => (code::OPEN, 3, vec![]),
            UnsupportedOptionalParameter(_) => (code::OPEN, 4, vec![]),
            UnacceptableHoldTime(_) => (code::OPEN, 6, vec![]),
            UnsupportedCapability { capability, .. } => (code::OPEN, 7, capability.clone()),
            MalformedOpen(_) => (code::OPEN, 0, vec![]),
            MalformedAttributeList(_) => (code::UPDATE, 1, vec![]),
            UnrecognizedWellKnown { attr, .. } => (code::UPDATE, 2, attr.clone()),
            MissingWellKnown(c) => (code::UPDATE, 3, vec![*c]),
            AttributeFlags { attr, .. } => (code::UPDATE, 4, attr.clone()),
            AttributeLength { attr, .. } => (code::UPDATE, 5, attr.clone()),
            InvalidOrigin { attr, .. } => (code::UPDATE, 6, attr.clone()),
            InvalidNextHop { attr, .. } => (code::UPDATE, 8, attr.clone()),
            OptionalAttribute { attr, .. } => (code::UPDATE, 9, attr.clone()),
            InvalidNetworkField { .. } => (code::UPDATE, 10, vec![]),
            MalformedAsPath { .. } => (code::UPDATE, 11, vec![]),
            RouteRefreshFamily { .. } => (code::ROUTE_REFRESH, 0, vec![]),
        };
        Notification {
            code,
            subcode,
            data,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// `len` is the size the message would have had, `max` the session's
    /// limit (4096, or 65535 with RFC 8654 extended messages).
    #[error("{what} would make a {len}-byte message (at most {max})")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}
