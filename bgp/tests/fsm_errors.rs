//! The session FSM driven without sockets: each OPEN error with its
//! NOTIFICATION (RFC 4271 §6.2), NOTIFICATIONs received, unexpected
//! messages (RFC 6608) and codec errors, and how NOTIFICATIONs are
//! described.

mod common_fsm;

use common_fsm::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use tabby_bgp::fsm::notify::describe;
use tabby_bgp::fsm::{Action, Event, Fsm, State, TimerKind};
use tabby_bgp::peer_config::PeerConfig;
use tabby_bgp::wire::{Capability, Family, Message, Notification, Open};

fn open_error(open: Open, cfg: PeerConfig) -> (Vec<Action>, Fsm) {
    let mut fsm = to_open_sent(cfg);
    let a = fsm.handle(Event::BgpOpen(open));
    assert_eq!(fsm.state(), State::Idle);
    assert!(has(&a, &Action::Disconnect));
    (a, fsm)
}

#[test]
fn bad_peer_as_is_2_2() {
    let (a, fsm) = open_error(peer_open(64999, 90), peer(64512));
    assert_eq!(sent_notification(&a), Some((2, 2)));
    assert_eq!(
        fsm.last_error().map(ToString::to_string).as_deref(),
        Some("OpenSent: NOTIFICATION sent: bad peer AS (2/2)")
    );
    // The refused OPEN's AS is kept: it names the other side of the mismatch.
    assert_eq!(fsm.peer_open_as(), Some(64999));
}

#[test]
fn four_octet_peer_as_compares_the_capability() {
    let mut cfg = peer(4_200_000_001);
    cfg.remote_as = 4_200_000_001;
    let mut fsm = to_open_sent(cfg);
    fsm.handle(Event::BgpOpen(peer_open(4_200_000_001, 90)));
    assert_eq!(fsm.state(), State::OpenConfirm);
    assert!(!fsm.negotiated().unwrap().ibgp);

    // AS_TRANS without the capability never matches a 4-octet AS.
    let mut open = peer_open(4_200_000_001, 90);
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    let (a, _) = open_error(open, peer(4_200_000_001));
    assert_eq!(sent_notification(&a), Some((2, 2)));
}

#[test]
fn bad_bgp_identifier_is_2_3() {
    let mut open = peer_open(64512, 90);
    open.bgp_id = Ipv4Addr::UNSPECIFIED;
    let (a, _) = open_error(open, peer(64512));
    assert_eq!(sent_notification(&a), Some((2, 3)));

    // Our own identifier on iBGP.
    let mut open = peer_open(64512, 90);
    open.bgp_id = LOCAL_ID;
    let (a, _) = open_error(open, peer(64512));
    assert_eq!(sent_notification(&a), Some((2, 3)));

    // On eBGP the same identifier is allowed (RFC 6286).
    let mut open = peer_open(65000, 90);
    open.bgp_id = LOCAL_ID;
    let mut fsm = to_open_sent(peer(65000));
    fsm.handle(Event::BgpOpen(open));
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn hold_time_1_or_2_is_2_6() {
    for hold in [1, 2] {
        let (a, _) = open_error(peer_open(64512, hold), peer(64512));
        assert_eq!(sent_notification(&a), Some((2, 6)), "hold {hold}");
    }
    let mut fsm = to_open_sent(peer(64512));
    fsm.handle(Event::BgpOpen(peer_open(64512, 3)));
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn wrong_version_is_2_1_with_our_version() {
    let mut open = peer_open(64512, 90);
    open.version = 3;
    let (a, _) = open_error(open, peer(64512));
    assert!(has(
        &a,
        &Action::Send(Message::Notification(Notification {
            code: 2,
            subcode: 1,
            data: vec![0, 4],
        }))
    ));
}

#[test]
fn no_common_family_is_2_7() {
    let mut cfg = peer(64512);
    cfg.families = vec![Family::IPV6_UNICAST];
    // No MP capability at all means IPv4 unicast only.
    let mut open = peer_open(64512, 90);
    open.capabilities
        .retain(|c| !matches!(c, Capability::Multiprotocol(_)));
    let (a, _) = open_error(open, cfg);
    assert_eq!(sent_notification(&a), Some((2, 7)));
}

#[test]
fn notification_received_in_open_sent_is_recorded() {
    let mut fsm = to_open_sent(peer(64512));
    let a = fsm.handle(Event::NotifMsg(Notification {
        code: 2,
        subcode: 2,
        data: vec![],
    }));
    assert_eq!(fsm.state(), State::Idle);
    assert!(sent_notification(&a).is_none());
    assert_eq!(
        fsm.last_error().map(ToString::to_string).as_deref(),
        Some("OpenSent: NOTIFICATION received: bad peer AS (2/2)")
    );
    // Error backoff: automatic restart after the first error wait.
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::IdleHold, Duration::from_secs(5))
    ));
}

#[test]
fn unexpected_messages_are_fsm_errors_with_rfc6608_subcodes() {
    let mut fsm = to_open_sent(peer(64512));
    let a = fsm.handle(Event::UpdateMsg);
    assert_eq!(sent_notification(&a), Some((5, 1)));

    let mut fsm = to_open_sent(peer(64512));
    fsm.handle(Event::BgpOpen(peer_open(64512, 90)));
    let a = fsm.handle(Event::UpdateMsg);
    assert_eq!(sent_notification(&a), Some((5, 2)));

    let mut fsm = established(peer(64512), peer_open(64512, 90));
    let a = fsm.handle(Event::BgpOpen(peer_open(64512, 90)));
    assert_eq!(sent_notification(&a), Some((5, 3)));
}

#[test]
fn codec_errors_send_their_notification() {
    let mut fsm = established(peer(64512), peer_open(64512, 90));
    let n = Notification {
        code: 3,
        subcode: 1,
        data: vec![],
    };
    let a = fsm.handle(Event::MessageError(n.clone()));
    assert!(has(&a, &Action::Send(Message::Notification(n))));
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(
        fsm.last_error().map(ToString::to_string).as_deref(),
        Some("Established: NOTIFICATION sent: malformed attribute list (3/1)")
    );
}

#[test]
fn notification_descriptions() {
    let n = |code, subcode| Notification {
        code,
        subcode,
        data: vec![],
    };
    assert_eq!(describe(&n(2, 2)), "bad peer AS (2/2)");
    assert_eq!(describe(&n(4, 0)), "hold timer expired (4/0)");
    assert_eq!(
        describe(&n(6, 1)),
        "maximum number of prefixes reached (6/1)"
    );
    assert_eq!(describe(&n(99, 9)), "unknown error (99/9)");
}
