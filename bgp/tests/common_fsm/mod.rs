//! Builders shared by the FSM tests: our side and the peer's, the peer's
//! OPEN, and an FSM driven to OpenSent or Established.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tabby_bgp::fsm::{Action, Event, Fsm, State};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::wire::{Capability, Family, Message, Open, AS_TRANS};

pub const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn local() -> LocalConfig {
    LocalConfig::new(LOCAL_ID, 64512)
}

pub fn peer(remote_as: u32) -> PeerConfig {
    let mut p = PeerConfig::new(IpAddr::V4(PEER_ID), remote_as);
    p.connect_retry = Duration::from_secs(1);
    p.error_wait = (Duration::from_secs(5), Duration::from_secs(30));
    p
}

pub fn peer_open(asn: u32, hold: u16) -> Open {
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: PEER_ID,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
}

pub fn sent_notification(actions: &[Action]) -> Option<(u8, u8)> {
    actions.iter().find_map(|a| match a {
        Action::Send(Message::Notification(n)) => Some((n.code, n.subcode)),
        _ => None,
    })
}

pub fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.contains(wanted)
}

/// Drives a fresh active FSM to OpenSent over an outbound connection.
pub fn to_open_sent(peer_cfg: PeerConfig) -> Fsm {
    let mut fsm = Fsm::new(local(), peer_cfg);
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionAcknowledged);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Send(Message::Open(_)))));
    assert_eq!(fsm.state(), State::OpenSent);
    fsm
}

pub fn established(peer_cfg: PeerConfig, open: Open) -> Fsm {
    let mut fsm = to_open_sent(peer_cfg);
    fsm.handle(Event::BgpOpen(open));
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::KeepAliveMsg);
    assert!(a.iter().any(|a| matches!(a, Action::SessionUp(_))));
    assert_eq!(fsm.state(), State::Established);
    fsm
}
