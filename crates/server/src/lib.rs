//! weir-server: the network edge.
//!
//! Owns: the TCP listener, one task pair per connection (a reader that parses and
//! dispatches requests in order, a writer that sends responses in the same order), enforcing
//! the limits that protect the broker from its clients ([`ServerLimits`], declared with the other
//! settings in `weir_broker::settings`), and graceful shutdown.
//!
//! Invariants: responses on a connection go out in request order, and requests take effect
//! in that order too (a request waits for the deferred work of earlier ones it depends on,
//! see [`ordering`]); a frame is never allocated before its size is checked against
//! `socket.request.max.bytes`; a malformed frame, an unknown API or an unsupported version
//! closes only that connection.
//!
//! Shutdown (mini-redis style): a watch channel tells every task to stop reading; each
//! connection finishes the requests it has already read; every connection task holds a clone
//! of an mpsc sender, so when `recv` on the receiver returns `None` every connection is done.
//!
//! Tracing (mini-redis and Iggy style): every connection's tasks run in a `connection` span
//! (`peer`, `conn_id`), and each request is handled, its response encoded (also when that
//! completes later, as Produce and Fetch do) and written in a `request` span (`api`,
//! `api_version`, `correlation_id`, `client_id`) inside it, so an event anywhere on those
//! paths, broker code included, carries that context without naming it.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, Span};
use weir_broker::api::{self, Response};
use weir_broker::Broker;
use weir_protocol::kafka_protocol::messages::ApiKey;
use weir_protocol::{
    parse_request_header, read_frame_chunk, read_frame_size, FrameError, HeaderError,
    FRAME_CHUNK_BYTES,
};

pub mod metrics;
mod ordering;
mod send;
use metrics::{CONNECTIONS_ACCEPTED, CONNECTIONS_OPEN, REQUESTS};
use ordering::OrderBarrier;

pub use weir_broker::config::ServerLimits;

/// The shared budgets every connection draws from.
struct Budgets {
    requests: Arc<Semaphore>,
    request_bytes: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// What a request holds until its response is written: its place in `queued.max.requests`
/// and its bytes of `queued.max.request.bytes`.
struct Held {
    _request: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Serve Kafka clients on `listener` until `shutdown` turns true, then finish in-flight
/// requests and return. The caller then shuts the broker down (fsync, clean marker).
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let budgets = Arc::new(Budgets {
        requests: Arc::new(Semaphore::new(limits.queued_max_requests.max(1))),
        request_bytes: Arc::new(Semaphore::new(
            limits
                .queued_max_request_bytes
                .clamp(FRAME_CHUNK_BYTES, Semaphore::MAX_PERMITS),
        )),
        per_ip: Mutex::new(HashMap::new()),
    });
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    // Tells apart connections from the same address (a client reconnecting reuses its
    // ip, sometimes its port) in the logs; never reused within a process.
    let mut next_conn_id: u64 = 0;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                CONNECTIONS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
                next_conn_id += 1;
                let span = tracing::info_span!("connection", %peer, conn_id = next_conn_id);
                {
                    let mut per_ip = budgets.per_ip.lock().unwrap_or_else(|e| e.into_inner());
                    let n = per_ip.entry(peer.ip()).or_insert(0);
                    if *n >= limits.max_connections_per_ip {
                        span.in_scope(|| {
                            tracing::warn!(
                                limit = limits.max_connections_per_ip,
                                "closing connection: max.connections.per.ip reached"
                            );
                        });
                        continue;
                    }
                    *n += 1;
                }
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                let done = done_tx.clone();
                let limits = limits.clone();
                let budgets = budgets.clone();
                CONNECTIONS_OPEN.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(
                    async move {
                        let _ = stream.set_nodelay(true);
                        handle_connection(broker, stream, peer, limits, budgets.clone(), shutdown)
                            .await;
                        CONNECTIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
                        let mut per_ip = budgets.per_ip.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(n) = per_ip.get_mut(&peer.ip()) {
                            *n -= 1;
                            if *n == 0 {
                                per_ip.remove(&peer.ip());
                            }
                        }
                        drop(permit);
                        drop(done);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(done_tx);
    tracing::info!("stopped accepting; waiting for in-flight requests");
    let _ = done_rx.recv().await;
}

/// What the writer needs to record a request's latency.
#[derive(Clone, Copy)]
struct Timed {
    api_key: i16,
    api_version: i16,
    read_at: Instant,
}

/// How long a connection in the middle of a frame waits for request-memory budget before it
/// is closed.
const BUDGET_WAIT: Duration = Duration::from_secs(10);

/// Why the reader stopped.
enum ReadEnd {
    Closed,
    Idle,
    Shutdown,
    /// `queued.max.request.bytes` stayed exhausted for `BUDGET_WAIT` mid-frame.
    Budget,
    Frame(FrameError),
}

/// A response on its way to the writer, with what its request holds of the shared budgets
/// (released once it is written), its latency bookkeeping (None for a request whose header
/// did not parse) and the request's span, in which it is awaited and written.
struct Outgoing {
    /// The request's place on its connection, from 1 (see [`OrderBarrier`]).
    seq: u64,
    response: Response,
    held: Held,
    timed: Option<Timed>,
    span: Span,
}

/// Read one whole request frame, taking its bytes from the shared budget chunk by chunk
/// before reading them (so a flood of large frames waits instead of allocating), and then
/// its place among the queued requests. Closes idle connections.
async fn read_request(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    max_frame: usize,
    limits: &ServerLimits,
    budgets: &Budgets,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(BytesMut, Held), ReadEnd> {
    let idle = Duration::from_millis(limits.connections_max_idle_ms.max(1));
    let size = tokio::select! {
        r = tokio::time::timeout(idle, read_frame_size(reader, max_frame)) => match r {
            Err(_) => return Err(ReadEnd::Idle),
            Ok(Ok(Some(size))) => size,
            Ok(Ok(None)) => return Err(ReadEnd::Closed),
            Ok(Err(e)) => return Err(ReadEnd::Frame(e)),
        },
        _ = shutdown.wait_for(|s| *s) => return Err(ReadEnd::Shutdown),
    };
    let mut body = BytesMut::new();
    let mut bytes_permit: Option<OwnedSemaphorePermit> = None;
    while body.len() < size {
        let want = (size - body.len()).min(FRAME_CHUNK_BYTES);
        // Bytes are taken as they arrive, so a slow sender holds only what it has sent.
        // Connections that each hold part of a large frame could wait on each other for
        // ever; one that cannot get its next chunk in time gives up its share and is closed
        // (its client retries), so the others finish.
        let got = tokio::select! {
            p = tokio::time::timeout(
                BUDGET_WAIT,
                budgets.request_bytes.clone().acquire_many_owned(want as u32),
            ) => match p {
                Ok(p) => p.expect("never closed"),
                Err(_) => return Err(ReadEnd::Budget),
            },
            _ = shutdown.wait_for(|s| *s) => return Err(ReadEnd::Shutdown),
        };
        match bytes_permit.as_mut() {
            Some(p) => p.merge(got),
            None => bytes_permit = Some(got),
        }
        let read = tokio::select! {
            r = tokio::time::timeout(idle, read_frame_chunk(reader, &mut body, size)) => r,
            _ = shutdown.wait_for(|s| *s) => return Err(ReadEnd::Shutdown),
        };
        match read {
            Err(_) => return Err(ReadEnd::Idle),
            Ok(Err(e)) => return Err(ReadEnd::Frame(e)),
            Ok(Ok(n)) => {
                // Give back what was taken for bytes that did not arrive in this read.
                if n < want {
                    if let Some(p) = bytes_permit.as_mut() {
                        if let Some(unused) = p.split(want - n) {
                            drop(unused);
                        }
                    }
                }
            }
        }
    }
    let request = budgets
        .requests
        .clone()
        .acquire_owned()
        .await
        .expect("never closed");
    Ok((
        body,
        Held {
            _request: request,
            _bytes: bytes_permit,
        },
    ))
}

async fn handle_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: ServerLimits,
    budgets: Arc<Budgets>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::debug!("connection opened");
    let client_host = format!("/{}", peer.ip());
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(limits.max_in_flight_per_connection);
    // The writer publishes the sequence number of the last request it has finished, so the
    // reader can hold back a request until the earlier ones it depends on took effect.
    let (finished_tx, mut finished_rx) = watch::channel(0u64);
    let writer_task = tokio::spawn(
        async move {
            while let Some(out) = rx.recv().await {
                let Outgoing {
                    seq,
                    response,
                    held,
                    timed,
                    span,
                } = out;
                // A later response's future was instrumented with the request span when
                // it was queued; events of the writer itself enter it by hand.
                let frame = match response {
                    Response::Now(b) => b,
                    Response::Later(fut) => match fut.await {
                        Ok(b) => b,
                        Err(e) => {
                            if let Some(t) = timed {
                                REQUESTS.error(t.api_key, t.api_version);
                            }
                            span.in_scope(|| {
                                tracing::error!(error = %e, "dropping connection");
                            });
                            break;
                        }
                    },
                    Response::Nothing => {
                        if let Some(t) = timed {
                            REQUESTS.latency(t.api_key, t.read_at.elapsed());
                        }
                        finished_tx.send_replace(seq);
                        continue;
                    }
                };
                if let Err(e) = send::write_frame(&mut writer, frame)
                    .instrument(span.clone())
                    .await
                {
                    span.in_scope(|| tracing::debug!(error = %e, "write failed"));
                    break;
                }
                if let Some(t) = timed {
                    REQUESTS.latency(t.api_key, t.read_at.elapsed());
                }
                finished_tx.send_replace(seq);
                drop(held);
            }
            let _ = writer.shutdown().await;
        }
        .instrument(Span::current()),
    );

    let max_frame = broker.config.socket_request_max_bytes;
    let mut barrier = OrderBarrier::default();
    let mut seq = 0u64;
    loop {
        let (frame, held) = match read_request(
            &mut reader,
            max_frame,
            &limits,
            &budgets,
            &mut shutdown,
        )
        .await
        {
            Ok(r) => r,
            Err(ReadEnd::Closed | ReadEnd::Shutdown) => break,
            Err(ReadEnd::Idle) => {
                tracing::info!(
                    idle_ms = limits.connections_max_idle_ms,
                    "closing idle connection (connections.max.idle.ms)"
                );
                break;
            }
            Err(ReadEnd::Budget) => {
                tracing::warn!(budget = limits.queued_max_request_bytes,
                        "closing connection: request memory budget (queued.max.request.bytes) exhausted");
                break;
            }
            Err(ReadEnd::Frame(FrameError::Io(e))) => {
                tracing::debug!(error = %e, "read failed");
                break;
            }
            Err(ReadEnd::Frame(e)) => {
                tracing::warn!(error = %e, "closing connection");
                break;
            }
        };
        let read_at = Instant::now();
        seq += 1;
        let mut frame = frame.freeze();
        let meta = match parse_request_header(&mut frame, api::SUPPORTED_APIS) {
            Ok(mut m) => {
                m.client_host = client_host.clone();
                m
            }
            Err(HeaderError::Unsupported {
                api_key,
                api_version,
                correlation_id,
            }) if api_key == ApiKey::ApiVersions as i16 => {
                let span = tracing::info_span!("request", api = ?ApiKey::ApiVersions,
                    api_version, correlation_id);
                span.in_scope(|| {
                    tracing::debug!("ApiVersions at an unknown version: answering v0");
                });
                REQUESTS.request(api_key, api_version);
                REQUESTS.error(api_key, api_version);
                let resp = api::api_versions::unsupported_version_response(correlation_id);
                let out = Outgoing {
                    seq,
                    response: Response::Now(api::Frame::Whole(resp)),
                    held,
                    timed: None,
                    span,
                };
                if tx.send(out).await.is_err() {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "closing connection");
                break;
            }
        };
        let timed = Timed {
            api_key: meta.api_key as i16,
            api_version: meta.api_version,
            read_at,
        };
        REQUESTS.request(timed.api_key, timed.api_version);
        let span = tracing::info_span!(
            "request",
            api = ?meta.api_key,
            api_version = meta.api_version,
            correlation_id = meta.correlation_id,
            client_id = meta.client_id.as_deref(),
        );
        let wait_for = barrier.must_finish_before(meta.api_key, *finished_rx.borrow());
        if wait_for > 0 && finished_rx.wait_for(|f| *f >= wait_for).await.is_err() {
            // The writer is gone (its client went away): nothing more will be answered.
            break;
        }
        match api::dispatch(&broker, &meta, frame)
            .instrument(span.clone())
            .await
        {
            Ok(response) => {
                let response = match response {
                    // Produce waiting for its fsync, Fetch waiting for data, admin work
                    // that writes a log: the rest of the request (and the encoding of its
                    // response) runs in the writer task, still in this request's span.
                    Response::Later(fut) => {
                        barrier.pending(seq, meta.api_key);
                        Response::Later(Box::pin(fut.instrument(span.clone())))
                    }
                    other => other,
                };
                let out = Outgoing {
                    seq,
                    response,
                    held,
                    timed: Some(timed),
                    span,
                };
                if tx.send(out).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                REQUESTS.error(timed.api_key, timed.api_version);
                span.in_scope(|| tracing::warn!(error = %e, "closing connection"));
                break;
            }
        }
    }
    // Let the writer finish what was already read (in-flight requests), then close.
    drop(tx);
    let _ = writer_task.await;
    tracing::debug!("connection closed");
}
