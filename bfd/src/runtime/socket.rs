//! The RFC 5881 sockets: the receive socket on UDP 3784 that reports each
//! packet's TTL (GTSM, RFC 5881 §5: anything not sent with TTL 255 came
//! from off-link and is dropped), and per-session send sockets bound to
//! the session's local address, a source port in 49152–65535 and TTL 255.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// RFC 5881 §4: the source port range for control packets.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a plain int option on a socket we own; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn udp(domain: Domain) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if domain == Domain::IPV6 {
        // Separate IPv4 and IPv6 sockets: each reports its own TTL cmsg.
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The listening socket for one family, reporting received TTL/hop limit.
pub fn listen(ipv6: bool, port: u16) -> io::Result<UdpSocket> {
    let (domain, any) = if ipv6 {
        (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let s = udp(domain)?;
    let fd = s.as_raw_fd();
    if ipv6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    }
    s.bind(&SockAddr::from(SocketAddr::new(any, port)))?;
    Ok(s.into())
}

/// A send socket from `local`, on the first free source port counting up
/// from `start` (wrapping inside [`SOURCE_PORTS`]), sending with TTL 255.
pub fn sender(local: IpAddr, start: u16) -> io::Result<UdpSocket> {
    let domain = if local.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = udp(domain)?;
    let fd = s.as_raw_fd();
    if local.is_ipv6() {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_TTL, 255)?;
    }
    let (lo, hi) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
    let span = u32::from(hi - lo) + 1;
    let first = u32::from(start.clamp(lo, hi) - lo);
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for i in 0..span {
        let port = lo + ((first + i) % span) as u16;
        match s.bind(&SockAddr::from(SocketAddr::new(local, port))) {
            Ok(()) => return Ok(s.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// One datagram: its length, source, destination-side TTL (None when the
/// kernel gave none) — `recvmsg` because std's `recv_from` drops cmsgs.
pub fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    // SAFETY: all-zero is a valid sockaddr_storage and msghdr.
    let mut src: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut src as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in msg points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ttl = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // bounded by msg_controllen; the data of IP_TTL / IPV6_HOPLIMIT is an int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT)
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                ttl = u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let src = match libc::c_int::from(src.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the kernel wrote a sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((&src as *const libc::sockaddr_storage).cast()) };
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                u16::from_be(a.sin_port),
            )
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the kernel wrote a sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&src as *const libc::sockaddr_storage).cast()) };
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)),
                u16::from_be(a.sin6_port),
            )
        }
        f => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("source address family {f} is not IP"),
            ))
        }
    };
    Ok((n as usize, src, ttl))
}
