//! One rtnetlink socket per node namespace, subscribed to IPv4 route
//! events: the route is seen when the kernel announces it, never by
//! polling `ip route`. The socket is opened by a thread that has entered
//! the namespace with `setns` (a socket belongs to the namespace it was
//! created in; the thread can then stay there).

use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::mpsc::Sender;
use std::time::Instant;

/// Tabby's route protocol number (Calico's BIRD uses the same, 80/81 range).
pub const PROTO_TABBY: u8 = 81;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;

/// A route Tabby installed in node `node`'s kernel, and when it was read.
pub struct Seen {
    pub node: usize,
    pub dst: Ipv4Addr,
    pub len: u8,
    pub at: Instant,
}

/// Starts the listener for namespace `netns`; returns once its socket is
/// subscribed, so no event after the return can be missed.
pub fn listen(node: usize, netns: &str, tx: Sender<Seen>) -> Result<()> {
    let path = format!("/var/run/netns/{netns}");
    let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    std::thread::Builder::new()
        .name(format!("nl-{netns}"))
        .spawn(move || {
            let sock = match subscribe(&ns) {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            read_loop(sock, node, &tx);
        })?;
    ready_rx
        .recv()
        .context("listener thread ended")?
        .with_context(|| format!("netlink socket in {netns}"))
}

struct Fd(i32);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn subscribe(ns: &std::fs::File) -> Result<Fd> {
    // SAFETY: plain syscalls on fds we own; the structs are zeroed C PODs.
    unsafe {
        if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let fd = Fd(fd);
        // Large enough that a burst never overflows while we are slow.
        let buf: libc::c_int = 8 << 20;
        libc::setsockopt(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &buf as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = RTMGRP_IPV4_ROUTE;
        if libc::bind(
            fd.0,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        ) != 0
        {
            bail!("bind: {}", std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

fn read_loop(sock: Fd, node: usize, tx: &Sender<Seen>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: reading into our own buffer of the given length.
        let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // ENOBUFS would mean lost events: say so rather than undercount.
            eprintln!("bench-converge: netlink recv in node {node}: {e}");
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                continue;
            }
            return;
        }
        let at = Instant::now();
        for (dst, len) in new_routes(&buf[..n as usize]) {
            if tx.send(Seen { node, dst, len, at }).is_err() {
                return;
            }
        }
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// The IPv4 destinations of the RTM_NEWROUTE messages with Tabby's
/// protocol in one datagram.
fn new_routes(mut b: &[u8]) -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    while let Some(len) = u32_at(b, 0).map(|l| l as usize) {
        if len < 16 || len > b.len() {
            break;
        }
        let msg = &b[..len];
        // rtmsg after the 16-byte header: family, dst_len, src_len, tos,
        // table, protocol, scope, type, flags (u32).
        if u16_at(msg, 4) == Some(RTM_NEWROUTE)
            && msg.len() >= 28
            && msg[16] == libc::AF_INET as u8
            && msg[21] == PROTO_TABBY
        {
            let dst_len = msg[17];
            let mut a = 28;
            while let (Some(alen), Some(aty)) = (u16_at(msg, a), u16_at(msg, a + 2)) {
                let alen = alen as usize;
                if alen < 4 || a + alen > msg.len() {
                    break;
                }
                if aty == RTA_DST && alen == 8 {
                    let o: [u8; 4] = msg[a + 4..a + 8].try_into().unwrap_or_default();
                    out.push((Ipv4Addr::from(o), dst_len));
                }
                a += (alen + 3) & !3;
            }
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_tabby_route_and_skips_others() {
        let mut m = vec![0u8; 36];
        m[0..4].copy_from_slice(&36u32.to_ne_bytes());
        m[4..6].copy_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        m[16] = libc::AF_INET as u8;
        m[17] = 32;
        m[21] = PROTO_TABBY;
        m[28..30].copy_from_slice(&8u16.to_ne_bytes());
        m[30..32].copy_from_slice(&RTA_DST.to_ne_bytes());
        m[32..36].copy_from_slice(&[10, 99, 0, 7]);
        let mut other = m.clone();
        other[21] = 2; // kernel
        let both = [m.clone(), other].concat();
        assert_eq!(new_routes(&both), [(Ipv4Addr::new(10, 99, 0, 7), 32)]);
        assert!(new_routes(&m[..20]).is_empty());
    }
}
