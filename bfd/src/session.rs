//! The BFD session state machine (RFC 5880 §6.2, §6.8), free of I/O.
//!
//! The caller feeds `(now, event)` into [`Session::handle`] and carries out
//! the returned [`Action`]s: send a packet, report a state change, arm the
//! transmit or detection timer. The session keeps its own deadlines, so a
//! stale timer event (one armed before a later re-arm) does nothing; tests
//! drive it with made-up instants and no sockets.
//!
//! Asynchronous mode only: no Demand mode, no Echo function (we advertise
//! a Required Min Echo RX of 0), no authentication.

use crate::packet::{ControlPacket, Diag, State};
use std::time::{Duration, Instant};

/// While the session is not Up we transmit at most once a second
/// (RFC 5880 §6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What the operator configured for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// bfd.DesiredMinTxInterval once Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: Duration,
    /// bfd.DetectMult (1–255).
    pub detect_mult: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A control packet that passed [`ControlPacket::decode`] and the
    /// runtime's demultiplexing (and GTSM).
    Packet(ControlPacket),
    /// The transmit timer (last [`Action::ArmTx`]) fired.
    TxTimer,
    /// The detection timer (last [`Action::ArmDetect`]) fired.
    DetectTimer,
    AdminUp,
    AdminDown,
    /// New intervals or multiplier; a change starts a Poll Sequence.
    Reconfigure(SessionConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send(ControlPacket),
    StateChanged {
        from: State,
        to: State,
        diag: Diag,
    },
    /// (Re)arm the transmit timer for this instant.
    ArmTx(Instant),
    /// (Re)arm the detection timer for this instant.
    ArmDetect(Instant),
    DisarmDetect,
}

#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diag,
    /// What we advertise (bfd.DesiredMinTxInterval / RequiredMinRxInterval).
    desired_min_tx: Duration,
    required_min_rx: Duration,
    /// What the timers use: these lag the advertised values while a Poll
    /// Sequence is outstanding when §6.8.3 forbids applying them at once.
    tx_in_use: Duration,
    rx_in_use: Duration,
    remote_min_rx: Duration,
    remote_desired_min_tx: Duration,
    remote_detect_mult: u8,
    poll: bool,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    rng: u64,
}

impl Session {
    /// `local_discr` must be nonzero and unique among this system's
    /// sessions; `seed` drives the transmit jitter.
    pub fn new(config: SessionConfig, local_discr: u32, seed: u64) -> Session {
        let tx = config.desired_min_tx.max(SLOW_TX);
        Session {
            config,
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diag::None,
            desired_min_tx: tx,
            required_min_rx: config.required_min_rx,
            tx_in_use: tx,
            rx_in_use: config.required_min_rx,
            // §6.8.1: initialised to 1 µs, i.e. "send as you like".
            remote_min_rx: Duration::from_micros(1),
            remote_desired_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            poll: false,
            next_tx: None,
            detect_at: None,
            rng: seed | 1,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }
    pub fn local_discr(&self) -> u32 {
        self.local_discr
    }
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }
    pub fn config(&self) -> SessionConfig {
        self.config
    }
    /// A Poll Sequence is outstanding (our packets carry P).
    pub fn polling(&self) -> bool {
        self.poll
    }

    /// §6.8.4: the remote's Detect Mult × max(our RequiredMinRx, the
    /// remote's DesiredMinTx).
    pub fn detection_time(&self) -> Duration {
        self.rx_in_use.max(self.remote_desired_min_tx) * u32::from(self.remote_detect_mult)
    }

    /// §6.8.7: the interval before jitter, or None when the remote asked
    /// for no packets at all (RequiredMinRx of 0).
    pub fn tx_interval(&self) -> Option<Duration> {
        (!self.remote_min_rx.is_zero()).then(|| self.tx_in_use.max(self.remote_min_rx))
    }

    /// Sends the first packet and arms the transmit timer.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.send_now(now, false, &mut out);
        out
    }

    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Packet(p) => self.receive(now, p, &mut out),
            Event::TxTimer => {
                if self.next_tx.is_some_and(|t| now >= t) {
                    self.send_now(now, false, &mut out);
                }
            }
            Event::DetectTimer => {
                if self.detect_at.is_some_and(|t| now >= t) {
                    self.detect_at = None;
                    // §6.8.1: the remote is forgotten when detection expires.
                    self.remote_discr = 0;
                    self.remote_state = State::Down;
                    if matches!(self.state, State::Init | State::Up) {
                        self.transition(
                            now,
                            State::Down,
                            Diag::ControlDetectionTimeExpired,
                            false,
                            &mut out,
                        );
                    }
                }
            }
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.detect_at = None;
                    out.push(Action::DisarmDetect);
                    self.transition(
                        now,
                        State::AdminDown,
                        Diag::AdministrativelyDown,
                        false,
                        &mut out,
                    );
                }
            }
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    self.transition(now, State::Down, Diag::None, false, &mut out);
                }
            }
            Event::Reconfigure(c) => {
                self.config = c;
                if self.set_intervals() {
                    self.send_now(now, false, &mut out);
                }
            }
        }
        out
    }

    fn receive(&mut self, now: Instant, p: ControlPacket, out: &mut Vec<Action>) {
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            return;
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_rx = p.required_min_rx;
        self.remote_desired_min_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.poll {
            // The remote has seen our new intervals: apply them all.
            self.poll = false;
            self.tx_in_use = self.desired_min_tx;
            self.rx_in_use = self.required_min_rx;
        }
        if self.state == State::AdminDown {
            return;
        }
        let next = match (self.state, p.state) {
            (s, State::AdminDown) if s != State::Down => {
                Some((State::Down, Diag::NeighborSignaledSessionDown))
            }
            (State::Down, State::Down) => Some((State::Init, Diag::None)),
            (State::Down, State::Init) => Some((State::Up, Diag::None)),
            (State::Init, State::Init | State::Up) => Some((State::Up, Diag::None)),
            (State::Up, State::Down) => Some((State::Down, Diag::NeighborSignaledSessionDown)),
            _ => None,
        };
        let changed = next.is_some();
        if let Some((to, diag)) = next {
            self.transition(now, to, diag, p.poll, out);
        }
        if p.poll && !changed {
            // §6.8.6: answer a Poll at once, outside the periodic schedule.
            out.push(Action::Send(self.packet(true)));
        }
        let at = now + self.detection_time();
        self.detect_at = Some(at);
        out.push(Action::ArmDetect(at));
        // Never wait longer than the (possibly just shortened) interval.
        if let (Some(t), Some(i)) = (self.next_tx, self.tx_interval()) {
            if t > now + i {
                self.arm_tx(now, out);
            }
        }
    }

    /// `final_`: the packet that caused this carried P, so the packet
    /// announcing the change answers it.
    fn transition(
        &mut self,
        now: Instant,
        to: State,
        diag: Diag,
        final_: bool,
        out: &mut Vec<Action>,
    ) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        out.push(Action::StateChanged { from, to, diag });
        self.set_intervals();
        // A state change goes out at once; the answer to a Poll rides on it.
        self.send_now(now, final_, out);
    }

    /// Recomputes what we advertise from the configuration and the state;
    /// true (and a Poll Sequence started) when it changed.
    fn set_intervals(&mut self) -> bool {
        let up = self.state == State::Up;
        let tx = if up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        let rx = self.config.required_min_rx;
        if tx == self.desired_min_tx && rx == self.required_min_rx {
            return false;
        }
        self.desired_min_tx = tx;
        self.required_min_rx = rx;
        // §6.8.3: a slower transmit rate, and a faster expected receive
        // rate, take effect only once the remote answered the Poll.
        if !(up && tx > self.tx_in_use) {
            self.tx_in_use = tx;
        }
        if !(up && rx < self.rx_in_use) {
            self.rx_in_use = rx;
        }
        self.poll = true;
        true
    }

    fn packet(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// Sends a packet now (F set when it answers a Poll we just received)
    /// and restarts the periodic schedule from here.
    fn send_now(&mut self, now: Instant, final_: bool, out: &mut Vec<Action>) {
        if self.tx_interval().is_none() {
            self.next_tx = None;
            return;
        }
        out.push(Action::Send(self.packet(final_)));
        self.arm_tx(now, out);
    }

    fn arm_tx(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(i) = self.tx_interval() else {
            self.next_tx = None;
            return;
        };
        let at = now + self.jittered(i);
        self.next_tx = Some(at);
        out.push(Action::ArmTx(at));
    }

    /// §6.8.7: 75–100 % of the interval, 75–90 % with a Detect Mult of 1.
    fn jittered(&mut self, i: Duration) -> Duration {
        // xorshift64: good enough to desynchronise senders.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = if self.config.detect_mult == 1 { 16 } else { 26 };
        let pct = 75 + (self.rng % span) as u32;
        i * pct / 100
    }
}
