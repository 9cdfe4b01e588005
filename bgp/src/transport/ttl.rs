//! GTSM (RFC 5082, BIRD's `ttl security on; multihop N`): we send with TTL
//! (hop limit) 255 and the kernel drops segments that arrive with less
//! than 256 − N, N being the hops to the peer (1: directly connected, so
//! only 255 passes). A spoofer further away cannot reach the session.

use std::io;
use std::os::fd::RawFd;

fn set(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` outlives the call and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The lowest TTL accepted from a peer `hops` away (0 is taken as 1).
pub fn min_ttl(hops: u8) -> u8 {
    (256 - u16::from(hops.max(1))) as u8
}

/// Sends with TTL 255 from this socket (and the connections it accepts).
pub fn set_send_ttl_255(fd: RawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        set(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
        // A v6 socket may carry v4-mapped sessions too.
        let _ = set(fd, libc::IPPROTO_IP, libc::IP_TTL, 255);
        Ok(())
    } else {
        set(fd, libc::IPPROTO_IP, libc::IP_TTL, 255)
    }
}

/// Sends with TTL 255 and has the kernel drop what arrives with less than
/// [`min_ttl`]`(hops)`.
pub fn set_gtsm(fd: RawFd, ipv6: bool, hops: u8) -> io::Result<()> {
    set_send_ttl_255(fd, ipv6)?;
    let min = libc::c_int::from(min_ttl(hops));
    if ipv6 {
        set(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min)?;
        let _ = set(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min);
        Ok(())
    } else {
        set(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directly_connected_peer_must_arrive_with_255() {
        assert_eq!(min_ttl(1), 255);
        assert_eq!(min_ttl(0), 255);
        assert_eq!(min_ttl(2), 254);
        assert_eq!(min_ttl(255), 1);
    }

    #[test]
    fn the_kernel_takes_the_options_and_reads_them_back() {
        use std::os::fd::AsRawFd;
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_gtsm(s.as_raw_fd(), false, 2).unwrap();
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for the call.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MINTTL,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        assert_eq!(v, 254);
        assert_eq!(s.ttl().unwrap(), 255);
    }
}
