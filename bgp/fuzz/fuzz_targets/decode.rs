//! Header check + decode over arbitrary bytes for both AS widths; anything
//! that decodes must re-encode, and its re-encoding must decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tabby_bgp::wire::{self, Message, SessionContext};

fuzz_target!(|data: &[u8]| {
    for four_octet_as in [true, false] {
        let ctx = SessionContext { four_octet_as };
        let Ok(Some(len)) = wire::message_len(data) else {
            let _ = wire::decode(data, &ctx);
            continue;
        };
        let Some(msg) = data.get(..len) else { continue };
        match wire::decode(msg, &ctx) {
            Ok(m) => {
                let mut out = Vec::new();
                if wire::encode(&m, &ctx, &mut out).is_ok() {
                    let again = wire::decode(&out, &ctx).expect("re-encoded message decodes");
                    if let (Message::Update(a), Message::Update(b)) = (&m, &again) {
                        if a.treat_as_withdraw.is_none() {
                            assert_eq!(a.nlri, b.nlri);
                            assert_eq!(a.withdrawn, b.withdrawn);
                        }
                    }
                }
            }
            Err(e) => {
                let n = e.notification();
                assert!((1..=7).contains(&n.code), "{e}: {n:?}");
            }
        }
    }
});
