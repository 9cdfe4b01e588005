//! Malformed UPDATEs, each RFC 4271 §6.3 class as revised by RFC 7606:
//! session reset, treat-as-withdraw and attribute discard.

mod common_wire;
mod wire_gen;

use common_wire::*;
use std::net::Ipv4Addr;
use tabby_bgp::wire::*;
use wire_gen::ctx;

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
