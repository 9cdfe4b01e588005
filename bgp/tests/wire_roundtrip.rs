//! Encode → decode round trips over generated messages, byte-exact vectors,
//! and the UPDATE packer.

mod wire_gen;

use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tabby_bgp::wire::*;
use wire_gen::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

const MARKER: &str = "ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_message_round_trips(four in any::<bool>(), m in message(true)) {
        // 2-octet sessions only round-trip ASes that fit; AS4 is tested below.
        let m = match (four, m) {
            (false, Message::Update(_)) => return Ok(()),
            (_, m) => m,
        };
        let Some(bytes) = encode_one(&m, four) else { return Ok(()) };
        prop_assert_eq!(message_len(&bytes).unwrap(), Some(bytes.len()));
        let back = decode(&bytes, &ctx(four)).unwrap();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn two_octet_updates_round_trip(u in update(false, true)) {
        let m = Message::Update(u);
        let Some(bytes) = encode_one(&m, false) else { return Ok(()) };
        prop_assert_eq!(decode(&bytes, &ctx(false)).unwrap(), m);
    }

    /// RFC 6793: 4-octet ASes cross a 2-octet session as AS_TRANS plus
    /// AS4_PATH / AS4_AGGREGATOR and come back whole, unless a 2-octet
    /// AGGREGATOR says a 2-octet speaker aggregated later (§4.2.3).
    #[test]
    fn four_octet_ases_survive_a_two_octet_session(u in update(true, false)) {
        let m = Message::Update(u.clone());
        let Some(bytes) = encode_one(&m, false) else { return Ok(()) };
        let Message::Update(back) = decode(&bytes, &ctx(false)).unwrap() else { panic!() };
        let mut want = u;
        if let Some((agg, _)) = want.attrs.aggregator {
            if agg <= 0xffff && agg != u32::from(AS_TRANS) {
                for seg in &mut want.attrs.as_path {
                    let (AsSegment::Sequence(v) | AsSegment::Set(v)) = seg;
                    for a in v.iter_mut().filter(|a| **a > 0xffff) {
                        *a = u32::from(AS_TRANS);
                    }
                }
            }
        }
        prop_assert_eq!(back, want);
    }

    #[test]
    fn nlri_iterators_agree_with_encoding(ps in proptest::collection::vec(v4net(), 0..50),
                                          qs in proptest::collection::vec(v6net(), 0..50)) {
        let mut b4 = Vec::new();
        ps.iter().for_each(|p| nlri::encode_v4(p, &mut b4));
        let got: Vec<_> = nlri::iter_v4(&b4).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got, ps);
        let mut b6 = Vec::new();
        qs.iter().for_each(|p| nlri::encode_v6(p, &mut b6));
        let got: Vec<_> = nlri::iter_v6(&b6).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got, qs);
    }
}

#[test]
fn as_sequence_bytes_are_type_2() {
    let u = Update {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(vec![64512])],
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ..Default::default()
        },
        nlri: vec!["10.1.0.0/24".parse().unwrap()],
        ..Default::default()
    };
    let bytes = encode_one(&Message::Update(u.clone()), true).unwrap();
    let want = hex("40 02 06 02 01 00 00 fc 00");
    assert!(
        bytes.windows(want.len()).any(|w| w == want),
        "AS_PATH {want:02x?} not in {bytes:02x?}"
    );
    // A 2-octet session writes 2-octet ASes and no AS4_PATH when all fit.
    let bytes = encode_one(&Message::Update(u.clone()), false).unwrap();
    assert!(bytes.windows(7).any(|w| w == hex("40 02 04 02 01 fc 00")));
    assert!(!bytes.windows(2).any(|w| w == [0xc0, 17]));
    // A 4-octet AS on a 2-octet session: AS_TRANS in AS_PATH, the real one in AS4_PATH.
    let mut big = u;
    big.attrs.as_path = vec![AsSegment::Sequence(vec![4_200_000_000, 65001])];
    let bytes = encode_one(&Message::Update(big), false).unwrap();
    assert!(bytes
        .windows(9)
        .any(|w| w == hex("40 02 06 02 02 5b a0 fd e9")));
    assert!(bytes
        .windows(13)
        .any(|w| w == hex("c0 11 0a 02 02 fa 56 ea 00 00 00 fd e9")));
}

#[test]
fn keepalive_bytes() {
    let bytes = encode_one(&Message::Keepalive, true).unwrap();
    assert_eq!(bytes, hex(&format!("{MARKER} 00 13 04")));
    assert_eq!(decode(&bytes, &ctx(true)).unwrap(), Message::Keepalive);
}

#[test]
fn known_open_bytes() {
    // AS 65001, hold 90, id 192.0.2.1; MP IPv4 and IPv6 unicast, route
    // refresh, 4-octet AS 65001, graceful restart 120 s with IPv4 F-bit.
    let wire = hex(&format!(
        "{MARKER} 00 3b 01 04 fd e9 00 5a c0 00 02 01 1e 02 1c \
         01 04 00 01 00 01  01 04 00 02 00 01  02 00  41 04 00 00 fd e9 \
         40 06 00 78 00 01 01 80"
    ));
    let open = Open {
        version: 4,
        my_as: 65001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::GracefulRestart {
                restarting: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            },
        ],
    };
    assert_eq!(
        encode_one(&Message::Open(open.clone()), true).unwrap(),
        wire
    );
    assert_eq!(
        decode(&wire, &ctx(true)).unwrap(),
        Message::Open(open.clone())
    );
    assert_eq!(open.asn(), 65001);

    // One capability per parameter, as some speakers send, decodes the same.
    let split = hex(&format!(
        "{MARKER} 00 45 01 04 fd e9 00 5a c0 00 02 01 28 \
         02 06 01 04 00 01 00 01  02 06 01 04 00 02 00 01  02 02 02 00 \
         02 06 41 04 00 00 fd e9  02 08 40 06 00 78 00 01 01 80 02 00"
    ));
    assert_eq!(decode(&split, &ctx(true)).unwrap(), Message::Open(open));
}

#[test]
fn unknown_capabilities_are_kept() {
    // MP for IPv4 multicast, enhanced route refresh (70), ADD-PATH (69).
    let wire = hex(&format!(
        "{MARKER} 00 2d 01 04 fd e9 00 5a c0 00 02 01 10 02 0e \
         01 04 00 01 00 02  46 00  45 04 00 01 01 03"
    ));
    let Message::Open(o) = decode(&wire, &ctx(true)).unwrap() else {
        panic!()
    };
    assert_eq!(
        o.capabilities,
        vec![
            Capability::Unknown {
                code: 1,
                data: vec![0, 1, 0, 2]
            },
            Capability::Unknown {
                code: 70,
                data: vec![]
            },
            Capability::Unknown {
                code: 69,
                data: vec![0, 1, 1, 3]
            },
        ]
    );
}

#[test]
fn end_of_rib_markers() {
    let mut out = Vec::new();
    encode_end_of_rib(Family::IPV4_UNICAST, &mut out);
    assert_eq!(out, hex(&format!("{MARKER} 00 17 02 00 00 00 00")));
    let Message::Update(u) = decode(&out, &ctx(true)).unwrap() else {
        panic!()
    };
    assert_eq!(u.end_of_rib(), Some(Family::IPV4_UNICAST));

    out.clear();
    encode_end_of_rib(Family::IPV6_UNICAST, &mut out);
    assert_eq!(
        out,
        hex(&format!("{MARKER} 00 1d 02 00 00 00 06 80 0f 03 00 02 01"))
    );
    let Message::Update(u) = decode(&out, &ctx(true)).unwrap() else {
        panic!()
    };
    assert_eq!(u.end_of_rib(), Some(Family::IPV6_UNICAST));
}

/// Splits a buffer of back-to-back messages with `message_len`.
fn split_all(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut msgs = Vec::new();
    while !buf.is_empty() {
        let len = message_len(buf).unwrap().expect("whole header");
        msgs.push(&buf[..len]);
        buf = &buf[len..];
    }
    msgs
}

fn announce_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![64512, 65001])],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        communities: vec![0xfc00_0001],
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec![IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))],
            nlri: vec![],
        }),
        ..Default::default()
    }
}

#[test]
fn packer_fills_messages_and_loses_nothing() {
    let v4: Vec<IpNet> = (0..3000u32)
        .map(|i| {
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap())
        })
        .collect();
    let v6: Vec<IpNet> = (0..1500u32)
        .map(|i| {
            IpNet::V6(
                ipnet::Ipv6Net::new(
                    Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 64),
                    64,
                )
                .unwrap(),
            )
        })
        .collect();
    let all: Vec<IpNet> = v4.iter().chain(&v6).copied().collect();
    let attrs = announce_attrs();
    for four in [true, false] {
        let mut out = Vec::new();
        let n = encode_announce(&attrs, &all, &ctx(four), &mut out).unwrap();
        let msgs = split_all(&out);
        assert_eq!(msgs.len(), n);
        // 3000 /24s at 4 octets each and 1500 /64s at 9: the minimum count of
        // 4096-octet messages (less headers and attributes) is 3 + 4.
        assert_eq!(
            n,
            7,
            "messages: {:?}",
            msgs.iter().map(|m| m.len()).collect::<Vec<_>>()
        );
        let (mut got4, mut got6) = (Vec::new(), Vec::new());
        for m in msgs {
            assert!(m.len() <= MAX_MESSAGE_LEN);
            let Message::Update(u) = decode(m, &ctx(four)).unwrap() else {
                panic!()
            };
            assert_eq!(u.treat_as_withdraw, None);
            assert_eq!(u.attrs.as_path, attrs.as_path);
            assert_eq!(u.attrs.communities, attrs.communities);
            got4.extend(u.nlri.iter().copied().map(IpNet::V4));
            if let Some(r) = u.attrs.mp_reach {
                assert_eq!(r.next_hops, attrs.mp_reach.as_ref().unwrap().next_hops);
                assert_eq!(u.attrs.next_hop, None);
                got6.extend(r.nlri);
            } else {
                assert_eq!(u.attrs.next_hop, attrs.next_hop);
            }
        }
        assert_eq!(got4, v4);
        assert_eq!(got6, v6);
    }

    let mut out = Vec::new();
    let n = encode_withdraw(&all, &mut out);
    let msgs = split_all(&out);
    assert_eq!(msgs.len(), n);
    assert_eq!(n, 3 + 4);
    let (mut got4, mut got6) = (Vec::new(), Vec::new());
    for m in msgs {
        let Message::Update(u) = decode(m, &ctx(true)).unwrap() else {
            panic!()
        };
        got4.extend(u.withdrawn.iter().copied().map(IpNet::V4));
        if let Some(w) = u.attrs.mp_unreach {
            got6.extend(w.withdrawn);
        }
    }
    assert_eq!(got4, v4);
    assert_eq!(got6, v6);
}

#[test]
fn packer_rejects_what_it_cannot_send() {
    let mut out = vec![1, 2, 3];
    let v4: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let no_nh = PathAttributes {
        next_hop: None,
        ..announce_attrs()
    };
    assert!(matches!(
        encode_announce(&no_nh, &v4, &ctx(true), &mut out),
        Err(EncodeError::Invalid {
            field: "NEXT_HOP",
            ..
        })
    ));
    let v6: Vec<IpNet> = vec!["2001:db8::/32".parse().unwrap()];
    let no_mp = PathAttributes {
        mp_reach: None,
        ..announce_attrs()
    };
    assert!(encode_announce(&no_mp, &v6, &ctx(true), &mut out).is_err());
    // Attributes that leave no room for a prefix.
    let huge = PathAttributes {
        communities: vec![1; 1100],
        ..announce_attrs()
    };
    assert!(matches!(
        encode_announce(&huge, &v4, &ctx(true), &mut out),
        Err(EncodeError::TooLong { .. })
    ));
    assert_eq!(out, vec![1, 2, 3], "failed encodes append nothing");
}

#[test]
fn encode_refuses_oversized_messages() {
    let mut out = Vec::new();
    let n = Message::Notification(Notification {
        code: 6,
        subcode: 2,
        data: vec![0; 4096],
    });
    assert!(matches!(
        encode(&n, &ctx(true), &mut out),
        Err(EncodeError::TooLong { .. })
    ));
    let u = Message::Update(Update {
        withdrawn: vec!["10.0.0.0/32".parse().unwrap(); 1000],
        ..Default::default()
    });
    assert!(matches!(
        encode(&u, &ctx(true), &mut out),
        Err(EncodeError::TooLong { .. })
    ));
    let gr = Message::Open(Open {
        version: 4,
        my_as: 1,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(1, 1, 1, 1),
        capabilities: vec![Capability::GracefulRestart {
            restarting: false,
            restart_time: 5000,
            families: vec![],
        }],
    });
    assert!(matches!(
        encode(&gr, &ctx(true), &mut out),
        Err(EncodeError::Invalid { .. })
    ));
    assert!(out.is_empty());
    // The largest NOTIFICATION that fits is exactly 4096 octets.
    let n = Message::Notification(Notification {
        code: 6,
        subcode: 2,
        data: vec![7; 4096 - 21],
    });
    encode(&n, &ctx(true), &mut out).unwrap();
    assert_eq!(out.len(), 4096);
    assert_eq!(decode(&out, &ctx(true)).unwrap(), n);
}
