//! The session FSM without sockets: handshake, slow and fast transmit
//! rates with their jitter, detection time and its expiry, the remote's
//! AdminDown, and the Poll/Final sequence — all with made-up instants.

use std::time::{Duration, Instant};
use tabby_bfd::packet::{ControlPacket, Diag, State};
use tabby_bfd::session::{Action, Event, Session, SessionConfig, SLOW_TX};

const MS: Duration = Duration::from_millis(1);

fn cfg(tx_ms: u64, rx_ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: MS * tx_ms as u32,
        required_min_rx: MS * rx_ms as u32,
        detect_mult: mult,
    }
}

fn sent(a: &[Action]) -> Vec<ControlPacket> {
    a.iter()
        .filter_map(|x| match x {
            Action::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn changes(a: &[Action]) -> Vec<(State, State, Diag)> {
    a.iter()
        .filter_map(|x| match x {
            Action::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
            _ => None,
        })
        .collect()
}

fn last_tx(a: &[Action]) -> Option<Instant> {
    a.iter().rev().find_map(|x| match x {
        Action::ArmTx(t) => Some(*t),
        _ => None,
    })
}

fn last_detect(a: &[Action]) -> Option<Instant> {
    a.iter().rev().find_map(|x| match x {
        Action::ArmDetect(t) => Some(*t),
        _ => None,
    })
}

/// Delivers packets back and forth until neither side has more to say.
fn converse(a: &mut Session, b: &mut Session, now: Instant, first: Vec<ControlPacket>) {
    let mut to_b = first;
    for _ in 0..10 {
        let mut to_a = Vec::new();
        for p in to_b.drain(..) {
            to_a.extend(sent(&b.handle(now, Event::Packet(p))));
        }
        for p in to_a {
            to_b.extend(sent(&a.handle(now, Event::Packet(p))));
        }
        if to_b.is_empty() {
            return;
        }
    }
    panic!("sessions never went quiet");
}

fn up_pair(now: Instant) -> (Session, Session) {
    let mut a = Session::new(cfg(300, 300, 3), 11, 1);
    let mut b = Session::new(cfg(300, 300, 3), 22, 2);
    let first = sent(&a.start(now));
    b.start(now);
    converse(&mut a, &mut b, now, first);
    (a, b)
}

#[test]
fn three_way_handshake_brings_both_up() {
    let now = Instant::now();
    let mut a = Session::new(cfg(300, 300, 3), 11, 1);
    let mut b = Session::new(cfg(300, 300, 3), 22, 2);
    let p = sent(&a.start(now));
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].state, p[0].your_discriminator), (State::Down, 0));
    let r = b.handle(now, Event::Packet(p[0]));
    assert_eq!(changes(&r), vec![(State::Down, State::Init, Diag::None)]);
    let init = sent(&r)[0];
    assert_eq!((init.state, init.your_discriminator), (State::Init, 11));
    let r = a.handle(now, Event::Packet(init));
    assert_eq!(changes(&r), vec![(State::Down, State::Up, Diag::None)]);
    let up = sent(&r)[0];
    // Going Up drops the 1 s slow rate to 300 ms: a Poll Sequence.
    assert!(up.poll, "{up:?}");
    assert_eq!(up.desired_min_tx, MS * 300);
    let r = b.handle(now, Event::Packet(up));
    assert_eq!(changes(&r), vec![(State::Init, State::Up, Diag::None)]);
    assert!(sent(&r)[0].final_, "the Up answer carries F for A's Poll");
    assert_eq!((a.state(), b.state()), (State::Up, State::Up));
}

#[test]
fn slow_rate_before_up_fast_rate_after_with_jitter() {
    let now = Instant::now();
    let mut a = Session::new(cfg(300, 300, 3), 11, 7);
    let r = a.start(now);
    assert_eq!(sent(&r)[0].desired_min_tx, SLOW_TX);
    let mut t = last_tx(&r).expect("armed");
    for _ in 0..200 {
        let at = last_tx(&a.handle(t, Event::TxTimer)).expect("rearmed");
        let gap = at - t;
        assert!(gap >= SLOW_TX * 3 / 4 && gap <= SLOW_TX, "slow gap {gap:?}");
        t = at;
    }
    let (mut a, mut b) = up_pair(now);
    assert_eq!(a.tx_interval(), Some(MS * 300));
    for s in [&mut a, &mut b] {
        let mut t = now + Duration::from_secs(1);
        for _ in 0..500 {
            let at = last_tx(&s.handle(t, Event::TxTimer)).expect("rearmed");
            let gap = at - t;
            assert!(gap >= MS * 225 && gap <= MS * 300, "gap {gap:?}");
            t = at;
        }
    }
    // Detect Mult 1: 75–90 % so one late packet cannot end the session.
    let mut one = Session::new(cfg(1000, 1000, 1), 5, 9);
    let mut t = now;
    let mut seen = (Duration::MAX, Duration::ZERO);
    let r = one.start(t);
    t = last_tx(&r).unwrap();
    for _ in 0..1000 {
        let at = last_tx(&one.handle(t, Event::TxTimer)).unwrap();
        let gap = at - t;
        seen = (seen.0.min(gap), seen.1.max(gap));
        t = at;
    }
    assert!(seen.0 >= MS * 750 && seen.1 <= MS * 900, "{seen:?}");
    assert!(seen.1 > MS * 850, "jitter spans the range: {seen:?}");
}

#[test]
fn detection_time_uses_the_remote_multiplier_and_slower_interval() {
    let now = Instant::now();
    let mut a = Session::new(cfg(300, 200, 3), 11, 1);
    let mut b = Session::new(cfg(400, 300, 5), 22, 2);
    let first = sent(&a.start(now));
    b.start(now);
    converse(&mut a, &mut b, now, first);
    assert_eq!((a.state(), b.state()), (State::Up, State::Up));
    // A: B's mult 5 × max(A's rx 200, B's tx 400) = 2 s.
    assert_eq!(a.detection_time(), MS * 2000);
    // B: A's mult 3 × max(B's rx 300, A's tx 300) = 900 ms.
    assert_eq!(b.detection_time(), MS * 900);
    // A sends no faster than B can receive: max(300, 300).
    assert_eq!(a.tx_interval(), Some(MS * 300));
}

#[test]
fn detect_expiry_takes_the_session_down_with_diag_1() {
    let now = Instant::now();
    let (mut a, mut b) = up_pair(now);
    let t = now + MS * 100;
    let p = sent(&b.handle(t + Duration::from_secs(5), Event::TxTimer));
    let r = a.handle(t, Event::Packet(p[0]));
    let deadline = last_detect(&r).expect("detection armed");
    assert_eq!(deadline, t + MS * 900);
    // A timer firing early (a stale one) does nothing.
    assert!(changes(&a.handle(deadline - MS, Event::DetectTimer)).is_empty());
    let r = a.handle(deadline, Event::DetectTimer);
    assert_eq!(
        changes(&r),
        vec![(State::Up, State::Down, Diag::ControlDetectionTimeExpired)]
    );
    assert_eq!(Diag::ControlDetectionTimeExpired.code(), 1);
    let p = sent(&r)[0];
    assert_eq!(
        (p.state, p.diag.code(), p.your_discriminator),
        (State::Down, 1, 0)
    );
    assert_eq!(p.desired_min_tx, SLOW_TX, "back to the slow rate");
    // B hears Down: Neighbor Signaled Session Down, then re-handshakes.
    let r = b.handle(deadline, Event::Packet(p));
    assert_eq!(
        changes(&r),
        vec![(State::Up, State::Down, Diag::NeighborSignaledSessionDown)]
    );
    // One packet, one transition: the next Down starts the handshake again.
    let r = b.handle(deadline, Event::Packet(p));
    assert_eq!(changes(&r), vec![(State::Down, State::Init, Diag::None)]);
}

#[test]
fn remote_admin_down_is_neighbor_signaled_session_down() {
    let now = Instant::now();
    let (mut a, mut b) = up_pair(now);
    let r = b.handle(now, Event::AdminDown);
    assert_eq!(
        changes(&r),
        vec![(State::Up, State::AdminDown, Diag::AdministrativelyDown)]
    );
    let p = sent(&r)[0];
    assert_eq!(p.state, State::AdminDown);
    let r = a.handle(now, Event::Packet(p));
    assert_eq!(
        changes(&r),
        vec![(State::Up, State::Down, Diag::NeighborSignaledSessionDown)]
    );
    assert_eq!(a.local_diag().code(), 3);
    // More AdminDown packets keep A Down (not Init).
    assert!(changes(&a.handle(now, Event::Packet(p))).is_empty());
    assert_eq!(a.state(), State::Down);
    // AdminUp: B restarts from Down and both come back.
    let r = b.handle(now, Event::AdminUp);
    assert_eq!(
        changes(&r),
        vec![(State::AdminDown, State::Down, Diag::None)]
    );
    converse(&mut b, &mut a, now, sent(&r));
    assert_eq!((a.state(), b.state()), (State::Up, State::Up));
}

#[test]
fn poll_final_defers_a_slower_tx_until_answered() {
    let now = Instant::now();
    let (mut a, mut b) = up_pair(now);
    assert!(!a.polling());
    let r = a.handle(now, Event::Reconfigure(cfg(1000, 300, 3)));
    let p = sent(&r)[0];
    assert!(p.poll && p.desired_min_tx == MS * 1000, "{p:?}");
    assert!(a.polling());
    // Until the Final, A keeps sending at the old rate.
    assert_eq!(a.tx_interval(), Some(MS * 300));
    let again = sent(&a.handle(now + Duration::from_secs(1), Event::TxTimer));
    assert!(again[0].poll, "P stays set until F comes back");
    let answer = sent(&b.handle(now, Event::Packet(p)));
    assert_eq!(answer.len(), 1);
    assert!(answer[0].final_ && !answer[0].poll, "{:?}", answer[0]);
    // B's detection time follows A's new tx at once: 3 × 1 s.
    assert_eq!(b.detection_time(), Duration::from_secs(3));
    a.handle(now, Event::Packet(answer[0]));
    assert!(!a.polling());
    assert_eq!(a.tx_interval(), Some(MS * 1000));
}

#[test]
fn poll_final_defers_a_faster_rx_expectation() {
    let now = Instant::now();
    let mut a = Session::new(cfg(300, 300, 3), 11, 1);
    let mut b = Session::new(cfg(100, 100, 3), 22, 2);
    let first = sent(&a.start(now));
    b.start(now);
    converse(&mut a, &mut b, now, first);
    assert_eq!(a.detection_time(), MS * 900);
    a.handle(now, Event::Reconfigure(cfg(300, 100, 3)));
    // B still sends every 300 ms until it sees the Poll: detection stays
    // 3 × 300 ms until the Final...
    assert_eq!(a.detection_time(), MS * 900);
    let poll = sent(&a.handle(now + Duration::from_secs(1), Event::TxTimer))[0];
    assert!(poll.poll);
    let fin = sent(&b.handle(now, Event::Packet(poll)))[0];
    assert!(fin.final_);
    a.handle(now, Event::Packet(fin));
    // ...then 3 × max(100, B's 100).
    assert_eq!(a.detection_time(), MS * 300);
    assert!(!a.polling());
}

#[test]
fn packets_for_another_discriminator_are_ignored() {
    let now = Instant::now();
    let (mut a, mut b) = up_pair(now);
    let mut p = sent(&b.handle(now + Duration::from_secs(1), Event::TxTimer))[0];
    p.your_discriminator = 999;
    p.state = State::Down;
    assert!(a.handle(now, Event::Packet(p)).is_empty());
    assert_eq!(a.state(), State::Up);
}
