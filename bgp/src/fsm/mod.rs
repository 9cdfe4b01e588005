//! The RFC 4271 §8 session state machine for one TCP connection to a peer.
//!
//! Pure logic: the transport feeds [`Event`]s (messages decoded, timers
//! fired, TCP outcomes) and carries out the returned [`Action`]s. The FSM
//! never reads a clock; timers are started and stopped by action and come
//! back as events ([`Event::timer_expired`]). A transport that wants the
//! "since" column compares [`Fsm::state`] before and after `handle`.
//!
//! Deviations from the RFC table, on purpose:
//! - Passive peers never run the ConnectRetry timer (they never connect).
//! - A TCP failure in Connect or OpenSent goes to Active and retries on the
//!   ConnectRetry timer (what BIRD and GoBGP do), instead of Idle.
//! - Errors that drop to Idle start the IdleHold timer (BIRD's
//!   `error wait time`), doubling per consecutive failure; its expiry is
//!   AutomaticStart. ManualStop cancels that.
//! - Timer events in states that do not run that timer are ignored: a timer
//!   may fire in the transport just before its StopTimer is processed.
//! - OpenSent and OpenConfirm are bounded by the peer's `open_timeout`
//!   (30 s by default) instead of RFC 4271's 4-minute OpenSent hold time,
//!   and OpenConfirm stays bounded when the OPEN proposed a hold time of 0:
//!   a real peer answers at once, and a connection parked there would
//!   otherwise hold one of the peer's two connection slots.
//! - A ConnectRetry expiry in Connect (the attempt got no answer) is
//!   recorded as a failure, so the status names it instead of an older one.
//! - `last_error` is the latest failure and is cleared on Established.

mod collision;
mod error;
mod events;
pub mod notify;
mod open;

pub use collision::{resolve_collision, surviving_direction, Direction, Survivor};
pub use error::{LastError, PeerError, TcpError, TcpErrorKind};
pub use events::{Action, DownReason, Event, State, TimerKind};
pub use open::{build_open, check_open, Negotiated, PeerGracefulRestart};

use crate::peer_config::{LocalConfig, PeerConfig};
use crate::wire::{Message, Notification};
use notify::*;
use std::time::Duration;

/// RFC 4271 §8's suggested hold time while waiting for the peer's OPEN.
/// Tabby uses the shorter `PeerConfig::open_timeout` instead (see the
/// deviations above); kept for reference.
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

pub struct Fsm {
    local: LocalConfig,
    peer: PeerConfig,
    state: State,
    negotiated: Option<Negotiated>,
    last_error: Option<LastError>,
    /// Failures recorded so far: lets the transport see a new failure
    /// even when it reads the same as the last one.
    failures: u64,
    /// The AS in the last OPEN the peer sent, kept even when it was
    /// refused: a bad peer AS is only explained by naming both ASes.
    peer_open_as: Option<u32>,
    /// ManualStop seen: no automatic restarts.
    stopped: bool,
    next_error_wait: Duration,
}

impl Fsm {
    pub fn new(local: LocalConfig, peer: PeerConfig) -> Self {
        let next_error_wait = peer.error_wait.0;
        Fsm {
            local,
            peer,
            state: State::Idle,
            negotiated: None,
            last_error: None,
            failures: 0,
            peer_open_as: None,
            stopped: true,
            next_error_wait,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Set from OpenConfirm on (the peer's OPEN was accepted).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The latest failure; its `Display` is the status table's text, e.g.
    /// `OpenSent: NOTIFICATION received: bad peer AS (2/2)`.
    pub fn last_error(&self) -> Option<&LastError> {
        self.last_error.as_ref()
    }

    /// How many failures were recorded: grows by one with each, so a
    /// caller polling [`Fsm::last_error`] notices a repeat of the same one.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The AS number of the last OPEN received, accepted or not.
    pub fn peer_open_as(&self) -> Option<u32> {
        self.peer_open_as
    }

    pub fn peer(&self) -> &PeerConfig {
        &self.peer
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Idle => self.idle(event, &mut out),
            State::Connect | State::Active => self.connecting(event, &mut out),
            State::OpenSent => self.open_sent(event, &mut out),
            State::OpenConfirm => self.open_confirm(event, &mut out),
            State::Established => self.established(event, &mut out),
        }
        out
    }

    fn idle(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart => {
                self.stopped = false;
                self.next_error_wait = self.peer.error_wait.0;
                self.start(self.peer.passive, out);
            }
            Event::ManualStartPassive => {
                self.stopped = false;
                self.next_error_wait = self.peer.error_wait.0;
                self.start(true, out);
            }
            Event::AutomaticStart if !self.stopped => self.start(self.peer.passive, out),
            // A connection handed to an idle FSM is refused by closing it.
            Event::TcpConnectionConfirmed | Event::TcpConnectionAcknowledged => {
                out.push(Action::Disconnect)
            }
            _ => {}
        }
    }

    fn start(&mut self, passive: bool, out: &mut Vec<Action>) {
        out.push(Action::StopTimer(TimerKind::IdleHold));
        if passive {
            self.state = State::Active;
        } else {
            out.push(Action::StartTimer(
                TimerKind::ConnectRetry,
                self.peer.connect_retry,
            ));
            out.push(Action::Connect);
            self.state = State::Connect;
        }
    }

    /// Connect and Active: waiting for a TCP connection.
    fn connecting(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStop => self.stop(out),
            Event::ConnectRetryTimerExpires if !self.peer.passive => {
                if self.state == State::Connect {
                    // The attempt hung (a host that vanished, a filter that
                    // drops SYNs): say so, then drop it and try afresh.
                    let after = self.peer.connect_retry;
                    self.record(PeerError::Tcp(TcpError::new(
                        TcpErrorKind::TimedOut,
                        format!(
                            "no answer to the connection attempt within {}",
                            seconds(after)
                        ),
                    )));
                    out.push(Action::Disconnect);
                }
                out.push(Action::StartTimer(
                    TimerKind::ConnectRetry,
                    self.peer.connect_retry,
                ));
                out.push(Action::Connect);
                self.state = State::Connect;
            }
            Event::TcpConnectionAcknowledged => self.send_open(out),
            Event::TcpConnectionConfirmed => {
                if self.state == State::Connect {
                    out.push(Action::CancelConnect);
                }
                self.send_open(out);
            }
            Event::TcpConnectionFails(reason) => {
                self.record(PeerError::Tcp(reason));
                self.back_to_active(out);
            }
            // Another connection of the peer's is Established: stop, no error.
            Event::OpenCollisionDump => {
                self.stopped = true;
                self.enter_idle(None, out);
            }
            Event::ManualStart
            | Event::ManualStartPassive
            | Event::AutomaticStart
            | Event::ConnectRetryTimerExpires
            | Event::HoldTimerExpires
            | Event::KeepaliveTimerExpires
            | Event::BfdDown(_) => {}
            other => {
                // A message without a connection the FSM knows of.
                self.record(PeerError::Unexpected(other.name()));
                self.enter_idle(None, out);
            }
        }
    }

    fn send_open(&mut self, out: &mut Vec<Action>) {
        out.push(Action::StopTimer(TimerKind::ConnectRetry));
        out.push(Action::Send(Message::Open(build_open(
            &self.local,
            &self.peer,
        ))));
        out.push(Action::StartTimer(TimerKind::Hold, self.peer.open_timeout));
        self.state = State::OpenSent;
    }

    fn back_to_active(&mut self, out: &mut Vec<Action>) {
        out.push(Action::Disconnect);
        out.push(Action::StopTimer(TimerKind::Hold));
        if !self.peer.passive {
            out.push(Action::StartTimer(
                TimerKind::ConnectRetry,
                self.peer.connect_retry,
            ));
        }
        self.state = State::Active;
    }

    fn open_sent(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::BgpOpen(open) => {
                self.peer_open_as = Some(open.asn());
                match check_open(&self.local, &self.peer, &open) {
                    Ok(negotiated) => {
                        out.push(Action::StopTimer(TimerKind::ConnectRetry));
                        out.push(Action::Send(Message::Keepalive));
                        self.arm_session_timers(&negotiated, out);
                        self.negotiated = Some(negotiated);
                        self.state = State::OpenConfirm;
                    }
                    Err(notification) => self.send_and_fail(notification, out),
                }
            }
            Event::TcpConnectionFails(reason) => {
                self.record(PeerError::Tcp(reason));
                self.back_to_active(out);
            }
            _ => self.common(event, FSM_UNEXPECTED_IN_OPENSENT, out),
        }
    }

    fn open_confirm(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::KeepAliveMsg => {
                if self.negotiated.as_ref().is_some_and(|n| n.hold_time == 0) {
                    // Only the open timeout ran: no hold timer from here on.
                    out.push(Action::StopTimer(TimerKind::Hold));
                }
                self.restart_hold(out);
                self.next_error_wait = self.peer.error_wait.0;
                self.last_error = None;
                self.state = State::Established;
                if let Some(n) = &self.negotiated {
                    out.push(Action::SessionUp(n.clone()));
                }
            }
            _ => self.common(event, FSM_UNEXPECTED_IN_OPENCONFIRM, out),
        }
    }

    fn established(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::KeepAliveMsg | Event::UpdateMsg | Event::RouteRefreshMsg => {
                self.restart_hold(out)
            }
            _ => self.common(event, FSM_UNEXPECTED_IN_ESTABLISHED, out),
        }
    }

    /// Events handled alike in OpenSent, OpenConfirm and Established; any
    /// message not expected in the state is an FSM error (RFC 6608 subcode).
    fn common(&mut self, event: Event, fsm_subcode: u8, out: &mut Vec<Action>) {
        let opened = self.state != State::OpenSent;
        match event {
            Event::ManualStop => self.stop(out),
            Event::HoldTimerExpires => {
                let graceful = self.graceful_time();
                self.send_and_fail_with(
                    notification(HOLD_TIMER_EXPIRED, 0, Vec::new()),
                    graceful,
                    out,
                )
            }
            Event::KeepaliveTimerExpires if opened => {
                out.push(Action::Send(Message::Keepalive));
                self.restart_keepalive(out);
            }
            Event::TcpConnectionFails(reason) => {
                let graceful = self.graceful_time();
                self.record(PeerError::Tcp(reason));
                self.enter_idle(graceful, out);
            }
            Event::NotifMsg(n) => {
                self.record(PeerError::NotificationReceived(n));
                self.enter_idle(None, out);
            }
            // No graceful-restart retention: BFD says the peer is gone.
            Event::BfdDown(d) => {
                self.record(PeerError::BfdDown(d));
                self.enter_idle(None, out);
            }
            Event::MessageError(n) => self.send_and_fail(n, out),
            Event::OpenCollisionDump => {
                out.push(Action::Send(Message::Notification(notification(
                    CEASE,
                    CEASE_COLLISION,
                    Vec::new(),
                ))));
                self.record(PeerError::CollisionLost);
                // The other connection carries on: no error backoff here.
                self.stopped = true;
                self.enter_idle(None, out);
            }
            Event::BgpOpen(_) | Event::KeepAliveMsg | Event::UpdateMsg | Event::RouteRefreshMsg => {
                self.send_and_fail(notification(FSM_ERROR, fsm_subcode, Vec::new()), out)
            }
            Event::ManualStart
            | Event::ManualStartPassive
            | Event::AutomaticStart
            | Event::ConnectRetryTimerExpires
            | Event::KeepaliveTimerExpires
            | Event::TcpConnectionConfirmed
            | Event::TcpConnectionAcknowledged => {}
        }
    }

    fn graceful_time(&self) -> Option<u16> {
        if self.state != State::Established {
            return None;
        }
        self.negotiated
            .as_ref()
            .and_then(|n| n.peer_graceful_restart.as_ref())
            .map(|gr| gr.restart_time)
    }

    fn arm_session_timers(&self, n: &Negotiated, out: &mut Vec<Action>) {
        if n.hold_time == 0 {
            // No keepalives, but OpenConfirm must still end: without its
            // KEEPALIVE this connection would otherwise wait forever.
            out.push(Action::StartTimer(TimerKind::Hold, self.peer.open_timeout));
            out.push(Action::StopTimer(TimerKind::Keepalive));
        } else {
            out.push(Action::StartTimer(
                TimerKind::Hold,
                Duration::from_secs(n.hold_time.into()),
            ));
            out.push(Action::StartTimer(
                TimerKind::Keepalive,
                Duration::from_secs(n.keepalive.into()),
            ));
        }
    }

    fn restart_hold(&self, out: &mut Vec<Action>) {
        if let Some(n) = self.negotiated.as_ref().filter(|n| n.hold_time > 0) {
            out.push(Action::StartTimer(
                TimerKind::Hold,
                Duration::from_secs(n.hold_time.into()),
            ));
        }
    }

    fn restart_keepalive(&self, out: &mut Vec<Action>) {
        if let Some(n) = self.negotiated.as_ref().filter(|n| n.hold_time > 0) {
            out.push(Action::StartTimer(
                TimerKind::Keepalive,
                Duration::from_secs(n.keepalive.into()),
            ));
        }
    }

    fn send_and_fail(&mut self, n: Notification, out: &mut Vec<Action>) {
        self.send_and_fail_with(n, None, out)
    }

    fn send_and_fail_with(
        &mut self,
        n: Notification,
        graceful: Option<u16>,
        out: &mut Vec<Action>,
    ) {
        self.record(PeerError::NotificationSent(n.clone()));
        out.push(Action::Send(Message::Notification(n)));
        self.enter_idle(graceful, out);
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            out.push(Action::Send(Message::Notification(notification(
                CEASE,
                CEASE_ADMIN_SHUTDOWN,
                Vec::new(),
            ))));
        }
        self.stopped = true;
        let was = self.state;
        self.enter_idle(None, out);
        if was == State::Established {
            // Replace the error enter_idle put into SessionDown: a manual
            // stop is not an error for the status table.
            if let Some(Action::SessionDown(reason)) = out.last_mut() {
                reason.error = LastError {
                    state: State::Established,
                    error: PeerError::AdminStopped,
                };
            }
        }
    }

    /// Drops to Idle, closing the connection and stopping the session
    /// timers; schedules the automatic restart unless stopped.
    fn enter_idle(&mut self, graceful_restart_time: Option<u16>, out: &mut Vec<Action>) {
        if self.state == State::Connect {
            out.push(Action::CancelConnect);
        }
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            out.push(Action::Disconnect);
        }
        for kind in [
            TimerKind::ConnectRetry,
            TimerKind::Hold,
            TimerKind::Keepalive,
        ] {
            out.push(Action::StopTimer(kind));
        }
        if !self.stopped {
            out.push(Action::StartTimer(
                TimerKind::IdleHold,
                self.next_error_wait,
            ));
            self.next_error_wait = self
                .next_error_wait
                .checked_mul(2)
                .unwrap_or(Duration::MAX)
                .min(self.peer.error_wait.1);
        }
        let was = self.state;
        self.state = State::Idle;
        self.negotiated = None;
        if was == State::Established {
            out.push(Action::SessionDown(DownReason {
                error: self.last_error.clone().unwrap_or(LastError {
                    state: was,
                    error: PeerError::AdminStopped,
                }),
                graceful_restart_time,
            }));
        }
    }

    fn record(&mut self, error: PeerError) {
        self.failures += 1;
        self.last_error = Some(LastError {
            state: self.state,
            error,
        });
    }
}

/// `5 s`, `0.5 s`: the status table's wording for a timer.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
