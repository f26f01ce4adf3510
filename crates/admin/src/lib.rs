//! weir-admin: the operator's HTTP door.
//!
//! Owns: the admin listener (`--admin-listen`, default 127.0.0.1:9644) and everything served
//! on it — `GET /health` (the process is up), `GET /ready` (logs open and recovered, Kafka
//! listener bound), `GET /metrics` (Prometheus text format 0.0.4), the JSON API under `/v1/`
//! and its OpenAPI 3 document at `/openapi.json`.
//!
//! Invariants and why:
//! - The listener starts before `Broker::open`, so an orchestrator sees the process live
//!   (and not ready) during a long recovery. Until the broker is set, `/v1/` answers 503.
//! - One command path: every write goes through the same broker operations the Kafka
//!   handlers call (`Broker::create_topic`, `Broker::delete_topic`,
//!   `alter_topic_incrementally`, `topic_entries`, `broker_entries`, the group coordinator),
//!   so HTTP and Kafka clients can never disagree on validation or effect.
//! - Metrics are read at scrape time from the structures that own them (partition state,
//!   atomics on partitions, fixed arrays in the server and storage crates); nothing is kept
//!   twice and nothing on the hot path takes a lock for the exporter.
//! - Request bodies are capped at [`MAX_BODY_BYTES`]; every error is JSON
//!   `{"error": KAFKA_ERROR_NAME, "message": ...}`.
//! - At most [`MAX_CONNECTIONS`] connections are served at once (more wait in the kernel's
//!   backlog), and a connection that does not send a request's headers within
//!   [`HEADER_READ_TIMEOUT`] (idle keep-alive included) is closed: a flood or a slow client
//!   costs bounded memory and cannot hold the API for long.

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weir_broker::Broker;

mod api;
mod exposition;
mod openapi;

/// The largest request body the JSON API reads (a topic with many configs fits easily).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Connections served at once; the next ones wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// Time a connection has to send a request's headers, counted from when the server starts
/// waiting for them (so an idle keep-alive connection is closed after it too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Addresses the broker info reports.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The address the Kafka listener is bound to.
    pub kafka: String,
    /// The address clients are told to connect to (Metadata), which may differ behind NAT.
    pub advertised: String,
    /// The address this admin HTTP server is bound to.
    pub admin: String,
}

/// What the admin server knows: the broker once it is open, and whether Kafka is served.
pub struct AdminState {
    started: Instant,
    listeners: Listeners,
    broker: OnceLock<Arc<Broker>>,
    serving: AtomicBool,
}

impl AdminState {
    /// State for a starting broker: not ready until both `set_broker` and `set_serving`.
    pub fn new(listeners: Listeners) -> Arc<AdminState> {
        Arc::new(AdminState {
            started: Instant::now(),
            listeners,
            broker: OnceLock::new(),
            serving: AtomicBool::new(false),
        })
    }

    /// The logs are open and recovered; the JSON API can answer from now on.
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// The Kafka listener is bound: `/ready` turns 200.
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::Release);
        tracing::info!(
            kafka = %self.listeners.kafka,
            advertised = %self.listeners.advertised,
            admin = %self.listeners.admin,
            "weir is ready"
        );
    }

    /// What `/ready` answers: logs recovered and the Kafka listener bound.
    pub fn is_ready(&self) -> bool {
        self.broker.get().is_some() && self.serving.load(Ordering::Acquire)
    }

    fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }

    fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

type Shared = Arc<AdminState>;

/// Bind the admin listener (before the broker opens, so a bad address fails fast).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve the admin API on `listener` until `shutdown` turns true; connections then finish
/// the request in progress and close.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stopped(&mut shutdown) => return Ok(()),
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "admin listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => return Ok(()),
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone). The watch guard is dropped
/// inside, so it never lives across an await of the caller's.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(api::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn health(State(s): State<Shared>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "uptime_seconds": s.uptime_seconds(),
    }))
    .into_response()
}

async fn ready(State(s): State<Shared>) -> Response {
    if s.is_ready() {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        )
            .into_response()
    } else {
        let reason = if s.broker().is_none() {
            "opening and recovering the logs"
        } else {
            "binding the Kafka listener"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "starting", "reason": reason})),
        )
            .into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    let body = exposition::render(&s);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    api::ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route").into_response()
}

async fn method_not_allowed() -> Response {
    api::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not accept that method",
    )
    .into_response()
}
