//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793): segment parsing at 2 or
//! 4 octets per AS, the AS4_PATH merge for 2-octet sessions, and encoding.

use super::codes::{AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET};
use super::types::{AsSegment, AS_TRANS};

/// Parses segments; `Err` carries the reason for 3/11 Malformed AS_PATH.
pub fn decode_segments(mut buf: &[u8], width: usize) -> Result<Vec<AsSegment>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (stype, count) = match buf.get(..2) {
            Some(&[t, n]) => (t, usize::from(n)),
            _ => return Err("segment header cut short".into()),
        };
        if count == 0 {
            return Err("segment of zero ASes".into());
        }
        let body = buf
            .get(2..2 + count * width)
            .ok_or_else(|| format!("segment of {count} ASes runs past the attribute"))?;
        let asns: Vec<u32> = if width == 4 {
            body.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            body.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        out.push(match stype {
            AS_SEQUENCE => AsSegment::Sequence(asns),
            AS_SET => AsSegment::Set(asns),
            AS_CONFED_SEQUENCE | AS_CONFED_SET => {
                return Err("confederation segment from a speaker outside any confederation".into())
            }
            t => return Err(format!("unknown segment type {t}")),
        });
        buf = buf.get(2 + count * width..).unwrap_or_default();
    }
    Ok(out)
}

/// Path length for the RFC 6793 merge: a set counts as one.
fn count(path: &[AsSegment]) -> usize {
    path.iter()
        .map(|s| match s {
            AsSegment::Sequence(v) => v.len(),
            AsSegment::Set(_) => 1,
        })
        .sum()
}

/// RFC 6793 §4.2.3: keep the leading ASes of AS_PATH that AS4_PATH does not
/// cover, then append AS4_PATH. If AS4_PATH is the longer, it is ignored.
pub fn merge_as4(as_path: Vec<AsSegment>, as4_path: Vec<AsSegment>) -> Vec<AsSegment> {
    let (n, n4) = (count(&as_path), count(&as4_path));
    if n < n4 {
        return as_path;
    }
    let mut keep = n - n4;
    let mut out = Vec::with_capacity(as_path.len() + as4_path.len());
    for seg in as_path {
        if keep == 0 {
            break;
        }
        match seg {
            AsSegment::Sequence(mut v) => {
                v.truncate(keep);
                keep -= v.len();
                out.push(AsSegment::Sequence(v));
            }
            AsSegment::Set(v) => {
                keep -= 1;
                out.push(AsSegment::Set(v));
            }
        }
    }
    out.extend(as4_path);
    out
}

/// Appends encoded segments, splitting any longer than 255 ASes and
/// skipping empty ones (a zero-length segment is malformed, RFC 7606 §7.2).
/// With `width == 2`, ASes above 65535 are written as AS_TRANS.
pub fn encode_segments(path: &[AsSegment], width: usize, out: &mut Vec<u8>) {
    for seg in path {
        let (stype, asns) = match seg {
            AsSegment::Sequence(v) => (AS_SEQUENCE, v),
            AsSegment::Set(v) => (AS_SET, v),
        };
        for chunk in asns.chunks(255) {
            out.push(stype);
            out.push(chunk.len() as u8);
            for &asn in chunk {
                if width == 4 {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
    }
}

pub fn needs_as4(path: &[AsSegment]) -> bool {
    path.iter().any(|s| match s {
        AsSegment::Sequence(v) | AsSegment::Set(v) => v.iter().any(|&a| a > 0xffff),
    })
}
