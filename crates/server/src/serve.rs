//! The accept loop: HTTP/1.1 and HTTP/2 connections served with hyper,
//! each with a deadline for its request headers, and drained on shutdown
//! within a grace period: no new connection is accepted, requests in
//! flight finish, and WebSockets (which hyper no longer watches once
//! upgraded) are told through [`Drain`] to close with 1001.
//!
//! `axum::serve` sets no timer on its connections, so a client that sends
//! its headers one byte at a time holds a connection and a task for as long
//! as it likes; hyper's `header_read_timeout` needs a timer, which only a
//! loop of our own can give it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Tells long-lived connections (WebSockets) that the gateway is stopping,
/// and lets shutdown wait until they closed.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    stopping: CancellationToken,
    open: Arc<(AtomicUsize, Notify)>,
}

/// One open long-lived connection; released when dropped.
#[derive(Debug)]
pub struct Held(Arc<(AtomicUsize, Notify)>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }
}

impl Drain {
    /// Counts a connection as open until the guard is dropped.
    pub fn hold(&self) -> Held {
        self.open.0.fetch_add(1, Ordering::SeqCst);
        Held(self.open.clone())
    }

    /// Resolves once shutdown began.
    pub async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    /// Whether shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    fn begin(&self) {
        self.stopping.cancel();
    }

    /// Resolves once every held connection closed.
    async fn closed(&self) {
        loop {
            let notified = self.open.1.notified();
            if self.open.0.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Longest requests in flight may take to finish once shutdown began.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish (within the grace period)
/// and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Drain,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment
                    // rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain.begin();
    let drained = async {
        graceful.shutdown().await;
        drain.closed().await;
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!(
                grace_ms = u64::try_from(opts.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
                "connections still open when the shutdown grace period ended"
            );
        }
    }
}
