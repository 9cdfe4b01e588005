//! A watch stream built from "fetch events after revision R" plus "wait for
//! something new", shared by the backends that have no native watch.
//! `fetch(cursor)` returns the matching events after `cursor` and how far
//! it scanned.

use super::{Error, Revision, WatchEvent, WatchStream};
use std::collections::VecDeque;
use std::future::Future;

pub(crate) fn polling_stream<F, Fut, W, WFut>(from: Revision, fetch: F, wait: W) -> WatchStream
where
    F: Fn(Revision) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Vec<WatchEvent>, Revision), Error>> + Send + 'static,
    W: Fn() -> WFut + Send + Sync + 'static,
    WFut: Future<Output = ()> + Send + 'static,
{
    struct State<F, W> {
        cursor: Revision,
        buf: VecDeque<WatchEvent>,
        fetch: F,
        wait: W,
        failed: bool,
    }
    let st = State {
        cursor: from,
        buf: VecDeque::new(),
        fetch,
        wait,
        failed: false,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        if st.failed {
            return None;
        }
        loop {
            if let Some(ev) = st.buf.pop_front() {
                return Some((Ok(ev), st));
            }
            match (st.fetch)(st.cursor).await {
                Ok((evs, cursor)) => {
                    // The cursor is how far the log was scanned, which may
                    // be past the last matching event.
                    let idle = evs.is_empty() && cursor == st.cursor;
                    st.cursor = cursor.max(st.cursor);
                    st.buf.extend(evs);
                    if idle {
                        (st.wait)().await;
                    }
                }
                Err(e) => {
                    // An error ends the stream; the consumer resumes from
                    // the last revision it saw.
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}
