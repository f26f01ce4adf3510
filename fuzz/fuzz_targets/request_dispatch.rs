//! One request frame body (header + body, no size prefix), as a client would send it:
//! `weir_protocol::parse_request_header`, then `weir_broker::api::dispatch` against a real
//! broker (data directory on tmpfs when there is one), awaiting any later answer for at most
//! 100 ms. Errors are fine; a panic, an abort, a hang or an unbounded allocation is a bug.
//!
//! The broker and its current-thread runtime are created once and replaced every
//! `GENERATION_EXECS` inputs, or sooner once its topics hold `MAX_PARTITIONS` partitions or
//! `MAX_LOG_BYTES` bytes, so the state the inputs build up (topics, groups, data) stays
//! bounded. The runtime's clock is paused: timers (Fetch long polls, rebalance delays, the
//! 100 ms budget) fire as soon as nothing else can run, so they cost no wall time.
//!
//! Checks beyond "no panic": an immediate or later response is one well-formed frame (its
//! size prefix matches, it carries the request's correlation id), and dispatch itself
//! (everything before a `Later`) never waits on a timer for a minute of virtual time.

#![no_main]

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_broker::api::{dispatch, Response, SUPPORTED_APIS};
use weir_broker::{Broker, BrokerConfig, TopicDefaults};
use weir_protocol::parse_request_header;

const GENERATION_EXECS: u64 = 2_000;
const MAX_PARTITIONS: usize = 200;
const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

struct Env {
    // Field order is drop order: the broker, then the runtime (cancelling its tasks), then
    // the directory.
    broker: Arc<Broker>,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    execs: u64,
}

fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        node_id: 0,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        data_dir: dir.to_path_buf(),
        num_partitions: 2,
        auto_create_topics_enable: true,
        socket_request_max_bytes: 1024 * 1024,
        topic_defaults: TopicDefaults {
            // Small segments so that produced data rolls them.
            segment_bytes: 16 * 1024,
            ..TopicDefaults::default()
        },
        group: weir_broker::group::GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        },
        offsets: weir_broker::group::OffsetsConfig {
            topic_num_partitions: 2,
            ..Default::default()
        },
        producer_id_expiration_ms: 86_400_000,
        txn: weir_broker::txn::TxnConfig {
            topic_num_partitions: 2,
            ..Default::default()
        },
        log_manager: Default::default(),
        explicit: Default::default(),
    }
}

/// Where broker data directories go: `$WEIR_FUZZ_DATA_DIR` (scripts/fuzz.sh sets it), else
/// tmpfs (`/dev/shm`: an fsync there costs nothing), else the system temp directory.
fn data_parent() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_FUZZ_DATA_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("WEIR_FUZZ_DATA_DIR");
        return dir;
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn new_env() -> Env {
    let dir = tempfile::Builder::new()
        .prefix("weir-fuzz-")
        .tempdir_in(data_parent())
        .expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let broker = rt.block_on(async {
        let broker = Broker::open(config(dir.path()))
            .await
            .expect("broker opens");
        seed_topics(&broker).await;
        broker
    });
    Env {
        broker,
        rt,
        dir,
        execs: 0,
    }
}

/// The topics the seed corpus names (see tools/capture_corpus.py), created with a few
/// batches each, so that a seed (or a mutation of it) reaches produce, fetch and offset
/// lookups on existing data rather than stopping at UNKNOWN_TOPIC_OR_PARTITION.
const SEED_TOPICS: &[(&str, i32, Option<(&str, &str)>)] = &[
    ("kcat-none", 1, None),
    ("kcat-gzip", 1, None),
    ("kcat-snappy", 1, None),
    ("kcat-lz4", 1, None),
    ("kcat-zstd", 1, None),
    ("kcat-part", 1, None),
    ("ck-topic", 3, Some(("segment.bytes", "16384"))),
    (
        "ck-logappend",
        1,
        Some(("message.timestamp.type", "LogAppendTime")),
    ),
    ("kp-topic", 1, None),
];

async fn seed_topics(broker: &Arc<Broker>) {
    for &(name, partitions, config) in SEED_TOPICS {
        let overrides = config
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter()
            .collect();
        let topic = broker
            .create_topic(name, partitions, 1, overrides)
            .await
            .expect("create a seed topic");
        for p in &topic.partitions {
            for i in 0..3 {
                let mut batch = weir_fuzz::valid_batch(1 + i, 20, 1_700_000_000_000 + i as i64);
                if let Ok(weir_broker::partition::Appended::New(info)) =
                    p.append(&mut batch, 1_700_000_000_000, None)
                {
                    let _ = p.wait_durable(info.last_offset + 1).await;
                }
            }
        }
    }
}

impl Env {
    fn too_big(&self) -> bool {
        if self.execs >= GENERATION_EXECS {
            return true;
        }
        let topics = self.broker.topics();
        let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
        if partitions >= MAX_PARTITIONS {
            return true;
        }
        let bytes: u64 = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.with_log(|l| l.size_bytes()).unwrap_or(0))
            .sum();
        bytes >= MAX_LOG_BYTES
    }

    fn retire(self) {
        let Env {
            broker, rt, dir, ..
        } = self;
        let _ = broker.shutdown();
        drop(broker);
        drop(rt);
        drop(dir);
    }
}

thread_local! {
    static ENV: RefCell<Option<Env>> = const { RefCell::new(None) };
}

fn check_frame(frame: &Bytes, correlation_id: i32) {
    assert!(frame.len() >= 8, "response frame of {} bytes", frame.len());
    let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
    assert_eq!(size as usize, frame.len() - 4, "response size prefix");
    let cid = i32::from_be_bytes(frame[4..8].try_into().unwrap());
    assert_eq!(cid, correlation_id, "response correlation id");
}

fuzz_target!(|data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    let Ok(mut meta) = parse_request_header(&mut frame, SUPPORTED_APIS) else {
        return;
    };
    meta.client_host = "/127.0.0.1".to_string();
    ENV.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_some_and(Env::too_big) {
            slot.take().unwrap().retire();
        }
        let env = slot.get_or_insert_with(new_env);
        env.execs += 1;
        let broker = env.broker.clone();
        env.rt.block_on(async move {
            let dispatched =
                tokio::time::timeout(Duration::from_secs(60), dispatch(&broker, &meta, frame))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("dispatch of {:?} v{} hung", meta.api_key, meta.api_version)
                    });
            match dispatched {
                Ok(Response::Now(frame)) => check_frame(
                    &frame.into_bytes().expect("fetched ranges read"),
                    meta.correlation_id,
                ),
                Ok(Response::Later(fut)) => {
                    if let Ok(Ok(frame)) =
                        tokio::time::timeout(Duration::from_millis(100), fut).await
                    {
                        check_frame(
                            &frame.into_bytes().expect("fetched ranges read"),
                            meta.correlation_id,
                        );
                    }
                }
                Ok(Response::Nothing) | Err(_) => {}
            }
        });
        let _ = &env.dir;
    });
});
