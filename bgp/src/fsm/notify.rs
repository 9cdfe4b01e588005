//! NOTIFICATION codes the FSM sends, and their human-readable names for
//! the peer status table (close to BIRD's wording so operators recognise
//! them).

use crate::wire::Notification;

pub const MESSAGE_HEADER_ERROR: u8 = 1;
pub const OPEN_MESSAGE_ERROR: u8 = 2;
pub const UPDATE_MESSAGE_ERROR: u8 = 3;
pub const HOLD_TIMER_EXPIRED: u8 = 4;
pub const FSM_ERROR: u8 = 5;
pub const CEASE: u8 = 6;

pub const OPEN_UNSUPPORTED_VERSION: u8 = 1;
pub const OPEN_BAD_PEER_AS: u8 = 2;
pub const OPEN_BAD_BGP_ID: u8 = 3;
pub const OPEN_UNACCEPTABLE_HOLD_TIME: u8 = 6;
pub const OPEN_UNSUPPORTED_CAPABILITY: u8 = 7;

/// RFC 6608 FSM error subcodes.
pub const FSM_UNEXPECTED_IN_OPENSENT: u8 = 1;
pub const FSM_UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
pub const FSM_UNEXPECTED_IN_ESTABLISHED: u8 = 3;

/// RFC 4486 Cease subcodes.
pub const CEASE_MAX_PREFIXES: u8 = 1;
pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
pub const CEASE_PEER_DECONFIGURED: u8 = 3;
pub const CEASE_ADMIN_RESET: u8 = 4;
pub const CEASE_CONNECTION_REJECTED: u8 = 5;
pub const CEASE_COLLISION: u8 = 7;

pub fn notification(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
    Notification {
        code,
        subcode,
        data,
    }
}

/// Cease 6/1 with the RFC 4486 data (AFI, SAFI, limit) for IPv4 unicast;
/// the limit is per peer in Tabby, so the family is informative only.
pub fn max_prefixes_cease(limit: u32) -> Notification {
    let mut data = vec![0, 1, 1];
    data.extend_from_slice(&limit.to_be_bytes());
    notification(CEASE, CEASE_MAX_PREFIXES, data)
}

/// "bad peer AS (2/2)".
pub fn describe(n: &Notification) -> String {
    format!("{} ({}/{})", name(n.code, n.subcode), n.code, n.subcode)
}

fn name(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (1, 1) => "connection not synchronized",
        (1, 2) => "bad message length",
        (1, 3) => "bad message type",
        (1, _) => "message header error",
        (2, 1) => "unsupported version number",
        (2, 2) => "bad peer AS",
        (2, 3) => "bad BGP identifier",
        (2, 4) => "unsupported optional parameter",
        (2, 6) => "unacceptable hold time",
        (2, 7) => "unsupported capability",
        (2, _) => "OPEN message error",
        (3, 1) => "malformed attribute list",
        (3, 2) => "unrecognized well-known attribute",
        (3, 3) => "missing well-known attribute",
        (3, 4) => "attribute flags error",
        (3, 5) => "attribute length error",
        (3, 6) => "invalid ORIGIN attribute",
        (3, 8) => "invalid NEXT_HOP attribute",
        (3, 9) => "optional attribute error",
        (3, 10) => "invalid network field",
        (3, 11) => "malformed AS_PATH",
        (3, _) => "UPDATE message error",
        (4, _) => "hold timer expired",
        (5, 1) => "FSM error: unexpected message in OpenSent",
        (5, 2) => "FSM error: unexpected message in OpenConfirm",
        (5, 3) => "FSM error: unexpected message in Established",
        (5, _) => "FSM error",
        (6, 1) => "maximum number of prefixes reached",
        (6, 2) => "administrative shutdown",
        (6, 3) => "peer de-configured",
        (6, 4) => "administrative reset",
        (6, 5) => "connection rejected",
        (6, 6) => "other configuration change",
        (6, 7) => "connection collision resolution",
        (6, 8) => "out of resources",
        (6, 9) => "hard reset",
        (6, _) => "cease",
        _ => "unknown error",
    }
}
