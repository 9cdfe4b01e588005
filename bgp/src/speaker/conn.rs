//! One TCP connection's worth of state in the core: its FSM, the socket
//! tasks, and its timers. The I/O tasks post [`CoreMsg`]s back, tagged with
//! a link id so that messages from a connection already closed are ignored.

use super::msg::CoreMsg;
use crate::fsm::{Direction, Fsm, TimerKind};
use crate::transport::{self, spawn_writer, ConnectOptions, MessageReader, ReadError, WriteQueue};
use crate::wire::{Capability, Message, Rfc7606Action, SessionContext};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{Sender, UnboundedSender};
use tokio::task::AbortHandle;

/// Messages handed to the core per post during a table transfer.
const READ_BATCH: usize = 512;

pub(crate) struct Conn {
    pub id: u64,
    pub direction: Direction,
    pub fsm: Fsm,
    /// The current stream (reader and writer) and its link id.
    pub link: Option<Link>,
    /// An outbound connect in progress and its link id.
    pub connecting: Option<(u64, AbortHandle)>,
    pub timers: HashMap<TimerKind, (u64, AbortHandle)>,
    pub ctx: SessionContext,
    /// `fsm.failures()` when its last error was last copied into the peer
    /// status: a count, so a repeat of the same failure is still news.
    pub seen_failures: u64,
}

pub(crate) struct Link {
    pub id: u64,
    pub writer: WriteQueue,
    pub reader: AbortHandle,
    pub local: SocketAddr,
}

impl Conn {
    pub fn new(id: u64, direction: Direction, fsm: Fsm) -> Self {
        Conn {
            id,
            direction,
            fsm,
            link: None,
            connecting: None,
            timers: HashMap::new(),
            ctx: SessionContext::default(),
            seen_failures: 0,
        }
    }

    /// Takes over `stream`: spawns its reader and writer tasks.
    pub fn attach(
        &mut self,
        stream: TcpStream,
        peer: IpAddr,
        link_id: u64,
        tx: &UnboundedSender<CoreMsg>,
        flushed: &Sender<()>,
    ) {
        self.detach();
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        let (r, w) = stream.into_split();
        let (writer, _task) = spawn_writer(w, flushed.clone());
        let reader = tokio::spawn(read_loop(MessageReader::new(r), peer, link_id, tx.clone()));
        self.ctx = SessionContext::default();
        self.link = Some(Link {
            id: link_id,
            writer,
            reader: reader.abort_handle(),
            local,
        });
    }

    /// Closes the stream after what is queued has been written.
    pub fn detach(&mut self) {
        if let Some(link) = self.link.take() {
            link.reader.abort();
            // Dropping the queue lets the writer flush and shut down.
            drop(link.writer);
        }
    }

    pub fn start_connect(
        &mut self,
        peer: SocketAddr,
        opts: ConnectOptions,
        timeout: Duration,
        link_id: u64,
        tx: &UnboundedSender<CoreMsg>,
    ) {
        self.cancel_connect();
        let tx = tx.clone();
        let task = tokio::spawn(async move {
            let result = transport::connect(peer, &opts, timeout).await;
            let _ = tx.send(CoreMsg::Connected {
                peer: peer.ip(),
                link: link_id,
                result,
            });
        });
        self.connecting = Some((link_id, task.abort_handle()));
    }

    pub fn cancel_connect(&mut self) {
        if let Some((_, h)) = self.connecting.take() {
            h.abort();
        }
    }

    pub fn start_timer(
        &mut self,
        kind: TimerKind,
        after: Duration,
        peer: IpAddr,
        gen: u64,
        tx: &UnboundedSender<CoreMsg>,
    ) {
        self.stop_timer(kind);
        let tx = tx.clone();
        let conn = self.id;
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(CoreMsg::Timer {
                peer,
                conn,
                kind,
                gen,
            });
        });
        self.timers.insert(kind, (gen, task.abort_handle()));
    }

    pub fn stop_timer(&mut self, kind: TimerKind) {
        if let Some((_, h)) = self.timers.remove(&kind) {
            h.abort();
        }
    }

    /// Encodes and queues one message; false when there is no stream.
    pub fn send(&self, msg: &Message) -> bool {
        let Some(link) = &self.link else {
            return false;
        };
        let mut buf = Vec::new();
        if let Err(e) = crate::wire::encode(msg, &self.ctx, &mut buf) {
            tracing::error!(error = %e, "cannot encode message");
            return false;
        }
        link.writer.send(buf).is_ok()
    }

    /// Queues already encoded messages.
    pub fn send_raw(&self, bytes: Vec<u8>) -> bool {
        match &self.link {
            Some(link) if !bytes.is_empty() => link.writer.send(bytes).is_ok(),
            _ => false,
        }
    }

    /// Ends every task this connection runs.
    pub fn close(&mut self) {
        self.detach();
        self.cancel_connect();
        for (_, (_, h)) in self.timers.drain() {
            h.abort();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// Frames and decodes in this task, so the core only sees typed messages.
/// After the peer's OPEN, the AS_PATH width and the message size limit
/// follow what it offered (we always offer 4-octet AS and extended
/// messages, so its offer is what is negotiated).
async fn read_loop(
    mut reader: MessageReader,
    peer: IpAddr,
    link: u64,
    tx: UnboundedSender<CoreMsg>,
) {
    let mut ctx = SessionContext::default();
    loop {
        let first = reader.next(&ctx).await;
        let mut msgs = Vec::new();
        let mut end = None;
        match first {
            Ok(m) => {
                learn(&mut ctx, &m);
                msgs.push(m);
                while msgs.len() < READ_BATCH {
                    match reader.try_next(&ctx) {
                        None => break,
                        Some(Ok(m)) => {
                            learn(&mut ctx, &m);
                            msgs.push(m);
                        }
                        Some(Err(e)) => {
                            end = Some(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => end = Some(e),
        }
        // RFC 7606 "ignore" errors (e.g. ROUTE-REFRESH for a family we do
        // not speak) drop only that message.
        if let Some(ReadError::Decode(d)) = &end {
            if d.action() == Rfc7606Action::Ignore {
                tracing::debug!(%peer, error = %d, "ignoring message");
                end = None;
            }
        }
        let done = end.is_some();
        if tx
            .send(CoreMsg::Read {
                peer,
                link,
                msgs,
                end,
            })
            .is_err()
            || done
        {
            return;
        }
    }
}

fn learn(ctx: &mut SessionContext, m: &Message) {
    if let Message::Open(o) = m {
        ctx.four_octet_as = o
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)));
        ctx.extended_message = o.capabilities.contains(&Capability::ExtendedMessage);
    }
}
