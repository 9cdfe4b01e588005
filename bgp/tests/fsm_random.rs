//! Random event sequences against the FSM: never a panic, and the
//! invariants the transport relies on hold after every event.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::fsm::{Action, Event, Fsm, State, TimerKind};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::wire::{Capability, Family, GracefulRestartFamily, Message, Notification, Open};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_open(rng: &mut Rng) -> Open {
    let asn = [64512, 65001, 4_200_000_000][rng.below(3) as usize];
    let mut capabilities = vec![];
    if rng.below(4) != 0 {
        capabilities.push(Capability::FourOctetAs(asn));
    }
    if rng.below(2) == 0 {
        capabilities.push(Capability::Multiprotocol(Family::IPV6_UNICAST));
    }
    if rng.below(2) == 0 {
        capabilities.push(Capability::GracefulRestart {
            restarting: rng.below(2) == 0,
            restart_time: rng.below(4096) as u16,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: rng.below(2) == 0,
            }],
        });
    }
    Open {
        version: [4, 4, 4, 3][rng.below(4) as usize],
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: [0, 1, 2, 3, 9, 90, 65535][rng.below(7) as usize],
        bgp_id: [
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 0, 0, 1),
        ][rng.below(3) as usize],
        capabilities,
    }
}

fn random_event(rng: &mut Rng) -> Event {
    let n = |rng: &mut Rng| Notification {
        code: rng.below(8) as u8,
        subcode: rng.below(12) as u8,
        data: vec![],
    };
    // Weighted towards the happy path so sessions do get established.
    match rng.below(40) {
        0 => Event::ManualStart,
        1 => Event::ManualStartPassive,
        2 => Event::ManualStop,
        3..=6 => Event::AutomaticStart,
        7 => Event::ConnectRetryTimerExpires,
        8 => Event::HoldTimerExpires,
        9 | 10 => Event::KeepaliveTimerExpires,
        11..=14 => Event::TcpConnectionConfirmed,
        15..=18 => Event::TcpConnectionAcknowledged,
        19 => Event::TcpConnectionFails("reset".into()),
        20..=22 => Event::BgpOpen(random_open(rng)),
        23..=26 => Event::BgpOpen(good_open(rng)),
        27 => Event::MessageError(n(rng)),
        28 => Event::NotifMsg(n(rng)),
        29..=35 => Event::KeepAliveMsg,
        36 | 37 => Event::UpdateMsg,
        38 => Event::RouteRefreshMsg,
        _ => Event::OpenCollisionDump,
    }
}

fn good_open(rng: &mut Rng) -> Open {
    let mut open = random_open(rng);
    open.version = 4;
    open.my_as = 64512;
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    open.bgp_id = Ipv4Addr::new(10, 0, 0, 2);
    if matches!(open.hold_time, 1 | 2) {
        open.hold_time = 0;
    }
    open
}

fn run(passive: bool, seed: u64) {
    let local = LocalConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512);
    let mut cfg = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 64512);
    cfg.passive = passive;
    let mut fsm = Fsm::new(local, cfg);
    let mut rng = Rng(seed);
    let mut timers: HashSet<TimerKind> = HashSet::new();
    let mut sessions = 0;
    for _ in 0..50_000 {
        let before = fsm.state();
        let event = random_event(&mut rng);
        let actions = fsm.handle(event);
        let after = fsm.state();
        let ups = actions
            .iter()
            .filter(|a| matches!(a, Action::SessionUp(_)))
            .count();
        let downs = actions
            .iter()
            .filter(|a| matches!(a, Action::SessionDown(_)))
            .count();
        let entered = before != State::Established && after == State::Established;
        let left = before == State::Established && after != State::Established;
        sessions += usize::from(entered);
        assert_eq!(
            ups,
            usize::from(entered),
            "{before:?}->{after:?} {actions:?}"
        );
        assert_eq!(
            downs,
            usize::from(left),
            "{before:?}->{after:?} {actions:?}"
        );
        if passive {
            assert!(!actions.contains(&Action::Connect));
        }
        let opens = actions
            .iter()
            .filter(|a| matches!(a, Action::Send(Message::Open(_))))
            .count();
        assert_eq!(
            opens,
            usize::from(after == State::OpenSent && before != State::OpenSent)
        );
        for a in &actions {
            match a {
                Action::StartTimer(k, _) => {
                    timers.insert(*k);
                }
                Action::StopTimer(k) => {
                    timers.remove(k);
                }
                _ => {}
            }
        }
        if after == State::Established || after == State::OpenConfirm {
            assert!(fsm.negotiated().is_some());
        } else {
            assert!(fsm.negotiated().is_none());
        }
        if after == State::Idle {
            for k in [
                TimerKind::ConnectRetry,
                TimerKind::Hold,
                TimerKind::Keepalive,
            ] {
                assert!(!timers.contains(&k), "{k:?} left running in Idle");
            }
        }
        if after == State::Established {
            let hold = fsm.negotiated().unwrap().hold_time;
            assert_eq!(timers.contains(&TimerKind::Hold), hold > 0);
        }
    }
    assert!(sessions > 20, "only {sessions} sessions established");
}

#[test]
fn random_events_keep_the_invariants_active() {
    for seed in 1..=4 {
        run(false, 0x9e37_79b9 * seed);
    }
}

#[test]
fn random_events_keep_the_invariants_passive() {
    for seed in 1..=4 {
        run(true, 0x85eb_ca6b * seed);
    }
}
