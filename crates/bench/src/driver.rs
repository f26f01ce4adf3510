//! The common driver: the same loops, clock and histograms for every system.
//!
//! - `produce` (W1): N producer tasks, each with its own connection, send back to back with
//!   at most `window` unacknowledged messages each, for `seconds`. Throughput counts acked
//!   messages over the time from the first send to the last ack.
//! - `latency` (W2): one producer sends on a fixed schedule (message i is due at
//!   start + i/rate); one consumer reads every partition. Latency is receive time minus the
//!   *intended* send time, so a producer that falls behind is charged for it (coordinated
//!   omission corrected). Ack latency is measured the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::backend::{now_ns, payload, Backend, Received};

pub struct ProduceOpts {
    pub producers: usize,
    pub partitions: usize,
    pub size: usize,
    pub seconds: f64,
    pub window: usize,
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

fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record((ns / 1000).max(1));
}

pub async fn produce(backend: Arc<dyn Backend>, run: &str, o: &ProduceOpts) -> Result<Value> {
    backend.setup(run, o.partitions).await?;
    let mut senders = Vec::new();
    for _ in 0..o.producers {
        senders.push(backend.sender(run, o.partitions).await?);
    }
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.seconds);
    let mut tasks = Vec::new();
    for (k, sender) in senders.into_iter().enumerate() {
        let (size, window, partitions, producers) = (o.size, o.window, o.partitions, o.producers);
        let errors = errors.clone();
        let first_error = first_error.clone();
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
            (acked, h, sender)
        }));
    }
    let mut acked = 0u64;
    let mut h = hist();
    let mut keep = Vec::new();
    for t in tasks {
        let (a, th, sender) = t.await?;
        acked += a;
        h.add(th).ok();
        keep.push(sender);
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(keep);
    let bytes = acked * o.size as u64;
    let mut out = json!({
        "workload": "produce",
        "producers": o.producers,
        "partitions": o.partitions,
        "size": o.size,
        "window": o.window,
        "seconds": elapsed,
        "messages": acked,
        "bytes": bytes,
        "msg_per_s": acked as f64 / elapsed,
        "mb_per_s": bytes as f64 / elapsed / 1e6,
        "errors": errors.load(Ordering::Relaxed),
        "first_error": *first_error.lock().unwrap(),
    });
    for (k, v) in percentiles_ms(&h, "ack") {
        out[k] = v;
    }
    let _ = backend.teardown(run, o.partitions).await;
    Ok(out)
}

pub async fn latency(backend: Arc<dyn Backend>, run: &str, o: &LatencyOpts) -> Result<Value> {
    backend.setup(run, o.partitions).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    backend.consume(run, o.partitions, tx).await?;
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
    let _ = backend.teardown(run, o.partitions).await;
    Ok(out)
}
