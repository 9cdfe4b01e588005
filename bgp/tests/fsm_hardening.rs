//! The session FSM driven without sockets, issue 15: a connection that
//! never completes its OPEN exchange is bounded by the open timeout, an
//! unidentified connection never wins a §6.8 collision, and `last_error`
//! always names the latest failure.

mod common_fsm;

use common_fsm::*;
use std::time::Duration;
use tabby_bgp::fsm::{
    resolve_collision, Action, Direction, Event, Fsm, State, Survivor, TimerKind,
};
use tabby_bgp::peer_config::DEFAULT_OPEN_TIMEOUT;

fn error_text(fsm: &Fsm) -> Option<String> {
    fsm.last_error().map(ToString::to_string)
}

#[test]
fn open_sent_waits_for_the_peers_open_at_most_the_open_timeout() {
    assert_eq!(DEFAULT_OPEN_TIMEOUT, Duration::from_secs(30));
    let mut cfg = peer(64512);
    cfg.open_timeout = Duration::from_secs(7);
    let mut fsm = Fsm::new(local(), cfg);
    fsm.handle(Event::ManualStart);
    let a = fsm.handle(Event::TcpConnectionAcknowledged);
    assert_eq!(fsm.state(), State::OpenSent);
    assert!(
        has(
            &a,
            &Action::StartTimer(TimerKind::Hold, Duration::from_secs(7))
        ),
        "{a:?}"
    );
    let a = fsm.handle(Event::HoldTimerExpires);
    assert_eq!(sent_notification(&a), Some((4, 0)));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn open_confirm_with_hold_time_zero_is_bounded_until_the_keepalive() {
    let mut cfg = peer(64512);
    cfg.passive = true;
    let mut fsm = Fsm::new(local(), cfg);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnectionConfirmed);
    let a = fsm.handle(Event::BgpOpen(peer_open(64512, 0)));
    assert_eq!(fsm.state(), State::OpenConfirm);
    assert!(
        has(
            &a,
            &Action::StartTimer(TimerKind::Hold, DEFAULT_OPEN_TIMEOUT)
        ),
        "no bound on OpenConfirm with hold time 0: {a:?}"
    );
    // Without the KEEPALIVE the connection ends when the bound runs out.
    let mut parked = fsm;
    let a = parked.handle(Event::HoldTimerExpires);
    assert_eq!(sent_notification(&a), Some((4, 0)));
    assert_eq!(parked.state(), State::Idle);

    // With it the session runs without a hold timer, as negotiated.
    let mut fsm = Fsm::new(local(), peer(64512));
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnectionAcknowledged);
    fsm.handle(Event::BgpOpen(peer_open(64512, 0)));
    let a = fsm.handle(Event::KeepAliveMsg);
    assert_eq!(fsm.state(), State::Established);
    assert!(has(&a, &Action::StopTimer(TimerKind::Hold)), "{a:?}");
}

#[test]
fn an_inbound_connection_without_an_open_never_wins_a_collision() {
    // Our identifier is lower, so by §6.8 the peer's (inbound) connection
    // is the one to keep; a connection from its address that has sent no
    // OPEN yet must still not block one that has.
    let mut cfg = peer(64512);
    cfg.passive = true;
    let mut silent = Fsm::new(local(), cfg);
    silent.handle(Event::ManualStart);
    silent.handle(Event::TcpConnectionConfirmed);
    assert_eq!(silent.state(), State::OpenSent);
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &silent,
            Direction::Inbound,
            Direction::Inbound
        ),
        Survivor::Both
    );
    // Nor against our own outbound connection waiting for its OPEN: the
    // identifiers are compared once both OPENs are known.
    let outbound = to_open_sent(peer(64512));
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &outbound,
            Direction::Outbound,
            Direction::Inbound
        ),
        Survivor::Both
    );
}

#[test]
fn a_newer_inbound_connection_replaces_an_older_inbound_one() {
    // Both from the peer: §6.8's identifier rule cannot choose between two
    // connections the same side opened; the peer only keeps its latest.
    let mut cfg = peer(64512);
    cfg.passive = true;
    let mut parked = Fsm::new(local(), cfg);
    parked.handle(Event::ManualStart);
    parked.handle(Event::TcpConnectionConfirmed);
    parked.handle(Event::BgpOpen(peer_open(64512, 0)));
    assert_eq!(parked.state(), State::OpenConfirm);
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &parked,
            Direction::Inbound,
            Direction::Inbound
        ),
        Survivor::New
    );
    // One in each direction is still decided by identifier.
    assert_eq!(
        resolve_collision(
            LOCAL_ID,
            PEER_ID,
            &parked,
            Direction::Inbound,
            Direction::Outbound
        ),
        Survivor::Existing
    );
}

#[test]
fn a_connect_failure_after_a_hold_timer_expiry_replaces_the_last_error() {
    let mut fsm = established(peer(64512), peer_open(64512, 90));
    fsm.handle(Event::HoldTimerExpires);
    assert_eq!(
        error_text(&fsm).as_deref(),
        Some("Established: NOTIFICATION sent: hold timer expired (4/0)")
    );
    let a = fsm.handle(Event::AutomaticStart);
    assert!(has(&a, &Action::Connect));
    fsm.handle(Event::TcpConnectionFails("connection refused".into()));
    assert_eq!(
        error_text(&fsm).as_deref(),
        Some("Connect: connection refused")
    );
}

#[test]
fn a_connect_attempt_that_hangs_replaces_the_last_error() {
    // The peer's host vanished: the hold timer expired, and every new SYN
    // goes unanswered until ConnectRetry replaces the attempt.
    let mut fsm = established(peer(64512), peer_open(64512, 90));
    fsm.handle(Event::HoldTimerExpires);
    fsm.handle(Event::AutomaticStart);
    assert_eq!(fsm.state(), State::Connect);
    let before = fsm.failures();
    let a = fsm.handle(Event::ConnectRetryTimerExpires);
    assert!(has(&a, &Action::Connect));
    assert_eq!(
        error_text(&fsm).as_deref(),
        Some("Connect: no answer to the connection attempt within 1 s")
    );
    assert!(fsm.failures() > before);
    // The same failure again still counts as a new one.
    let n = fsm.failures();
    fsm.handle(Event::ConnectRetryTimerExpires);
    assert_eq!(fsm.failures(), n + 1);
}

#[test]
fn last_error_is_cleared_on_established() {
    let mut fsm = Fsm::new(local(), peer(64512));
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnectionFails("connection refused".into()));
    assert!(fsm.last_error().is_some());
    fsm.handle(Event::ConnectRetryTimerExpires);
    fsm.handle(Event::TcpConnectionAcknowledged);
    fsm.handle(Event::BgpOpen(peer_open(64512, 90)));
    fsm.handle(Event::KeepAliveMsg);
    assert_eq!(fsm.state(), State::Established);
    assert_eq!(fsm.last_error(), None);
}
