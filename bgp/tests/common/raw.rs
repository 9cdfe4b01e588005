//! A scripted BGP peer on a real TCP socket, built from the crate's own
//! codec: it sends exactly what a test tells it to (an OPEN with odd
//! fields, no OPEN at all, an oversized UPDATE), which no real daemon does
//! on demand. Runs inside a namespace runtime (`inproc::in_ns`).

use std::time::Duration;
use tabby_bgp::transport::{connect, ConnectOptions, MessageReader, ReadError};
use tabby_bgp::wire::{self, Capability, Family, Message, Open, SessionContext};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

pub struct RawPeer {
    reader: MessageReader,
    writer: OwnedWriteHalf,
    pub ctx: SessionContext,
    /// Tabby's OPEN, once read.
    pub their_open: Option<Open>,
}

/// What a raw peer read, or why it read nothing. Test-only and short
/// lived, so the large `Message` stays unboxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Got {
    Msg(Message),
    Closed(String),
    Timeout,
}

impl Got {
    pub fn notification(&self) -> Option<(u8, u8)> {
        match self {
            Got::Msg(Message::Notification(n)) => Some((n.code, n.subcode)),
            _ => None,
        }
    }
}

pub fn open(asn: u32, hold: u16, id: &str, extended: bool) -> Open {
    let mut capabilities = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ];
    if extended {
        capabilities.push(Capability::ExtendedMessage);
    }
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(wire::AS_TRANS),
        hold_time: hold,
        bgp_id: id.parse().unwrap(),
        capabilities,
    }
}

impl RawPeer {
    /// Connects from `from` to `to`:179.
    pub async fn connect(from: &str, to: &str) -> RawPeer {
        let opts = ConnectOptions {
            source: Some(from.parse().unwrap()),
            password: None,
            ttl_security: None,
        };
        let to = format!("{to}:179").parse().unwrap();
        let s = connect(to, &opts, Duration::from_secs(3))
            .await
            .expect("raw peer connects");
        s.set_nodelay(true).ok();
        let (r, w) = s.into_split();
        RawPeer {
            reader: MessageReader::new(r),
            writer: w,
            ctx: SessionContext::default(),
            their_open: None,
        }
    }

    pub async fn send(&mut self, m: &Message) {
        let mut buf = Vec::new();
        wire::encode(m, &self.ctx, &mut buf).expect("raw peer encodes");
        self.send_bytes(&buf).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes).await;
    }

    /// The next message within `secs`.
    pub async fn next(&mut self, secs: f64) -> Got {
        let read = self.reader.next(&self.ctx);
        match tokio::time::timeout(Duration::from_secs_f64(secs), read).await {
            Err(_) => Got::Timeout,
            Ok(Ok(m)) => {
                if let Message::Open(o) = &m {
                    self.their_open = Some(o.clone());
                }
                Got::Msg(m)
            }
            Ok(Err(ReadError::Closed)) => Got::Closed("closed".into()),
            Ok(Err(e)) => Got::Closed(e.to_string()),
        }
    }

    /// Reads until a message `want` accepts, a NOTIFICATION, EOF or `secs`.
    pub async fn wait_for(&mut self, secs: f64, want: impl Fn(&Message) -> bool) -> Got {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left.as_secs_f64()).await {
                Got::Msg(m) if want(&m) || matches!(m, Message::Notification(_)) => {
                    return Got::Msg(m)
                }
                Got::Msg(_) => continue,
                other => return other,
            }
        }
    }

    /// OPEN, their OPEN, KEEPALIVE, their KEEPALIVE: Ok once Established,
    /// else what came instead.
    pub async fn establish(&mut self, o: Open) -> Result<(), Box<Got>> {
        let extended = o.capabilities.contains(&Capability::ExtendedMessage);
        self.send(&Message::Open(o)).await;
        match self.wait_for(5.0, |m| matches!(m, Message::Open(_))).await {
            Got::Msg(Message::Open(theirs)) => {
                self.ctx.four_octet_as = true;
                self.ctx.extended_message =
                    extended && theirs.capabilities.contains(&Capability::ExtendedMessage);
            }
            other => return Err(Box::new(other)),
        }
        self.send(&Message::Keepalive).await;
        match self
            .wait_for(5.0, |m| matches!(m, Message::Keepalive))
            .await
        {
            Got::Msg(Message::Keepalive) => Ok(()),
            other => Err(Box::new(other)),
        }
    }
}
