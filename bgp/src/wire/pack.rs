//! Packing many prefixes that share attributes into as few UPDATEs as fit
//! in the session's limit (4096 octets, 65535 with RFC 8654 extended
//! messages; withdrawals always use 4096, which every peer reads): IPv4 in the NLRI / Withdrawn Routes fields, IPv6 in
//! MP_REACH_NLRI / MP_UNREACH_NLRI. The shared attributes are encoded once.

use super::attrs_enc::encode_attrs;
use super::codes::{attr, flag, msg_type};
use super::error::EncodeError;
use super::nlri;
use super::types::{
    Afi, Family, Message, MpUnreach, PathAttributes, SessionContext, Update, HEADER_LEN,
    MAX_MESSAGE_LEN,
};
use ipnet::IpNet;

fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, msg_type::UPDATE]);
    start
}

fn set_u16(out: &mut [u8], at: usize, v: usize) {
    // Every length here is bounded by the message limit (at most 65535),
    // so it fits.
    out[at..at + 2].copy_from_slice(&(v as u16).to_be_bytes());
}

/// Walks the prefixes of one family in a mixed slice.
struct Cursor<'a> {
    prefixes: &'a [IpNet],
    i: usize,
    v6: bool,
    /// The largest message the session carries.
    max: usize,
}

impl<'a> Cursor<'a> {
    fn new(prefixes: &'a [IpNet], v6: bool, max: usize) -> Self {
        Cursor {
            prefixes,
            i: 0,
            v6,
            max,
        }
    }

    /// Encoded size of the prefix `fill` would add next, so an error can
    /// give the size the message would really have had.
    fn next_len(&self) -> usize {
        self.prefixes
            .get(self.i)
            .map_or(0, |p| nlri::encoded_len(p.prefix_len()))
    }

    /// Skips to the next prefix of this family; false when none is left.
    fn more(&mut self) -> bool {
        while let Some(p) = self.prefixes.get(self.i) {
            if matches!(p, IpNet::V6(_)) == self.v6 {
                return true;
            }
            self.i += 1;
        }
        false
    }

    /// Appends prefixes while the message starting at `start` stays within
    /// the limit once `reserve` more are added; returns how many.
    fn fill(&mut self, start: usize, reserve: usize, out: &mut Vec<u8>) -> usize {
        let limit = (start + self.max).saturating_sub(reserve);
        let mut n = 0;
        while let Some(p) = self.prefixes.get(self.i) {
            match (p, self.v6) {
                (IpNet::V4(p), false) => {
                    if out.len() + nlri::encoded_len(p.prefix_len()) > limit {
                        break;
                    }
                    nlri::encode_v4(p, out);
                    n += 1;
                }
                (IpNet::V6(p), true) => {
                    if out.len() + nlri::encoded_len(p.prefix_len()) > limit {
                        break;
                    }
                    nlri::encode_v6(p, out);
                    n += 1;
                }
                _ => {}
            }
            self.i += 1;
        }
        n
    }
}

fn too_long(what: &'static str, len: usize, max: usize) -> EncodeError {
    EncodeError::TooLong { what, len, max }
}

/// Announces `prefixes` with `attrs`. IPv4 prefixes take `attrs.next_hop`;
/// IPv6 ones take the next hops of `attrs.mp_reach` (its own NLRI are
/// ignored). Returns the number of messages appended; on error, none are.
pub fn encode_announce(
    attrs: &PathAttributes,
    prefixes: &[IpNet],
    ctx: &SessionContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let begin_len = out.len();
    let r = announce(attrs, prefixes, ctx, out);
    if r.is_err() {
        out.truncate(begin_len);
    }
    r
}

fn announce(
    attrs: &PathAttributes,
    prefixes: &[IpNet],
    ctx: &SessionContext,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let mut count = 0;
    let max = ctx.max_message_len();
    let mut v4 = Cursor::new(prefixes, false, max);
    if v4.more() {
        if attrs.next_hop.is_none() {
            return Err(EncodeError::Invalid {
                field: "NEXT_HOP",
                reason: "IPv4 prefixes need a next hop".into(),
            });
        }
        let mut base = Vec::new();
        encode_attrs(attrs, ctx, false, &mut base)?;
        while v4.more() {
            let start = begin(out);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(base.len() as u16).to_be_bytes());
            out.extend_from_slice(&base);
            if v4.fill(start, 0, out) == 0 {
                let len = out.len() - start + v4.next_len();
                return Err(too_long("shared path attributes", len, max));
            }
            let len = out.len() - start;
            set_u16(out, start + 16, len);
            count += 1;
        }
    }
    let mut v6 = Cursor::new(prefixes, true, max);
    if v6.more() {
        let reach = match &attrs.mp_reach {
            Some(r) if r.family.afi == Afi::Ipv6 => r,
            _ => {
                return Err(EncodeError::Invalid {
                    field: "MP_REACH_NLRI",
                    reason: "IPv6 prefixes need an IPv6 MP_REACH_NLRI next hop".into(),
                })
            }
        };
        // NEXT_HOP only describes IPv4 NLRI (RFC 4760 §3); leave it out.
        let mut base = Vec::new();
        let rest = PathAttributes {
            next_hop: None,
            mp_reach: None,
            mp_unreach: None,
            ..attrs.clone()
        };
        encode_attrs(&rest, ctx, false, &mut base)?;
        let mut mp_head = Vec::new();
        super::attrs_enc::encode_mp_reach_with(reach, &[], &mut mp_head)?;
        // Re-emit the MP_REACH header with the extended length so it can
        // hold up to a whole message of prefixes.
        let mp_value = mp_head.get(3..).unwrap_or_default().to_vec();
        while v6.more() {
            let start = begin(out);
            out.extend_from_slice(&[0, 0, 0, 0]);
            let attrs_at = out.len();
            out.extend_from_slice(&[
                flag::OPTIONAL | flag::EXTENDED_LENGTH,
                attr::MP_REACH_NLRI,
                0,
                0,
            ]);
            out.extend_from_slice(&mp_value);
            let n = v6.fill(start, base.len(), out);
            if n == 0 {
                let len = out.len() - start + base.len() + v6.next_len();
                return Err(too_long("shared path attributes", len, max));
            }
            let mp_len = out.len() - attrs_at - 4;
            set_u16(out, attrs_at + 2, mp_len);
            out.extend_from_slice(&base);
            let alen = out.len() - attrs_at;
            set_u16(out, attrs_at - 2, alen);
            let len = out.len() - start;
            set_u16(out, start + 16, len);
            count += 1;
        }
    }
    Ok(count)
}

/// Withdraws `prefixes`; returns the number of messages appended.
pub fn encode_withdraw(prefixes: &[IpNet], out: &mut Vec<u8>) -> usize {
    let mut count = 0;
    let mut v4 = Cursor::new(prefixes, false, MAX_MESSAGE_LEN);
    while v4.more() {
        let start = begin(out);
        out.extend_from_slice(&[0, 0]);
        let n = v4.fill(start, 2, out);
        debug_assert!(n > 0);
        let wlen = out.len() - start - HEADER_LEN - 2;
        set_u16(out, start + HEADER_LEN, wlen);
        out.extend_from_slice(&[0, 0]);
        let len = out.len() - start;
        set_u16(out, start + 16, len);
        count += 1;
    }
    let mut v6 = Cursor::new(prefixes, true, MAX_MESSAGE_LEN);
    while v6.more() {
        let start = begin(out);
        out.extend_from_slice(&[0, 0, 0, 0]);
        let attrs_at = out.len();
        out.extend_from_slice(&[
            flag::OPTIONAL | flag::EXTENDED_LENGTH,
            attr::MP_UNREACH_NLRI,
            0,
            0,
        ]);
        out.extend_from_slice(&Family::IPV6_UNICAST.afi_wire().to_be_bytes());
        out.push(Family::IPV6_UNICAST.safi_wire());
        v6.fill(start, 0, out);
        let mp_len = out.len() - attrs_at - 4;
        set_u16(out, attrs_at + 2, mp_len);
        let alen = out.len() - attrs_at;
        set_u16(out, attrs_at - 2, alen);
        let len = out.len() - start;
        set_u16(out, start + 16, len);
        count += 1;
    }
    count
}

/// RFC 4724 End-of-RIB for `family`.
pub fn encode_end_of_rib(family: Family, out: &mut Vec<u8>) {
    let mut u = Update::default();
    if family != Family::IPV4_UNICAST {
        u.attrs.mp_unreach = Some(MpUnreach {
            family,
            withdrawn: vec![],
        });
    }
    // Tiny fixed-size messages: encoding cannot fail.
    let _ = super::encode(&Message::Update(u), &SessionContext::default(), out);
}
