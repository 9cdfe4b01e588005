//! Wire bytes and transport/timer events into one peer's session FSM and
//! the RIB, the way the speaker drives them: decoded messages become FSM
//! events, UPDATEs on an Established session go into the RIB and are
//! exported to a second, established peer. Input: a byte < 0x80 picks a
//! non-message event; a byte >= 0x80 is followed by a 2-byte length and that
//! many bytes of one BGP message.
//!
//! Checks beyond "no panic": every message the FSM asks to send encodes;
//! NOTIFICATIONs carry an RFC 4271 code; a session that ends without
//! graceful restart leaves none of the peer's prefixes in the RIB; every
//! export the RIB produces encodes for the other peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::fsm::notify::max_prefixes_cease;
use tabby_bgp::fsm::{build_open, Action, Event, Fsm, State};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::rib::{Rib, RibChanges, SessionInfo};
use tabby_bgp::wire::{self, Message, SessionContext};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const FUZZED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

struct Harness {
    fsm: Fsm,
    rib: Rib,
    ctx: SessionContext,
}

impl Harness {
    fn new(byte: u8) -> Harness {
        let local = LocalConfig::new(LOCAL, 64512);
        let mut fuzzed = PeerConfig::new(IpAddr::V4(FUZZED), 65001);
        fuzzed.passive = byte & 1 == 1;
        fuzzed.max_prefixes = if byte & 2 == 2 { 3 } else { 0 };
        fuzzed.route_reflector_client = byte & 4 == 4;
        let mut rib = Rib::new(local.clone());
        let _ = rib.set_peer(fuzzed.clone());
        // A second peer with an Established session so exports are built.
        let other = PeerConfig::new(IpAddr::V4(OTHER), 64512);
        let _ = rib.set_peer(other.clone());
        let mut other_fsm = Fsm::new(local.clone(), other);
        let their_open = build_open(
            &LocalConfig::new(OTHER, 64512),
            &PeerConfig::new(IpAddr::V4(LOCAL), 64512),
        );
        let mut negotiated = None;
        for e in [
            Event::ManualStart,
            Event::TcpConnectionAcknowledged,
            Event::BgpOpen(their_open),
            Event::KeepAliveMsg,
        ] {
            for a in other_fsm.handle(e) {
                if let Action::SessionUp(n) = a {
                    negotiated = Some(n);
                }
            }
        }
        let negotiated = negotiated.expect("the second peer's session comes up");
        let _ = rib.session_up(
            IpAddr::V4(OTHER),
            SessionInfo {
                negotiated,
                next_hop_v4: Some(LOCAL),
                next_hop_v6: Some("fd00::1".parse().unwrap()),
            },
        );
        Harness {
            fsm: Fsm::new(local, fuzzed),
            rib,
            ctx: SessionContext {
                four_octet_as: true,
                extended_message: false,
            },
        }
    }

    fn event(&mut self, event: Event) {
        for action in self.fsm.handle(event) {
            match action {
                Action::Send(m) => {
                    if let Message::Notification(n) = &m {
                        assert!((1..=7).contains(&n.code), "{n:?}");
                    }
                    let mut out = Vec::new();
                    wire::encode(&m, &self.ctx, &mut out).expect("FSM message encodes");
                }
                Action::SessionUp(n) => {
                    self.ctx.four_octet_as = n.four_octet_as;
                    let c = self.rib.session_up(
                        IpAddr::V4(FUZZED),
                        SessionInfo {
                            negotiated: n,
                            next_hop_v4: Some(LOCAL),
                            next_hop_v6: None,
                        },
                    );
                    self.exports(c);
                }
                Action::SessionDown(reason) => {
                    let gr = reason.graceful_restart_time;
                    let c = self.rib.session_down(IpAddr::V4(FUZZED), gr);
                    self.exports(c);
                    if gr.is_none() {
                        let counts = self.rib.peer_counts(IpAddr::V4(FUZZED));
                        assert_eq!(counts.map(|c| c.received), Some(0), "{reason:?}");
                    }
                }
                _ => {}
            }
        }
    }

    /// Encodes what the RIB exports, and ends the session the way the
    /// speaker does when the peer went over its prefix limit.
    fn exports(&mut self, changes: RibChanges) {
        let ctx = SessionContext {
            four_octet_as: true,
            extended_message: false,
        };
        for e in &changes.exports {
            for u in e.to_updates() {
                let mut out = Vec::new();
                wire::encode(&Message::Update(u), &ctx, &mut out).expect("export encodes");
            }
        }
        if let Some(limit) = changes.max_prefix_exceeded {
            if self.fsm.state() == State::Established {
                self.event(Event::MessageError(max_prefixes_cease(limit)));
            }
        }
    }

    fn message(&mut self, bytes: &[u8]) {
        let msg = match wire::decode(bytes, &self.ctx) {
            Ok(m) => m,
            Err(e) => {
                self.event(Event::MessageError(e.notification()));
                return;
            }
        };
        let up = self.fsm.state() == State::Established;
        match msg {
            Message::Open(o) => self.event(Event::BgpOpen(o)),
            Message::Keepalive => self.event(Event::KeepAliveMsg),
            Message::Notification(n) => self.event(Event::NotifMsg(n)),
            Message::Update(u) => {
                self.event(Event::UpdateMsg);
                if up && self.fsm.state() == State::Established {
                    let c = self.rib.apply_update(IpAddr::V4(FUZZED), &u);
                    self.exports(c);
                }
            }
            Message::RouteRefresh(_) => {
                self.event(Event::RouteRefreshMsg);
                if up && self.fsm.state() == State::Established {
                    let c = self.rib.route_refresh(IpAddr::V4(FUZZED));
                    self.exports(c);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut data)) = data.split_first() else {
        return;
    };
    let mut h = Harness::new(first);
    while let Some((&b, rest)) = data.split_first() {
        data = rest;
        if b >= 0x80 {
            let Some((len, rest)) = data.split_first_chunk::<2>() else {
                return;
            };
            let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
            let (msg, rest) = rest.split_at(len);
            data = rest;
            h.message(msg);
            continue;
        }
        let event = match b % 13 {
            0 => Event::ManualStart,
            1 => Event::ManualStartPassive,
            2 => Event::ManualStop,
            3 => Event::AutomaticStart,
            4 => Event::ConnectRetryTimerExpires,
            5 => Event::HoldTimerExpires,
            6 => Event::KeepaliveTimerExpires,
            7 => Event::TcpConnectionConfirmed,
            8 => Event::TcpConnectionAcknowledged,
            9 => Event::TcpConnectionFails("reset".into()),
            10 => Event::OpenCollisionDump,
            11 => {
                let c = h.rib.restart_timer_expired(IpAddr::V4(FUZZED));
                h.exports(c);
                continue;
            }
            _ => {
                let c = h.rib.remove_peer(IpAddr::V4(OTHER));
                h.exports(c);
                continue;
            }
        };
        h.event(event);
    }
});
