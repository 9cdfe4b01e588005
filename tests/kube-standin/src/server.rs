//! Response bodies, the state handlers share, and the stop signal.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{header, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Bytes, Frame};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::status::ApiError;
use crate::store::Store;

/// Every response body: a whole JSON document or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// Tunables of one stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    /// The apiserver sends about one a minute; tests want them quickly.
    pub bookmark_interval: Duration,
    /// How many events the history keeps before the oldest are compacted.
    pub history: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bookmark_interval: Duration::from_secs(1),
            history: 10_000,
        }
    }
}

/// What every request handler sees.
pub struct Shared {
    pub store: Arc<Store>,
    pub opts: Options,
    /// Flips to true when this serving period ends (stop): connections and
    /// watch streams end with it.
    pub shutdown: watch::Receiver<bool>,
    pub addr: SocketAddr,
}

pub fn json(code: StatusCode, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

pub fn error(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, &e.to_status())
}

pub fn text(code: StatusCode, s: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(s.to_string())).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// A body fed line by line from a channel: hyper sends it chunked, one
/// chunk per event, and ends it when the sender is dropped.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

pub fn stream(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(ChannelBody(rx).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// Resolves once the serving period ends. The guard `wait_for` returns is
/// dropped here: it is not `Send` and must not live across an await.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
