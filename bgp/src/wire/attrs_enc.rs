//! Path attribute encoding. Flags come from the attribute type (the
//! Extended Length bit from the value size); MP_REACH/MP_UNREACH go first
//! (RFC 7606 §5.1) so a receiver can always find the NLRI.

use super::aspath;
use super::codes::{attr, flag};
use super::error::EncodeError;
use super::nlri;
use super::types::{Afi, MpReach, MpUnreach, Origin, PathAttributes, SessionContext, AS_TRANS};
use ipnet::IpNet;
use std::net::IpAddr;

const WELL_KNOWN: u8 = flag::TRANSITIVE;
const OPT_NON_TRANSITIVE: u8 = flag::OPTIONAL;
const OPT_TRANSITIVE: u8 = flag::OPTIONAL | flag::TRANSITIVE;

/// Appends one attribute whose value `body` writes.
fn put(
    out: &mut Vec<u8>,
    flags: u8,
    code: u8,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    // Reserve the extended (2-octet) length, then shrink if it fits one.
    out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, code, 0, 0]);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - 4;
    if len > usize::from(u16::MAX) {
        out.truncate(start);
        return Err(EncodeError::TooLong {
            what: "path attribute",
            len,
            max: usize::from(u16::MAX),
        });
    }
    if len <= 255 {
        out[start] = flags & !flag::EXTENDED_LENGTH;
        out[start + 2] = len as u8;
        out.remove(start + 3);
    } else {
        out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    }
    Ok(())
}

pub fn encode_mp_reach(r: &MpReach, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_mp_reach_with(r, &r.nlri, out)
}

/// MP_REACH with the given prefixes instead of `r.nlri` (for the packer).
pub fn encode_mp_reach_with(
    r: &MpReach,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    put(out, OPT_NON_TRANSITIVE, attr::MP_REACH_NLRI, |o| {
        o.extend_from_slice(&r.family.afi_wire().to_be_bytes());
        o.push(r.family.safi_wire());
        put_next_hops(r, o)?;
        o.push(0);
        put_prefixes(r.family.afi, prefixes, o)
    })
}

fn put_next_hops(r: &MpReach, o: &mut Vec<u8>) -> Result<(), EncodeError> {
    let bad = |reason: String| EncodeError::Invalid {
        field: "MP_REACH_NLRI next hop",
        reason,
    };
    match (r.family.afi, r.next_hops.as_slice()) {
        (Afi::Ipv4, [IpAddr::V4(a)]) => {
            o.push(4);
            o.extend_from_slice(&a.octets());
        }
        (_, [IpAddr::V6(a)]) => {
            o.push(16);
            o.extend_from_slice(&a.octets());
        }
        (_, [IpAddr::V6(a), IpAddr::V6(b)]) => {
            o.push(32);
            o.extend_from_slice(&a.octets());
            o.extend_from_slice(&b.octets());
        }
        (f, hops) => return Err(bad(format!("{hops:?} is not a next hop for {f:?}"))),
    }
    Ok(())
}

pub(crate) fn put_prefixes(
    afi: Afi,
    prefixes: &[IpNet],
    o: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    for p in prefixes {
        match (afi, p) {
            (Afi::Ipv4, IpNet::V4(p)) => nlri::encode_v4(p, o),
            (Afi::Ipv6, IpNet::V6(p)) => nlri::encode_v6(p, o),
            _ => {
                return Err(EncodeError::Invalid {
                    field: "MP NLRI",
                    reason: format!("{p} is not in address family {afi:?}"),
                })
            }
        }
    }
    Ok(())
}

pub fn encode_mp_unreach(u: &MpUnreach, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_mp_unreach_with(u, &u.withdrawn, out)
}

pub fn encode_mp_unreach_with(
    u: &MpUnreach,
    prefixes: &[IpNet],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    put(out, OPT_NON_TRANSITIVE, attr::MP_UNREACH_NLRI, |o| {
        o.extend_from_slice(&u.family.afi_wire().to_be_bytes());
        o.push(u.family.safi_wire());
        put_prefixes(u.family.afi, prefixes, o)
    })
}

/// Appends every attribute; `with_mp` false leaves out MP_REACH/MP_UNREACH
/// (the packer writes those itself).
pub fn encode_attrs(
    a: &PathAttributes,
    ctx: &SessionContext,
    with_mp: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if with_mp {
        if let Some(r) = &a.mp_reach {
            encode_mp_reach(r, out)?;
        }
        if let Some(u) = &a.mp_unreach {
            encode_mp_unreach(u, out)?;
        }
    }
    if let Some(o) = a.origin {
        put(out, WELL_KNOWN, attr::ORIGIN, |b| {
            b.push(match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            });
            Ok(())
        })?;
    }
    // A route always carries AS_PATH, even empty (iBGP-originated).
    let width = if ctx.four_octet_as { 4 } else { 2 };
    if a.origin.is_some() || !a.as_path.is_empty() {
        put(out, WELL_KNOWN, attr::AS_PATH, |b| {
            aspath::encode_segments(&a.as_path, width, b);
            Ok(())
        })?;
    }
    if let Some(nh) = a.next_hop {
        put(out, WELL_KNOWN, attr::NEXT_HOP, |b| {
            b.extend_from_slice(&nh.octets());
            Ok(())
        })?;
    }
    if let Some(med) = a.med {
        put(out, OPT_NON_TRANSITIVE, attr::MED, |b| {
            b.extend_from_slice(&med.to_be_bytes());
            Ok(())
        })?;
    }
    if let Some(lp) = a.local_pref {
        put(out, WELL_KNOWN, attr::LOCAL_PREF, |b| {
            b.extend_from_slice(&lp.to_be_bytes());
            Ok(())
        })?;
    }
    if a.atomic_aggregate {
        put(out, WELL_KNOWN, attr::ATOMIC_AGGREGATE, |_| Ok(()))?;
    }
    if let Some((asn, id)) = a.aggregator {
        put(out, OPT_TRANSITIVE, attr::AGGREGATOR, |b| {
            if ctx.four_octet_as {
                b.extend_from_slice(&asn.to_be_bytes());
            } else {
                let two = u16::try_from(asn).unwrap_or(AS_TRANS);
                b.extend_from_slice(&two.to_be_bytes());
            }
            b.extend_from_slice(&id.octets());
            Ok(())
        })?;
    }
    if !a.communities.is_empty() {
        put(out, OPT_TRANSITIVE, attr::COMMUNITIES, |b| {
            for c in &a.communities {
                b.extend_from_slice(&c.to_be_bytes());
            }
            Ok(())
        })?;
    }
    if !a.large_communities.is_empty() {
        put(out, OPT_TRANSITIVE, attr::LARGE_COMMUNITIES, |b| {
            for c in &a.large_communities {
                for part in [c.global, c.local1, c.local2] {
                    b.extend_from_slice(&part.to_be_bytes());
                }
            }
            Ok(())
        })?;
    }
    if let Some(id) = a.originator_id {
        put(out, OPT_NON_TRANSITIVE, attr::ORIGINATOR_ID, |b| {
            b.extend_from_slice(&id.octets());
            Ok(())
        })?;
    }
    if !a.cluster_list.is_empty() {
        put(out, OPT_NON_TRANSITIVE, attr::CLUSTER_LIST, |b| {
            for id in &a.cluster_list {
                b.extend_from_slice(&id.octets());
            }
            Ok(())
        })?;
    }
    // RFC 6793 §4.2.2: a 2-octet peer gets the real ASes in AS4_* too.
    if !ctx.four_octet_as && aspath::needs_as4(&a.as_path) {
        put(out, OPT_TRANSITIVE, attr::AS4_PATH, |b| {
            aspath::encode_segments(&a.as_path, 4, b);
            Ok(())
        })?;
    }
    if let Some((asn, id)) = a.aggregator {
        if !ctx.four_octet_as && asn > 0xffff {
            put(out, OPT_TRANSITIVE, attr::AS4_AGGREGATOR, |b| {
                b.extend_from_slice(&asn.to_be_bytes());
                b.extend_from_slice(&id.octets());
                Ok(())
            })?;
        }
    }
    for r in &a.other {
        put(out, r.flags & 0xe0, r.code, |b| {
            b.extend_from_slice(&r.data);
            Ok(())
        })?;
    }
    Ok(())
}
