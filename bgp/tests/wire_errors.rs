//! Malformed input, part one: the zettabgp regressions and the header,
//! OPEN and NOTIFICATION errors of RFC 4271 §6.1, §6.2. UPDATE errors
//! (RFC 4271 §6.3 / RFC 7606) are in wire_errors_update.rs, random and
//! mutated messages in wire_errors_random.rs.

mod common_wire;

use common_wire::*;
use tabby_bgp::wire::*;

// --- The inputs that break zettabgp 0.6.0 (../shared/CRATES.md). ---

#[test]
fn zettabgp_truncated_as_path_segment_30_bytes() {
    // 30 octets: the AS_PATH segment claims one 4-octet AS and has two octets.
    let m = msg(2, &hex("00 00 00 07 40 02 04 02 01 fc 00"));
    assert_eq!(m.len(), 30);
    let Message::Update(u) = decode(&m, &ctx4()).unwrap() else {
        panic!()
    };
    let why = u.treat_as_withdraw.unwrap();
    assert!(why.contains("AS path"), "{why}");
    // One stray octet after a valid segment, with routes to withdraw.
    let why = withdrawn(&update_with(&hex(
        "40 01 01 00 40 02 07 02 01 00 00 fc 00 05 40 03 04 0a 00 00 01",
    )));
    assert!(why.contains("segment header cut short"), "{why}");
    // The error itself maps to 3/11.
    let e = DecodeError::MalformedAsPath {
        code: 2,
        reason: String::new(),
    };
    assert_eq!(code(&e.notification()), (3, 11));
}

#[test]
fn zettabgp_attribute_header_cut_short() {
    // RFC 7606 §4: the total attribute length still finds the NLRI.
    let why = withdrawn(&good_plus("c0 08"));
    assert!(why.contains("header cut short"), "{why}");
    let why = withdrawn(&good_plus("d0 08 00"));
    assert!(why.contains("header cut short"), "{why}");
    let why = withdrawn(&good_plus("c0 08 08 fc 00"));
    assert!(why.contains("runs past"), "{why}");
}

#[test]
fn zettabgp_mp_reach_next_hop_past_the_end() {
    let m = update_with(&hex("80 0e 08 00 02 01 20 20 01 0d b8"));
    let (e, n) = reset(&m, &ctx4());
    assert!(e.to_string().contains("next hop length 32"), "{e}");
    assert_eq!(code(&n), (3, 9));
    assert_eq!(
        n.data,
        hex("80 0e 08 00 02 01 20 20 01 0d b8"),
        "data is the attribute"
    );
    // And MP_UNREACH with a prefix running past the end.
    let (_, n) = reset(&update_with(&hex("80 0f 05 00 02 01 40 20")), &ctx4());
    assert_eq!(code(&n), (3, 9));
}

#[test]
fn zettabgp_header_length_below_19() {
    for len in [0u16, 1, 18] {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&len.to_be_bytes());
        m.push(4);
        let e = message_len(&m).unwrap_err();
        let n = e.notification();
        assert_eq!(code(&n), (1, 2));
        assert_eq!(n.data, len.to_be_bytes().to_vec());
        assert!(decode(&m, &ctx4()).is_err());
    }
}

#[test]
fn zettabgp_originator_id_of_length_1() {
    let why = withdrawn(&good_plus("80 09 01 01"));
    assert!(why.contains("attribute 9: length 1"), "{why}");
}

// --- Header (RFC 4271 §6.1). ---

#[test]
fn header_errors() {
    assert_eq!(message_len(&[0xff; 18]).unwrap(), None);
    let mut m = msg(4, &[]);
    m[3] = 0;
    assert_eq!(code(&message_len(&m).unwrap_err().notification()), (1, 1));
    let m = msg(9, &[]);
    let n = message_len(&m).unwrap_err().notification();
    assert_eq!((n.code, n.subcode, n.data), (1, 3, vec![9]));
    for (t, body_len) in [(4u8, 1usize), (5, 3), (5, 5), (3, 1), (1, 9), (2, 3)] {
        let m = msg(t, &vec![0; body_len]);
        let e = message_len(&m).unwrap_err();
        assert_eq!(code(&e.notification()), (1, 2), "type {t} body {body_len}");
    }
    let mut big = msg(2, &[0; 4077]);
    assert_eq!(message_len(&big).unwrap(), Some(4096));
    big.push(0);
    big[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(code(&message_len(&big).unwrap_err().notification()), (1, 2));
    // decode wants exactly one whole message.
    let mut two = msg(4, &[]);
    two.extend(msg(4, &[]));
    assert!(decode(&two, &ctx4()).is_err());
    assert!(decode(&two[..10], &ctx4()).is_err());
}

// --- OPEN (RFC 4271 §6.2). ---

fn open_body(version: u8, hold: u16, id: [u8; 4], params: &str) -> Vec<u8> {
    let p = hex(params);
    let mut b = vec![version, 0xfd, 0xe9];
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(p.len() as u8);
    b.extend_from_slice(&p);
    msg(1, &b)
}

#[test]
fn open_errors() {
    let (_, n) = reset(&open_body(3, 90, [1, 1, 1, 1], ""), &ctx4());
    assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
    for hold in [1, 2] {
        let (e, n) = reset(&open_body(4, hold, [1, 1, 1, 1], ""), &ctx4());
        assert_eq!(code(&n), (2, 6), "{e}");
    }
    for id in [[0, 0, 0, 0], [224, 0, 0, 5], [255, 255, 255, 255]] {
        assert_eq!(code(&reset(&open_body(4, 90, id, ""), &ctx4()).1), (2, 3));
    }
    assert_eq!(
        code(&reset(&open_body(4, 90, [1, 1, 1, 1], "01 02 00 00"), &ctx4()).1),
        (2, 4)
    );
    // Capability lengths that overrun their parameter, and bad fixed sizes.
    for params in [
        "02 03 01 04 00",
        "02 02 41 02",
        "02 06 01 03 00 01 00",
        "02 04 40 03 00 78",
    ] {
        let (e, n) = reset(&open_body(4, 90, [1, 1, 1, 1], params), &ctx4());
        assert_eq!(code(&n), (2, 0), "{params}: {e}");
    }
    // Hold time 0 and 3 are fine; an OPEN with no parameters too.
    assert!(decode(&open_body(4, 0, [1, 1, 1, 1], ""), &ctx4()).is_ok());
    assert!(decode(&open_body(4, 3, [1, 1, 1, 1], ""), &ctx4()).is_ok());
    // The FSM's constructors.
    assert_eq!(
        code(&DecodeError::bad_peer_as(65001, 65002).notification()),
        (2, 2)
    );
    let n = DecodeError::unsupported_capability(65, &[0, 0, 0xfd, 0xe9]).notification();
    assert_eq!(
        (n.code, n.subcode, n.data),
        (2, 7, hex("41 04 00 00 fd e9"))
    );
}

#[test]
fn notification_and_route_refresh() {
    let m = msg(3, &[6, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
    let Message::Notification(n) = decode(&m, &ctx4()).unwrap() else {
        panic!()
    };
    assert_eq!(n.data, vec![1, 2, 3, 4, 5, 6, 7, 8], "data is not capped");
    let e = decode(&msg(5, &[0, 1, 0, 128]), &ctx4()).unwrap_err();
    assert_eq!(e.action(), Rfc7606Action::Ignore);
}
