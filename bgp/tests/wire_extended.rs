//! Message size limits (issue 15 item 1): an announcement too large for
//! the session is an error naming its real size and the limit, and RFC
//! 8654 extended messages (capability 6) raise the limit to 65,535 once
//! both sides advertised it.

use ipnet::IpNet;
use tabby_bgp::fsm::{build_open, check_open};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::wire::{
    self, encode_announce, AsSegment, Capability, DecodeError, EncodeError, Message, Origin,
    PathAttributes, RawAttribute, SessionContext, EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN,
};

fn attrs_with(extra: usize) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![65000, 65001])],
        next_hop: Some("10.0.0.1".parse().unwrap()),
        other: vec![RawAttribute {
            flags: 0xe0,
            code: 240,
            data: vec![b'Y'; extra],
        }],
        ..PathAttributes::default()
    }
}

fn prefixes() -> Vec<IpNet> {
    vec!["10.203.0.0/24".parse().unwrap()]
}

/// ORIGIN 4 + AS_PATH 3+2+8 + NEXT_HOP 7 + the attribute's 4-byte header,
/// 23 of header and lengths, 4 of NLRI.
const OVERHEAD: usize = 55;

fn extended() -> SessionContext {
    SessionContext {
        extended_message: true,
        ..SessionContext::default()
    }
}

#[test]
fn a_too_large_announcement_names_its_real_size_and_the_limit() {
    let mut out = Vec::new();
    let err = encode_announce(
        &attrs_with(4100 - OVERHEAD),
        &prefixes(),
        &SessionContext::default(),
        &mut out,
    )
    .unwrap_err();
    assert!(out.is_empty());
    assert_eq!(
        err,
        EncodeError::TooLong {
            what: "shared path attributes",
            len: 4100,
            max: 4096
        }
    );
    assert_eq!(
        err.to_string(),
        "shared path attributes would make a 4100-byte message (at most 4096)"
    );
    // Exactly at the limit it fits.
    let n = encode_announce(
        &attrs_with(4096 - OVERHEAD),
        &prefixes(),
        &SessionContext::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!((n, out.len()), (1, 4096));
}

#[test]
fn extended_messages_carry_up_to_65535_bytes() {
    assert_eq!(MAX_MESSAGE_LEN, 4096);
    assert_eq!(EXTENDED_MESSAGE_LEN, 65535);
    let ctx = extended();
    let mut out = Vec::new();
    encode_announce(&attrs_with(4100 - OVERHEAD), &prefixes(), &ctx, &mut out).unwrap();
    assert_eq!(out.len(), 4100);
    // Only a session that negotiated them reads them.
    assert!(matches!(
        wire::message_len(&out),
        Err(DecodeError::BadLength { len: 4100, .. })
    ));
    assert_eq!(
        wire::message_len_max(&out, ctx.max_message_len()),
        Ok(Some(4100))
    );
    let Message::Update(u) = wire::decode(&out, &ctx).unwrap() else {
        panic!("not an UPDATE");
    };
    assert_eq!(u.attrs.other[0].data.len(), 4100 - OVERHEAD);
    assert!(wire::decode(&out, &SessionContext::default()).is_err());

    // 65,535 is the new limit.
    let mut out = Vec::new();
    let err =
        encode_announce(&attrs_with(65536 - OVERHEAD), &prefixes(), &ctx, &mut out).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shared path attributes would make a 65536-byte message (at most 65535)"
    );
    encode_announce(&attrs_with(65535 - OVERHEAD), &prefixes(), &ctx, &mut out).unwrap();
    assert_eq!(out.len(), 65535);
}

#[test]
fn the_extended_message_capability_is_advertised_and_negotiated() {
    let local = LocalConfig::new("10.0.0.1".parse().unwrap(), 65000);
    let peer = PeerConfig::new("10.0.0.2".parse().unwrap(), 65001);
    let ours = build_open(&local, &peer);
    assert!(ours.capabilities.contains(&Capability::ExtendedMessage));
    // On the wire: code 6, no data.
    let mut buf = Vec::new();
    wire::encode(
        &Message::Open(ours.clone()),
        &SessionContext::default(),
        &mut buf,
    )
    .unwrap();
    assert!(buf.windows(2).any(|w| w == [6, 0]));
    let Message::Open(back) = wire::decode(&buf, &SessionContext::default()).unwrap() else {
        panic!("not an OPEN");
    };
    assert!(back.capabilities.contains(&Capability::ExtendedMessage));

    let mut theirs = ours.clone();
    theirs.bgp_id = "10.0.0.2".parse().unwrap();
    theirs.my_as = 65001;
    theirs.capabilities = vec![Capability::FourOctetAs(65001)];
    let n = check_open(&local, &peer, &theirs).unwrap();
    assert!(
        !n.extended_message,
        "negotiated without the peer's capability"
    );
    theirs.capabilities.push(Capability::ExtendedMessage);
    let n = check_open(&local, &peer, &theirs).unwrap();
    assert!(n.extended_message);
}
