//! Shared parts of the benchmark's replay feeder and counting monitor:
//! argument parsing, the OPEN/KEEPALIVE handshake, a message reader and
//! keepalives. Benchmark-only: no shipped crate depends on this one.
//! Blocking std sockets and one thread per job keep the tools simple and
//! far faster than any speaker they measure.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tabby_bgp::wire::{
    self, Capability, Family, Message, Open, SessionContext, AS_TRANS, BGP_VERSION,
};

/// Hold time we offer; the peer's smaller one wins, and keepalives go out
/// every few seconds, well inside any negotiated hold time.
const HOLD_TIME: u16 = 240;
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// `--name value` pairs; a name may repeat.
pub struct Args(Vec<(String, String)>);

impl Args {
    pub fn parse() -> Result<Args> {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let mut out = Vec::new();
        let mut it = raw.into_iter();
        while let Some(k) = it.next() {
            let name = k
                .strip_prefix("--")
                .ok_or_else(|| anyhow!("expected --NAME VALUE, got {k:?}"))?;
            let v = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
            out.push((name.to_string(), v));
        }
        Ok(Args(out))
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.all(name).last().copied()
    }

    pub fn get<T: std::str::FromStr>(&self, name: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let v = self
            .opt(name)
            .ok_or_else(|| anyhow!("--{name} is required"))?;
        v.parse()
            .map_err(|e| anyhow!("--{name} {v:?}: expected a value of the right kind: {e}"))
    }

    pub fn get_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.opt(name) {
            None => Ok(default),
            Some(_) => self.get(name),
        }
    }
}

/// Seconds since the epoch, microsecond resolution: the feeder's and the
/// monitor's clocks are the same machine's, so the script subtracts them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whole BGP messages from a stream, read in large chunks.
pub struct Reader {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    pub fn new(s: TcpStream) -> Reader {
        Reader {
            s,
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
        }
    }

    /// The next message, header included; `None` at end of stream.
    pub fn next_message(&mut self) -> Result<Option<&[u8]>> {
        loop {
            let have = &self.buf[self.start..self.end];
            if let Some(len) = wire::message_len(have).map_err(|e| anyhow!("framing: {e}"))? {
                if have.len() >= len {
                    let at = self.start;
                    self.start += len;
                    return Ok(Some(&self.buf[at..at + len]));
                }
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.s.read(&mut self.buf[self.end..]).context("read")?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }
}

pub struct Session {
    pub ctx: SessionContext,
    pub reader: Reader,
    /// Shared with the keepalive thread, which writes whole messages only.
    pub writer: Arc<Mutex<TcpStream>>,
}

fn our_open(asn: u32, router_id: Ipv4Addr) -> Open {
    Open {
        version: BGP_VERSION,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: HOLD_TIME,
        bgp_id: router_id,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    }
}

/// OPEN, KEEPALIVE both ways; then a thread keeps the session alive.
pub fn handshake(s: TcpStream, asn: u32, router_id: Ipv4Addr) -> Result<Session> {
    s.set_nodelay(true).ok();
    let mut out = Vec::new();
    let ctx0 = SessionContext::default();
    wire::encode(&Message::Open(our_open(asn, router_id)), &ctx0, &mut out)?;
    wire::encode(&Message::Keepalive, &ctx0, &mut out)?;
    let mut w = s.try_clone()?;
    w.write_all(&out).context("send OPEN")?;
    let mut reader = Reader::new(s.try_clone()?);
    let mut ctx = ctx0;
    let mut got_open = false;
    loop {
        let Some(m) = reader.next_message()? else {
            bail!("peer closed the connection during the handshake");
        };
        match wire::decode(m, &ctx0).map_err(|e| anyhow!("handshake: {e}"))? {
            Message::Open(o) => {
                ctx.four_octet_as = o
                    .capabilities
                    .iter()
                    .any(|c| matches!(c, Capability::FourOctetAs(_)));
                got_open = true;
            }
            Message::Keepalive if got_open => break,
            Message::Notification(n) => {
                bail!("peer sent NOTIFICATION {}/{}", n.code, n.subcode)
            }
            other => bail!("unexpected message in the handshake: {other:?}"),
        }
    }
    let writer = Arc::new(Mutex::new(w));
    let ka = Arc::clone(&writer);
    std::thread::spawn(move || {
        let mut msg = Vec::new();
        let _ = wire::encode(&Message::Keepalive, &ctx0, &mut msg);
        loop {
            std::thread::sleep(KEEPALIVE_EVERY);
            let Ok(mut w) = ka.lock() else { return };
            if w.write_all(&msg).is_err() {
                return;
            }
        }
    });
    Ok(Session {
        ctx,
        reader,
        writer,
    })
}

/// Creates `path` (the script polls for it).
pub fn touch(path: Option<&str>) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, b"").with_context(|| format!("create {p}"))?;
    }
    Ok(())
}

/// Blocks until `path` exists.
pub fn wait_for_file(path: &str) {
    while !std::path::Path::new(path).exists() {
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// utime+stime of `pid` in seconds (/proc/PID/stat fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / if hz > 0.0 { hz } else { 100.0 })
}
