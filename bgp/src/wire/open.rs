//! OPEN (RFC 4271 §4.2) with capabilities in optional parameters (RFC 5492).

use super::codes::{cap, OPT_PARAM_CAPABILITIES};
use super::error::{DecodeError, EncodeError};
use super::types::{Capability, Family, GracefulRestartFamily, Open, BGP_VERSION};
use std::net::Ipv4Addr;

fn malformed(reason: impl Into<String>) -> DecodeError {
    DecodeError::MalformedOpen(reason.into())
}

/// Decodes an OPEN body (after the 19-byte header).
pub fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let fixed: &[u8; 10] = body
        .get(..10)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("shorter than its 10 fixed octets"))?;
    let version = fixed[0];
    if version != BGP_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let my_as = u16::from_be_bytes([fixed[1], fixed[2]]);
    let hold_time = u16::from_be_bytes([fixed[3], fixed[4]]);
    if hold_time == 1 || hold_time == 2 {
        return Err(DecodeError::UnacceptableHoldTime(hold_time));
    }
    let bgp_id = Ipv4Addr::new(fixed[5], fixed[6], fixed[7], fixed[8]);
    if bgp_id.is_unspecified() || bgp_id.is_multicast() || bgp_id.is_broadcast() {
        return Err(DecodeError::BadBgpId(bgp_id));
    }
    let opt_len = usize::from(fixed[9]);
    let params = body.get(10..).unwrap_or_default();
    if params.len() != opt_len {
        return Err(malformed(format!(
            "optional parameters length {opt_len} but {} octets follow",
            params.len()
        )));
    }
    let mut capabilities = Vec::new();
    let mut pos = 0;
    while pos < params.len() {
        let (ptype, plen) = match params.get(pos..pos + 2) {
            Some(&[t, l]) => (t, usize::from(l)),
            _ => return Err(malformed("optional parameter header cut short")),
        };
        let value = params
            .get(pos + 2..pos + 2 + plen)
            .ok_or_else(|| malformed(format!("optional parameter length {plen} overruns")))?;
        if ptype != OPT_PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter(ptype));
        }
        decode_capabilities(value, &mut capabilities)?;
        pos += 2 + plen;
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_capabilities(mut buf: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    while !buf.is_empty() {
        let (code, len) = match buf.get(..2) {
            Some(&[c, l]) => (c, usize::from(l)),
            _ => return Err(malformed("capability header cut short")),
        };
        let data = buf
            .get(2..2 + len)
            .ok_or_else(|| malformed(format!("capability {code} length {len} overruns")))?;
        out.push(decode_capability(code, data)?);
        buf = buf.get(2 + len..).unwrap_or_default();
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn decode_capability(code: u8, data: &[u8]) -> Result<Capability, DecodeError> {
    let unknown = || Capability::Unknown {
        code,
        data: data.to_vec(),
    };
    let bad_len = || {
        malformed(format!(
            "capability {code}: length {} is invalid",
            data.len()
        ))
    };
    Ok(match code {
        cap::MULTIPROTOCOL => {
            let &[a0, a1, _, safi] = data else {
                return Err(bad_len());
            };
            match Family::from_wire(u16::from_be_bytes([a0, a1]), safi) {
                Some(f) => Capability::Multiprotocol(f),
                None => unknown(),
            }
        }
        cap::ROUTE_REFRESH if data.is_empty() => Capability::RouteRefresh,
        cap::EXTENDED_MESSAGE if data.is_empty() => Capability::ExtendedMessage,
        cap::FOUR_OCTET_AS => {
            let &[a, b, c, d] = data else {
                return Err(bad_len());
            };
            Capability::FourOctetAs(u32::from_be_bytes([a, b, c, d]))
        }
        cap::GRACEFUL_RESTART => {
            let head = be16(data, 0).ok_or_else(bad_len)?;
            let tuples = data.get(2..).unwrap_or_default();
            if !tuples.len().is_multiple_of(4) {
                return Err(bad_len());
            }
            // Families Tabby does not speak cannot have been negotiated,
            // so they carry no state to preserve.
            let families = tuples
                .chunks_exact(4)
                .filter_map(|t| {
                    let family = Family::from_wire(u16::from_be_bytes([t[0], t[1]]), t[2])?;
                    Some(GracefulRestartFamily {
                        family,
                        forwarding_preserved: t[3] & 0x80 != 0,
                    })
                })
                .collect();
            Capability::GracefulRestart {
                restarting: head & 0x8000 != 0,
                restart_time: head & 0x0fff,
                families,
            }
        }
        _ => unknown(),
    })
}

/// Appends one capability TLV.
pub fn encode_capability(c: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let code = match c {
        Capability::Multiprotocol(f) => {
            out.extend_from_slice(&f.afi_wire().to_be_bytes());
            out.extend_from_slice(&[0, f.safi_wire()]);
            cap::MULTIPROTOCOL
        }
        Capability::RouteRefresh => cap::ROUTE_REFRESH,
        Capability::ExtendedMessage => cap::EXTENDED_MESSAGE,
        Capability::FourOctetAs(asn) => {
            out.extend_from_slice(&asn.to_be_bytes());
            cap::FOUR_OCTET_AS
        }
        Capability::GracefulRestart {
            restarting,
            restart_time,
            families,
        } => {
            if *restart_time > 0x0fff {
                out.truncate(start);
                return Err(EncodeError::Invalid {
                    field: "graceful restart time",
                    reason: format!("{restart_time} s does not fit 12 bits (at most 4095)"),
                });
            }
            let head = restart_time | if *restarting { 0x8000 } else { 0 };
            out.extend_from_slice(&head.to_be_bytes());
            for f in families {
                out.extend_from_slice(&f.family.afi_wire().to_be_bytes());
                out.push(f.family.safi_wire());
                out.push(if f.forwarding_preserved { 0x80 } else { 0 });
            }
            cap::GRACEFUL_RESTART
        }
        Capability::Unknown { code, data } => {
            out.extend_from_slice(data);
            *code
        }
    };
    let len = out.len() - start - 2;
    if len > 255 {
        out.truncate(start);
        return Err(EncodeError::Invalid {
            field: "capability",
            reason: format!("capability {code} has {len} octets of data (at most 255)"),
        });
    }
    out[start] = code;
    out[start + 1] = len as u8;
    Ok(())
}

/// Appends an OPEN body. Capabilities share one optional parameter while
/// they fit its 255 octets, then continue in the next.
pub fn encode_open(o: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(o.version);
    out.extend_from_slice(&o.my_as.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.bgp_id.octets());
    let mut params = Vec::new();
    let mut param = Vec::new();
    let mut tlv = Vec::new();
    for c in &o.capabilities {
        tlv.clear();
        encode_capability(c, &mut tlv)?;
        if param.len() + tlv.len() > 255 {
            params.extend_from_slice(&[OPT_PARAM_CAPABILITIES, param.len() as u8]);
            params.append(&mut param);
        }
        param.extend_from_slice(&tlv);
    }
    if !param.is_empty() {
        params.extend_from_slice(&[OPT_PARAM_CAPABILITIES, param.len() as u8]);
        params.append(&mut param);
    }
    if params.len() > 255 {
        return Err(EncodeError::Invalid {
            field: "OPEN optional parameters",
            reason: format!("{} octets (at most 255)", params.len()),
        });
    }
    out.push(params.len() as u8);
    out.extend_from_slice(&params);
    Ok(())
}
