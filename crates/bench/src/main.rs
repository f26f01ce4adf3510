//! `weir-bench`: one load generator for weir and its peers, so every system pays the same
//! driver costs and only its own client library differs.
//!
//! Each run prints one JSON line on stdout (see `driver.rs` for the fields); progress and
//! client warnings go to stderr. Exit status is non-zero if a run failed outright; per-message
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
    /// RabbitMQ queue type: quorum or classic.
    #[arg(long, default_value = "quorum")]
    rabbit_queue_type: String,
    /// A short sanity run: W1 for 2 s and W2 at 1000 msg/s for 2 s (two JSON lines).
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

#[tokio::main]
async fn main() -> Result<()> {
    let mut a = Args::parse();
    backend::now_ns();
    if a.smoke {
        a.seconds = 2.0;
        a.warmup_seconds = 0.5;
        a.rate = vec![1000];
    }
    if a.partitions == 0 || a.producers == 0 || a.size < 16 {
        bail!("--partitions and --producers must be > 0, --size >= 16");
    }
    let backend = make_backend(&a);
    let mut n = 0;
    if a.smoke || a.workload == Workload::Produce {
        let o = driver::ProduceOpts {
            producers: a.producers,
            partitions: a.partitions,
            size: a.size,
            seconds: a.seconds,
            window: a.window,
        };
        let v = driver::produce(backend.clone(), &run_id(n), &o).await?;
        n += 1;
        emit(&a, backend.as_ref(), v);
    }
    if a.smoke || a.workload == Workload::Latency {
        for &rate in &a.rate {
            let o = driver::LatencyOpts {
                partitions: a.partitions,
                size: a.size,
                seconds: a.seconds,
                rate,
                warmup_seconds: a.warmup_seconds,
            };
            let v = driver::latency(backend.clone(), &run_id(n), &o).await?;
            n += 1;
            emit(&a, backend.as_ref(), v);
        }
    }
    // Client libraries keep background threads (librdkafka, lapin); do not wait for them.
    std::process::exit(0);
}
