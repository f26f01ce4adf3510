//! `weir-bench`: one load generator for weir and its peers, so every system pays the same
//! driver costs and only its own client library differs.
//!
//! Each run prints one JSON line on stdout (see `driver.rs` for the fields; a W3 consume with
//! a fill prints the fill's line, then the read's); progress and client warnings go to stderr. Exit status is non-zero if a run failed outright; per-message
//! errors are counted in the JSON (`errors`, `first_error`), not fatal.

mod backend;
mod driver;
mod kafka;
mod nats;
mod rabbit;
mod stomp;

use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

use backend::Backend;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum System {
    /// The Kafka protocol (weir) through librdkafka.
    Kafka,
    /// NATS JetStream through async-nats.
    Nats,
    /// RabbitMQ (AMQP 0-9-1) through lapin.
    Rabbitmq,
    /// ActiveMQ through STOMP 1.2 with receipts.
    Activemq,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Workload {
    /// W1: produce throughput.
    Produce,
    /// W2: end-to-end latency at fixed rates.
    Latency,
    /// W3's data: produce `--fill-bytes` into the partitions of `--run-name` and keep them.
    Fill,
    /// W3: one consumer reads every partition of `--run-name` from the beginning, after
    /// filling them first if `--fill-bytes` is given.
    Consume,
    /// W4: W1 with many partitions and producer connections (use a small `--window`).
    Scale,
}

#[derive(Parser, Debug)]
#[command(name = "weir-bench", version, about)]
struct Args {
    #[arg(long, value_enum, default_value = "kafka")]
    system: System,
    /// Server address: Kafka bootstrap HOST:PORT, nats://HOST:PORT, amqp://HOST:PORT/%2f,
    /// or HOST:PORT (STOMP).
    #[arg(long, default_value = "127.0.0.1:9092")]
    addr: String,
    #[arg(long, value_enum, default_value = "produce")]
    workload: Workload,
    /// Free-form tag copied into the JSON (e.g. the round number).
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    partitions: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Measured duration of each run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unacknowledged messages allowed per producer (W1).
    #[arg(long, default_value_t = 4096)]
    window: usize,
    /// Fixed send rates for W2, msg/s, comma-separated: one run (one JSON line) each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    rate: Vec<u64>,
    /// W2: seconds sent before measuring (not counted in the histograms).
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    /// Kafka producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// Creating the partitions and connecting the producers must finish within this (W1, W3
    /// fill, W4); otherwise the run fails, saying so.
    #[arg(long, default_value_t = 150.0)]
    setup_timeout_seconds: f64,
    /// W3: names the partitions/streams/queues, so that separate runs (fill, then a consume
    /// after the page cache was dropped) meet the same data. Default: a fresh name.
    #[arg(long)]
    run_name: Option<String>,
    /// W3: bytes to produce before reading (rounded up to whole messages); 0: no fill, read
    /// what `--run-name` holds.
    #[arg(long, default_value_t = 0)]
    fill_bytes: u64,
    /// W3: stop filling after this long even if `--fill-bytes` is not reached (the JSON says
    /// `time_capped` and how much was filled). Default: no time limit.
    #[arg(long)]
    fill_seconds: Option<f64>,
    /// W3 without a fill: messages the partitions hold; the read stops once it saw them.
    /// 0: read until nothing arrives for `--idle-seconds`.
    #[arg(long, default_value_t = 0)]
    expect_messages: u64,
    /// W3: the read ends when nothing arrived for this long.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// W3: the read ends after this long whatever happens.
    #[arg(long, default_value_t = 240.0)]
    read_seconds_max: f64,
    /// Leave the partitions/queues of the run in place (default: delete them after the
    /// run, except after `fill`).
    #[arg(long)]
    keep: bool,
    /// RabbitMQ queue type: quorum or classic.
    #[arg(long, default_value = "quorum")]
    rabbit_queue_type: String,
    /// A short sanity run, five JSON lines: W1 for 2 s, W2 at 1000 msg/s for 2 s, W3 fill of
    /// 2 MiB and its read, W4 with 20 producers x 50 partitions for 2 s.
    #[arg(long)]
    smoke: bool,
}

fn make_backend(a: &Args) -> Arc<dyn Backend> {
    match a.system {
        System::Kafka => Arc::new(kafka::Kafka {
            bootstrap: a.addr.clone(),
            linger_ms: a.linger_ms,
        }),
        System::Nats => Arc::new(nats::Nats {
            url: a.addr.clone(),
        }),
        System::Rabbitmq => Arc::new(rabbit::Rabbit {
            uri: a.addr.clone(),
            queue_type: a.rabbit_queue_type.clone(),
        }),
        System::Activemq => Arc::new(stomp::Stomp {
            addr: a.addr.clone(),
        }),
    }
}

fn run_id(n: usize) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{}-{t}-{n}", std::process::id())
}

fn emit(a: &Args, backend: &dyn Backend, mut v: serde_json::Value) {
    v["system"] = serde_json::json!(format!("{:?}", a.system).to_lowercase());
    v["label"] = serde_json::json!(a.label);
    v["client"] = backend.describe();
    v["unix_time"] = serde_json::json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs());
    println!("{v}");
}

async fn teardown(a: &Args, backend: &dyn Backend, run: &str, partitions: usize) {
    if !a.keep {
        if let Err(e) = backend.teardown(run, partitions).await {
            eprintln!("teardown of {run}: {e}");
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut a = Args::parse();
    backend::now_ns();
    if a.smoke {
        a.seconds = 2.0;
        a.warmup_seconds = 0.5;
        a.rate = vec![1000];
    }
    if a.partitions == 0 || a.producers == 0 || a.size < 16 || a.window == 0 {
        bail!("--partitions, --producers and --window must be > 0, --size >= 16");
    }
    let backend = make_backend(&a);
    let mut n = 0;
    let mut next_run = || {
        n += 1;
        run_id(n)
    };
    let produce_opts =
        |workload, producers, partitions, window, seconds, max_messages| driver::ProduceOpts {
            workload,
            producers,
            partitions,
            size: a.size,
            seconds,
            max_messages,
            window,
            setup_timeout_seconds: a.setup_timeout_seconds,
        };
    if a.smoke || a.workload == Workload::Produce {
        let run = next_run();
        let o = produce_opts(
            "produce",
            a.producers,
            a.partitions,
            a.window,
            a.seconds,
            u64::MAX,
        );
        let v = driver::produce(backend.clone(), &run, &o).await?;
        emit(&a, backend.as_ref(), v);
        teardown(&a, backend.as_ref(), &run, a.partitions).await;
    }
    if a.smoke || a.workload == Workload::Latency {
        for &rate in &a.rate {
            let run = next_run();
            let o = driver::LatencyOpts {
                partitions: a.partitions,
                size: a.size,
                seconds: a.seconds,
                rate,
                warmup_seconds: a.warmup_seconds,
            };
            let v = driver::latency(backend.clone(), &run, &o).await?;
            emit(&a, backend.as_ref(), v);
            teardown(&a, backend.as_ref(), &run, a.partitions).await;
        }
    }
    if a.smoke || matches!(a.workload, Workload::Fill | Workload::Consume) {
        let run = a.run_name.clone().unwrap_or_else(&mut next_run);
        let fill_bytes = if a.smoke { 2 << 20 } else { a.fill_bytes };
        let mut expect = a.expect_messages;
        if fill_bytes > 0 {
            let messages = fill_bytes.div_ceil(a.size as u64);
            let seconds = a.fill_seconds.unwrap_or(f64::INFINITY);
            let o = produce_opts(
                "fill",
                a.producers,
                a.partitions,
                a.window,
                seconds,
                messages,
            );
            let v = driver::produce(backend.clone(), &run, &o).await?;
            expect = v["messages"].as_u64().unwrap_or(0);
            emit(&a, backend.as_ref(), v);
        } else if a.workload == Workload::Fill {
            bail!("--workload fill needs --fill-bytes");
        } else if a.run_name.is_none() {
            bail!("--workload consume needs --fill-bytes or the --run-name of a fill");
        }
        if a.smoke || a.workload == Workload::Consume {
            let o = driver::ConsumeOpts {
                partitions: a.partitions,
                size: a.size,
                expect_messages: expect,
                idle_seconds: a.idle_seconds,
                seconds_max: a.read_seconds_max,
            };
            let v = driver::consume(backend.clone(), &run, &o).await?;
            emit(&a, backend.as_ref(), v);
            teardown(&a, backend.as_ref(), &run, a.partitions).await;
        }
    }
    if a.smoke || a.workload == Workload::Scale {
        let run = next_run();
        let o = if a.smoke {
            produce_opts("scale", 20, 50, 64, a.seconds, u64::MAX)
        } else {
            let (p, k, w) = (a.producers, a.partitions, a.window);
            produce_opts("scale", p, k, w, a.seconds, u64::MAX)
        };
        let v = driver::produce(backend.clone(), &run, &o).await?;
        emit(&a, backend.as_ref(), v);
        teardown(&a, backend.as_ref(), &run, o.partitions).await;
    }
    // Client libraries keep background threads (librdkafka, lapin); do not wait for them.
    std::process::exit(0);
}
