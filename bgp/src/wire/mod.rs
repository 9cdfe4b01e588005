//! Tabby's own BGP wire codec. It never touches sockets: bytes in, typed
//! messages or typed errors (each mapping to a NOTIFICATION or an RFC 7606
//! action) out.

mod aspath;
mod attrs;
pub mod attrs_enc;
pub mod codes;
pub mod error;
pub mod nlri;
pub mod open;
mod pack;
pub mod types;
pub mod update;

pub use codes::{attr, msg_type};
pub use error::{attribute_action, DecodeError, EncodeError, Rfc7606Action};
pub use pack::{encode_announce, encode_end_of_rib, encode_withdraw};
pub use types::*;

const MARKER: [u8; 16] = [0xff; 16];

/// Smallest valid length per message type, and whether it is also the largest.
fn length_bounds(t: u8) -> Option<(usize, bool)> {
    Some(match t {
        msg_type::OPEN => (29, false),
        msg_type::UPDATE => (23, false),
        msg_type::NOTIFICATION => (21, false),
        msg_type::KEEPALIVE => (19, true),
        msg_type::ROUTE_REFRESH => (23, true),
        _ => return None,
    })
}

/// Checks a message header. `Ok(None)` until 19 octets are buffered, then
/// the full length of the message that starts `buf`. The limit is RFC
/// 4271's 4096 octets; [`message_len_max`] takes a session's.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    message_len_max(buf, MAX_MESSAGE_LEN)
}

/// [`message_len`] with the session's limit (`SessionContext::max_message_len`).
/// An OPEN is held to 4096 octets whatever the limit (RFC 8654 §3).
pub fn message_len_max(buf: &[u8], max: usize) -> Result<Option<usize>, DecodeError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if h[..16] != MARKER {
        return Err(DecodeError::NotSynchronized);
    }
    let len16 = u16::from_be_bytes([h[16], h[17]]);
    let len = usize::from(len16);
    let t = h[18];
    let bad_len = DecodeError::BadLength {
        len: len16,
        msg_type: t,
    };
    let max = if t == msg_type::OPEN {
        max.min(MAX_MESSAGE_LEN)
    } else {
        max
    };
    if !(HEADER_LEN..=max).contains(&len) {
        return Err(bad_len);
    }
    let (min, exact) = length_bounds(t).ok_or(DecodeError::BadType(t))?;
    if len < min || (exact && len != min) {
        return Err(bad_len);
    }
    Ok(Some(len))
}

/// Decodes exactly one whole message.
pub fn decode(msg: &[u8], ctx: &SessionContext) -> Result<Message, DecodeError> {
    let len = match message_len_max(msg, ctx.max_message_len())? {
        Some(len) if len == msg.len() => len,
        other => {
            // A caller bug more than a peer's, but it must not panic either.
            return Err(DecodeError::BadLength {
                len: other.map_or(msg.len(), |l| l) as u16,
                msg_type: msg.get(18).copied().unwrap_or(0),
            });
        }
    };
    let body = msg.get(HEADER_LEN..len).unwrap_or_default();
    Ok(match msg.get(18).copied().unwrap_or(0) {
        msg_type::OPEN => Message::Open(open::decode_open(body)?),
        msg_type::UPDATE => Message::Update(update::decode_update(body, ctx)?),
        msg_type::NOTIFICATION => {
            let &[code, subcode, ref data @ ..] = body else {
                return Err(DecodeError::BadLength {
                    len: len as u16,
                    msg_type: msg_type::NOTIFICATION,
                });
            };
            Message::Notification(Notification {
                code,
                subcode,
                data: data.to_vec(),
            })
        }
        msg_type::KEEPALIVE => Message::Keepalive,
        msg_type::ROUTE_REFRESH => {
            let &[a0, a1, _, safi] = body else {
                return Err(DecodeError::BadLength {
                    len: len as u16,
                    msg_type: msg_type::ROUTE_REFRESH,
                });
            };
            let afi = u16::from_be_bytes([a0, a1]);
            let family = Family::from_wire(afi, safi)
                .ok_or(DecodeError::RouteRefreshFamily { afi, safi })?;
            Message::RouteRefresh(RouteRefresh { family })
        }
        t => return Err(DecodeError::BadType(t)),
    })
}

/// Appends one message. On error nothing is appended.
pub fn encode(msg: &Message, ctx: &SessionContext, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, 0]);
    // RFC 8654 §3: OPEN and KEEPALIVE never grow past 4096.
    let max = match msg {
        Message::Open(_) | Message::Keepalive => MAX_MESSAGE_LEN,
        _ => ctx.max_message_len(),
    };
    let (t, r) = match msg {
        Message::Open(o) => (msg_type::OPEN, open::encode_open(o, out)),
        Message::Update(u) => (msg_type::UPDATE, update::encode_update(u, ctx, out)),
        Message::Notification(n) => {
            out.extend_from_slice(&[n.code, n.subcode]);
            out.extend_from_slice(&n.data);
            (msg_type::NOTIFICATION, Ok(()))
        }
        Message::Keepalive => (msg_type::KEEPALIVE, Ok(())),
        Message::RouteRefresh(rr) => {
            out.extend_from_slice(&rr.family.afi_wire().to_be_bytes());
            out.extend_from_slice(&[0, rr.family.safi_wire()]);
            (msg_type::ROUTE_REFRESH, Ok(()))
        }
    };
    finish(out, start, t, r, "message", max)
}

/// Fills in the header of the message begun at `start`, or removes it.
fn finish(
    out: &mut Vec<u8>,
    start: usize,
    t: u8,
    r: Result<(), EncodeError>,
    what: &'static str,
    max: usize,
) -> Result<(), EncodeError> {
    let len = out.len() - start;
    let r = match r {
        Ok(()) if len > max => Err(EncodeError::TooLong { what, len, max }),
        r => r,
    };
    if r.is_err() {
        out.truncate(start);
        return r;
    }
    out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
    out[start + 18] = t;
    Ok(())
}
