//! The passive side: one listening socket, connections accepted only from
//! configured peer addresses. Each allowed peer's TCP-MD5 key is installed
//! on the listening socket, so the kernel itself drops unsigned or wrongly
//! signed SYNs from that address.

use super::md5::set_md5;
use crate::log_limit::{LogLimiter, Verdict, WINDOW};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A connection from an allowed peer, with the peer's canonical address
/// (v4-mapped IPv6 turned back into IPv4).
#[derive(Debug)]
pub struct Incoming {
    pub stream: TcpStream,
    pub peer: IpAddr,
}

struct Inner {
    listener: TcpListener,
    ipv6: bool,
    allowed: Mutex<HashMap<IpAddr, Allowed>>,
    /// Connections closed because their source is no configured peer.
    refused: Arc<AtomicU64>,
}

/// One allowed peer: its TCP-MD5 key and GTSM hops.
#[derive(Debug, Clone, Default)]
struct Allowed {
    password: Option<String>,
    ttl_security: Option<u8>,
}

/// Cheap to clone; the accept loop runs until every handle and the loop's
/// receiver are gone.
#[derive(Clone)]
pub struct Listener {
    inner: Arc<Inner>,
}

impl Listener {
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let socket = if addr.is_ipv6() {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        Ok(Listener {
            inner: Arc::new(Inner {
                listener,
                ipv6: addr.is_ipv6(),
                allowed: Mutex::new(HashMap::new()),
                refused: Arc::default(),
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.listener.local_addr()
    }

    /// Accepts connections from `peer` from now on, signed with `password`
    /// when one is given.
    pub fn allow(&self, peer: IpAddr, password: Option<&str>) -> io::Result<()> {
        self.allow_with(peer, password, None)
    }

    /// [`Listener::allow`], with GTSM for `peer` when `ttl_security` gives
    /// its hops: the listener then answers with TTL 255 (the SYN-ACK is the
    /// listening socket's; 255 is harmless to every other peer), and each
    /// connection accepted from `peer` drops what arrives below 256 − hops.
    pub fn allow_with(
        &self,
        peer: IpAddr,
        password: Option<&str>,
        ttl_security: Option<u8>,
    ) -> io::Result<()> {
        let fd = self.inner.listener.as_raw_fd();
        let mut allowed = self.lock();
        let previous = allowed.get(&peer).and_then(|a| a.password.clone());
        if password.is_some() || previous.is_some() {
            set_md5(fd, self.inner.ipv6, peer, password)?;
        }
        if ttl_security.is_some() {
            super::ttl::set_send_ttl_255(fd, self.inner.ipv6)?;
        }
        allowed.insert(
            peer,
            Allowed {
                password: password.map(str::to_owned),
                ttl_security,
            },
        );
        Ok(())
    }

    pub fn disallow(&self, peer: IpAddr) {
        let fd = self.inner.listener.as_raw_fd();
        if let Some(Allowed {
            password: Some(_), ..
        }) = self.lock().remove(&peer)
        {
            if let Err(e) = set_md5(fd, self.inner.ipv6, peer, None) {
                tracing::warn!(%peer, error = %e, "removing TCP-MD5 key from the listener");
            }
        }
    }

    /// The count of connections closed because their source is no
    /// configured peer, shared so a speaker can report it without keeping
    /// the listening socket open.
    pub fn refused(&self) -> Arc<AtomicU64> {
        self.inner.refused.clone()
    }

    pub fn is_allowed(&self, peer: IpAddr) -> bool {
        self.lock().contains_key(&peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Allowed>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.inner.allowed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the accept loop, handing allowed connections to `tx`. Anything
    /// else is closed at once, counted, and logged with its source (once
    /// a window per source, with how many were folded).
    pub fn spawn(&self, tx: mpsc::Sender<Incoming>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            // Per source address (not port): a scanner or a misconfigured
            // router reconnects from a new port every time.
            let mut limit = LogLimiter::new(WINDOW);
            loop {
                let (stream, from) = match this.inner.listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let peer = from.ip().to_canonical();
                let allowed = this.lock().get(&peer).cloned();
                let Some(allowed) = allowed else {
                    this.inner.refused.fetch_add(1, Ordering::Relaxed);
                    if let Verdict::Log { suppressed } = limit.check(&peer, Instant::now()) {
                        tracing::warn!(
                            source = %from,
                            suppressed,
                            "closing BGP connection from an unconfigured address"
                        );
                    }
                    drop(stream);
                    continue;
                };
                if let Some(hops) = allowed.ttl_security {
                    if let Err(e) = super::ttl::set_gtsm(stream.as_raw_fd(), this.inner.ipv6, hops)
                    {
                        tracing::warn!(%peer, error = %e, "setting GTSM on an accepted connection; closing it");
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                if tx.send(Incoming { stream, peer }).await.is_err() {
                    return;
                }
            }
        })
    }
}
