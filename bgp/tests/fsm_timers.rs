//! The session FSM driven without sockets: error backoff, manual stop,
//! the hold and keepalive timers, a TCP failure with and without graceful
//! restart, a BFD Down, Idle, and §6.8 collision resolution.

mod common_fsm;

use common_fsm::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use tabby_bgp::fsm::{
    resolve_collision, surviving_direction, Action, Direction, Event, Fsm, State, Survivor,
    TimerKind,
};
use tabby_bgp::wire::{Capability, Family, GracefulRestartFamily, Message, Notification, Open};

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
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &existing,
            Direction::Outbound,
            Direction::Inbound
        ),
        Survivor::New
    );
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &existing,
            Direction::Inbound,
            Direction::Outbound
        ),
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
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &plain,
            Direction::Inbound,
            Direction::Inbound
        ),
        Survivor::Existing
    );
    // With graceful restart a new OPEN means the peer restarted.
    let gr = established(peer(64512), gr_open());
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &gr,
            Direction::Inbound,
            Direction::Inbound
        ),
        Survivor::New
    );
    let idle = Fsm::new(local(), peer(64512));
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &idle,
            Direction::Outbound,
            Direction::Inbound
        ),
        Survivor::New
    );
}

#[test]
fn bfd_down_closes_the_session_without_graceful_restart() {
    // Even with graceful restart negotiated: BFD says the peer is gone.
    let mut fsm = established(peer(64512), gr_open());
    let diag = tabby_bfd::Diag::ControlDetectionTimeExpired;
    let a = fsm.handle(Event::BfdDown(diag));
    assert_eq!(fsm.state(), State::Idle);
    assert!(has(&a, &Action::Disconnect));
    assert_eq!(sent_notification(&a), None);
    let down = a
        .iter()
        .find_map(|a| match a {
            Action::SessionDown(r) => Some(r.clone()),
            _ => None,
        })
        .expect("session down");
    assert_eq!(down.graceful_restart_time, None);
    assert!(down.error.error.is_bfd_down());
    assert_eq!(
        down.error,
        "Established: BFD session down (Control Detection Time Expired)"
    );
    // Then the usual automatic restart (error wait, connect retry).
    assert!(has(
        &a,
        &Action::StartTimer(TimerKind::IdleHold, Duration::from_secs(5))
    ));
    // While connecting there is no session to close.
    let mut idle = Fsm::new(local(), peer(64512));
    idle.handle(Event::ManualStart);
    assert!(idle.handle(Event::BfdDown(diag)).is_empty());
    assert_eq!(idle.state(), State::Connect);
}
