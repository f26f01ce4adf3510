//! The common driver: the same loops, clock and histograms for every system.
//!
//! - `produce` (W1, and W4 with many partitions and connections; also the fill of W3):
//!   N producer tasks, each with its own connection, send back to back with at most `window`
//!   unacknowledged messages each, for `seconds` or until `max_messages` are sent. Producer
//!   k sends to partitions k, k+N, k+2N, ... in turn. Throughput counts acked messages over
//!   the time from the first send to the last ack.
//! - `latency` (W2): one producer sends on a fixed schedule (message i is due at
//!   start + i/rate); one consumer reads every partition. Latency is receive time minus the
//!   *intended* send time, so a producer that falls behind is charged for it (coordinated
//!   omission corrected). Ack latency is measured the same way.
//! - `consume` (W3): one consumer reads every partition of an existing run from the
//!   beginning, as fast as it can, until it has seen the expected number of messages (or
//!   nothing arrived for `idle_seconds`). Throughput counts messages over the time from the
//!   subscribe call to the last message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::backend::{now_ns, payload, Backend, ConsumeFor, Received};

pub struct ProduceOpts {
    /// Names the output: "produce" (W1), "scale" (W4) or "fill" (W3's data).
    pub workload: &'static str,
    pub producers: usize,
    pub partitions: usize,
    pub size: usize,
    /// Sending stops after this long (an infinite value: no time limit).
    pub seconds: f64,
    /// ... or once this many messages were sent, over all producers.
    pub max_messages: u64,
    pub window: usize,
    /// Creating the partitions plus connecting every producer must finish within this.
    pub setup_timeout_seconds: f64,
}

pub struct ConsumeOpts {
    pub partitions: usize,
    pub size: usize,
    /// Stop once this many messages arrived; 0: read until idle.
    pub expect_messages: u64,
    /// Stop when nothing arrived for this long.
    pub idle_seconds: f64,
    /// Stop after this long whatever happens.
    pub seconds_max: f64,
}

pub struct LatencyOpts {
    pub partitions: usize,
    pub size: usize,
    pub seconds: f64,
    pub rate: u64,
    pub warmup_seconds: f64,
}

fn hist() -> Histogram<u64> {
    // 1 us .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).unwrap()
}

fn percentiles_ms(h: &Histogram<u64>, prefix: &str) -> Vec<(String, Value)> {
    let ms = |us: u64| (us as f64) / 1000.0;
    vec![
        (format!("{prefix}_count"), json!(h.len())),
        (
            format!("{prefix}_ms_p50"),
            json!(ms(h.value_at_quantile(0.50))),
        ),
        (
            format!("{prefix}_ms_p99"),
            json!(ms(h.value_at_quantile(0.99))),
        ),
        (
            format!("{prefix}_ms_p999"),
            json!(ms(h.value_at_quantile(0.999))),
        ),
        (format!("{prefix}_ms_max"), json!(ms(h.max()))),
    ]
}

/// CPU seconds (user + system, all threads) this process has used, from /proc/self/stat: on
/// 2 cores the load generator's own CPU is part of the story. Linux reports it in ticks of
/// USER_HZ, which is 100 on every Linux ABI. None where there is no /proc.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces:
    // state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn cpu_since(start: Option<f64>) -> Option<f64> {
    Some(process_cpu_seconds()? - start?)
}

fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record((ns / 1000).max(1));
}

pub async fn produce(backend: Arc<dyn Backend>, run: &str, o: &ProduceOpts) -> Result<Value> {
    let setup_start = Instant::now();
    let setup_timeout = Duration::from_secs_f64(o.setup_timeout_seconds);
    let created = tokio::time::timeout(setup_timeout, backend.setup(run, o.partitions)).await;
    created.map_err(|_| {
        anyhow!(
            "setup: creating {} partitions did not finish in {} s",
            o.partitions,
            o.setup_timeout_seconds
        )
    })??;
    let setup_seconds = setup_start.elapsed().as_secs_f64();
    // Connect a few producers at a time: 500 one after the other take long on the peers,
    // 500 at once is a connection storm no benchmark means to measure.
    let connect_start = Instant::now();
    let connected = AtomicU64::new(0);
    let connecting = futures_util::stream::iter(0..o.producers)
        .map(|_| backend.sender(run, o.partitions))
        .buffered(16)
        .inspect_ok(|_| {
            connected.fetch_add(1, Ordering::Relaxed);
        })
        .try_collect::<Vec<_>>();
    let left = setup_timeout.saturating_sub(setup_start.elapsed());
    let senders = tokio::time::timeout(left, connecting).await.map_err(|_| {
        anyhow!(
            "setup: created {} partitions in {setup_seconds:.1} s, then connected only {} of {} \
             producers by {} s",
            o.partitions,
            connected.load(Ordering::Relaxed),
            o.producers,
            o.setup_timeout_seconds
        )
    })??;
    let connect_seconds = connect_start.elapsed().as_secs_f64();
    let cpu_start = process_cpu_seconds();
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let sent_total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.seconds.clamp(0.0, 1e7));
    let mut tasks = Vec::new();
    for (k, sender) in senders.into_iter().enumerate() {
        let (size, window, partitions, producers) = (o.size, o.window, o.partitions, o.producers);
        let max_messages = o.max_messages;
        let errors = errors.clone();
        let first_error = first_error.clone();
        let sent_total = sent_total.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let mut acked = 0u64;
            let mut inflight = FuturesUnordered::new();
            let mut seq = 0u64;
            let on_done = |r: (Result<()>, u64), h: &mut Histogram<u64>, acked: &mut u64| {
                let (r, t0) = r;
                match r {
                    Ok(()) => {
                        *acked += 1;
                        record(h, now_ns().saturating_sub(t0));
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            *first_error.lock().unwrap() = Some(e.to_string());
                        }
                    }
                }
            };
            while Instant::now() < deadline {
                if inflight.len() >= window {
                    if let Some(r) = inflight.next().await {
                        on_done(r, &mut h, &mut acked);
                    }
                    continue;
                }
                if sent_total.fetch_add(1, Ordering::Relaxed) >= max_messages {
                    break;
                }
                // Producer k starts at partition k; all spread evenly.
                let partition = ((seq as usize) * producers + k) % partitions;
                let t0 = now_ns();
                match sender.send(partition, payload(size, t0, seq)).await {
                    Ok(ack) => inflight.push(ack.map(move |r| (r, t0))),
                    Err(e) => on_done((Err(e), t0), &mut h, &mut acked),
                }
                seq += 1;
                while let Some(Some(r)) = inflight.next().now_or_never() {
                    on_done(r, &mut h, &mut acked);
                }
            }
            while let Some(r) = inflight.next().await {
                on_done(r, &mut h, &mut acked);
            }
            (acked, seq, h, sender)
        }));
    }
    let mut acked = 0u64;
    let mut sent = 0u64;
    let mut h = hist();
    let mut keep = Vec::new();
    for t in tasks {
        let (a, s, th, sender) = t.await?;
        acked += a;
        sent += s;
        h.add(th).ok();
        keep.push(sender);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let client_cpu_seconds = cpu_since(cpu_start);
    // Closing a librdkafka producer blocks for tens of ms; 500 of them one after the other
    // would take half a minute, so they close side by side.
    let closing: Vec<_> = keep
        .into_iter()
        .map(|s| tokio::task::spawn_blocking(move || drop(s)))
        .collect();
    for c in closing {
        let _ = c.await;
    }
    let bytes = acked * o.size as u64;
    let mut out = json!({
        "workload": o.workload,
        "run": run,
        "producers": o.producers,
        "partitions": o.partitions,
        "size": o.size,
        "window": o.window,
        "setup_seconds": setup_seconds,
        "connect_seconds": connect_seconds,
        "seconds": elapsed,
        "sent": sent,
        "messages": acked,
        "bytes": bytes,
        "msg_per_s": acked as f64 / elapsed,
        "mb_per_s": bytes as f64 / elapsed / 1e6,
        "errors": errors.load(Ordering::Relaxed),
        "first_error": *first_error.lock().unwrap(),
        "client_cpu_seconds": client_cpu_seconds,
    });
    if o.max_messages != u64::MAX {
        out["max_messages"] = json!(o.max_messages);
        // The time limit ended it before `max_messages` were sent.
        out["time_capped"] = json!(sent < o.max_messages);
    }
    for (k, v) in percentiles_ms(&h, "ack") {
        out[k] = v;
    }
    Ok(out)
}

pub async fn consume(backend: Arc<dyn Backend>, run: &str, o: &ConsumeOpts) -> Result<Value> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let cpu_start = process_cpu_seconds();
    let start_ns = now_ns();
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds_max);
    let idle = Duration::from_secs_f64(o.idle_seconds);
    backend
        .consume(run, o.partitions, ConsumeFor::Throughput, tx)
        .await?;
    let subscribed_ns = now_ns();
    let (mut received, mut first_ns, mut last_ns) = (0u64, None::<u64>, subscribed_ns);
    let mut buf = Vec::with_capacity(4096);
    let stop = loop {
        if o.expect_messages > 0 && received >= o.expect_messages {
            break "all expected messages read";
        }
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            break "time limit";
        }
        match tokio::time::timeout(wait, rx.recv_many(&mut buf, 4096)).await {
            Ok(0) => break "consumer stopped",
            Ok(n) => {
                received += n as u64;
                first_ns.get_or_insert(buf[0].1);
                last_ns = buf[n - 1].1;
                buf.clear();
            }
            Err(_) if Instant::now() >= deadline => break "time limit",
            Err(_) => break "idle",
        }
    };
    let client_cpu_seconds = cpu_since(cpu_start);
    let elapsed = last_ns.saturating_sub(start_ns) as f64 / 1e9;
    let bytes = received * o.size as u64;
    let rate = |v: f64| if elapsed > 0.0 { v / elapsed } else { 0.0 };
    Ok(json!({
        "workload": "consume",
        "run": run,
        "partitions": o.partitions,
        "size": o.size,
        "expected": o.expect_messages,
        "messages": received,
        "bytes": bytes,
        "complete": o.expect_messages == 0 || received >= o.expect_messages,
        "stop": stop,
        "seconds": elapsed,
        "subscribe_ms": subscribed_ns.saturating_sub(start_ns) as f64 / 1e6,
        "first_message_ms": first_ns.map(|t| t.saturating_sub(start_ns) as f64 / 1e6),
        "msg_per_s": rate(received as f64),
        "mb_per_s": rate(bytes as f64) / 1e6,
        "client_cpu_seconds": client_cpu_seconds,
    }))
}

pub async fn latency(backend: Arc<dyn Backend>, run: &str, o: &LatencyOpts) -> Result<Value> {
    backend.setup(run, o.partitions).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    backend
        .consume(run, o.partitions, ConsumeFor::Latency, tx)
        .await?;
    let sender = backend.sender(run, o.partitions).await?;

    let interval_ns = 1_000_000_000 / o.rate.max(1);
    let total = ((o.warmup_seconds + o.seconds) * o.rate as f64) as u64;
    let start_ns = now_ns() + 10_000_000;
    let measure_from_ns = start_ns + (o.warmup_seconds * 1e9) as u64;
    let base = Instant::now() + Duration::from_nanos(start_ns - now_ns());

    // Consumer side: shared so the sender can watch it drain.
    let seen = Arc::new(std::sync::Mutex::new((0u64, hist())));
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some((intended, at)) = rx.recv().await {
                let mut g = seen.lock().unwrap();
                g.0 += 1;
                if intended >= measure_from_ns {
                    record(&mut g.1, at.saturating_sub(intended));
                }
            }
        })
    };

    let mut ack_h = hist();
    let mut errors = 0u64;
    let mut first_error = None::<String>;
    let mut acked = 0u64;
    let mut behind_max_ns = 0u64;
    let mut inflight = FuturesUnordered::new();
    let mut on_done = |(r, intended): (Result<()>, u64), ack_h: &mut Histogram<u64>| match r {
        Ok(()) => {
            acked += 1;
            if intended >= measure_from_ns {
                record(ack_h, now_ns().saturating_sub(intended));
            }
        }
        Err(e) => {
            errors += 1;
            first_error.get_or_insert(e.to_string());
        }
    };
    for i in 0..total {
        let intended = start_ns + i * interval_ns;
        let due = base + Duration::from_nanos(i * interval_ns);
        // Wait for the due time while collecting acks.
        loop {
            if Instant::now() >= due {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => break,
                Some(r) = inflight.next(), if !inflight.is_empty() => on_done(r, &mut ack_h),
            }
        }
        behind_max_ns = behind_max_ns.max(now_ns().saturating_sub(intended));
        match sender
            .send(i as usize % o.partitions, payload(o.size, intended, i))
            .await
        {
            Ok(ack) => inflight.push(ack.map(move |r| (r, intended))),
            Err(e) => on_done((Err(e), intended), &mut ack_h),
        }
    }
    while let Some(r) = inflight.next().await {
        on_done(r, &mut ack_h);
    }
    let send_end = Instant::now();
    // Give the consumer time to see everything that was acknowledged.
    while seen.lock().unwrap().0 < acked && send_end.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    collector.abort();
    drop(sender);
    let (received, h) = {
        let g = seen.lock().unwrap();
        (g.0, g.1.clone())
    };
    let mut out = json!({
        "workload": "latency",
        "rate": o.rate,
        "partitions": o.partitions,
        "size": o.size,
        "seconds": o.seconds,
        "warmup_seconds": o.warmup_seconds,
        "sent": total,
        "messages": acked,
        "received": received,
        "missing": acked.saturating_sub(received),
        "errors": errors,
        "first_error": first_error,
        "producer_behind_max_ms": behind_max_ns as f64 / 1e6,
    });
    for (k, v) in percentiles_ms(&h, "e2e")
        .into_iter()
        .chain(percentiles_ms(&ack_h, "ack"))
    {
        out[k] = v;
    }
    Ok(out)
}
