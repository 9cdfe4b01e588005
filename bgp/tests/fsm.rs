//! The session FSM driven without sockets: every transition that matters
//! in RFC 4271 §8, each OPEN error, timers and collision resolution.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tabby_bgp::fsm::notify::describe;
use tabby_bgp::fsm::{
    check_open, resolve_collision, surviving_direction, Action, Direction, Event, Fsm, State,
    Survivor, TimerKind,
};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::wire::{
    Capability, Family, GracefulRestartFamily, Message, Notification, Open, AS_TRANS,
};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn local() -> LocalConfig {
    LocalConfig::new(LOCAL_ID, 64512)
}

fn peer(remote_as: u32) -> PeerConfig {
    let mut p = PeerConfig::new(IpAddr::V4(PEER_ID), remote_as);
    p.connect_retry = Duration::from_secs(1);
    p.error_wait = (Duration::from_secs(5), Duration::from_secs(30));
    p
}

fn peer_open(asn: u32, hold: u16) -> Open {
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

fn sent_notification(actions: &[Action]) -> Option<(u8, u8)> {
    actions.iter().find_map(|a| match a {
        Action::Send(Message::Notification(n)) => Some((n.code, n.subcode)),
        _ => None,
    })
}

fn has(actions: &[Action], wanted: &Action) -> bool {
    actions.contains(wanted)
}

/// Drives a fresh active FSM to OpenSent over an outbound connection.
fn to_open_sent(peer_cfg: PeerConfig) -> Fsm {
    let mut fsm = Fsm::new(local(), peer_cfg);
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionAcknowledged);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Send(Message::Open(_)))));
    assert_eq!(fsm.state(), State::OpenSent);
    fsm
}

fn established(peer_cfg: PeerConfig, open: Open) -> Fsm {
    let mut fsm = to_open_sent(peer_cfg);
    fsm.handle(Event::BgpOpen(open));
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::KeepAliveMsg);
    assert!(a.iter().any(|a| matches!(a, Action::SessionUp(_))));
    assert_eq!(fsm.state(), State::Established);
    fsm
}

#[test]
fn active_start_connects_and_arms_connect_retry() {
    let mut fsm = Fsm::new(local(), peer(64512));
    assert_eq!(fsm.state(), State::Idle);
    let a = fsm.handle(Event::ManualStart);
    assert_eq!(fsm.state(), State::Connect);
    assert!(has(&a, &Action::Connect));
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::ConnectRetry, Duration::from_secs(1))
    ));
    // The attempt hangs: retry.
    let a = fsm.handle(Event::ConnectRetryTimerExpires);
    assert_eq!(fsm.state(), State::Connect);
    assert!(has(&a, &Action::Connect));
}

#[test]
fn connect_failure_goes_active_then_retries_and_records_error() {
    let mut fsm = Fsm::new(local(), peer(64512));
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionFails("connection refused".into()));
    assert_eq!(fsm.state(), State::Active);
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::ConnectRetry, Duration::from_secs(1))
    ));
    assert_eq!(
        fsm.last_error().map(ToString::to_string).as_deref(),
        Some("Connect: connection refused")
    );
    let a = fsm.handle(Event::ConnectRetryTimerExpires);
    assert_eq!(fsm.state(), State::Connect);
    assert!(has(&a, &Action::Connect));
}

#[test]
fn passive_peer_never_connects() {
    let mut cfg = peer(64512);
    cfg.passive = true;
    let mut fsm = Fsm::new(local(), cfg);
    let a = fsm.handle(Event::ManualStart);
    assert_eq!(fsm.state(), State::Active);
    assert!(!has(&a, &Action::Connect));
    let a = fsm.handle(Event::ConnectRetryTimerExpires);
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(fsm.state(), State::Active);
    let a = fsm.handle(Event::TcpConnectionConfirmed);
    assert_eq!(fsm.state(), State::OpenSent);
    assert!(!a.contains(&Action::CancelConnect));
    // And after a broken connection it waits again without connecting.
    let a = fsm.handle(Event::TcpConnectionFails("reset by peer".into()));
    assert_eq!(fsm.state(), State::Active);
    assert!(!has(&a, &Action::Connect));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::StartTimer(TimerKind::ConnectRetry, _))));
}

#[test]
fn manual_start_passive_on_an_active_peer() {
    let mut fsm = Fsm::new(local(), peer(64512));
    let a = fsm.handle(Event::ManualStartPassive);
    assert_eq!(fsm.state(), State::Active);
    assert!(!has(&a, &Action::Connect));
}

#[test]
fn inbound_connection_in_connect_cancels_the_outbound_attempt() {
    let mut fsm = Fsm::new(local(), peer(64512));
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionConfirmed);
    assert!(has(&a, &Action::CancelConnect));
    assert!(has(&a, &Action::StopTimer(TimerKind::ConnectRetry)));
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::Hold, Duration::from_secs(240))
    ));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn our_open_carries_capabilities() {
    let mut fsm = Fsm::new(local(), peer(64512));
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionAcknowledged);
    let open = a
        .iter()
        .find_map(|a| match a {
            Action::Send(Message::Open(o)) => Some(o.clone()),
            _ => None,
        })
        .expect("OPEN sent");
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.bgp_id, LOCAL_ID);
    assert_eq!(open.asn(), 64512);
    assert!(open
        .capabilities
        .contains(&Capability::Multiprotocol(Family::IPV6_UNICAST)));
    assert!(open.capabilities.contains(&Capability::RouteRefresh));
    assert!(open.capabilities.iter().any(|c| matches!(
        c,
        Capability::GracefulRestart {
            restart_time: 120,
            restarting: false,
            ..
        }
    )));

    // A 4-octet local AS goes out as AS_TRANS plus the capability.
    let mut l = local();
    l.asn = 4_200_000_000;
    let mut fsm = Fsm::new(l, peer(64512));
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionAcknowledged);
    let Some(Action::Send(Message::Open(open))) = a
        .iter()
        .find(|a| matches!(a, Action::Send(Message::Open(_))))
    else {
        panic!("no OPEN in {a:?}");
    };
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_000);
}

#[test]
fn good_open_negotiates_and_keepalive_establishes() {
    let mut fsm = to_open_sent(peer(64512));
    let a = fsm.handle(Event::BgpOpen(peer_open(64512, 30)));
    assert_eq!(fsm.state(), State::OpenConfirm);
    assert!(has(&a, &Action::Send(Message::Keepalive)));
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::Hold, Duration::from_secs(30))
    ));
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::Keepalive, Duration::from_secs(10))
    ));
    let n = fsm.negotiated().unwrap().clone();
    assert_eq!(n.hold_time, 30);
    assert_eq!(n.keepalive, 10);
    assert!(n.ibgp);
    assert!(n.four_octet_as);
    assert!(n.route_refresh);
    assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    assert_eq!(n.peer_graceful_restart, None);

    let a = fsm.handle(Event::KeepAliveMsg);
    assert_eq!(fsm.state(), State::Established);
    assert!(has(&a, &Action::SessionUp(n)));
}

#[test]
fn hold_time_is_the_minimum_and_zero_disables_timers() {
    let mut fsm = to_open_sent(peer(64512));
    fsm.handle(Event::BgpOpen(peer_open(64512, 240)));
    assert_eq!(fsm.negotiated().unwrap().hold_time, 90);
    assert_eq!(fsm.negotiated().unwrap().keepalive, 30);

    let mut fsm = to_open_sent(peer(64512));
    let a = fsm.handle(Event::BgpOpen(peer_open(64512, 0)));
    assert_eq!(fsm.negotiated().unwrap().hold_time, 0);
    assert!(has(&a, &Action::StopTimer(TimerKind::Hold)));
    assert!(has(&a, &Action::StopTimer(TimerKind::Keepalive)));
    assert!(!a.iter().any(|a| matches!(
        a,
        Action::StartTimer(TimerKind::Hold | TimerKind::Keepalive, _)
    )));
    fsm.handle(Event::KeepAliveMsg);
    // Messages in Established restart no timer when hold time is 0.
    assert!(fsm.handle(Event::UpdateMsg).is_empty());
}

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
fn families_are_the_intersection() {
    let mut open = peer_open(64512, 90);
    open.capabilities
        .push(Capability::Multiprotocol(Family::IPV6_UNICAST));
    let n = check_open(&local(), &peer(64512), &open).unwrap();
    assert_eq!(n.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    let mut cfg = peer(64512);
    cfg.families = vec![Family::IPV4_UNICAST];
    let n = check_open(&local(), &cfg, &open).unwrap();
    assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
}

#[test]
fn graceful_restart_negotiation_keeps_negotiated_families_and_caps_time() {
    let mut open = peer_open(64512, 90);
    open.capabilities.push(Capability::GracefulRestart {
        restarting: true,
        restart_time: 300,
        families: vec![
            GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            },
            // Not negotiated (the peer offered no IPv6 MP capability).
            GracefulRestartFamily {
                family: Family::IPV6_UNICAST,
                forwarding_preserved: true,
            },
        ],
    });
    let n = check_open(&local(), &peer(64512), &open).unwrap();
    let gr = n.peer_graceful_restart.unwrap();
    assert!(gr.restarting);
    assert_eq!(gr.restart_time, 120, "capped by max_restart_time");
    assert_eq!(gr.families.len(), 1);
    assert!(gr.preserved(Family::IPV4_UNICAST));
    assert!(!gr.preserved(Family::IPV6_UNICAST));
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
fn error_wait_doubles_up_to_max_and_resets_on_established() {
    let mut fsm = Fsm::new(local(), peer(64512));
    fsm.handle(Event::ManualStart);
    let mut waits = Vec::new();
    for _ in 0..5 {
        fsm.handle(Event::TcpConnectionAcknowledged);
        let a = fsm.handle(Event::BgpOpen(peer_open(65001, 90)));
        waits.extend(a.iter().filter_map(|a| match a {
            Action::StartTimer(TimerKind::IdleHold, d) => Some(d.as_secs()),
            _ => None,
        }));
        let a = fsm.handle(Event::timer_expired(TimerKind::IdleHold));
        assert!(has(&a, &Action::Connect), "automatic restart connects");
    }
    assert_eq!(waits, vec![5, 10, 20, 30, 30]);

    fsm.handle(Event::TcpConnectionAcknowledged);
    fsm.handle(Event::BgpOpen(peer_open(64512, 90)));
    fsm.handle(Event::KeepAliveMsg);
    assert_eq!(fsm.state(), State::Established);
    let a = fsm.handle(Event::TcpConnectionFails("reset".into()));
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::IdleHold, Duration::from_secs(5))
    ));
}

#[test]
fn manual_stop_sends_cease_and_disables_automatic_restart() {
    let mut fsm = established(peer(64512), peer_open(64512, 90));
    let a = fsm.handle(Event::ManualStop);
    assert_eq!(sent_notification(&a), Some((6, 2)));
    assert!(has(&a, &Action::Disconnect));
    assert!(a.iter().any(|a| matches!(
        a,
        Action::SessionDown(r) if r.graceful_restart_time.is_none()
    )));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::StartTimer(TimerKind::IdleHold, _))));
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm.handle(Event::AutomaticStart).is_empty());
}

#[test]
fn timers_in_established() {
    let mut fsm = established(peer(64512), peer_open(64512, 9));
    let a = fsm.handle(Event::KeepaliveTimerExpires);
    assert_eq!(
        a,
        vec![
            Action::Send(Message::Keepalive),
            Action::StartTimer(TimerKind::Keepalive, Duration::from_secs(3))
        ]
    );
    for e in [
        Event::KeepAliveMsg,
        Event::UpdateMsg,
        Event::RouteRefreshMsg,
    ] {
        let a = fsm.handle(e);
        assert_eq!(
            a,
            vec![Action::StartTimer(TimerKind::Hold, Duration::from_secs(9))]
        );
    }
    let a = fsm.handle(Event::HoldTimerExpires);
    assert_eq!(sent_notification(&a), Some((4, 0)));
    assert_eq!(fsm.state(), State::Idle);
    assert_eq!(
        fsm.last_error().map(ToString::to_string).as_deref(),
        Some("Established: NOTIFICATION sent: hold timer expired (4/0)")
    );
    assert!(fsm.last_error().unwrap().error.is_hold_timer_expired());
    assert!(a.iter().any(|a| matches!(a, Action::SessionDown(_))));
}

#[test]
fn hold_timer_in_open_sent_and_open_confirm() {
    let mut fsm = to_open_sent(peer(64512));
    let a = fsm.handle(Event::HoldTimerExpires);
    assert_eq!(sent_notification(&a), Some((4, 0)));
    assert_eq!(fsm.state(), State::Idle);
    assert!(!a.iter().any(|a| matches!(a, Action::SessionDown(_))));

    let mut fsm = to_open_sent(peer(64512));
    fsm.handle(Event::BgpOpen(peer_open(64512, 90)));
    let a = fsm.handle(Event::KeepaliveTimerExpires);
    assert!(has(&a, &Action::Send(Message::Keepalive)));
    let a = fsm.handle(Event::HoldTimerExpires);
    assert_eq!(sent_notification(&a), Some((4, 0)));
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

fn gr_open() -> Open {
    let mut open = peer_open(64512, 90);
    open.capabilities.push(Capability::GracefulRestart {
        restarting: false,
        restart_time: 60,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            forwarding_preserved: true,
        }],
    });
    open
}

#[test]
fn tcp_failure_in_established_is_graceful_only_with_gr() {
    let mut fsm = established(peer(64512), gr_open());
    let a = fsm.handle(Event::TcpConnectionFails("connection reset".into()));
    assert_eq!(fsm.state(), State::Idle);
    let down = a
        .iter()
        .find_map(|a| match a {
            Action::SessionDown(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(down.graceful_restart_time, Some(60));
    assert_eq!(down.error, "Established: connection reset");

    // A NOTIFICATION ends the session for good.
    let mut fsm = established(peer(64512), gr_open());
    let a = fsm.handle(Event::NotifMsg(Notification {
        code: 6,
        subcode: 2,
        data: vec![],
    }));
    assert!(a.iter().any(|a| matches!(
        a,
        Action::SessionDown(r) if r.graceful_restart_time.is_none()
    )));

    let mut fsm = established(peer(64512), peer_open(64512, 90));
    let a = fsm.handle(Event::TcpConnectionFails("connection reset".into()));
    assert!(a.iter().any(|a| matches!(
        a,
        Action::SessionDown(r) if r.graceful_restart_time.is_none()
    )));
}

#[test]
fn idle_refuses_connections_and_ignores_messages() {
    let mut fsm = Fsm::new(local(), peer(64512));
    assert_eq!(
        fsm.handle(Event::TcpConnectionConfirmed),
        vec![Action::Disconnect]
    );
    assert!(fsm.handle(Event::KeepAliveMsg).is_empty());
    assert!(fsm.handle(Event::HoldTimerExpires).is_empty());
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 9);
    assert_eq!(surviving_direction(low, high), Direction::Inbound);
    assert_eq!(surviving_direction(high, low), Direction::Outbound);
    // Numeric, not string, order.
    assert_eq!(
        surviving_direction(Ipv4Addr::new(9, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 1)),
        Direction::Inbound
    );

    // Existing outbound in OpenConfirm, local id lower: the inbound wins.
    let mut existing = to_open_sent(peer(64512));
    existing.handle(Event::BgpOpen(peer_open(64512, 90)));
    assert_eq!(
        resolve_collision(LOCAL_ID, PEER_ID, &existing, Direction::Outbound),
        Survivor::New
    );
    assert_eq!(
        resolve_collision(LOCAL_ID, PEER_ID, &existing, Direction::Inbound),
        Survivor::Existing
    );
    // The loser closes with Cease 6/7 and does not restart on its own.
    let a = existing.handle(Event::OpenCollisionDump);
    assert_eq!(sent_notification(&a), Some((6, 7)));
    assert!(has(&a, &Action::Disconnect));
    assert_eq!(existing.state(), State::Idle);
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::StartTimer(TimerKind::IdleHold, _))));
    assert!(existing
        .last_error()
        .unwrap()
        .to_string()
        .contains("collision"));
}

#[test]
fn collision_with_established() {
    let plain = established(peer(64512), peer_open(64512, 90));
    assert_eq!(
        resolve_collision(LOCAL_ID, PEER_ID, &plain, Direction::Inbound),
        Survivor::Existing
    );
    // With graceful restart a new OPEN means the peer restarted.
    let gr = established(peer(64512), gr_open());
    assert_eq!(
        resolve_collision(LOCAL_ID, PEER_ID, &gr, Direction::Inbound),
        Survivor::New
    );
    let idle = Fsm::new(local(), peer(64512));
    assert_eq!(
        resolve_collision(LOCAL_ID, PEER_ID, &idle, Direction::Outbound),
        Survivor::New
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
