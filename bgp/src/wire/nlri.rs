//! NLRI prefix encoding (RFC 4271 §4.3): a length in bits, then just enough
//! octets to hold it. The iterators walk a byte slice without allocating;
//! the decoder uses them and a fast path can too.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a prefix could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlriError {
    /// The length byte exceeds the address width.
    PrefixTooLong { bits: u8, max: u8 },
    /// The prefix needs more octets than remain.
    Truncated { offset: usize },
}

impl std::fmt::Display for NlriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NlriError::PrefixTooLong { bits, max } => {
                write!(f, "prefix length {bits} exceeds {max}")
            }
            NlriError::Truncated { offset } => {
                write!(
                    f,
                    "prefix at offset {offset} runs past the end of the field"
                )
            }
        }
    }
}

/// Reads one prefix of at most `N` octets from `buf[*pos..]`: the address
/// octets (host bits beyond the length cleared) and the length.
#[inline]
fn next_prefix<const N: usize>(buf: &[u8], pos: &mut usize) -> Result<([u8; N], u8), NlriError> {
    let offset = *pos;
    let bits = *buf.get(offset).ok_or(NlriError::Truncated { offset })?;
    let max = (N * 8) as u8;
    if bits > max {
        return Err(NlriError::PrefixTooLong { bits, max });
    }
    let octets = usize::from(bits).div_ceil(8);
    let src = buf
        .get(offset + 1..offset + 1 + octets)
        .ok_or(NlriError::Truncated { offset })?;
    let mut addr = [0u8; N];
    addr[..octets].copy_from_slice(src);
    // Trailing bits of the last octet are irrelevant on the wire (RFC 4271).
    if bits % 8 != 0 {
        addr[octets - 1] &= 0xffu8 << (8 - bits % 8);
    }
    *pos = offset + 1 + octets;
    Ok((addr, bits))
}

/// Iterator over IPv4 prefixes; stops after the first error.
#[derive(Debug, Clone)]
pub struct Iter4<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Iterator over IPv6 prefixes; stops after the first error.
#[derive(Debug, Clone)]
pub struct Iter6<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub fn iter_v4(buf: &[u8]) -> Iter4<'_> {
    Iter4 { buf, pos: 0 }
}

pub fn iter_v6(buf: &[u8]) -> Iter6<'_> {
    Iter6 { buf, pos: 0 }
}

impl Iterator for Iter4<'_> {
    type Item = Result<Ipv4Net, NlriError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        match next_prefix::<4>(self.buf, &mut self.pos) {
            Ok((a, bits)) => Ipv4Net::new(Ipv4Addr::from(a), bits)
                .map_err(|_| NlriError::PrefixTooLong { bits, max: 32 })
                .into(),
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

impl Iterator for Iter6<'_> {
    type Item = Result<Ipv6Net, NlriError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        match next_prefix::<16>(self.buf, &mut self.pos) {
            Ok((a, bits)) => Ipv6Net::new(Ipv6Addr::from(a), bits)
                .map_err(|_| NlriError::PrefixTooLong { bits, max: 128 })
                .into(),
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// Upper bound on the prefixes a field can hold: one per length byte at
/// best, so allocation is bounded by the field (and so the message) size.
pub(crate) fn capacity_hint(buf: &[u8]) -> usize {
    buf.len() / 2 + 1
}

pub fn decode_v4(buf: &[u8]) -> Result<Vec<Ipv4Net>, NlriError> {
    let mut out = Vec::with_capacity(capacity_hint(buf));
    for p in iter_v4(buf) {
        out.push(p?);
    }
    Ok(out)
}

pub fn decode_v6(buf: &[u8]) -> Result<Vec<Ipv6Net>, NlriError> {
    let mut out = Vec::with_capacity(capacity_hint(buf));
    for p in iter_v6(buf) {
        out.push(p?);
    }
    Ok(out)
}

/// Wire size of one prefix.
pub fn encoded_len(prefix_len: u8) -> usize {
    1 + usize::from(prefix_len).div_ceil(8)
}

pub fn encode_v4(p: &Ipv4Net, out: &mut Vec<u8>) {
    let n = encoded_len(p.prefix_len()) - 1;
    out.push(p.prefix_len());
    out.extend_from_slice(&p.network().octets()[..n]);
}

pub fn encode_v6(p: &Ipv6Net, out: &mut Vec<u8>) {
    let n = encoded_len(p.prefix_len()) - 1;
    out.push(p.prefix_len());
    out.extend_from_slice(&p.network().octets()[..n]);
}
