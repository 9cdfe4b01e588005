//! Outgoing connections: optional source address, TCP-MD5 and GTSM set
//! before the SYN, bounded by a timeout so a silent peer cannot stall the session.

use super::md5::set_md5;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub source: Option<IpAddr>,
    pub password: Option<String>,
    /// GTSM: the peer is this many hops away (see `ttl.rs`).
    pub ttl_security: Option<u8>,
}

pub async fn connect(
    peer: SocketAddr,
    opts: &ConnectOptions,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let v6 = peer.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(pw) = &opts.password {
        set_md5(socket.as_raw_fd(), v6, peer.ip(), Some(pw))?;
    }
    if let Some(hops) = opts.ttl_security {
        super::ttl::set_gtsm(socket.as_raw_fd(), v6, hops)?;
    }
    if let Some(src) = opts.source {
        if src.is_ipv6() != v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "source address {src} is not of the same family as peer {}",
                    peer.ip()
                ),
            ));
        }
        socket.bind(SocketAddr::new(src, 0))?;
    }
    let stream = tokio::time::timeout(timeout, socket.connect(peer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
