//! Path attribute decoding with RFC 7606 error handling: each malformed
//! attribute is classified and either resets the session, marks the UPDATE
//! treat-as-withdraw, or is discarded.

use super::aspath;
use super::codes::{attr, flag};
use super::error::{DecodeError, Rfc7606Action};
use super::nlri;
use super::types::{
    AsSegment, Family, LargeCommunity, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
    SessionContext, AS_TRANS,
};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The result of walking the attribute list.
pub struct Decoded {
    pub attrs: PathAttributes,
    /// The first treat-as-withdraw reason met, if any.
    pub treat_as_withdraw: Option<String>,
    /// Which type codes were present (for the missing well-known check).
    pub seen: [u64; 4],
}

impl Decoded {
    pub fn has(&self, code: u8) -> bool {
        self.seen[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// Expected Optional/Transitive bits for the attributes Tabby interprets.
fn expected_flags(code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = flag::TRANSITIVE;
    const OPT_NON_TRANSITIVE: u8 = flag::OPTIONAL;
    const OPT_TRANSITIVE: u8 = flag::OPTIONAL | flag::TRANSITIVE;
    Some(match code {
        attr::ORIGIN
        | attr::AS_PATH
        | attr::NEXT_HOP
        | attr::LOCAL_PREF
        | attr::ATOMIC_AGGREGATE => WELL_KNOWN,
        attr::MED
        | attr::ORIGINATOR_ID
        | attr::CLUSTER_LIST
        | attr::MP_REACH_NLRI
        | attr::MP_UNREACH_NLRI => OPT_NON_TRANSITIVE,
        attr::AGGREGATOR
        | attr::COMMUNITIES
        | attr::AS4_PATH
        | attr::AS4_AGGREGATOR
        | attr::LARGE_COMMUNITIES => OPT_TRANSITIVE,
        _ => return None,
    })
}

/// Per-attribute state that only makes sense once the whole list is read.
#[derive(Default)]
struct As4State {
    as4_path: Option<Vec<AsSegment>>,
    as4_aggregator: Option<(u32, Ipv4Addr)>,
}

/// Walks the Path Attributes field of an UPDATE. `ipv4_nlri` says whether
/// the NLRI field is non-empty: without it NEXT_HOP describes nothing.
pub fn decode_attrs(
    buf: &[u8],
    ctx: &SessionContext,
    ipv4_nlri: bool,
) -> Result<Decoded, DecodeError> {
    let mut d = Decoded {
        attrs: PathAttributes::default(),
        treat_as_withdraw: None,
        seen: [0; 4],
    };
    let mut as4 = As4State::default();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let (flags, code) = match rest {
            [f, c, ..] => (*f, *c),
            _ => {
                twd(&mut d, "attribute header cut short");
                break;
            }
        };
        let (hlen, len) = if flags & flag::EXTENDED_LENGTH != 0 {
            match rest.get(2..4) {
                Some(&[a, b]) => (4, usize::from(u16::from_be_bytes([a, b]))),
                _ => {
                    twd(&mut d, "attribute header cut short");
                    break;
                }
            }
        } else {
            match rest.get(2) {
                Some(&l) => (3, usize::from(l)),
                None => {
                    twd(&mut d, "attribute header cut short");
                    break;
                }
            }
        };
        let Some(raw) = rest.get(..hlen + len) else {
            // RFC 7606 §4: the Total Path Attribute Length still locates the
            // NLRI, so the routes are withdrawn rather than the session reset.
            twd(
                &mut d,
                &format!("attribute {code} length {len} runs past the attribute list"),
            );
            break;
        };
        pos += hlen + len;
        if d.has(code) {
            if code == attr::MP_REACH_NLRI || code == attr::MP_UNREACH_NLRI {
                return Err(DecodeError::MalformedAttributeList(format!(
                    "attribute {code} appears more than once"
                )));
            }
            // RFC 7606 §3.g: later repeats are discarded.
            continue;
        }
        d.seen[usize::from(code / 64)] |= 1 << (code % 64);
        let value = raw.get(hlen..).unwrap_or_default();
        if let Err(e) = decode_one(flags, code, value, raw, ctx, &mut d.attrs, &mut as4) {
            // RFC 4760 §3: with only MP_REACH routes, NEXT_HOP is ignored.
            let action = if code == attr::NEXT_HOP && !ipv4_nlri {
                Rfc7606Action::AttributeDiscard
            } else {
                e.action()
            };
            match action {
                Rfc7606Action::SessionReset => return Err(e),
                Rfc7606Action::TreatAsWithdraw => {
                    if d.treat_as_withdraw.is_none() {
                        d.treat_as_withdraw = Some(e.to_string());
                    }
                }
                Rfc7606Action::AttributeDiscard | Rfc7606Action::Ignore => {}
            }
        }
    }
    if !ctx.four_octet_as {
        apply_as4(&mut d.attrs, as4);
    }
    Ok(d)
}

fn twd(d: &mut Decoded, reason: &str) {
    if d.treat_as_withdraw.is_none() {
        d.treat_as_withdraw = Some(format!("UPDATE: malformed attribute list: {reason}"));
    }
}

/// RFC 6793 §4.2.3: an AGGREGATOR naming a real 2-octet AS means a 2-octet
/// speaker aggregated after the 4-octet ones, so AS4_* are stale.
fn apply_as4(a: &mut PathAttributes, as4: As4State) {
    if let Some((agg_as, _)) = a.aggregator {
        if agg_as != u32::from(AS_TRANS) {
            return;
        }
        if let Some(agg4) = as4.as4_aggregator {
            a.aggregator = Some(agg4);
        }
    }
    if let Some(p4) = as4.as4_path {
        a.as_path = aspath::merge_as4(std::mem::take(&mut a.as_path), p4);
    }
}

fn be32(v: &[u8]) -> Option<u32> {
    let &[a, b, c, d] = v else { return None };
    Some(u32::from_be_bytes([a, b, c, d]))
}

fn decode_one(
    flags: u8,
    code: u8,
    value: &[u8],
    raw: &[u8],
    ctx: &SessionContext,
    a: &mut PathAttributes,
    as4: &mut As4State,
) -> Result<(), DecodeError> {
    let Some(want) = expected_flags(code) else {
        if flags & flag::OPTIONAL == 0 {
            return Err(DecodeError::UnrecognizedWellKnown {
                code,
                attr: raw.to_vec(),
            });
        }
        a.other.push(RawAttribute {
            flags: flags & 0xe0,
            code,
            data: value.to_vec(),
        });
        return Ok(());
    };
    let bad_len = || DecodeError::AttributeLength {
        code,
        len: value.len(),
        attr: raw.to_vec(),
    };
    // RFC 7606 §3.c: a flag conflict makes the attribute malformed. MP
    // attributes are still parsed so their prefixes can be withdrawn.
    let flags_ok = flags & (flag::OPTIONAL | flag::TRANSITIVE) == want;
    let flag_err = || DecodeError::AttributeFlags {
        code,
        flags,
        attr: raw.to_vec(),
    };
    if !flags_ok && code != attr::MP_REACH_NLRI && code != attr::MP_UNREACH_NLRI {
        return Err(flag_err());
    }
    match code {
        attr::ORIGIN => {
            let &[v] = value else { return Err(bad_len()) };
            a.origin = Some(match v {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => {
                    return Err(DecodeError::InvalidOrigin {
                        value: v,
                        attr: raw.to_vec(),
                    })
                }
            });
        }
        attr::AS_PATH => {
            let width = if ctx.four_octet_as { 4 } else { 2 };
            a.as_path = aspath::decode_segments(value, width)
                .map_err(|reason| DecodeError::MalformedAsPath { code, reason })?;
        }
        attr::NEXT_HOP => {
            let nh = Ipv4Addr::from(be32(value).ok_or_else(bad_len)?);
            if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                return Err(DecodeError::InvalidNextHop {
                    addr: nh,
                    attr: raw.to_vec(),
                });
            }
            a.next_hop = Some(nh);
        }
        attr::MED => a.med = Some(be32(value).ok_or_else(bad_len)?),
        attr::LOCAL_PREF => a.local_pref = Some(be32(value).ok_or_else(bad_len)?),
        attr::ATOMIC_AGGREGATE => {
            if !value.is_empty() {
                return Err(bad_len());
            }
            a.atomic_aggregate = true;
        }
        attr::AGGREGATOR => {
            a.aggregator = Some(match (ctx.four_octet_as, value) {
                (true, &[a0, a1, a2, a3, i0, i1, i2, i3]) => (
                    u32::from_be_bytes([a0, a1, a2, a3]),
                    Ipv4Addr::new(i0, i1, i2, i3),
                ),
                (false, &[a0, a1, i0, i1, i2, i3]) => (
                    u32::from(u16::from_be_bytes([a0, a1])),
                    Ipv4Addr::new(i0, i1, i2, i3),
                ),
                _ => return Err(bad_len()),
            });
        }
        attr::COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(4) {
                return Err(bad_len());
            }
            a.communities = value
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        }
        // RFC 8092 §5: empty or not a multiple of 12 is malformed, which
        // RFC 7606 treats as withdraw (the default for this code).
        attr::LARGE_COMMUNITIES => {
            if value.is_empty() || !value.len().is_multiple_of(12) {
                return Err(bad_len());
            }
            a.large_communities = value
                .chunks_exact(12)
                .map(|c| {
                    let part = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                    LargeCommunity::new(part(0), part(4), part(8))
                })
                .collect();
        }
        attr::ORIGINATOR_ID => {
            a.originator_id = Some(Ipv4Addr::from(be32(value).ok_or_else(bad_len)?));
        }
        attr::CLUSTER_LIST => {
            if value.is_empty() || !value.len().is_multiple_of(4) {
                return Err(bad_len());
            }
            a.cluster_list = value
                .chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect();
        }
        attr::MP_REACH_NLRI => match decode_mp_reach(value, raw)? {
            Some(r) => a.mp_reach = Some(r),
            None => a.other.push(RawAttribute {
                flags: flags & 0xe0,
                code,
                data: value.to_vec(),
            }),
        },
        attr::MP_UNREACH_NLRI => match decode_mp_unreach(value, raw)? {
            Some(u) => a.mp_unreach = Some(u),
            None => a.other.push(RawAttribute {
                flags: flags & 0xe0,
                code,
                data: value.to_vec(),
            }),
        },
        // RFC 6793 §4.1: between 4-octet speakers AS4_* are discarded.
        attr::AS4_PATH if !ctx.four_octet_as => {
            as4.as4_path = Some(
                aspath::decode_segments(value, 4)
                    .map_err(|reason| DecodeError::MalformedAsPath { code, reason })?,
            );
        }
        attr::AS4_AGGREGATOR if !ctx.four_octet_as => {
            let &[a0, a1, a2, a3, i0, i1, i2, i3] = value else {
                return Err(bad_len());
            };
            as4.as4_aggregator = Some((
                u32::from_be_bytes([a0, a1, a2, a3]),
                Ipv4Addr::new(i0, i1, i2, i3),
            ));
        }
        _ => {}
    }
    if !flags_ok {
        return Err(DecodeError::AttributeFlags {
            code,
            flags,
            attr: raw.to_vec(),
        });
    }
    Ok(())
}

fn mp_err(code: u8, raw: &[u8], reason: String) -> DecodeError {
    DecodeError::OptionalAttribute {
        code,
        reason,
        attr: raw.to_vec(),
    }
}

fn decode_prefixes(
    family: Family,
    buf: &[u8],
    code: u8,
    raw: &[u8],
) -> Result<Vec<IpNet>, DecodeError> {
    let bad = |e: nlri::NlriError| mp_err(code, raw, format!("NLRI: {e}"));
    Ok(match family.afi {
        super::types::Afi::Ipv4 => nlri::decode_v4(buf)
            .map_err(bad)?
            .into_iter()
            .map(IpNet::V4)
            .collect(),
        super::types::Afi::Ipv6 => nlri::decode_v6(buf)
            .map_err(bad)?
            .into_iter()
            .map(IpNet::V6)
            .collect(),
    })
}

/// `Ok(None)`: a family Tabby does not speak, kept as a raw attribute.
fn decode_mp_reach(v: &[u8], raw: &[u8]) -> Result<Option<MpReach>, DecodeError> {
    let code = attr::MP_REACH_NLRI;
    let &[a0, a1, safi, nh_len, ref rest @ ..] = v else {
        return Err(mp_err(code, raw, format!("length {} is below 5", v.len())));
    };
    let nh_len = usize::from(nh_len);
    let Some(family) = Family::from_wire(u16::from_be_bytes([a0, a1]), safi) else {
        return Ok(None);
    };
    let (nh, after) = match (rest.get(..nh_len), rest.get(nh_len + 1..)) {
        (Some(nh), Some(after)) => (nh, after),
        _ => {
            return Err(mp_err(
                code,
                raw,
                format!("next hop length {nh_len} runs past the attribute"),
            ))
        }
    };
    let v6 = |b: &[u8]| -> Option<IpAddr> {
        let arr: [u8; 16] = b.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(arr)))
    };
    let next_hops: Vec<IpAddr> = match (family.afi, nh_len) {
        (super::types::Afi::Ipv4, 4) => be32(nh)
            .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
            .into_iter()
            .collect(),
        (_, 16) => v6(nh).into_iter().collect(),
        (_, 32) => nh.chunks_exact(16).filter_map(v6).collect(),
        _ => {
            return Err(mp_err(
                code,
                raw,
                format!("next hop length {nh_len} is invalid for {family:?}"),
            ))
        }
    };
    let nlri = decode_prefixes(family, after, code, raw)?;
    Ok(Some(MpReach {
        family,
        next_hops,
        nlri,
    }))
}

fn decode_mp_unreach(v: &[u8], raw: &[u8]) -> Result<Option<MpUnreach>, DecodeError> {
    let code = attr::MP_UNREACH_NLRI;
    let &[a0, a1, safi, ref rest @ ..] = v else {
        return Err(mp_err(code, raw, format!("length {} is below 3", v.len())));
    };
    let Some(family) = Family::from_wire(u16::from_be_bytes([a0, a1]), safi) else {
        return Ok(None);
    };
    let withdrawn = decode_prefixes(family, rest, code, raw)?;
    Ok(Some(MpUnreach { family, withdrawn }))
}
