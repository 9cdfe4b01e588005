//! `tabby-node health --live|--ready`: the exec form of the probes. It
//! asks the daemon's own HTTP endpoint, as calico-node's `-felix-ready`
//! asks `localhost:9099`, so the exec and HTTP probes give one answer from
//! one place; the gRPC socket would mean a second rule to keep in step.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A probe that hangs is a failed probe; the kubelet's default timeout is
/// 1 s, calico-node's exec probes allow 10 s.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Our answers are a line; anything longer is not ours.
const MAX_RESPONSE: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
}

impl Probe {
    pub fn path(self) -> &'static str {
        match self {
            Probe::Live => "/liveness",
            Probe::Ready => "/readiness",
        }
    }

    /// "live" / "ready", for `tabby-node is not <word>: <why>`.
    pub fn word(self) -> &'static str {
        match self {
            Probe::Live => "live",
            Probe::Ready => "ready",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the health endpoint is off (set FELIX_HEALTHENABLED=true)")]
    Disabled,
    #[error("{0}")]
    Failed(String),
    #[error("health endpoint {addr}: {why}")]
    Unreachable { addr: SocketAddr, why: String },
}

/// Where to connect for a daemon listening on `addr`: an unspecified
/// bind address is reached over loopback.
fn target(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(a) if a.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(a) if a.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The status code and body of an HTTP/1.x response, or None when it is
/// not one.
pub fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    let mut parts = status.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    Some((code, body.trim_end().to_string()))
}

/// Runs the probe against the endpoint the environment names.
pub async fn run(probe: Probe, endpoint: Option<SocketAddr>) -> Result<(), ProbeError> {
    let addr = target(endpoint.ok_or(ProbeError::Disabled)?);
    let unreachable = |why: String| ProbeError::Unreachable { addr, why };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            probe.path()
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(TIMEOUT, exchange).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(raw)) => raw,
    };
    match parse_response(&raw) {
        Some((200, _)) => Ok(()),
        Some((_, body)) if !body.is_empty() => Err(ProbeError::Failed(body)),
        Some((code, _)) => Err(ProbeError::Failed(format!("HTTP {code}"))),
        None => Err(unreachable("not an HTTP response".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed_and_garbage_is_not_one() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nwhy\n";
        assert_eq!(parse_response(r), Some((503, "why".into())));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\nok\n"),
            Some((200, "ok".into()))
        );
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 abc\r\n\r\n"), None);
        assert_eq!(parse_response(b""), None);
    }

    #[test]
    fn an_unspecified_bind_is_reached_over_loopback() {
        assert_eq!(
            target("0.0.0.0:9099".parse().unwrap()),
            "127.0.0.1:9099".parse().unwrap()
        );
        assert_eq!(
            target("10.0.0.1:9099".parse().unwrap()),
            "10.0.0.1:9099".parse().unwrap()
        );
    }
}
