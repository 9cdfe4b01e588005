//! The BFD control-packet codec and session FSM over arbitrary bytes:
//! whatever decodes re-encodes to itself, and a session fed decoded
//! packets and timer events in any order at any pace never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tabby_bfd::packet::ControlPacket;
use tabby_bfd::session::{Event, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ControlPacket::decode(data) {
        assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }
    let config = SessionConfig {
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(300),
        detect_mult: 3,
    };
    let mut s = Session::new(config, 1, 7);
    let mut now = Instant::now();
    s.start(now);
    // Each chunk: one byte of op and time step, then a would-be packet.
    for chunk in data.chunks(25) {
        let Some((&op, rest)) = chunk.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(op >> 2) * 20);
        let event = match op & 3 {
            0 => Event::TxTimer,
            1 => Event::DetectTimer,
            2 if rest.first().is_some_and(|b| b & 1 == 1) => Event::AdminDown,
            2 => Event::AdminUp,
            _ => match ControlPacket::decode(rest) {
                Ok(p) => Event::Packet(p),
                Err(_) => continue,
            },
        };
        s.handle(now, event);
        assert!(s.detection_time() <= Duration::from_secs(255 * 4295));
    }
});
