//! The BFD control packet (RFC 5880 §4.1) and the reception checks of
//! §6.8.6 that need nothing but the packet itself.
//!
//! Decoding never panics: every byte from the network is length-checked,
//! and anything §6.8.6 says to discard is a typed [`DecodeError`].
//! Authentication is not implemented, so a packet with the A bit set is
//! discarded ([`DecodeError::AuthenticationUnsupported`]) rather than
//! accepted without checking it.

use std::fmt;
use std::time::Duration;

/// Length of a control packet without an authentication section.
pub const MIN_LEN: usize = 24;
/// With the A bit set the authentication section adds at least 2 octets.
pub const MIN_LEN_AUTH: usize = 26;

/// Session state as carried in the Sta field (RFC 5880 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // birdc spells them like this in `show bfd sessions`.
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Diagnostic code (RFC 5880 §4.1): why the sender's session last left Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9–31: reserved for future use, carried through unchanged.
    Reserved(u8),
}

impl Diag {
    pub fn from_code(c: u8) -> Diag {
        match c & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            n => Diag::Reserved(n),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(n) => n & 0x1f,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RFC 5880 §4.1's names.
        match self {
            Diag::None => f.write_str("No Diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("Control Detection Time Expired"),
            Diag::EchoFunctionFailed => f.write_str("Echo Function Failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("Neighbor Signaled Session Down"),
            Diag::ForwardingPlaneReset => f.write_str("Forwarding Plane Reset"),
            Diag::PathDown => f.write_str("Path Down"),
            Diag::ConcatenatedPathDown => f.write_str("Concatenated Path Down"),
            Diag::AdministrativelyDown => f.write_str("Administratively Down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("Reverse Concatenated Path Down"),
            Diag::Reserved(n) => write!(f, "Reserved ({n})"),
        }
    }
}

/// One control packet. Intervals are whole microseconds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub required_min_echo_rx: Duration,
}

/// Why a received packet was discarded (RFC 5880 §6.8.6), naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {0} bytes is shorter than a BFD control packet (24)")]
    Truncated(usize),
    #[error("version {0}: only BFD version 1 is spoken")]
    Version(u8),
    #[error("length field {length} is below the minimum of {min}")]
    LengthTooSmall { length: u8, min: usize },
    #[error("length field {length} exceeds the {payload}-byte payload")]
    LengthExceedsPayload { length: u8, payload: usize },
    #[error("detect mult is 0")]
    DetectMultZero,
    #[error("multipoint (M) bit set")]
    Multipoint,
    #[error("my discriminator is 0")]
    MyDiscriminatorZero,
    #[error("your discriminator is 0 in state {0} (allowed only in Down or AdminDown)")]
    YourDiscriminatorZero(State),
    #[error("authentication (A bit) is not supported; packet discarded")]
    AuthenticationUnsupported,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ControlPacket {
    /// Decodes and checks one UDP payload.
    pub fn decode(b: &[u8]) -> Result<ControlPacket, DecodeError> {
        if b.len() < MIN_LEN {
            return Err(DecodeError::Truncated(b.len()));
        }
        let version = b[0] >> 5;
        if version != 1 {
            return Err(DecodeError::Version(version));
        }
        let flags = b[1];
        let auth = flags & 0x04 != 0;
        let length = b[3];
        let min = if auth { MIN_LEN_AUTH } else { MIN_LEN };
        if (length as usize) < min {
            return Err(DecodeError::LengthTooSmall { length, min });
        }
        if length as usize > b.len() {
            return Err(DecodeError::LengthExceedsPayload {
                length,
                payload: b.len(),
            });
        }
        let detect_mult = b[2];
        if detect_mult == 0 {
            return Err(DecodeError::DetectMultZero);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let state = State::from_bits(flags >> 6);
        let my_discriminator = word(b, 4);
        let your_discriminator = word(b, 8);
        if my_discriminator == 0 {
            return Err(DecodeError::MyDiscriminatorZero);
        }
        if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::YourDiscriminatorZero(state));
        }
        if auth {
            return Err(DecodeError::AuthenticationUnsupported);
        }
        Ok(ControlPacket {
            diag: Diag::from_code(b[0]),
            state,
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            control_plane_independent: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: Duration::from_micros(word(b, 12).into()),
            required_min_rx: Duration::from_micros(word(b, 16).into()),
            required_min_echo_rx: Duration::from_micros(word(b, 20).into()),
        })
    }

    /// The 24 bytes on the wire (no authentication section). Intervals
    /// beyond u32 microseconds (71 minutes) saturate.
    pub fn encode(&self) -> [u8; MIN_LEN] {
        let mut b = [0u8; MIN_LEN];
        b[0] = (1 << 5) | self.diag.code();
        b[1] = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = MIN_LEN as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&us(self.desired_min_tx).to_be_bytes());
        b[16..20].copy_from_slice(&us(self.required_min_rx).to_be_bytes());
        b[20..24].copy_from_slice(&us(self.required_min_echo_rx).to_be_bytes());
        b
    }
}
