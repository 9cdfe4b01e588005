//! Counting monitor: one session (`--listen`, the SUT connects) or one per
//! `--connect` address (the direct row: straight to the feeders). Counts
//! the NLRI announced and withdrawn and tracks, per prefix 20.0.0.0 +
//! i (i < `--expect`), the marker community of its last announcement.
//! Phase k (1..=`--phases`) is done when every prefix is present with
//! marker k; it then prints
//!
//!   phase K done EPOCH cpu SECONDS announced A withdrawn W
//!
//! where cpu is `--sut-pid`'s utime+stime at that moment (- without one).

use anyhow::{anyhow, Context, Result};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use tabby_bench_bgp::{cpu_seconds, handshake, now, touch, Args, Session};
use tabby_bgp::wire::{self, Message};

const MARKER_AS: u32 = 65000;

struct State {
    marks: Vec<AtomicU8>,
    target: AtomicU8,
    at_target: AtomicI64,
    announced: AtomicU64,
    withdrawn: AtomicU64,
    phases: u8,
    sut_pid: Option<u32>,
    /// Serialises the phase change (recount, print).
    advance: Mutex<()>,
}

impl State {
    fn index(&self, ip: Ipv4Addr, len: u8) -> Option<usize> {
        let i = u32::from(ip).checked_sub(u32::from(Ipv4Addr::new(20, 0, 0, 0)))? as usize;
        (len == 32 && i < self.marks.len()).then_some(i)
    }

    fn set(&self, i: usize, mark: u8) {
        let target = self.target.load(SeqCst);
        let old = self.marks[i].swap(mark, SeqCst);
        if old != target && mark == target {
            self.at_target.fetch_add(1, SeqCst);
        } else if old == target && mark != target {
            self.at_target.fetch_sub(1, SeqCst);
        }
    }

    /// Prints every phase that is complete; false once the last one is.
    fn check(&self) -> bool {
        while self.at_target.load(SeqCst) == self.marks.len() as i64 {
            let Ok(_g) = self.advance.lock() else {
                return false;
            };
            if self.at_target.load(SeqCst) != self.marks.len() as i64 {
                continue;
            }
            let t = now();
            let cpu = self
                .sut_pid
                .and_then(cpu_seconds)
                .map_or("-".to_string(), |c| format!("{c:.2}"));
            let k = self.target.load(SeqCst);
            println!(
                "phase {k} done {t:.6} cpu {cpu} announced {} withdrawn {}",
                self.announced.load(SeqCst),
                self.withdrawn.load(SeqCst)
            );
            std::io::stdout().flush().ok();
            if k >= self.phases {
                self.target.store(0, SeqCst);
                self.at_target.store(-1, SeqCst);
                return false;
            }
            // The feeders start the next phase only after this line.
            self.target.store(k + 1, SeqCst);
            let n = self
                .marks
                .iter()
                .filter(|m| m.load(SeqCst) == k + 1)
                .count();
            self.at_target.store(n as i64, SeqCst);
        }
        true
    }
}

fn run(mut sess: Session, st: &State) -> Result<()> {
    while let Some(m) = sess.reader.next_message()? {
        let Message::Update(u) = wire::decode(m, &sess.ctx).map_err(|e| anyhow!("{e}"))? else {
            continue;
        };
        st.withdrawn.fetch_add(u.withdrawn.len() as u64, SeqCst);
        for p in &u.withdrawn {
            if let Some(i) = st.index(p.addr(), p.prefix_len()) {
                st.set(i, 0);
            }
        }
        let mark = if u.treat_as_withdraw.is_some() {
            0
        } else {
            let c = u.attrs.communities.iter().find(|c| *c >> 16 == MARKER_AS);
            c.map_or(1, |c| (c & 0xff) as u8)
        };
        st.announced.fetch_add(u.nlri.len() as u64, SeqCst);
        for p in &u.nlri {
            if let Some(i) = st.index(p.addr(), p.prefix_len()) {
                st.set(i, mark);
            }
        }
        st.check();
    }
    Ok(())
}

/// The feeders may still be starting: retry for a few seconds.
fn connect(addr: SocketAddrV4) -> Result<TcpStream> {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(_) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e).with_context(|| format!("connect to {addr}")),
        }
    }
}

fn main() -> Result<()> {
    let a = Args::parse()?;
    let asn: u32 = a.get_or("as", 65003)?;
    let expect: usize = a.get("expect")?;
    let rid: Ipv4Addr = a.get_or("router-id", Ipv4Addr::new(10, 201, 0, 3))?;
    let st = Arc::new(State {
        marks: (0..expect).map(|_| AtomicU8::new(0)).collect(),
        target: AtomicU8::new(1),
        at_target: AtomicI64::new(0),
        announced: AtomicU64::new(0),
        withdrawn: AtomicU64::new(0),
        phases: a.get_or("phases", 1)?,
        sut_pid: a.opt("sut-pid").map(str::parse).transpose()?,
        advance: Mutex::new(()),
    });
    let mut sessions = Vec::new();
    if let Some(l) = a.opt("listen") {
        let addr: SocketAddrV4 = l.parse().context("--listen")?;
        let lis = TcpListener::bind(addr).with_context(|| format!("listen on {addr}"))?;
        // A speaker may give up on a first attempt and retry: take the
        // first connection whose handshake completes.
        loop {
            let (s, from) = lis.accept().context("accept")?;
            match handshake(s, asn, rid) {
                Ok(sess) => {
                    sessions.push(sess);
                    break;
                }
                Err(e) => eprintln!("monitor: handshake with {from} failed: {e:#}"),
            }
        }
    }
    for c in a.all("connect") {
        let addr: SocketAddrV4 = c.parse().context("--connect")?;
        sessions.push(handshake(connect(addr)?, asn, rid)?);
    }
    if sessions.is_empty() {
        return Err(anyhow!("give --listen ADDR:PORT or --connect ADDR:PORT"));
    }
    touch(a.opt("ready"))?;
    let threads: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            let st = Arc::clone(&st);
            std::thread::spawn(move || run(s, &st))
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| anyhow!("session thread panicked"))??;
    }
    Ok(())
}
