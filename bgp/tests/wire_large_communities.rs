//! RFC 8092 large communities (attribute 32): the exact bytes, the round
//! trip, RFC 7606 treat-as-withdraw for a malformed one, the text form.

mod common_wire;

use common_wire::*;
use std::net::Ipv4Addr;
use tabby_bgp::wire::*;

fn update(large: Vec<LargeCommunity>) -> Update {
    Update {
        nlri: vec!["10.1.0.0/16".parse().unwrap()],
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(vec![64512])],
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            large_communities: large,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn large_communities_encode_as_optional_transitive_32_and_round_trip() {
    let large = vec![
        LargeCommunity::new(65000, 100, 1),
        LargeCommunity::new(4_200_000_000, 0, u32::MAX),
    ];
    let mut out = Vec::new();
    encode(&Message::Update(update(large.clone())), &ctx4(), &mut out).unwrap();
    let want =
        hex("c0 20 18 00 00 fd e8 00 00 00 64 00 00 00 01 fa 56 ea 00 00 00 00 00 ff ff ff ff");
    assert!(
        out.windows(want.len()).any(|w| w == want.as_slice()),
        "attribute 32 not found as expected in {out:02x?}"
    );
    let Message::Update(u) = decode(&out, &ctx4()).unwrap() else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.treat_as_withdraw, None);
    assert_eq!(u.attrs.large_communities, large);
    assert_eq!(u, update(large));
}

#[test]
fn malformed_large_communities_treat_as_withdraw() {
    for (extra, want) in [
        ("c0 20 00", "attribute 32: length 0"),
        (
            "c0 20 0d 00 00 fd e8 00 00 00 64 00 00 00 01 00",
            "attribute 32: length 13",
        ),
        // Well-known flags on an optional attribute (RFC 7606 §3.c).
        (
            "40 20 0c 00 00 fd e8 00 00 00 64 00 00 00 01",
            "attribute 32: flags",
        ),
    ] {
        let why = withdrawn(&good_plus(extra));
        assert!(why.contains(want), "{extra}: {why}");
    }
    // A well-formed one is read, not passed on as unknown.
    let Message::Update(u) = decode(
        &good_plus("c0 20 0c 00 00 fd e8 00 00 00 64 00 00 00 01"),
        &ctx4(),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attrs.large_communities,
        vec![LargeCommunity::new(65000, 100, 1)]
    );
    assert!(u.attrs.other.is_empty());
}

#[test]
fn large_community_text_is_three_32_bit_parts() {
    assert_eq!(
        LargeCommunity::parse("65000:100:4294967295"),
        Some(LargeCommunity::new(65000, 100, u32::MAX))
    );
    assert_eq!(LargeCommunity::new(1, 2, 3).to_string(), "1:2:3");
    for bad in ["65000:100", "1:2:3:4", "1:2:4294967296", "a:b:c", ""] {
        assert_eq!(LargeCommunity::parse(bad), None, "{bad}");
    }
}
