//! A synchronous rtnetlink socket with pipelined, batched requests.
//!
//! Requests go out many per `sendmsg` and without `NLM_F_ACK`: the kernel
//! answers a request that fails with an `NLMSG_ERROR` carrying that request's
//! sequence number whether or not an ACK was asked for, so success costs no
//! reply at all. A batch ends with an `NLMSG_NOOP` that does ask for an ACK;
//! the kernel handles messages of one socket in order, so once that ACK is
//! read every error of the batch has been read too, each attributed to its
//! request by sequence number.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_NOOP, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::AsRawFd;

/// Requests per `sendmsg`. 256 measured best here; the kernel handles the
/// whole buffer inside the one syscall.
const REQUESTS_PER_SEND: usize = 256;
const RECV_BUFFER: usize = 1 << 20;
/// Error replies queue in the socket until read; we drain after every send,
/// so this only has to hold the errors of one send.
const SOCKET_RCVBUF: libc::c_int = 8 << 20;
const DUMP_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum NlError {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("{}{}", io::Error::from_raw_os_error(*.errno), .message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel { errno: i32, message: Option<String> },
    #[error("netlink reply could not be decoded: {0}")]
    Decode(String),
    #[error("a netlink dump was interrupted by concurrent changes {DUMP_RETRIES} times in a row")]
    DumpInterrupted,
    #[error(
        "the kernel dropped replies (socket buffer overrun); results of this batch are unknown"
    )]
    Overrun,
}

impl NlError {
    /// The errno of a kernel refusal (positive), if it was one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// One write request: a message and its `NLM_F_*` creation flags
/// (`NLM_F_REQUEST` is added).
#[derive(Debug, Clone)]
pub struct Request {
    pub message: RouteNetlinkMessage,
    pub flags: u16,
}

pub struct NlSocket {
    sock: Socket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl NlSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_ext_ack(true)?;
        sock.set_cap_ack(true)?;
        // The kernel then honours the filters in dump requests.
        sock.set_netlink_get_strict_chk(true)?;
        // SO_RCVBUFFORCE needs CAP_NET_ADMIN, which a writer of routes has;
        // fall back to the capped SO_RCVBUF otherwise.
        if setsockopt_int(&sock, libc::SO_RCVBUFFORCE, SOCKET_RCVBUF).is_err() {
            setsockopt_int(&sock, libc::SO_RCVBUF, SOCKET_RCVBUF)?;
        }
        Ok(NlSocket {
            sock,
            seq: 1,
            tx: Vec::with_capacity(64 * 1024),
            rx: Vec::with_capacity(RECV_BUFFER),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    fn encode(&mut self, message: RouteNetlinkMessage, flags: u16, seq: u32) {
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        msg.finalize();
        let start = self.tx.len();
        let len = msg.buffer_len();
        self.tx.resize(start + align4(len), 0);
        msg.serialize(&mut self.tx[start..start + len]);
    }

    fn encode_noop_ack(&mut self, seq: u32) {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&16u32.to_ne_bytes());
        header[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
        header[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        header[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.tx.extend_from_slice(&header);
    }

    fn flush(&mut self) -> Result<(), NlError> {
        if !self.tx.is_empty() {
            let sent = self.sock.send(&self.tx, 0)?;
            if sent != self.tx.len() {
                return Err(NlError::Io(io::Error::other("short netlink send")));
            }
            self.tx.clear();
        }
        Ok(())
    }

    /// Reads one datagram; `None` when nothing is queued and `wait` is false.
    fn recv(
        &mut self,
        wait: bool,
    ) -> Result<Option<Vec<NetlinkMessage<RouteNetlinkMessage>>>, NlError> {
        self.rx.clear();
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        match self.sock.recv(&mut self.rx, flags) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Err(NlError::Overrun),
            Err(e) => return Err(e.into()),
        }
        let mut out = Vec::new();
        let mut off = 0;
        while off + 16 <= self.rx.len() {
            let len = u32::from_ne_bytes([
                self.rx[off],
                self.rx[off + 1],
                self.rx[off + 2],
                self.rx[off + 3],
            ]) as usize;
            if len < 16 || off + len > self.rx.len() {
                return Err(NlError::Decode(format!(
                    "message length {len} at offset {off} of a {}-byte datagram",
                    self.rx.len()
                )));
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.rx[off..off + len])
                .map_err(|e| NlError::Decode(e.to_string()))?;
            out.push(msg);
            off += align4(len);
        }
        Ok(Some(out))
    }

    /// Sends every request pipelined and returns the failures as
    /// `(index into requests, error)`. An `Err` means the batch as a whole
    /// could not be accounted for (socket error or overrun).
    pub fn apply<I>(&mut self, requests: I) -> Result<Vec<(usize, NlError)>, NlError>
    where
        I: IntoIterator<Item = Request>,
    {
        let first_seq = self.seq.wrapping_add(1);
        let mut failures = Vec::new();
        let mut count = 0usize;
        let mut in_send = 0usize;
        self.tx.clear();
        for request in requests {
            let seq = self.next_seq();
            self.encode(request.message, request.flags, seq);
            count += 1;
            in_send += 1;
            if in_send == REQUESTS_PER_SEND {
                self.flush()?;
                in_send = 0;
                self.drain_errors(first_seq, count, None, &mut failures)?;
            }
        }
        let sentinel = self.next_seq();
        self.encode_noop_ack(sentinel);
        self.flush()?;
        self.drain_errors(first_seq, count, Some(sentinel), &mut failures)?;
        Ok(failures)
    }

    fn drain_errors(
        &mut self,
        first_seq: u32,
        count: usize,
        until: Option<u32>,
        failures: &mut Vec<(usize, NlError)>,
    ) -> Result<(), NlError> {
        loop {
            let Some(msgs) = self.recv(until.is_some())? else {
                return Ok(());
            };
            for msg in msgs {
                let seq = msg.header.sequence_number;
                let flags = msg.header.flags;
                if let NetlinkPayload::Error(err) = msg.payload {
                    if Some(seq) == until {
                        return match err.code {
                            None => Ok(()),
                            Some(code) => Err(kernel_error(code.get(), flags, &err.header)),
                        };
                    }
                    let index = seq.wrapping_sub(first_seq) as usize;
                    if let Some(code) = err.code {
                        if index < count {
                            failures.push((index, kernel_error(code.get(), flags, &err.header)));
                        }
                    }
                }
            }
        }
    }

    /// One request, waiting for its ACK.
    pub fn execute(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        match self.apply([Request { message, flags }])?.pop() {
            Some((_, err)) => Err(err),
            None => Ok(()),
        }
    }

    /// A dump request; retried when the kernel flags it interrupted.
    pub fn dump(
        &mut self,
        request: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        for _ in 0..DUMP_RETRIES {
            let seq = self.next_seq();
            self.tx.clear();
            self.encode(request.clone(), NLM_F_DUMP, seq);
            self.flush()?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                let msgs = self.recv(true)?.unwrap_or_default();
                for msg in msgs {
                    if msg.header.sequence_number != seq {
                        continue;
                    }
                    if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match msg.payload {
                        NetlinkPayload::Done(_) => break 'recv,
                        NetlinkPayload::Error(err) => {
                            if let Some(code) = err.code {
                                return Err(kernel_error(
                                    code.get(),
                                    msg.header.flags,
                                    &err.header,
                                ));
                            }
                        }
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        _ => {}
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NlError::DumpInterrupted)
    }
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// A `SOL_SOCKET` integer option (receive buffer sizes), shared with the
/// reconciler's notification socket.
pub(crate) fn setsockopt_int(
    sock: &Socket,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `NLM_F_ACK_TLVS` on an error reply: extended-ack attributes follow the
/// (capped) original header.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

fn kernel_error(code: i32, flags: u16, payload: &[u8]) -> NlError {
    NlError::Kernel {
        errno: code.saturating_abs(),
        message: if flags & NLM_F_ACK_TLVS != 0 {
            extack_message(payload)
        } else {
            None
        },
    }
}

/// The kernel's extended-ack text, from the TLVs after the capped header.
fn extack_message(payload: &[u8]) -> Option<String> {
    let mut off = 16;
    while off + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[off], payload[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[off + 2], payload[off + 3]]) & 0x3fff;
        if len < 4 || off + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &payload[off + 4..off + len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        off += align4(len);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extack_text_is_read_after_the_capped_header() {
        let mut payload = vec![0u8; 16];
        let text = b"Nexthop has invalid gateway\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            extack_message(&payload).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        let err = kernel_error(-22, NLM_F_ACK_TLVS, &payload);
        assert_eq!(err.errno(), Some(22));
        assert!(err.to_string().contains("Nexthop has invalid gateway"));
    }

    #[test]
    fn truncated_extack_is_ignored() {
        let mut payload = vec![0u8; 16];
        payload.extend_from_slice(&40u16.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        assert_eq!(extack_message(&payload), None);
    }
}
