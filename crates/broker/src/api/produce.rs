//! Produce (key 0): validate each partition's record set, append it, and answer once it is
//! durable (fsync'd by the partition's group commit, unless the topic opted out).
//!
//! All appends of one request happen here, synchronously and in order, before the next
//! request on the connection is read: that is what keeps a pipelining producer's batches in
//! order. Only the wait for the fsync is deferred.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use uuid::Uuid;
use weir_storage::batch::validate_record_set;
use weir_storage::{BatchError, StorageError};

use super::prelude::*;
use super::{some_str, Reply};
use crate::error_codes as ec;
use crate::log_validator::{self, PartitionName, RecordRules, Rejection};
use crate::partition::{Appended, Partition, PartitionError, TxnCheck};
use crate::producer_state::{increment_sequence, ProducerBatch};

/// The first version that names topics by id instead of by name (KIP-516).
const BY_TOPIC_ID: i16 = 13;

/// A partition's outcome: an error now, or appended and waiting for durability.
enum Outcome {
    Failed(i16, String),
    /// Refused because of some of its records (KIP-467) or their re-encoding.
    Rejected(Rejection),
    Appended {
        partition: Arc<Partition>,
        base_offset: i64,
        end_offset: i64,
        log_append_time_ms: i64,
    },
}

/// How a request names a topic, answered the same way: by name up to v12, by id from v13
/// (KIP-516).
struct TopicKey {
    name: TopicName,
    id: Uuid,
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: ProduceRequest,
) -> Reply<ProduceResponse> {
    let acks = req.acks;
    let mut results: Vec<(TopicKey, Vec<(i32, Outcome)>)> = Vec::new();
    let by_id = version >= BY_TOPIC_ID;
    let names = if by_id {
        super::topic_names_by_id(broker, req.topic_data.iter().map(|t| t.topic_id))
    } else {
        Default::default()
    };
    for topic in req.topic_data {
        // v13+ names the topic by id only; an id no topic has is UNKNOWN_TOPIC_ID for each
        // of its partitions (Kafka's answer), never a guess by name.
        let name: Option<String> = if by_id {
            names.get(&topic.topic_id).cloned()
        } else {
            Some(topic.name.to_string())
        };
        let mut parts = Vec::new();
        for pd in topic.partition_data {
            let outcome = if !(acks == 0 || acks == 1 || acks == -1) {
                Outcome::Failed(
                    ec::INVALID_REQUIRED_ACKS,
                    format!("acks={acks} is not 0, 1 or -1"),
                )
            } else if let Some(name) = &name {
                let txn_id = req
                    .transactional_id
                    .as_ref()
                    .map(|t| t.as_str())
                    .filter(|t| !t.is_empty());
                append_one(broker, name, pd.index, pd.records, txn_id)
            } else {
                Outcome::Failed(
                    ec::UNKNOWN_TOPIC_ID,
                    format!("no topic has the id {}", topic.topic_id),
                )
            };
            match &outcome {
                Outcome::Failed(code, _) => crate::metrics::PRODUCE_ERRORS.record(*code),
                Outcome::Rejected(r) => crate::metrics::PRODUCE_ERRORS.record(r.code),
                Outcome::Appended { .. } => {}
            }
            parts.push((pd.index, outcome));
        }
        let key = TopicKey {
            name: topic.name,
            id: topic.topic_id,
        };
        results.push((key, parts));
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let timeout_ms = req.timeout_ms.max(0) as u64;
    Reply::Later(Box::pin(async move {
        let mut responses = Vec::new();
        for (key, parts) in results {
            let mut prs = Vec::new();
            for (index, outcome) in parts {
                let pr = PartitionProduceResponse::default().with_index(index);
                let pr = match outcome {
                    Outcome::Failed(code, message) => pr
                        .with_error_code(code)
                        .with_base_offset(-1)
                        .with_error_message(some_str(&message)),
                    Outcome::Rejected(r) => pr
                        .with_error_code(r.code)
                        .with_base_offset(-1)
                        .with_error_message(some_str(&r.message))
                        .with_record_errors(
                            r.record_errors
                                .iter()
                                .map(|(index, why)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(*index)
                                        .with_batch_index_error_message(some_str(why))
                                })
                                .collect(),
                        ),
                    Outcome::Appended {
                        partition,
                        base_offset,
                        end_offset,
                        log_append_time_ms,
                    } => {
                        let waited = tokio::time::timeout(
                            Duration::from_millis(timeout_ms.max(1)),
                            partition.wait_durable(end_offset),
                        )
                        .await;
                        let log_start_offset = partition.state().log_start_offset;
                        let pr = match waited {
                            Ok(Ok(())) => pr
                                .with_error_code(ec::NONE)
                                .with_base_offset(base_offset)
                                .with_log_append_time_ms(log_append_time_ms)
                                .with_log_start_offset(log_start_offset),
                            Ok(Err(e)) => pr
                                .with_error_code(ec::KAFKA_STORAGE_ERROR)
                                .with_base_offset(-1)
                                .with_error_message(some_str(&e.to_string())),
                            Err(_) => pr
                                .with_error_code(ec::REQUEST_TIMED_OUT)
                                .with_base_offset(-1)
                                .with_error_message(some_str("not durable within timeout_ms")),
                        };
                        crate::metrics::PRODUCE_ERRORS.record(pr.error_code);
                        pr
                    }
                };
                prs.push(pr);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(key.name)
                    .with_topic_id(key.id)
                    .with_partition_responses(prs),
            );
        }
        ProduceResponse::default().with_responses(responses)
    }))
}

fn append_one(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    transactional_id: Option<&str>,
) -> Outcome {
    let now_ms = broker.clock().now_ms();
    let Some(partition) = broker.partition(topic, index) else {
        return Outcome::Failed(
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("{topic}-{index} does not exist"),
        );
    };
    if crate::broker::is_internal_topic(topic) {
        return Outcome::Failed(
            ec::INVALID_TOPIC_EXCEPTION,
            format!("{topic} is internal: only the broker writes to it"),
        );
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Outcome::Failed(ec::INVALID_RECORD, "empty record set".into());
    };
    let settings = partition.settings();
    let max_bytes = settings.max_message_bytes.max(0) as usize;
    let headers = match validate_record_set(&records, max_bytes) {
        Ok(h) => h,
        Err(e) => return Outcome::Failed(batch_error_code(&e), e.to_string()),
    };
    if headers.iter().any(|h| h.is_control()) {
        return Outcome::Failed(
            ec::INVALID_RECORD,
            "control batches are written by the transaction coordinator only".into(),
        );
    }
    if headers
        .iter()
        .any(|h| h.is_transactional() && h.producer_id < 0)
    {
        return Outcome::Failed(
            ec::INVALID_RECORD,
            "a transactional batch needs a producer id".into(),
        );
    }
    let producer = match headers.iter().find(|h| h.producer_id >= 0) {
        None => None,
        // Kafka's rule for magic 2: an idempotent produce carries one batch per partition,
        // so its sequence range is that batch's.
        Some(_) if headers.len() != 1 => {
            return Outcome::Failed(
                ec::INVALID_RECORD,
                "an idempotent produce carries exactly one batch per partition".into(),
            )
        }
        Some(h) => Some(ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: increment_sequence(h.base_sequence, h.last_offset_delta),
            seen_ms: now_ms,
            transactional: h.is_transactional(),
        }),
    };
    // Kafka's LogValidator: per-record rules, then the topic's compression.type.
    let partition_name = PartitionName(topic, index);
    let rules = RecordRules::new(&settings, now_ms);
    if headers.iter().any(|h| rules.must_walk(h)) {
        if let Err(r) = log_validator::check_records(&records, &headers, &rules, partition_name) {
            return Outcome::Rejected(r);
        }
    }
    let records = match log_validator::recompress(&records, &headers, &settings, partition_name) {
        Ok(None) => records,
        Ok(Some(re)) => Bytes::from(re),
        Err(r) => return Outcome::Rejected(r),
    };
    let verify = producer.filter(|b| b.transactional).map(|b| {
        move || {
            broker
                .txns
                .verify(transactional_id, b.producer_id, b.epoch, topic, index)
                .map_err(|e| (e.code(), e.reason()))
        }
    });
    // Stamp offsets in place: reuse the request buffer when we own it, else copy once.
    let mut buf = records
        .try_into_mut()
        .unwrap_or_else(|b| BytesMut::from(&b[..]));
    let check = verify.as_ref().map(|f| f as &TxnCheck<'_>);
    let len = buf.len() as u64;
    match partition.append_checked(&mut buf, now_ms, producer, check) {
        Ok(Appended::New(info)) => {
            partition
                .bytes_in
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            Outcome::Appended {
                partition,
                base_offset: info.base_offset,
                end_offset: info.last_offset + 1,
                log_append_time_ms: info.log_append_time_ms,
            }
        }
        // A retry: answered with where the batch was first written, once that is durable.
        Ok(Appended::Duplicate(meta)) => Outcome::Appended {
            partition,
            base_offset: meta.base_offset,
            end_offset: meta.last_offset + 1,
            log_append_time_ms: -1,
        },
        Err(PartitionError::Rejected { code, reason }) => Outcome::Failed(code, reason.to_string()),
        Err(PartitionError::Storage(StorageError::Batch(e))) => {
            Outcome::Failed(batch_error_code(&e), e.to_string())
        }
        Err(PartitionError::Closed(m)) => {
            Outcome::Failed(ec::UNKNOWN_TOPIC_OR_PARTITION, format!("{m} was deleted"))
        }
        Err(e) => {
            tracing::error!(partition = %partition.name(), error = %e, "append failed");
            Outcome::Failed(ec::KAFKA_STORAGE_ERROR, e.to_string())
        }
    }
}

fn batch_error_code(e: &BatchError) -> i16 {
    match e {
        BatchError::Corrupt(_) => ec::CORRUPT_MESSAGE,
        BatchError::TooLarge { .. } => ec::MESSAGE_TOO_LARGE,
        BatchError::Invalid(_) => ec::INVALID_RECORD,
    }
}

/// Produce in the API registry (`super::registry!`).
pub struct Produce;

impl KafkaApi for Produce {
    const KEY: ApiKey = ApiKey::Produce;
    /// Min 0 although the codec cannot decode v0-2 (KIP-896; the header parser accepts 3..=13):
    /// librdkafka before 2.11.1 keys gzip/snappy/lz4 support off "Produce v0 supported" and
    /// silently stops compressing when it is not listed. v11 only adds TRANSACTION_ABORTABLE,
    /// which weir's synchronous transaction check never needs; v12 lets a transactions-v2
    /// producer skip AddPartitionsToTxn, which no producer does while ApiVersions finalizes
    /// no `transaction.version` (so a transactional batch must still be in the open
    /// transaction); v13 names topics by id.
    const VERSIONS: RangeInclusive<i16> = 0..=13;
    type Request = ProduceRequest;
    type Response = ProduceResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req)
    }

    /// Nothing here: the handler counts Produce's errors, acks=0 requests (which get no
    /// response) included.
    fn each_error(_resp: &Self::Response, _f: &mut dyn FnMut(i16)) {}
}
