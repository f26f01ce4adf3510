//! What every system under test must provide to the driver: a way to create the
//! partitions/queues of one run, a sender whose `send` resolves in two steps (queued by the
//! client, then acknowledged as durable by the server), and a consumer that reports every
//! message it receives together with the time it saw it.
//!
//! The driver (`driver.rs`) owns all the timing, so the client-side cost of a system is only
//! what its own client library does between `send` and the acknowledgement.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use tokio::sync::mpsc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Resolves once the server acknowledged the message (for every backend here: written and,
/// where the server can be configured so, fsync'd).
pub type AckFuture = BoxFuture<'static, Result<()>>;

/// One received message: (intended send time, receive time), both from [`now_ns`].
pub type Received = (u64, u64);

/// What a consumer is tuned for; each backend maps it to its own client's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeFor {
    /// W2: every message as soon as it exists (short fetch waits, the client's defaults).
    Latency,
    /// W3: a backlog read back as fast as the system serves it (large fetches, batches,
    /// prefetch).
    Throughput,
}

pub trait Sender: Send + Sync {
    /// Hands one message to the client. The outer future applies the client's own
    /// backpressure (a full queue waits); the returned [`AckFuture`] is the acknowledgement.
    fn send(&self, partition: usize, payload: Bytes) -> BoxFuture<'_, Result<AckFuture>>;
}

pub trait Backend: Send + Sync {
    /// Creates the `partitions` partitions (topic partitions, streams or queues) of `run`.
    fn setup<'a>(&'a self, run: &'a str, partitions: usize) -> BoxFuture<'a, Result<()>>;
    /// A new sender with its own connection(s).
    fn sender<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
    ) -> BoxFuture<'a, Result<Box<dyn Sender>>>;
    /// Starts one consumer (one connection) on every partition of `run`, from the beginning;
    /// every message payload's stamp is sent to `tx` with its receive time. Returns once the
    /// consumer is subscribed. On the queue brokers (RabbitMQ, ActiveMQ) consuming removes
    /// the messages.
    fn consume<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
        mode: ConsumeFor,
        tx: mpsc::UnboundedSender<Received>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes what `setup` created, where the system keeps it on disk.
    fn teardown<'a>(&'a self, _run: &'a str, _partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Client name and settings, for the results.
    fn describe(&self) -> serde_json::Value;
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process: producer and consumer share the clock.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Payload layout: intended send time (u64 LE, ns from [`now_ns`]), sequence number (u64 LE),
/// then filler up to `size` bytes.
pub fn payload(size: usize, intended_ns: u64, seq: u64) -> Bytes {
    let mut v = vec![0x5au8; size.max(16)];
    v[..8].copy_from_slice(&intended_ns.to_le_bytes());
    v[8..16].copy_from_slice(&seq.to_le_bytes());
    Bytes::from(v)
}

pub fn stamp(payload: &[u8]) -> u64 {
    payload
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

/// Spawn a task that reports every message of `messages` to the driver, stamped with the
/// time it arrived, until the driver stops listening. `system` names errors in the output.
pub fn forward_received<S, T, E>(
    system: &'static str,
    messages: S,
    tx: mpsc::UnboundedSender<Received>,
    payload_of: fn(&T) -> &[u8],
) where
    S: futures_util::Stream<Item = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    use futures_util::StreamExt;
    tokio::spawn(async move {
        futures_util::pin_mut!(messages);
        while let Some(m) = messages.next().await {
            let now = now_ns();
            match m {
                Ok(m) => {
                    if tx.send((stamp(payload_of(&m)), now)).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("{system} consumer error: {e}"),
            }
        }
    });
}
