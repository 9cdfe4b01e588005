//! Message builders and decode checks shared by the wire_errors* tests.
#![allow(dead_code)]

use tabby_bgp::wire::*;

pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// A whole message of type `t` around `body`, length computed.
pub fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(t);
    m.extend_from_slice(body);
    m
}

/// An UPDATE with the given attribute bytes and NLRI 10.1.0.0/16.
pub fn update_with(attrs: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(&[16, 10, 1]);
    msg(2, &b)
}

pub const GOOD: &str = "40 01 01 00  40 02 06 02 01 00 00 fc 00  40 03 04 0a 00 00 01";

pub fn good_plus(extra: &str) -> Vec<u8> {
    update_with(&hex(&format!("{GOOD} {extra}")))
}

pub fn ctx4() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        extended_message: false,
    }
}

/// Decodes, requires treat-as-withdraw with the NLRI kept, returns the reason.
pub fn withdrawn(m: &[u8]) -> String {
    let Message::Update(u) = decode(m, &ctx4()).unwrap() else {
        panic!("not an UPDATE")
    };
    assert_eq!(
        u.nlri,
        vec!["10.1.0.0/16".parse().unwrap()],
        "NLRI must survive for the withdraw"
    );
    u.treat_as_withdraw.expect("treat-as-withdraw")
}

pub fn reset(m: &[u8], ctx: &SessionContext) -> (DecodeError, Notification) {
    let e = decode(m, ctx).unwrap_err();
    assert_eq!(e.action(), Rfc7606Action::SessionReset, "{e}");
    let n = e.notification();
    (e, n)
}

pub fn code(n: &Notification) -> (u8, u8) {
    (n.code, n.subcode)
}
