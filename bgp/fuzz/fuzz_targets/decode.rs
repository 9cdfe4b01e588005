//! Header check + decode over arbitrary bytes for both AS widths; anything
//! that decodes must re-encode, its re-encoding must decode again, and its
//! prefixes must survive the UPDATE packer.
#![no_main]

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use tabby_bgp::wire::{self, Message, SessionContext, Update};

/// Decodes every message of a packed buffer; returns the IPv4 NLRI and
/// withdrawn prefixes seen.
fn unpack(mut buf: &[u8], ctx: &SessionContext) -> (usize, usize) {
    let (mut nlri, mut withdrawn) = (0, 0);
    while !buf.is_empty() {
        let len = wire::message_len(buf).unwrap().expect("whole header");
        let (m, rest) = buf.split_at(len);
        match wire::decode(m, ctx).expect("packed message decodes") {
            Message::Update(u) => {
                nlri += u.nlri.len();
                withdrawn += u.withdrawn.len();
                if let Some(r) = u.attrs.mp_reach {
                    nlri += r.nlri.len();
                }
                if let Some(w) = u.attrs.mp_unreach {
                    withdrawn += w.withdrawn.len();
                }
            }
            other => panic!("packer wrote {other:?}"),
        }
        buf = rest;
    }
    (nlri, withdrawn)
}

fn repack(u: &Update, ctx: &SessionContext) {
    let mut prefixes: Vec<IpNet> = u.nlri.iter().copied().map(IpNet::V4).collect();
    if let Some(r) = &u.attrs.mp_reach {
        prefixes.extend(r.nlri.iter().copied());
    }
    let mut out = Vec::new();
    if wire::encode_announce(&u.attrs, &prefixes, ctx, &mut out).is_ok() {
        assert_eq!(unpack(&out, ctx).0, prefixes.len());
    }
    out.clear();
    wire::encode_withdraw(&prefixes, &mut out);
    assert_eq!(unpack(&out, ctx).1, prefixes.len());
}

fuzz_target!(|data: &[u8]| {
    for four_octet_as in [true, false] {
        let ctx = SessionContext {
            four_octet_as,
            ..SessionContext::default()
        };
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
                if let Message::Update(u) = &m {
                    repack(u, &ctx);
                }
            }
            Err(e) => {
                let n = e.notification();
                assert!((1..=7).contains(&n.code), "{e}: {n:?}");
            }
        }
    }
});
