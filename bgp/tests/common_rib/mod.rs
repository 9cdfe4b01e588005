//! Builders shared by the RIB tests.
#![allow(dead_code)]

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tabby_bgp::fsm::{Negotiated, PeerGracefulRestart};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::rib::{Rib, SessionInfo};
use tabby_bgp::wire::{
    AsSegment, Family, GracefulRestartFamily, MpReach, Origin, PathAttributes, Update,
};

pub const LOCAL_AS: u32 = 64512;

pub fn local() -> LocalConfig {
    LocalConfig::new(Ipv4Addr::new(10, 0, 0, 1), LOCAL_AS)
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn negotiated(peer_id: Ipv4Addr, peer_as: u32, families: &[Family]) -> Negotiated {
    Negotiated {
        peer_id,
        peer_as,
        local_as: LOCAL_AS,
        ibgp: peer_as == LOCAL_AS,
        hold_time: 90,
        keepalive: 30,
        four_octet_as: true,
        extended_message: false,
        families: families.to_vec(),
        route_refresh: true,
        peer_graceful_restart: None,
    }
}

pub fn with_gr(mut n: Negotiated, families: &[Family], preserved: bool) -> Negotiated {
    n.peer_graceful_restart = Some(PeerGracefulRestart {
        restart_time: 120,
        restarting: false,
        families: families
            .iter()
            .map(|f| GracefulRestartFamily {
                family: *f,
                forwarding_preserved: preserved,
            })
            .collect(),
    });
    n
}

pub fn session(n: Negotiated) -> SessionInfo {
    SessionInfo {
        negotiated: n,
        next_hop_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
        next_hop_v6: Some("fd00::1".parse::<Ipv6Addr>().unwrap()),
    }
}

/// Adds a peer (address `10.0.0.<n>`, router id the same) and brings its
/// session up with IPv4 and IPv6.
pub fn up_peer(rib: &mut Rib, n: u8, asn: u32, tweak: impl FnOnce(&mut PeerConfig)) -> IpAddr {
    let addr = Ipv4Addr::new(10, 0, 0, n);
    let mut cfg = PeerConfig::new(IpAddr::V4(addr), asn);
    tweak(&mut cfg);
    rib.set_peer(cfg);
    rib.session_up(
        IpAddr::V4(addr),
        session(negotiated(
            addr,
            asn,
            &[Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        )),
    );
    IpAddr::V4(addr)
}

pub fn attrs(path: &[u32], next_hop: &str) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: if path.is_empty() {
            vec![]
        } else {
            vec![AsSegment::Sequence(path.to_vec())]
        },
        next_hop: Some(next_hop.parse().unwrap()),
        ..PathAttributes::default()
    }
}

pub fn announce(prefixes: &[&str], a: PathAttributes) -> Update {
    Update {
        withdrawn: vec![],
        attrs: a,
        nlri: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        treat_as_withdraw: None,
    }
}

pub fn announce_v6(prefixes: &[&str], path: &[u32], next_hop: &str) -> Update {
    let mut a = attrs(path, "0.0.0.0");
    a.next_hop = None;
    a.mp_reach = Some(MpReach {
        family: Family::IPV6_UNICAST,
        next_hops: vec![next_hop.parse().unwrap()],
        nlri: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
    });
    Update {
        attrs: a,
        ..Update::default()
    }
}

pub fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        ..Update::default()
    }
}
