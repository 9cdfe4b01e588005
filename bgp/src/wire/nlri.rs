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

/// Reads one IPv4 prefix at `buf[*pos..]`: the network (host bits cleared)
/// and the length. The common case reads a fixed 4 octets and masks, which
/// avoids a variable-length copy per prefix.
#[inline]
fn next_v4(buf: &[u8], pos: &mut usize) -> Result<(u32, u8), NlriError> {
    let offset = *pos;
    let bits = *buf.get(offset).ok_or(NlriError::Truncated { offset })?;
    if bits > 32 {
        return Err(NlriError::PrefixTooLong { bits, max: 32 });
    }
    let octets = usize::from(bits).div_ceil(8);
    let end = offset + 1 + octets;
    if end > buf.len() {
        return Err(NlriError::Truncated { offset });
    }
    let raw = match buf.get(offset + 1..offset + 5) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => {
            // Near the end of the field: gather what is there.
            let mut w = [0u8; 4];
            for (dst, src) in w
                .iter_mut()
                .zip(buf.get(offset + 1..end).unwrap_or_default())
            {
                *dst = *src;
            }
            u32::from_be_bytes(w)
        }
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
    *pos = end;
    Ok((raw & mask, bits))
}

/// The IPv6 counterpart of `next_v4`.
#[inline]
fn next_v6(buf: &[u8], pos: &mut usize) -> Result<(u128, u8), NlriError> {
    let offset = *pos;
    let bits = *buf.get(offset).ok_or(NlriError::Truncated { offset })?;
    if bits > 128 {
        return Err(NlriError::PrefixTooLong { bits, max: 128 });
    }
    let octets = usize::from(bits).div_ceil(8);
    let end = offset + 1 + octets;
    if end > buf.len() {
        return Err(NlriError::Truncated { offset });
    }
    let mut w = [0u8; 16];
    match buf.get(offset + 1..offset + 17) {
        Some(full) => w.copy_from_slice(full),
        None => {
            for (dst, src) in w
                .iter_mut()
                .zip(buf.get(offset + 1..end).unwrap_or_default())
            {
                *dst = *src;
            }
        }
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
    *pos = end;
    Ok((u128::from_be_bytes(w) & mask, bits))
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
        match next_v4(self.buf, &mut self.pos) {
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
        match next_v6(self.buf, &mut self.pos) {
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

/// Appends one prefix. Writes a fixed 5 octets and trims the unused
/// ones: cheaper than a variable-length copy per prefix.
#[inline]
pub fn encode_v4(p: &Ipv4Net, out: &mut Vec<u8>) {
    let n = encoded_len(p.prefix_len());
    let [a, b, c, d] = p.network().octets();
    out.extend_from_slice(&[p.prefix_len(), a, b, c, d]);
    out.truncate(out.len() - (5 - n));
}

#[inline]
pub fn encode_v6(p: &Ipv6Net, out: &mut Vec<u8>) {
    let n = encoded_len(p.prefix_len());
    let mut w = [0u8; 17];
    w[0] = p.prefix_len();
    w[1..].copy_from_slice(&p.network().octets());
    out.extend_from_slice(&w);
    out.truncate(out.len() - (17 - n));
}
