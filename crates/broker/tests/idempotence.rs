//! Idempotent produce through `api::dispatch`: InitProducerId at every version, retries
//! answered with their first offsets, sequence and epoch errors, and deduplication that
//! survives a clean restart and a crash (state rebuilt from the snapshot and the log).

mod common;

use std::sync::Arc;

use common::*;
use kafka_protocol::messages::*;
use weir_broker::Broker;

async fn init_producer_id(broker: &Arc<Broker>, version: i16) -> (i64, i16) {
    let r: InitProducerIdResponse = call(
        broker,
        ApiKey::InitProducerId,
        version,
        &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
    )
    .await
    .unwrap();
    assert_eq!(r.error_code, 0, "InitProducerId v{version}");
    (r.producer_id.0, r.producer_epoch)
}

/// Produce `n` values as one idempotent batch starting at `seq`; (error, base offset).
async fn produce(broker: &Arc<Broker>, pid: i64, epoch: i16, seq: i32, n: usize) -> (i16, i64) {
    let values: Vec<String> = (0..n).map(|i| format!("v{}", seq as usize + i)).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name("t"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(idempotent_batch(&refs, pid, epoch, seq))),
            ])]);
    let r: ProduceResponse = call(broker, ApiKey::Produce, 9, &req).await.unwrap();
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test]
async fn init_producer_id_gives_new_ids_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).await.unwrap();
    let mut seen = Vec::new();
    for v in range(ApiKey::InitProducerId) {
        let (pid, epoch) = init_producer_id(&broker, v).await;
        assert_eq!(epoch, 0);
        assert!(!seen.contains(&pid));
        seen.push(pid);
    }
    let txn_init = |timeout_ms: i32| {
        let broker = broker.clone();
        async move {
            let r: InitProducerIdResponse = call(
                &broker,
                ApiKey::InitProducerId,
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .await
            .unwrap();
            (r.error_code, r.producer_id.0, r.producer_epoch)
        }
    };
    assert_eq!(txn_init(0).await.0, 50, "INVALID_TRANSACTION_TIMEOUT");
    assert_eq!(
        txn_init(900_001).await.0,
        50,
        "above transaction.max.timeout.ms"
    );
    let (code, txn_pid, epoch) = txn_init(60_000).await;
    assert_eq!((code, epoch), (0, 0));
    assert!(!seen.contains(&txn_pid));
    // The same transactional id again: the same producer id, the next epoch.
    assert_eq!(txn_init(60_000).await, (0, txn_pid, 1));
    seen.push(txn_pid);
    broker.shutdown().unwrap();
    // Ids are never reused after a restart.
    let broker = Broker::open(config(dir.path())).await.unwrap();
    let (pid, _) = init_producer_id(&broker, 4).await;
    assert!(seen.iter().all(|&s| pid > s), "{pid} after {seen:?}");
}

use kafka_protocol::protocol::StrBytes;

#[tokio::test]
async fn retries_are_answered_with_their_first_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).await.unwrap();
    broker
        .create_topic("t", 1, 1, Default::default())
        .await
        .unwrap();
    let (pid, epoch) = init_producer_id(&broker, 4).await;
    assert_eq!(produce(&broker, pid, epoch, 0, 5).await, (0, 0));
    assert_eq!(produce(&broker, pid, epoch, 5, 5).await, (0, 5));
    // Retries of either of the last batches: the same offsets, nothing written.
    assert_eq!(produce(&broker, pid, epoch, 0, 5).await, (0, 0));
    assert_eq!(produce(&broker, pid, epoch, 5, 5).await, (0, 5));
    // A gap, an old epoch, an unknown producer mid-sequence.
    assert_eq!(produce(&broker, pid, epoch, 20, 1).await.0, 45);
    assert_eq!(produce(&broker, pid, epoch + 1, 10, 1).await.0, 45);
    assert_eq!(produce(&broker, pid + 1000, 0, 3, 1).await.0, 59);
    assert_eq!(produce(&broker, pid, epoch, 10, 1).await, (0, 10));
    assert_eq!(
        broker.partition("t", 0).unwrap().state().high_watermark,
        11,
        "no duplicate was written"
    );
    // A bumped epoch fences the old one.
    assert_eq!(produce(&broker, pid, epoch + 1, 0, 1).await, (0, 11));
    assert_eq!(produce(&broker, pid, epoch, 11, 1).await.0, 47);
}

#[tokio::test]
async fn deduplication_survives_clean_restart_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).await.unwrap();
    broker
        .create_topic("t", 1, 1, Default::default())
        .await
        .unwrap();
    let (pid, epoch) = init_producer_id(&broker, 4).await;
    for i in 0..10 {
        assert_eq!(
            produce(&broker, pid, epoch, i * 3, 3).await,
            (0, i as i64 * 3)
        );
    }
    // Clean restart: state comes from the snapshot written at shutdown.
    broker.shutdown().unwrap();
    drop(broker);
    let broker = Broker::open(config(dir.path())).await.unwrap();
    assert_eq!(
        produce(&broker, pid, epoch, 27, 3).await,
        (0, 27),
        "a retry after restart"
    );
    assert_eq!(produce(&broker, pid, epoch, 30, 3).await, (0, 30));
    // Crash: no shutdown, no fresh snapshot; the old snapshot plus the log after it.
    drop(broker);
    let broker = Broker::open(config(dir.path())).await.unwrap();
    assert_eq!(
        produce(&broker, pid, epoch, 30, 3).await,
        (0, 30),
        "a retry after a crash"
    );
    assert_eq!(produce(&broker, pid, epoch, 24, 3).await, (0, 24));
    assert_eq!(produce(&broker, pid, epoch, 33, 3).await, (0, 33));
    // Without any snapshot at all, the log alone rebuilds the state.
    drop(broker);
    std::fs::remove_file(dir.path().join("t-0").join("producer-state.snapshot")).unwrap();
    let broker = Broker::open(config(dir.path())).await.unwrap();
    assert_eq!(produce(&broker, pid, epoch, 33, 3).await, (0, 33));
    assert_eq!(broker.partition("t", 0).unwrap().state().high_watermark, 36);
}
