//! Crash tests of the broker's own files on `SimFs`: the topic catalog against the partition
//! directories, the producer-id blocks, and producer-state snapshots. The power goes off at
//! every file-system operation of a workload (strictly or tearing unsynced writes, in turn),
//! the broker is reopened on what survived, and what was acknowledged must be there:
//! - the catalog never names a partition whose directory is missing, and every topic change
//!   that was answered OK survives with the data acknowledged in it;
//! - an idempotent producer's retry after the crash is still recognised as a duplicate,
//!   whatever state its snapshot was left in (missing, old, or damaged).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use kafka_protocol::messages::*;
use weir_broker::clock::SystemClock;
use weir_broker::Broker;
use weir_storage::{Fs, SimFs};

const DATA: &str = "/data";

fn fresh_fs(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(Path::new(DATA)).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

async fn open(fs: &SimFs) -> Result<Arc<Broker>, weir_broker::error::MetadataError> {
    let fs: Arc<dyn Fs> = Arc::new(fs.clone());
    Broker::open_in(config(Path::new(DATA)), fs, Arc::new(SystemClock)).await
}

/// The broker is gone with the power: stop its partitions' flushers (every operation
/// fails now), then cut the power, strictly or tearing unsynced writes.
fn power_loss(broker: Arc<Broker>, fs: &SimFs, torn: bool) {
    broker.catalog.close_all();
    drop(broker);
    if torn {
        fs.crash_torn();
    } else {
        fs.crash();
    }
}

/// Produce `values` to `topic`-0 as one batch (idempotent if `producer` is given, with its
/// id, epoch and first sequence); (error code, base offset).
async fn produce(
    broker: &Arc<Broker>,
    topic: &str,
    values: &[&str],
    producer: Option<(i64, i16, i32)>,
) -> (i16, i64) {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(idempotent_batch(values, pid, epoch, seq))),
            ])]);
    let r: ProduceResponse = call(broker, ApiKey::Produce, 9, &req).await.unwrap();
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Whether partition 0 of `topic` holds `value` (read from the log start).
fn holds(broker: &Broker, topic: &str, value: &str) -> bool {
    let p = broker.partition(topic, 0).unwrap();
    let bytes = p.read(0, 1 << 20).unwrap();
    bytes.windows(value.len()).any(|w| w == value.as_bytes())
}

/// The topics and partition counts the durable catalog names.
fn durable_catalog(fs: &SimFs) -> Vec<(String, i64)> {
    let Some(bytes) = fs.contents(&Path::new(DATA).join("topics.json")) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("the catalog is whole JSON");
    v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["partitions"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// What the workload was told succeeded before the power went off.
#[derive(Debug, Default)]
struct Acked {
    a_created: bool,
    a_record: bool,
    b_deleted: bool,
    a_grown: bool,
    c_created: bool,
    c_altered: bool,
}

/// Topic changes and a produce, stopping at the first failure (the power is off).
async fn catalog_workload(broker: &Arc<Broker>, acked: &mut Acked) {
    if broker
        .create_topic("a", 2, 1, Default::default())
        .await
        .is_err()
    {
        return;
    }
    acked.a_created = true;
    if produce(broker, "a", &["hello-a"], None).await.0 != 0 {
        return;
    }
    acked.a_record = true;
    if broker.delete_topic("b").await.is_err() {
        return;
    }
    acked.b_deleted = true;
    if broker.create_partitions("a", 3, false).await.is_err() {
        return;
    }
    acked.a_grown = true;
    if broker
        .create_topic("c", 1, 1, Default::default())
        .await
        .is_err()
    {
        return;
    }
    acked.c_created = true;
    let overrides = [("retention.ms".to_string(), "1000".to_string())].into();
    if broker
        .alter_topic_config("c", overrides, false)
        .await
        .is_err()
    {
        return;
    }
    acked.c_altered = true;
}

#[tokio::test]
async fn a_crash_at_every_operation_of_topic_changes_keeps_catalog_and_data_consistent() {
    let mut op = 0u64;
    loop {
        let label = format!(
            "crash at op {op}, {}",
            if op % 2 == 1 { "torn" } else { "strict" }
        );
        let fs = fresh_fs(op);
        let broker = open(&fs).await.unwrap();
        broker
            .create_topic("b", 1, 1, Default::default())
            .await
            .unwrap();
        assert_eq!(produce(&broker, "b", &["hello-b"], None).await.0, 0);
        fs.crash_at_op(fs.op_count() + op);
        let mut acked = Acked::default();
        catalog_workload(&broker, &mut acked).await;
        let crashed = fs.is_down();
        power_loss(broker, &fs, op % 2 == 1);

        // The durable catalog names only partitions whose directories survived.
        for (topic, partitions) in durable_catalog(&fs) {
            for i in 0..partitions {
                let dir = Path::new(DATA).join(format!("{topic}-{i}"));
                assert!(
                    fs.exists(&dir).unwrap(),
                    "{label}: the catalog names {topic}-{i} but {} is gone",
                    dir.display()
                );
            }
        }
        let broker = open(&fs)
            .await
            .unwrap_or_else(|e| panic!("{label}: the broker does not open: {e} ({acked:?})"));
        let a = broker.topic("a");
        if acked.a_created {
            assert!(a.is_some(), "{label}: created topic a is gone");
        }
        if acked.a_record {
            assert!(
                holds(&broker, "a", "hello-a"),
                "{label}: acknowledged record of a lost"
            );
        }
        if acked.a_grown {
            assert_eq!(
                a.as_ref().unwrap().partitions.len(),
                3,
                "{label}: added partitions lost"
            );
        } else if let Some(a) = &a {
            assert!(matches!(a.partitions.len(), 2 | 3), "{label}");
        }
        match broker.topic("b") {
            Some(_) => {
                assert!(!acked.b_deleted, "{label}: deleted topic b came back");
                assert!(
                    holds(&broker, "b", "hello-b"),
                    "{label}: b is named but its data is gone"
                );
            }
            None => assert!(
                acked.b_deleted || crashed,
                "{label}: b vanished without a delete"
            ),
        }
        if acked.c_created {
            assert!(
                broker.topic("c").is_some(),
                "{label}: created topic c is gone"
            );
        }
        if acked.c_altered {
            let c = broker.topic("c").unwrap();
            assert_eq!(c.settings.retention_ms, 1000, "{label}: config change lost");
        }
        // The recovered broker takes the same changes again.
        for t in ["a", "c"] {
            if broker.topic(t).is_none() {
                broker
                    .create_topic(t, 1, 1, Default::default())
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            produce(&broker, "a", &["after"], None).await.0,
            0,
            "{label}"
        );
        broker.catalog.close_all();
        if !crashed {
            assert!(
                acked.c_altered,
                "the whole workload ran once the crash point was past it"
            );
            break;
        }
        op += 1;
    }
    assert!(op > 20, "crash points covered the workload ({op} of them)");
}

async fn init_producer_id(broker: &Arc<Broker>) -> (i64, i16) {
    let r: InitProducerIdResponse = call(
        broker,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
    )
    .await
    .unwrap();
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

/// A broker with topic `t` and five idempotent batches of three records from one producer.
async fn five_batches(fs: &SimFs) -> (Arc<Broker>, i64, i16) {
    let broker = open(fs).await.unwrap();
    broker
        .create_topic("t", 1, 1, Default::default())
        .await
        .unwrap();
    let (pid, epoch) = init_producer_id(&broker).await;
    for i in 0..5 {
        let seq = i * 3;
        let r = produce(&broker, "t", &["x", "y", "z"], Some((pid, epoch, seq))).await;
        assert_eq!(r, (0, seq as i64));
    }
    (broker, pid, epoch)
}

/// After a restart, a retry of the last batch is answered with its first offset and
/// written nowhere, and the producer's next batch follows it.
async fn deduplication_holds(broker: &Arc<Broker>, pid: i64, epoch: i16, label: &str) {
    let retry = produce(broker, "t", &["x", "y", "z"], Some((pid, epoch, 12))).await;
    assert_eq!(retry, (0, 12), "{label}: the retry of the last batch");
    let next = produce(broker, "t", &["x", "y", "z"], Some((pid, epoch, 15))).await;
    assert_eq!(next, (0, 15), "{label}: the next batch");
    let p = broker.partition("t", 0).unwrap();
    assert_eq!(
        p.state().high_watermark,
        18,
        "{label}: nothing written twice"
    );
}

#[tokio::test]
async fn a_crash_at_every_operation_of_shutdown_keeps_deduplication() {
    let mut op = 0u64;
    loop {
        let label = format!("crash at op {op} of shutdown");
        let fs = fresh_fs(1000 + op);
        let (broker, pid, epoch) = five_batches(&fs).await;
        fs.crash_at_op(fs.op_count() + op);
        let shut = broker.shutdown();
        let crashed = fs.is_down();
        assert_eq!(shut.is_err(), crashed, "{label}: {shut:?}");
        power_loss(broker, &fs, op % 2 == 1);
        let broker = open(&fs).await.unwrap_or_else(|e| panic!("{label}: {e}"));
        deduplication_holds(&broker, pid, epoch, &label).await;
        broker.catalog.close_all();
        if !crashed {
            break;
        }
        op += 1;
    }
    assert!(op > 5, "crash points covered the shutdown ({op} of them)");
}

#[tokio::test]
async fn a_damaged_producer_snapshot_is_ignored_and_the_log_rebuilds_deduplication() {
    let snapshot = Path::new(DATA).join("t-0").join("producer-state.snapshot");
    let fs = fresh_fs(7);
    let (broker, _, _) = five_batches(&fs).await;
    broker.shutdown().unwrap();
    drop(broker);
    let good = fs
        .contents(&snapshot)
        .expect("a clean shutdown writes a snapshot");
    let mut damaged: Vec<(String, Vec<u8>)> = (0..good.len())
        .step_by(5)
        .map(|n| (format!("cut to {n} bytes"), good[..n].to_vec()))
        .collect();
    for i in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[i] ^= 0x40;
        damaged.push((format!("byte {i} flipped"), b));
    }
    for (what, bytes) in damaged {
        let fs = fresh_fs(7);
        let (broker, pid, epoch) = five_batches(&fs).await;
        broker.shutdown().unwrap();
        drop(broker);
        // A disk that lied about an fsync: the snapshot in place is not what was written.
        let f = fs.create_truncate(&snapshot).unwrap();
        f.write_all_at(&bytes, 0).unwrap();
        f.sync_data().unwrap();
        let broker = open(&fs).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        deduplication_holds(&broker, pid, epoch, &what).await;
        broker.catalog.close_all();
    }
}
