//! Replay feeder: pre-encodes `--count` IPv4 /32s (20.0.0.0 + `--first`
//! onwards) into UPDATEs packed as full as they fit (like BIRD), does the
//! handshake, waits for the `--go` file and writes them at full speed,
//! then an End-of-RIB. With `--churn-go`, once that file appears it
//! withdraws every prefix and announces them again with the next marker
//! community, so the monitor can tell the second announcement from the
//! first. Everything the peer sends is read and dropped.
//!
//!   bgp-feeder --listen 10.201.1.11:179 --as 65001 --count 100000 \
//!     --first 0 --go /tmp/go [--churn-go /tmp/go2] [--ready /tmp/r]
//!
//! Prints `start EPOCH` when it begins sending each phase.

use anyhow::{anyhow, Context, Result};
use ipnet::{IpNet, Ipv4Net};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use tabby_bench_bgp::{handshake, now, touch, wait_for_file, Args, Reader};
use tabby_bgp::wire::{self, AsSegment, Family, Origin, PathAttributes, SessionContext};

/// Community `MARKER_AS:phase` on every announced prefix.
pub const MARKER_AS: u32 = 65000;
/// Writes of about this size, each ending on a message boundary, so a
/// keepalive never lands inside an UPDATE.
const CHUNK: usize = 256 * 1024;

fn prefixes(first: u32, count: u32) -> Result<Vec<IpNet>> {
    let base = u32::from(Ipv4Addr::new(20, 0, 0, 0));
    (first..first + count)
        .map(|i| {
            let ip = Ipv4Addr::from(base.checked_add(i).ok_or_else(|| anyhow!("too many"))?);
            Ok(IpNet::V4(Ipv4Net::new(ip, 32)?))
        })
        .collect()
}

fn announce(
    p: &[IpNet],
    asn: u32,
    nh: Ipv4Addr,
    phase: u32,
    ctx: &SessionContext,
    out: &mut Vec<u8>,
) -> Result<()> {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![asn])],
        next_hop: Some(nh),
        communities: vec![(MARKER_AS << 16) | phase],
        ..Default::default()
    };
    wire::encode_announce(&attrs, p, ctx, out)?;
    Ok(())
}

/// Message-aligned chunk ends of `buf`.
fn chunk_ends(buf: &[u8]) -> Result<Vec<usize>> {
    let (mut at, mut last, mut ends) = (0, 0, Vec::new());
    while at < buf.len() {
        let len = wire::message_len(&buf[at..])
            .map_err(|e| anyhow!("own encoding: {e}"))?
            .ok_or_else(|| anyhow!("own encoding: truncated message"))?;
        at += len;
        if at - last >= CHUNK || at == buf.len() {
            ends.push(at);
            last = at;
        }
    }
    Ok(ends)
}

fn main() -> Result<()> {
    let a = Args::parse()?;
    let asn: u32 = a.get_or("as", 65001)?;
    let count: u32 = a.get("count")?;
    let first: u32 = a.get_or("first", 0)?;
    let go = a.get::<String>("go")?;
    let churn_go = a.opt("churn-go");
    let (stream, local) = if let Some(l) = a.opt("listen") {
        let addr: SocketAddrV4 = l.parse().context("--listen")?;
        let lis = TcpListener::bind(addr).with_context(|| format!("listen on {addr}"))?;
        (lis.accept().context("accept")?.0, *addr.ip())
    } else {
        let addr: SocketAddrV4 = a.get("connect")?;
        let s = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        let local = match s.local_addr()?.ip() {
            std::net::IpAddr::V4(v4) => v4,
            other => return Err(anyhow!("IPv4 sessions only, got local {other}")),
        };
        (s, local)
    };
    let mut sess = handshake(stream, asn, local)?;
    // Encoding is done before the clock starts: the feeder only writes.
    let p = prefixes(first, count)?;
    let mut phase1 = Vec::new();
    announce(&p, asn, local, 1, &sess.ctx, &mut phase1)?;
    wire::encode_end_of_rib(Family::IPV4_UNICAST, &mut phase1);
    let mut phase2 = Vec::new();
    if churn_go.is_some() {
        wire::encode_withdraw(&p, &mut phase2);
        announce(&p, asn, local, 2, &sess.ctx, &mut phase2)?;
    }
    let writer = sess.writer.clone();
    let drain = std::thread::spawn(move || drain(&mut sess.reader));
    touch(a.opt("ready"))?;
    for (buf, gate) in [(&phase1, Some(go.as_str())), (&phase2, churn_go)] {
        let Some(gate) = gate else { break };
        let ends = chunk_ends(buf)?;
        wait_for_file(gate);
        println!("start {:.6}", now());
        std::io::stdout().flush().ok();
        let mut from = 0;
        for end in ends {
            let mut w = writer.lock().map_err(|_| anyhow!("writer lock poisoned"))?;
            w.write_all(&buf[from..end]).context("send UPDATEs")?;
            from = end;
        }
    }
    // Stay up (the session must not drop) until the peer goes away.
    drain
        .join()
        .map_err(|_| anyhow!("reader thread panicked"))??;
    Ok(())
}

/// Reads and drops what the peer sends; a NOTIFICATION ends the run.
fn drain(r: &mut Reader) -> Result<()> {
    while let Some(m) = r.next_message()? {
        if m.get(18) == Some(&wire::msg_type::NOTIFICATION) {
            let code = m.get(19).copied().unwrap_or(0);
            let sub = m.get(20).copied().unwrap_or(0);
            return Err(anyhow!("peer sent NOTIFICATION {code}/{sub}"));
        }
    }
    Ok(())
}
