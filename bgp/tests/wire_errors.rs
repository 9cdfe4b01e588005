//! Malformed input: the zettabgp regressions, each RFC 4271 §6 / RFC 7606
//! class, and a bounded run of random and mutated messages.

mod wire_gen;

use proptest::prelude::*;
use std::net::Ipv4Addr;
use tabby_bgp::wire::*;
use wire_gen::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// A whole message of type `t` around `body`, length computed.
fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(t);
    m.extend_from_slice(body);
    m
}

/// An UPDATE with the given attribute bytes and NLRI 10.1.0.0/16.
fn update_with(attrs: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(&[16, 10, 1]);
    msg(2, &b)
}

const GOOD: &str = "40 01 01 00  40 02 06 02 01 00 00 fc 00  40 03 04 0a 00 00 01";

fn good_plus(extra: &str) -> Vec<u8> {
    update_with(&hex(&format!("{GOOD} {extra}")))
}

fn ctx4() -> SessionContext {
    ctx(true)
}

/// Decodes, requires treat-as-withdraw with the NLRI kept, returns the reason.
fn withdrawn(m: &[u8]) -> String {
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

fn reset(m: &[u8], ctx: &SessionContext) -> (DecodeError, Notification) {
    let e = decode(m, ctx).unwrap_err();
    assert_eq!(e.action(), Rfc7606Action::SessionReset, "{e}");
    let n = e.notification();
    (e, n)
}

fn code(n: &Notification) -> (u8, u8) {
    (n.code, n.subcode)
}

// --- The inputs that break zettabgp 0.6.0 (../shared/CRATES.md). ---

#[test]
fn zettabgp_truncated_as_path_segment_30_bytes() {
    // 30 octets: the AS_PATH segment claims one 4-octet AS and has two octets.
    let m = msg(2, &hex("00 00 00 07 40 02 04 02 01 fc 00"));
    assert_eq!(m.len(), 30);
    let Message::Update(u) = decode(&m, &ctx4()).unwrap() else {
        panic!()
    };
    let why = u.treat_as_withdraw.unwrap();
    assert!(why.contains("AS path"), "{why}");
    // One stray octet after a valid segment, with routes to withdraw.
    let why = withdrawn(&update_with(&hex(
        "40 01 01 00 40 02 07 02 01 00 00 fc 00 05 40 03 04 0a 00 00 01",
    )));
    assert!(why.contains("segment header cut short"), "{why}");
    // The error itself maps to 3/11.
    let e = DecodeError::MalformedAsPath {
        code: 2,
        reason: String::new(),
    };
    assert_eq!(code(&e.notification()), (3, 11));
}

#[test]
fn zettabgp_attribute_header_cut_short() {
    // RFC 7606 §4: the total attribute length still finds the NLRI.
    let why = withdrawn(&good_plus("c0 08"));
    assert!(why.contains("header cut short"), "{why}");
    let why = withdrawn(&good_plus("d0 08 00"));
    assert!(why.contains("header cut short"), "{why}");
    let why = withdrawn(&good_plus("c0 08 08 fc 00"));
    assert!(why.contains("runs past"), "{why}");
}

#[test]
fn zettabgp_mp_reach_next_hop_past_the_end() {
    let m = update_with(&hex("80 0e 08 00 02 01 20 20 01 0d b8"));
    let (e, n) = reset(&m, &ctx4());
    assert!(e.to_string().contains("next hop length 32"), "{e}");
    assert_eq!(code(&n), (3, 9));
    assert_eq!(
        n.data,
        hex("80 0e 08 00 02 01 20 20 01 0d b8"),
        "data is the attribute"
    );
    // And MP_UNREACH with a prefix running past the end.
    let (_, n) = reset(&update_with(&hex("80 0f 05 00 02 01 40 20")), &ctx4());
    assert_eq!(code(&n), (3, 9));
}

#[test]
fn zettabgp_header_length_below_19() {
    for len in [0u16, 1, 18] {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&len.to_be_bytes());
        m.push(4);
        let e = message_len(&m).unwrap_err();
        let n = e.notification();
        assert_eq!(code(&n), (1, 2));
        assert_eq!(n.data, len.to_be_bytes().to_vec());
        assert!(decode(&m, &ctx4()).is_err());
    }
}

#[test]
fn zettabgp_originator_id_of_length_1() {
    let why = withdrawn(&good_plus("80 09 01 01"));
    assert!(why.contains("attribute 9: length 1"), "{why}");
}

// --- Header (RFC 4271 §6.1). ---

#[test]
fn header_errors() {
    assert_eq!(message_len(&[0xff; 18]).unwrap(), None);
    let mut m = msg(4, &[]);
    m[3] = 0;
    assert_eq!(code(&message_len(&m).unwrap_err().notification()), (1, 1));
    let m = msg(9, &[]);
    let n = message_len(&m).unwrap_err().notification();
    assert_eq!((n.code, n.subcode, n.data), (1, 3, vec![9]));
    for (t, body_len) in [(4u8, 1usize), (5, 3), (5, 5), (3, 1), (1, 9), (2, 3)] {
        let m = msg(t, &vec![0; body_len]);
        let e = message_len(&m).unwrap_err();
        assert_eq!(code(&e.notification()), (1, 2), "type {t} body {body_len}");
    }
    let mut big = msg(2, &[0; 4077]);
    assert_eq!(message_len(&big).unwrap(), Some(4096));
    big.push(0);
    big[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(code(&message_len(&big).unwrap_err().notification()), (1, 2));
    // decode wants exactly one whole message.
    let mut two = msg(4, &[]);
    two.extend(msg(4, &[]));
    assert!(decode(&two, &ctx4()).is_err());
    assert!(decode(&two[..10], &ctx4()).is_err());
}

// --- OPEN (RFC 4271 §6.2). ---

fn open_body(version: u8, hold: u16, id: [u8; 4], params: &str) -> Vec<u8> {
    let p = hex(params);
    let mut b = vec![version, 0xfd, 0xe9];
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(p.len() as u8);
    b.extend_from_slice(&p);
    msg(1, &b)
}

#[test]
fn open_errors() {
    let (_, n) = reset(&open_body(3, 90, [1, 1, 1, 1], ""), &ctx4());
    assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
    for hold in [1, 2] {
        let (e, n) = reset(&open_body(4, hold, [1, 1, 1, 1], ""), &ctx4());
        assert_eq!(code(&n), (2, 6), "{e}");
    }
    for id in [[0, 0, 0, 0], [224, 0, 0, 5], [255, 255, 255, 255]] {
        assert_eq!(code(&reset(&open_body(4, 90, id, ""), &ctx4()).1), (2, 3));
    }
    assert_eq!(
        code(&reset(&open_body(4, 90, [1, 1, 1, 1], "01 02 00 00"), &ctx4()).1),
        (2, 4)
    );
    // Capability lengths that overrun their parameter, and bad fixed sizes.
    for params in [
        "02 03 01 04 00",
        "02 02 41 02",
        "02 06 01 03 00 01 00",
        "02 04 40 03 00 78",
    ] {
        let (e, n) = reset(&open_body(4, 90, [1, 1, 1, 1], params), &ctx4());
        assert_eq!(code(&n), (2, 0), "{params}: {e}");
    }
    // Hold time 0 and 3 are fine; an OPEN with no parameters too.
    assert!(decode(&open_body(4, 0, [1, 1, 1, 1], ""), &ctx4()).is_ok());
    assert!(decode(&open_body(4, 3, [1, 1, 1, 1], ""), &ctx4()).is_ok());
    // The FSM's constructors.
    assert_eq!(
        code(&DecodeError::bad_peer_as(65001, 65002).notification()),
        (2, 2)
    );
    let n = DecodeError::unsupported_capability(65, &[0, 0, 0xfd, 0xe9]).notification();
    assert_eq!(
        (n.code, n.subcode, n.data),
        (2, 7, hex("41 04 00 00 fd e9"))
    );
}

#[test]
fn notification_and_route_refresh() {
    let m = msg(3, &[6, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
    let Message::Notification(n) = decode(&m, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(n.data, vec![1, 2, 3, 4, 5, 6, 7, 8], "data is not capped");
    let e = decode(&msg(5, &[0, 1, 0, 128]), &ctx4()).unwrap_err();
    assert_eq!(e.action(), Rfc7606Action::Ignore);
}

// --- UPDATE (RFC 4271 §6.3 as revised by RFC 7606). ---

#[test]
fn update_field_lengths_reset_the_session() {
    // Withdrawn Routes Length past the end.
    assert_eq!(
        code(&reset(&msg(2, &hex("00 05 00 00")), &ctx4()).1),
        (3, 1)
    );
    // Total Path Attribute Length past the end.
    assert_eq!(
        code(&reset(&msg(2, &hex("00 00 00 09 40 01 01 00")), &ctx4()).1),
        (3, 1)
    );
    // An NLRI prefix longer than 32 bits, and one cut short.
    let mut m = update_with(&hex(GOOD));
    let last = m.len() - 3;
    m[last] = 33;
    assert_eq!(code(&reset(&m, &ctx4()).1), (3, 10));
    let mut m = update_with(&hex(GOOD));
    m.truncate(m.len() - 1);
    m[17] -= 1;
    assert_eq!(code(&reset(&m, &ctx4()).1), (3, 10));
    // Withdrawn prefix cut short.
    assert_eq!(
        code(&reset(&msg(2, &hex("00 02 18 0a 00 00")), &ctx4()).1),
        (3, 10)
    );
}

#[test]
fn malformed_attributes_treat_as_withdraw() {
    let cases = [
        // ORIGIN bad value, bad length, wrong flags (optional bit).
        (
            "40 01 01 03 40 02 00 40 03 04 0a 00 00 01",
            "ORIGIN value 3",
        ),
        (
            "40 01 02 00 00 40 02 00 40 03 04 0a 00 00 01",
            "attribute 1: length 2",
        ),
        (
            "c0 01 01 00 40 02 00 40 03 04 0a 00 00 01",
            "attribute 1: flags",
        ),
        // AS_PATH: unknown segment type, zero-length segment, confederation.
        (
            "40 01 01 00 40 02 06 07 01 00 00 fc 00 40 03 04 0a 00 00 01",
            "segment type 7",
        ),
        (
            "40 01 01 00 40 02 02 02 00 40 03 04 0a 00 00 01",
            "zero ASes",
        ),
        (
            "40 01 01 00 40 02 06 03 01 00 00 fc 00 40 03 04 0a 00 00 01",
            "confederation",
        ),
        // NEXT_HOP: length, 0.0.0.0, multicast.
        (
            "40 01 01 00 40 02 00 40 03 03 0a 00 00",
            "attribute 3: length 3",
        ),
        (
            "40 01 01 00 40 02 00 40 03 04 00 00 00 00",
            "NEXT_HOP 0.0.0.0",
        ),
        (
            "40 01 01 00 40 02 00 40 03 04 e0 00 00 05",
            "NEXT_HOP 224.0.0.5",
        ),
    ];
    for (attrs, want) in cases {
        let why = withdrawn(&update_with(&hex(attrs)));
        assert!(why.contains(want), "{attrs}: {why}");
    }
    let cases = [
        ("80 04 03 00 00 01", "attribute 4: length 3"),
        ("40 05 05 00 00 00 64 00", "attribute 5: length 5"),
        ("c0 08 00", "attribute 8: length 0"),
        ("c0 08 06 00 00 00 01 00 02", "attribute 8: length 6"),
        ("80 0a 00", "attribute 10: length 0"),
        ("80 0a 03 01 01 01", "attribute 10: length 3"),
        ("40 04 04 00 00 00 01", "attribute 4: flags"),
    ];
    for (extra, want) in cases {
        let why = withdrawn(&good_plus(extra));
        assert!(why.contains(want), "{extra}: {why}");
    }
    // With only MP_REACH routes a bad NEXT_HOP is ignored (RFC 4760 §3).
    let mut b = hex("00 00 00 00");
    let attrs = hex(
        "80 0e 1a 00 02 01 10 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 00 20 20 01 0d b8 \
         40 01 01 00 40 02 00 40 03 04 00 00 00 00",
    );
    b[2..4].copy_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(&attrs);
    let Message::Update(u) = decode(&msg(2, &b), &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(u.treat_as_withdraw, None);
    assert_eq!(u.attrs.next_hop, None);
    // Missing mandatory attributes with NLRI present.
    let why = withdrawn(&update_with(&hex("40 01 01 00 40 02 00")));
    assert!(why.contains("missing well-known attribute 3"), "{why}");
    let why = withdrawn(&update_with(&hex("40 02 00 40 03 04 0a 00 00 01")));
    assert!(why.contains("missing well-known attribute 1"), "{why}");
    let why = withdrawn(&update_with(&hex("40 01 01 00 40 03 04 0a 00 00 01")));
    assert!(why.contains("missing well-known attribute 2"), "{why}");
    assert_eq!(
        code(&DecodeError::MissingWellKnown(3).notification()),
        (3, 3)
    );
}

#[test]
fn treat_as_withdraw_covers_mp_reach_prefixes() {
    // IPv6 routes with a malformed COMMUNITIES: the MP_REACH prefixes are
    // there for the RIB to withdraw.
    let attrs = hex(
        "80 0e 1a 00 02 01 10 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 00 20 20 01 0d b8 \
         40 01 01 00 40 02 00 c0 08 03 00 00 01",
    );
    let mut b = vec![0, 0];
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(&attrs);
    let Message::Update(u) = decode(&msg(2, &b), &ctx4()).unwrap() else {
        panic!()
    };
    assert!(u.treat_as_withdraw.unwrap().contains("attribute 8"));
    assert_eq!(
        u.attrs.mp_reach.unwrap().nlri,
        vec!["2001:db8::/32".parse().unwrap()]
    );
    // MP_REACH with wrong flags still parses, and is treat-as-withdraw.
    let mut wrong = b.clone();
    wrong[4] = 0xc0;
    let Message::Update(u) = decode(&msg(2, &wrong), &ctx4()).unwrap() else {
        panic!()
    };
    assert!(u.treat_as_withdraw.unwrap().contains("attribute 14: flags"));
    assert_eq!(u.attrs.mp_reach.unwrap().nlri.len(), 1);
}

#[test]
fn discarded_attributes_keep_the_route() {
    for extra in [
        "40 06 01 00",
        "c0 07 05 00 00 00 00 01",
        "c0 07 06 fc 00 01 02 03 04",
    ] {
        let Message::Update(u) = decode(&good_plus(extra), &ctx4()).unwrap() else {
            panic!()
        };
        assert_eq!(u.treat_as_withdraw, None, "{extra}");
        assert!(
            !u.attrs.atomic_aggregate && u.attrs.aggregator.is_none(),
            "{extra}"
        );
        assert_eq!(u.attrs.origin, Some(Origin::Igp));
    }
    // A malformed AS4_PATH on a 2-octet session is discarded (RFC 6793 §6).
    let m = update_with(&hex(
        "40 01 01 00 40 02 04 02 01 5b a0 40 03 04 0a 00 00 01 c0 11 03 02 01 00",
    ));
    let Message::Update(u) = decode(&m, &ctx(false)).unwrap() else {
        panic!()
    };
    assert_eq!(u.treat_as_withdraw, None);
    assert_eq!(
        u.attrs.as_path,
        vec![AsSegment::Sequence(vec![u32::from(AS_TRANS)])]
    );
    // AS4_PATH on a 4-octet session is ignored.
    let Message::Update(u) = decode(&good_plus("c0 11 06 02 01 00 01 00 00"), &ctx4()).unwrap()
    else {
        panic!()
    };
    assert_eq!(u.attrs.as_path, vec![AsSegment::Sequence(vec![64512])]);
    assert!(u.attrs.other.is_empty());
}

#[test]
fn duplicates_and_unknown_attributes() {
    // RFC 7606 §3.g: the first ORIGIN wins, the repeat is dropped.
    let Message::Update(u) = decode(&good_plus("40 01 01 02"), &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(u.attrs.origin, Some(Origin::Igp));
    assert_eq!(u.treat_as_withdraw, None);
    // Repeated MP_REACH resets the session with 3/1.
    let mp = "80 0e 09 00 01 01 04 0a 00 00 02 00";
    let m = good_plus(&format!("{mp} {mp}"));
    let (_, n) = reset(&m, &ctx4());
    assert_eq!(code(&n), (3, 1));
    // An unrecognized well-known attribute: 3/2 with the attribute as data.
    let (_, n) = reset(&good_plus("40 63 01 07"), &ctx4());
    assert_eq!((n.code, n.subcode, n.data), (3, 2, hex("40 63 01 07")));
    // Unknown optional attributes are kept, Partial bit and all.
    let Message::Update(u) = decode(&good_plus("e0 63 01 07"), &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attrs.other,
        vec![RawAttribute {
            flags: 0xe0,
            code: 99,
            data: vec![7]
        }]
    );
    // MP_REACH for a family Tabby does not speak is kept raw.
    let Message::Update(u) = decode(&good_plus("80 0e 05 00 01 80 00 00"), &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(u.attrs.mp_reach, None);
    assert_eq!(u.attrs.other[0].code, 14);
}

#[test]
fn error_notification_data_follows_the_rfc() {
    let n = DecodeError::BadLength {
        len: 5000,
        msg_type: 2,
    }
    .notification();
    assert_eq!(n.data, 5000u16.to_be_bytes().to_vec());
    let raw = hex("40 01 01 09");
    let e = DecodeError::InvalidOrigin {
        value: 9,
        attr: raw.clone(),
    };
    assert_eq!(
        (e.notification().subcode, e.notification().data),
        (6, raw.clone())
    );
    let e = DecodeError::InvalidNextHop {
        addr: Ipv4Addr::UNSPECIFIED,
        attr: raw.clone(),
    };
    assert_eq!(e.notification().subcode, 8);
    assert_eq!(
        attribute_action(attr::ATOMIC_AGGREGATE),
        Rfc7606Action::AttributeDiscard
    );
    assert_eq!(
        attribute_action(attr::MP_REACH_NLRI),
        Rfc7606Action::SessionReset
    );
    assert_eq!(
        attribute_action(attr::CLUSTER_LIST),
        Rfc7606Action::TreatAsWithdraw
    );
}

// --- Random and mutated input: never a panic, always Ok or a NOTIFICATION. ---

fn check_any(bytes: &[u8]) {
    for four in [true, false] {
        let c = ctx(four);
        match message_len(bytes) {
            Ok(Some(len)) => {
                if let Some(m) = bytes.get(..len) {
                    check_decode(m, &c);
                }
            }
            Ok(None) => assert!(bytes.len() < 19),
            Err(e) => assert!((1..=7).contains(&e.notification().code)),
        }
        check_decode(bytes, &c);
    }
}

fn check_decode(m: &[u8], c: &SessionContext) {
    match decode(m, c) {
        Ok(msg) => {
            // Whatever decodes re-encodes (if it fits) and decodes again.
            let mut out = Vec::new();
            if encode(&msg, c, &mut out).is_ok() {
                decode(&out, c).expect("re-encoded message decodes");
            }
        }
        Err(e) => {
            let n = e.notification();
            assert!((1..=7).contains(&n.code), "{e}: {n:?}");
            assert!(
                matches!(
                    e.action(),
                    Rfc7606Action::SessionReset | Rfc7606Action::Ignore
                ),
                "{e}"
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    SetByte(usize, u8),
    SetLen16(usize, u16),
}

fn apply(mut m: Vec<u8>, muts: &[Mutation], fix_header: bool) -> Vec<u8> {
    for mu in muts {
        let n = m.len().max(1);
        match *mu {
            Mutation::Flip(i, bit) => {
                if let Some(b) = m.get_mut(i % n) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate(i) => m.truncate(i % n),
            Mutation::SetByte(i, v) => {
                if let Some(b) = m.get_mut(i % n) {
                    *b = v;
                }
            }
            Mutation::SetLen16(i, v) => {
                let i = i % n;
                if let Some(s) = m.get_mut(i..i + 2) {
                    s.copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
    if fix_header && m.len() >= 19 {
        let len = m.len() as u16;
        m[16..18].copy_from_slice(&len.to_be_bytes());
    }
    m
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let small_len = prop_oneof![0u16..64, 0u16..=u16::MAX];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<usize>(), small_len).prop_map(|(i, v)| Mutation::SetLen16(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_messages_never_panic(m in message(true),
                                    muts in proptest::collection::vec(mutation(), 1..4),
                                    fix in any::<bool>()) {
        let Some(bytes) = encode_one(&m, true) else { return Ok(()) };
        check_any(&apply(bytes, &muts, fix));
    }

    #[test]
    fn random_bodies_never_panic(t in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_any(&msg(t, &body));
    }

    #[test]
    fn random_attribute_lists_never_panic(attrs in proptest::collection::vec(any::<u8>(), 0..120),
                                          nlri in proptest::collection::vec(any::<u8>(), 0..12)) {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        b.extend_from_slice(&nlri);
        check_any(&msg(2, &b));
    }
}
