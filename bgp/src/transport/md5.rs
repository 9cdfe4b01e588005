//! TCP-MD5 signatures (RFC 2385) through Linux's `TCP_MD5SIG` socket option.
//!
//! The key is per remote address: on a listening socket one entry per
//! configured peer, inherited by the accepted connection; on a connecting
//! socket the single entry for the peer, set before `connect` so the SYN is
//! already signed.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h); libc does not
/// export the struct, only the option number.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; libc::TCP_MD5SIG_MAXKEYLEN],
}

/// Longest key the kernel accepts.
pub const MAX_KEY_LEN: usize = libc::TCP_MD5SIG_MAXKEYLEN;

/// Installs (`Some`) or removes (`None`) the MD5 key for `peer` on `fd`.
/// `ipv6_socket` says whether the socket is AF_INET6, in which case an IPv4
/// peer is written as a v4-mapped address, as the kernel expects.
pub fn set_md5(fd: RawFd, ipv6_socket: bool, peer: IpAddr, key: Option<&str>) -> io::Result<()> {
    let key = key.map(str::as_bytes).unwrap_or_default();
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP-MD5 password for {peer} is {} bytes, at most {MAX_KEY_LEN} allowed",
                key.len()
            ),
        ));
    }
    // SAFETY: all-zero is a valid value for this plain-data C struct.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    write_sockaddr(&mut sig.addr, ipv6_socket, peer);
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a fully initialised tcp_md5sig and the length passed
    // is its size; the kernel only reads from it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // Removing a key that was never set is not an error for our callers.
    if key.is_empty() && err.raw_os_error() == Some(libc::ENOENT) {
        return Ok(());
    }
    Err(err)
}

fn write_sockaddr(storage: &mut libc::sockaddr_storage, ipv6_socket: bool, peer: IpAddr) {
    let v6 = match (peer, ipv6_socket) {
        (IpAddr::V4(v4), false) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // sockaddr, which is its purpose.
            let sin = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            return;
        }
        (IpAddr::V4(v4), true) => v4.to_ipv6_mapped(),
        (IpAddr::V6(v6), _) => v6,
    };
    // SAFETY: as above.
    let sin6 = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_addr.s6_addr = v6.octets();
}

/// The kernel's TCP-MD5 drop counters (`TcpExt` in `/proc/net/netstat`):
/// a segment with a signature but no key for its source (`unexpected`),
/// one without a signature where a key is set (`not_found`), one whose
/// signature does not verify (`failure`). They are per network namespace,
/// not per peer: the kernel drops these segments before any socket sees
/// them, so nothing else tells a mismatch apart from a silent peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Md5Counters {
    pub not_found: u64,
    pub unexpected: u64,
    pub failure: u64,
}

/// The counters of the calling thread's network namespace
/// (`/proc/thread-self`: `/proc/self` would be the main thread's, and a
/// speaker's runtime may live in another namespace).
pub fn kernel_counters() -> io::Result<Md5Counters> {
    std::fs::read_to_string("/proc/thread-self/net/netstat").map(|t| parse_netstat(&t))
}

/// Reads the three counters from netstat's header/value line pairs;
/// missing ones (an old kernel) stay 0.
pub fn parse_netstat(text: &str) -> Md5Counters {
    let mut c = Md5Counters::default();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some(("TcpExt", names)), Some(("TcpExt", values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            let v = v.parse().unwrap_or(0);
            match n {
                "TCPMD5NotFound" => c.not_found = v,
                "TCPMD5Unexpected" => c.unexpected = v,
                "TCPMD5Failure" => c.failure = v,
                _ => {}
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_counters_are_read_by_name() {
        let t = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\n\
                 TcpExt: 1 2 3 4\n\
                 IpExt: InNoRoutes\n\
                 IpExt: 9\n";
        assert_eq!(
            parse_netstat(t),
            Md5Counters {
                not_found: 2,
                unexpected: 3,
                failure: 4
            }
        );
        assert_eq!(parse_netstat("garbage"), Md5Counters::default());
        assert_eq!(
            parse_netstat("TcpExt: TCPMD5Failure\nTcpExt: x\n"),
            Md5Counters::default()
        );
    }
}
