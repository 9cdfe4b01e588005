//! The one small HTTP/1.1 server both the probes and `/metrics` use:
//! hyper's connection driver on a tokio listener, GET/HEAD only, a fixed
//! set of paths per listener.

use super::Observer;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// What a listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    /// `/liveness`, `/readiness`.
    pub health: bool,
    /// `/metrics`.
    pub metrics: bool,
}

/// The OpenMetrics text format prometheus-client writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` now (so a taken port stops start-up, naming it) and serves
/// it on a task of its own until the process ends.
pub async fn serve(addr: SocketAddr, routes: Routes, observer: Observer) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::warn!(%addr, error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let observer = observer.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let observer = observer.clone();
                    async move { Ok::<_, Infallible>(answer(req, routes, &observer).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "HTTP connection");
                }
            });
        }
    });
    Ok(())
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// 200 with "ok", or 503 with the reason: the body is what
/// `tabby-node health` prints and what `kubectl describe pod` shows.
fn probe(result: Result<(), String>) -> Response<Full<Bytes>> {
    match result {
        Ok(()) => text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8"),
        Err(why) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{why}\n"),
            "text/plain; charset=utf-8",
        ),
    }
}

async fn answer(req: Request<Incoming>, routes: Routes, o: &Observer) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".into(),
            "text/plain; charset=utf-8",
        );
    }
    match req.uri().path() {
        "/liveness" if routes.health => probe(o.live().await),
        "/readiness" if routes.health => probe(o.ready().await),
        "/metrics" if routes.metrics => match o.metrics_text().await {
            Ok(body) => text(StatusCode::OK, body, OPENMETRICS),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
                "text/plain; charset=utf-8",
            ),
        },
        other => text(
            StatusCode::NOT_FOUND,
            format!("no such path {other:?}\n"),
            "text/plain; charset=utf-8",
        ),
    }
}
