//! UPDATE (RFC 4271 §4.3): withdrawn routes, path attributes, NLRI.

use super::attrs::decode_attrs;
use super::attrs_enc::encode_attrs;
use super::codes::attr;
use super::error::{DecodeError, EncodeError};
use super::nlri;
use super::types::{SessionContext, Update};

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

/// The three variable-length fields of an UPDATE body.
#[derive(Debug, Clone, Copy)]
pub struct UpdateFields<'a> {
    pub withdrawn: &'a [u8],
    pub attrs: &'a [u8],
    pub nlri: &'a [u8],
}

/// Splits an UPDATE body into its fields, checking both length fields.
pub fn split_update(body: &[u8]) -> Result<UpdateFields<'_>, DecodeError> {
    let list_err = |what: String| DecodeError::MalformedAttributeList(what);
    let wlen = be16(body, 0).ok_or_else(|| list_err("no Withdrawn Routes Length".into()))?;
    let withdrawn = body.get(2..2 + wlen).ok_or_else(|| {
        list_err(format!(
            "Withdrawn Routes Length {wlen} exceeds the {} octets of the message body",
            body.len()
        ))
    })?;
    let alen = be16(body, 2 + wlen).ok_or_else(|| {
        list_err(format!(
            "Withdrawn Routes Length {wlen} leaves no room for the Total Path Attribute Length"
        ))
    })?;
    let attrs = body.get(4 + wlen..4 + wlen + alen).ok_or_else(|| {
        list_err(format!(
            "Total Path Attribute Length {alen} runs past the end of the message"
        ))
    })?;
    let nlri = body.get(4 + wlen + alen..).unwrap_or_default();
    Ok(UpdateFields {
        withdrawn,
        attrs,
        nlri,
    })
}

pub fn decode_update(body: &[u8], ctx: &SessionContext) -> Result<Update, DecodeError> {
    let UpdateFields {
        withdrawn: wbuf,
        attrs: abuf,
        nlri: nbuf,
    } = split_update(body)?;
    let withdrawn = nlri::decode_v4(wbuf).map_err(|e| DecodeError::InvalidNetworkField {
        field: "Withdrawn Routes",
        reason: e.to_string(),
    })?;
    let nlri = nlri::decode_v4(nbuf).map_err(|e| DecodeError::InvalidNetworkField {
        field: "NLRI",
        reason: e.to_string(),
    })?;
    let d = decode_attrs(abuf, ctx, !nlri.is_empty())?;
    let mut treat_as_withdraw = d.treat_as_withdraw.clone();
    // RFC 7606 §3.d: a route without its mandatory attributes is withdrawn.
    let reach = d
        .attrs
        .mp_reach
        .as_ref()
        .is_some_and(|r| !r.nlri.is_empty());
    if treat_as_withdraw.is_none() && (reach || !nlri.is_empty()) {
        let mut needed = vec![attr::ORIGIN, attr::AS_PATH];
        if !nlri.is_empty() {
            needed.push(attr::NEXT_HOP);
        }
        if let Some(&missing) = needed.iter().find(|&&c| !d.has(c)) {
            treat_as_withdraw = Some(DecodeError::MissingWellKnown(missing).to_string());
        }
    }
    Ok(Update {
        withdrawn,
        attrs: d.attrs,
        nlri,
        treat_as_withdraw,
    })
}

/// Appends an UPDATE body (the caller writes the header).
pub fn encode_update(
    u: &Update,
    ctx: &SessionContext,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    for p in &u.withdrawn {
        nlri::encode_v4(p, out);
    }
    let wlen = out.len() - start - 2;
    let astart = out.len();
    out.extend_from_slice(&[0, 0]);
    encode_attrs(&u.attrs, ctx, true, out)?;
    let alen = out.len() - astart - 2;
    for p in &u.nlri {
        nlri::encode_v4(p, out);
    }
    // Anything over the session's limit is rejected by the caller; these
    // just must not wrap.
    let (Ok(w), Ok(a)) = (u16::try_from(wlen), u16::try_from(alen)) else {
        return Err(EncodeError::TooLong {
            what: "UPDATE",
            len: out.len() - start + super::HEADER_LEN,
            max: ctx.max_message_len(),
        });
    };
    out[start..start + 2].copy_from_slice(&w.to_be_bytes());
    out[astart..astart + 2].copy_from_slice(&a.to_be_bytes());
    Ok(())
}
