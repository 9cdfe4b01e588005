//! A bounded run of random and mutated messages: never a panic, always
//! Ok or a NOTIFICATION.

mod common_wire;
mod wire_gen;

use common_wire::msg;
use proptest::prelude::*;
use tabby_bgp::wire::*;
use wire_gen::*;

fn check_any(bytes: &[u8]) {
    for four in [true, false] {
        let c = ctx(four);
        match message_len(bytes) {
            Ok(Some(len)) => {
                if let Some(m) = bytes.get(..len) {
                    check_decode(m, &c);
                }
            }
            Ok(None) => assert!(bytes.len() < 19),
            Err(e) => assert!((1..=7).contains(&e.notification().code)),
        }
        check_decode(bytes, &c);
    }
}

fn check_decode(m: &[u8], c: &SessionContext) {
    match decode(m, c) {
        Ok(msg) => {
            // Whatever decodes re-encodes (if it fits) and decodes again.
            let mut out = Vec::new();
            if encode(&msg, c, &mut out).is_ok() {
                decode(&out, c).expect("re-encoded message decodes");
            }
        }
        Err(e) => {
            let n = e.notification();
            assert!((1..=7).contains(&n.code), "{e}: {n:?}");
            assert!(
                matches!(
                    e.action(),
                    Rfc7606Action::SessionReset | Rfc7606Action::Ignore
                ),
                "{e}"
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    SetByte(usize, u8),
    SetLen16(usize, u16),
}

fn apply(mut m: Vec<u8>, muts: &[Mutation], fix_header: bool) -> Vec<u8> {
    for mu in muts {
        let n = m.len().max(1);
        match *mu {
            Mutation::Flip(i, bit) => {
                if let Some(b) = m.get_mut(i % n) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate(i) => m.truncate(i % n),
            Mutation::SetByte(i, v) => {
                if let Some(b) = m.get_mut(i % n) {
                    *b = v;
                }
            }
            Mutation::SetLen16(i, v) => {
                let i = i % n;
                if let Some(s) = m.get_mut(i..i + 2) {
                    s.copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
    if fix_header && m.len() >= 19 {
        let len = m.len() as u16;
        m[16..18].copy_from_slice(&len.to_be_bytes());
    }
    m
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let small_len = prop_oneof![0u16..64, 0u16..=u16::MAX];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<usize>(), small_len).prop_map(|(i, v)| Mutation::SetLen16(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_messages_never_panic(m in message(true),
                                    muts in proptest::collection::vec(mutation(), 1..4),
                                    fix in any::<bool>()) {
        let Some(bytes) = encode_one(&m, true) else { return Ok(()) };
        check_any(&apply(bytes, &muts, fix));
    }

    #[test]
    fn random_bodies_never_panic(t in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_any(&msg(t, &body));
    }

    #[test]
    fn random_attribute_lists_never_panic(attrs in proptest::collection::vec(any::<u8>(), 0..120),
                                          nlri in proptest::collection::vec(any::<u8>(), 0..12)) {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        b.extend_from_slice(&nlri);
        check_any(&msg(2, &b));
    }
}
