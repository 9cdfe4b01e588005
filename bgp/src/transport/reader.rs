//! The read side of a session: frames the byte stream with
//! [`wire::message_len`] and decodes each message with [`wire::decode`].
//! Every length comes from the codec's checked header, so a peer can at
//! most make us buffer one message of the session's limit (4096 octets,
//! 65535 once RFC 8654 extended messages are negotiated).

use crate::wire::{self, DecodeError, Message, SessionContext, MAX_MESSAGE_LEN};
use std::io;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed by peer")]
    Closed,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The message could not be used; the error names the NOTIFICATION.
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

pub struct MessageReader {
    r: OwnedReadHalf,
    buf: Vec<u8>,
    /// Start of the first unconsumed octet in `buf`.
    pos: usize,
}

/// Bytes read per syscall: many UPDATEs per read during a table transfer.
const READ_CHUNK: usize = 64 * 1024;

impl MessageReader {
    pub fn new(r: OwnedReadHalf) -> Self {
        MessageReader {
            r,
            buf: Vec::with_capacity(READ_CHUNK + MAX_MESSAGE_LEN),
            pos: 0,
        }
    }

    /// The next whole message. A decode error leaves the stream positioned
    /// after the bad message (when its header was sound) but the session
    /// is expected to end on any error that is not `Ignore`.
    pub async fn next(&mut self, ctx: &SessionContext) -> Result<Message, ReadError> {
        loop {
            if let Some(len) = wire::message_len_max(&self.buf[self.pos..], ctx.max_message_len())?
            {
                if self.buf.len() - self.pos >= len {
                    let msg = &self.buf[self.pos..self.pos + len];
                    self.pos += len;
                    return Ok(wire::decode(msg, ctx)?);
                }
            }
            self.fill().await?;
        }
    }

    /// Whole raw messages already buffered, without reading: lets a caller
    /// drain a burst before yielding.
    pub fn try_next(&mut self, ctx: &SessionContext) -> Option<Result<Message, ReadError>> {
        match wire::message_len_max(&self.buf[self.pos..], ctx.max_message_len()) {
            Err(e) => Some(Err(e.into())),
            Ok(Some(len)) if self.buf.len() - self.pos >= len => {
                let msg = &self.buf[self.pos..self.pos + len];
                self.pos += len;
                Some(wire::decode(msg, ctx).map_err(ReadError::from))
            }
            Ok(_) => None,
        }
    }

    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let n = self.r.read(&mut self.buf[old..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                return Err(e.into());
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            return Err(ReadError::Closed);
        }
        Ok(())
    }
}
