//! proptest generators over the wire model, shared by the wire_* tests.
#![allow(dead_code)]

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tabby_bgp::wire::*;

pub fn v4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

pub fn v6net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

/// A unicast host address: what NEXT_HOP and BGP identifiers must be.
pub fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (0x0100_0000u32..=0xdfff_ffff).prop_map(Ipv4Addr::from)
}

pub fn asn(four_octet: bool) -> BoxedStrategy<u32> {
    if four_octet {
        prop_oneof![any::<u32>(), 1u32..=65535].boxed()
    } else {
        (1u32..=65535).boxed()
    }
}

pub fn as_path(four_octet: bool) -> impl Strategy<Value = Vec<AsSegment>> {
    let seg = prop_oneof![
        3 => vec(asn(four_octet), 1..8).prop_map(AsSegment::Sequence),
        1 => vec(asn(four_octet), 1..4).prop_map(AsSegment::Set),
    ];
    vec(seg, 0..3)
}

pub fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)]
}

fn prefixes(f: Family, max: usize) -> BoxedStrategy<Vec<IpNet>> {
    if f == Family::IPV4_UNICAST {
        vec(v4net().prop_map(IpNet::V4), 0..max).boxed()
    } else {
        vec(v6net().prop_map(IpNet::V6), 0..max).boxed()
    }
}

pub fn mp_reach() -> impl Strategy<Value = MpReach> {
    family().prop_flat_map(|f| {
        let hops = if f == Family::IPV4_UNICAST {
            unicast_v4().prop_map(|a| vec![IpAddr::V4(a)]).boxed()
        } else {
            vec(
                any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
                1..=2,
            )
            .boxed()
        };
        (hops, prefixes(f, 12)).prop_map(move |(next_hops, nlri)| MpReach {
            family: f,
            next_hops,
            nlri,
        })
    })
}

pub fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    family().prop_flat_map(|f| {
        prefixes(f, 12).prop_map(move |withdrawn| MpUnreach {
            family: f,
            withdrawn,
        })
    })
}

/// Attribute codes neither Tabby nor zettabgp interprets.
pub fn other_attrs() -> impl Strategy<Value = Vec<RawAttribute>> {
    let code = prop_oneof![Just(19u8), Just(21), Just(99), Just(200), Just(254)];
    let flags = prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0)];
    btree_map(code, (flags, vec(any::<u8>(), 0..300)), 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(code, (flags, data))| RawAttribute { flags, code, data })
            .collect()
    })
}

pub fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ]
}

/// A well-formed UPDATE: mandatory attributes present whenever it carries
/// routes, so it decodes without treat-as-withdraw.
pub fn update(four_octet: bool, with_other: bool) -> impl Strategy<Value = Update> {
    let others = if with_other {
        other_attrs().boxed()
    } else {
        Just(vec![]).boxed()
    };
    (
        (
            vec(v4net(), 0..10),
            vec(v4net(), 0..10),
            proptest::option::of(origin()),
            as_path(four_octet),
            unicast_v4(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            proptest::option::of((asn(four_octet), unicast_v4())),
            vec(any::<u32>(), 0..5),
            proptest::option::of(unicast_v4()),
            vec(unicast_v4(), 0..4),
            proptest::option::of(mp_reach()),
            proptest::option::of(mp_unreach()),
            others,
            vec(
                (any::<u32>(), any::<u32>(), any::<u32>())
                    .prop_map(|(g, a, b)| LargeCommunity::new(g, a, b)),
                0..4,
            ),
        ),
    )
        .prop_map(
            |(
                (withdrawn, nlri, origin, as_path, nh, med, local_pref, atomic_aggregate),
                (
                    aggregator,
                    communities,
                    originator_id,
                    cluster_list,
                    mp_reach,
                    mp_unreach,
                    other,
                    large_communities,
                ),
            )| {
                let routes =
                    !nlri.is_empty() || mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
                let origin = if routes {
                    origin.or(Some(Origin::Igp))
                } else {
                    origin
                };
                Update {
                    withdrawn,
                    attrs: PathAttributes {
                        origin,
                        as_path,
                        next_hop: (!nlri.is_empty()).then_some(nh),
                        med,
                        local_pref,
                        atomic_aggregate,
                        aggregator,
                        communities,
                        large_communities,
                        originator_id,
                        cluster_list,
                        mp_reach,
                        mp_unreach,
                        other,
                    },
                    nlri,
                    treat_as_withdraw: None,
                }
            },
        )
}

pub fn capability() -> impl Strategy<Value = Capability> {
    let gr_family = (family(), any::<bool>()).prop_map(|(family, forwarding_preserved)| {
        GracefulRestartFamily {
            family,
            forwarding_preserved,
        }
    });
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (any::<bool>(), 0u16..4096, vec(gr_family, 0..3)).prop_map(
            |(restarting, restart_time, families)| {
                Capability::GracefulRestart {
                    restarting,
                    restart_time,
                    families,
                }
            }
        ),
        (
            prop_oneof![
                Just(3u8),
                Just(69),
                Just(70),
                Just(71),
                Just(73),
                128u8..=255
            ],
            vec(any::<u8>(), 0..12)
        )
            .prop_map(|(code, data)| Capability::Unknown { code, data }),
    ]
}

pub fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..=65535],
        unicast_v4(),
        vec(capability(), 0..8),
    )
        .prop_map(|(my_as, hold_time, bgp_id, capabilities)| Open {
            version: 4,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
}

pub fn message(four_octet: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(four_octet, true).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64)).prop_map(|(code, subcode, data)| {
            Message::Notification(Notification {
                code,
                subcode,
                data,
            })
        }),
        Just(Message::Keepalive),
        family().prop_map(|family| Message::RouteRefresh(RouteRefresh { family })),
    ]
}

pub fn ctx(four_octet_as: bool) -> SessionContext {
    SessionContext {
        four_octet_as,
        ..SessionContext::default()
    }
}

/// Encodes, or `None` when the generated message exceeds 4096 octets.
pub fn encode_one(m: &Message, four_octet: bool) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match encode(m, &ctx(four_octet), &mut out) {
        Ok(()) => Some(out),
        Err(EncodeError::TooLong { .. }) => {
            assert!(out.is_empty(), "a failed encode must append nothing");
            None
        }
        Err(e) => panic!("encoding a well-formed message failed: {e}"),
    }
}
