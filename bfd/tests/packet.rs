//! The control-packet codec: round trips, every §6.8.6 discard rule, and
//! random bytes that must never panic.

use proptest::prelude::*;
use std::time::Duration;
use tabby_bfd::packet::{ControlPacket, DecodeError, Diag, State};

fn sample() -> ControlPacket {
    ControlPacket {
        diag: Diag::ControlDetectionTimeExpired,
        state: State::Up,
        poll: true,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0102_0304,
        your_discriminator: 0xa0b0_c0d0,
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(250),
        required_min_echo_rx: Duration::ZERO,
    }
}

#[test]
fn encodes_the_rfc_layout() {
    let b = sample().encode();
    assert_eq!(b[0], 0x21, "version 1, diag 1");
    assert_eq!(b[1], 0xe0, "state Up (3) and P");
    assert_eq!(b[2], 3);
    assert_eq!(b[3], 24);
    assert_eq!(&b[4..8], &[1, 2, 3, 4]);
    assert_eq!(&b[8..12], &[0xa0, 0xb0, 0xc0, 0xd0]);
    assert_eq!(u32::from_be_bytes(b[12..16].try_into().unwrap()), 300_000);
    assert_eq!(u32::from_be_bytes(b[16..20].try_into().unwrap()), 250_000);
}

#[test]
fn round_trips_and_ignores_trailing_bytes() {
    let p = sample();
    assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    let mut long = p.encode().to_vec();
    long.extend_from_slice(&[0xff; 8]);
    assert_eq!(ControlPacket::decode(&long), Ok(p));
}

fn with(f: impl FnOnce(&mut [u8; 24])) -> Result<ControlPacket, DecodeError> {
    let mut b = sample().encode();
    f(&mut b);
    ControlPacket::decode(&b)
}

#[test]
fn rejects_what_section_6_8_6_discards() {
    assert_eq!(
        ControlPacket::decode(&[0x20; 23]),
        Err(DecodeError::Truncated(23))
    );
    assert_eq!(with(|b| b[0] = 0x41), Err(DecodeError::Version(2)));
    assert_eq!(
        with(|b| b[3] = 23),
        Err(DecodeError::LengthTooSmall {
            length: 23,
            min: 24
        })
    );
    assert_eq!(
        with(|b| b[3] = 25),
        Err(DecodeError::LengthExceedsPayload {
            length: 25,
            payload: 24
        })
    );
    assert_eq!(with(|b| b[2] = 0), Err(DecodeError::DetectMultZero));
    assert_eq!(with(|b| b[1] |= 0x01), Err(DecodeError::Multipoint));
    assert_eq!(
        with(|b| b[4..8].fill(0)),
        Err(DecodeError::MyDiscriminatorZero)
    );
    assert_eq!(
        with(|b| b[8..12].fill(0)),
        Err(DecodeError::YourDiscriminatorZero(State::Up))
    );
    // Your Discriminator 0 is how a Down session starts.
    let down = with(|b| {
        b[8..12].fill(0);
        b[1] = 0x40;
    });
    assert_eq!(down.map(|p| p.state), Ok(State::Down));
    // A bit: length must cover the auth section, and then we still refuse.
    assert_eq!(
        with(|b| b[1] |= 0x04),
        Err(DecodeError::LengthTooSmall {
            length: 24,
            min: 26
        })
    );
    let mut auth = sample().encode().to_vec();
    auth[1] |= 0x04;
    auth[3] = 28;
    auth.extend_from_slice(&[1, 4, 0, 0]);
    assert_eq!(
        ControlPacket::decode(&auth),
        Err(DecodeError::AuthenticationUnsupported)
    );
}

#[test]
fn diag_names_match_the_rfc() {
    assert_eq!(
        Diag::from_code(1).to_string(),
        "Control Detection Time Expired"
    );
    assert_eq!(
        Diag::from_code(3).to_string(),
        "Neighbor Signaled Session Down"
    );
    assert_eq!(Diag::from_code(9), Diag::Reserved(9));
    for c in 0..32u8 {
        assert_eq!(Diag::from_code(c).code(), c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(p) = ControlPacket::decode(&b) {
            // What decodes re-encodes to the same 24 meaningful bytes.
            let e = p.encode();
            prop_assert_eq!(ControlPacket::decode(&e), Ok(p));
        }
    }

    #[test]
    fn valid_packets_round_trip(
        diag in 0u8..32, state in 0u8..4, flags in 0u8..16, mult in 1u8..=255,
        my in 1u32.., your in 1u32.., tx in any::<u32>(), rx in any::<u32>(), echo in any::<u32>(),
    ) {
        let states = [State::AdminDown, State::Down, State::Init, State::Up];
        let p = ControlPacket {
            diag: Diag::from_code(diag),
            state: states[state as usize],
            poll: flags & 1 != 0,
            final_: flags & 2 != 0,
            control_plane_independent: flags & 4 != 0,
            demand: flags & 8 != 0,
            detect_mult: mult,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx: Duration::from_micros(tx.into()),
            required_min_rx: Duration::from_micros(rx.into()),
            required_min_echo_rx: Duration::from_micros(echo.into()),
        };
        prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }
}
