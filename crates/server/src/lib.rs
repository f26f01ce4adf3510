//! weir-server: the network edge.
//!
//! Owns: the TCP listener, one task pair per connection (a reader that parses and
//! dispatches requests in order, a writer that sends responses in the same order), the limits
//! that protect the broker from its clients, and graceful shutdown.
//!
//! Invariants: responses on a connection go out in request order; a frame is never
//! allocated before its size is checked against `socket.request.max.bytes`; a malformed
//! frame, an unknown API or an unsupported version closes only that connection.
//!
//! Shutdown (mini-redis style): a watch channel tells every task to stop reading; each
//! connection finishes the requests it has already read; every connection task holds a clone
//! of an mpsc sender, so when `recv` on the receiver returns `None` every connection is done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use weir_broker::api::{self, Response};
use weir_broker::Broker;
use weir_protocol::kafka_protocol::messages::ApiKey;
use weir_protocol::{parse_request_header, read_frame, FrameError, HeaderError};

/// Limits of the network edge.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// `max.connections`: connections beyond this wait in the accept queue.
    pub max_connections: usize,
    /// Requests read but not yet answered, per connection (`queued.max.requests` spirit):
    /// when reached, the reader stops reading, so the client feels backpressure.
    pub max_in_flight_per_connection: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            max_in_flight_per_connection: 32,
        }
    }
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
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
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
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                let done = done_tx.clone();
                let limits = limits.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    handle_connection(broker, stream, peer, limits, shutdown).await;
                    drop(permit);
                    drop(done);
                });
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

async fn handle_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::debug!(%peer, "connection opened");
    let client_host = format!("/{}", peer.ip());
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Response>(limits.max_in_flight_per_connection);
    let writer_task = tokio::spawn(async move {
        while let Some(resp) = rx.recv().await {
            let bytes: Bytes = match resp {
                Response::Now(b) => b,
                Response::Later(fut) => match fut.await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(%peer, error = %e, "dropping connection");
                        break;
                    }
                },
                Response::Nothing => continue,
            };
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::debug!(%peer, error = %e, "write failed");
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let max_frame = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, max_frame) => f,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let mut frame: Bytes = match frame {
            Ok(Some(f)) => f.freeze(),
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "read failed");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let meta = match parse_request_header(&mut frame) {
            Ok(mut m) => {
                m.client_host = client_host.clone();
                m
            }
            Err(HeaderError::Unsupported {
                api_key,
                api_version,
                correlation_id,
            }) if api_key == ApiKey::ApiVersions as i16 => {
                tracing::debug!(%peer, api_version, "ApiVersions at an unknown version: answering v0");
                let resp = api::api_versions::unsupported_version_response(correlation_id);
                if tx.send(Response::Now(resp)).await.is_err() {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        match api::dispatch(&broker, &meta, frame).await {
            Ok(resp) => {
                if tx.send(resp).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, client_id = ?meta.client_id, error = %e, "closing connection");
                break;
            }
        }
    }
    // Let the writer finish what was already read (in-flight requests), then close.
    drop(tx);
    let _ = writer_task.await;
    tracing::debug!(%peer, "connection closed");
}
