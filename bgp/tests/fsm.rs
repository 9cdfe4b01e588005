//! The session FSM driven without sockets (RFC 4271 §8), part one:
//! starting, connecting, passive peers, our OPEN and what an OPEN
//! negotiates. OPEN errors and NOTIFICATIONs are in fsm_errors.rs; timers,
//! teardown and collision resolution in fsm_timers.rs.

mod common_fsm;

use common_fsm::*;
use std::time::Duration;
use tabby_bgp::fsm::{check_open, Action, Event, Fsm, State, TimerKind};
use tabby_bgp::peer_config::DEFAULT_OPEN_TIMEOUT;
use tabby_bgp::wire::{Capability, Family, GracefulRestartFamily, Message, AS_TRANS};

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
    // Waiting for the OPEN is bounded by the open timeout, not RFC 4271's
    // 4 minutes (issue 15).
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::Hold, DEFAULT_OPEN_TIMEOUT)
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
    // OpenConfirm still ends if the KEEPALIVE never comes (issue 15).
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::Hold, DEFAULT_OPEN_TIMEOUT)
    ));
    assert!(has(&a, &Action::StopTimer(TimerKind::Keepalive)));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::StartTimer(TimerKind::Keepalive, _))));
    let a = fsm.handle(Event::KeepAliveMsg);
    assert!(has(&a, &Action::StopTimer(TimerKind::Hold)));
    assert!(!a.iter().any(|a| matches!(
        a,
        Action::StartTimer(TimerKind::Hold | TimerKind::Keepalive, _)
    )));
    // Messages in Established restart no timer when hold time is 0.
    assert!(fsm.handle(Event::UpdateMsg).is_empty());
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

/// The speaker's sweep when another connection of the peer's came up: a
/// connection still dialling (or waiting to redial) stops for good, with
/// its dial cancelled, no timer left to redial, and no error recorded.
#[test]
fn a_dial_left_over_when_the_session_came_up_elsewhere_stops_quietly() {
    for passive in [false, true] {
        let mut fsm = Fsm::new(local(), peer(64512));
        fsm.handle(if passive {
            Event::ManualStartPassive
        } else {
            Event::ManualStart
        });
        let before = fsm.failures();
        let a = fsm.handle(Event::OpenCollisionDump);
        assert_eq!(fsm.state(), State::Idle);
        assert_eq!(has(&a, &Action::CancelConnect), !passive, "{a:?}");
        assert!(
            !a.iter().any(|x| matches!(x, Action::StartTimer(..))),
            "nothing may redial: {a:?}"
        );
        assert!(sent_notification(&a).is_none(), "{a:?}");
        assert_eq!(fsm.failures(), before);
        // Stopped: the automatic restart an error wait would bring is off.
        assert!(fsm.handle(Event::AutomaticStart).is_empty());
    }
}
