//! A simple producer for one topic: records are partitioned (explicit, murmur2 of the key,
//! or sticky per batch for keyless records, like the Java client), gathered into one
//! RecordBatch per partition, and sent as one Produce request per leader, one request in
//! flight at a time.
//!
//! Idempotent by default with acks=all, as the Java client is since Kafka 3.0: it takes a
//! producer id (InitProducerId) and numbers each partition's batches, so a batch whose
//! answer was lost (a cut connection, a timeout, a broker restart) is sent again, the same
//! bytes with the same sequence, and the broker writes it once. Until the delivery timeout
//! it keeps trying. Not idempotent (acks 0 or 1, or turned off), only errors that guarantee
//! nothing was written (NOT_LEADER_OR_FOLLOWER and the like) are retried: a lost answer is
//! an error, never a possible duplicate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use crate::client::Client;
use crate::error::{check, Error, Result};
use crate::partitioner::partition_for_key;
use crate::records::{encode_produce_batch, Compression, ProduceRecord, ProducerStamp};

/// How records are batched, acknowledged and retried.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// 0, 1 or -1 (all).
    pub acks: i16,
    /// Codec of every batch sent.
    pub compression: Compression,
    /// A partition's records are sealed into a batch at this many payload bytes...
    pub batch_bytes: usize,
    /// ...or this many records.
    pub batch_records: usize,
    /// Produce's `timeout_ms`: how long the broker may wait for the acks asked for.
    pub timeout_ms: i32,
    /// Number batches so retries are written once (needs acks=all; ignored otherwise).
    pub idempotent: bool,
    /// How long an idempotent producer keeps retrying a batch after transient failures.
    pub delivery_timeout: Duration,
    /// Ask the broker to create a missing topic (it does when `auto.create.topics.enable`
    /// is on), as Kafka's producers and kcat do (`allow.auto.create.topics`).
    pub allow_auto_create_topics: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            compression: Compression::None,
            batch_bytes: 256 * 1024,
            batch_records: 10_000,
            timeout_ms: 30_000,
            idempotent: true,
            delivery_timeout: Duration::from_secs(120),
            allow_auto_create_topics: true,
        }
    }
}

/// What was produced, per partition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionSummary {
    /// Records acknowledged (or sent, with acks=0).
    pub records: u64,
    /// Their payload bytes (keys, values, headers), before batching and compression.
    pub bytes: u64,
    /// Offset of the first record written (None with acks=0, which gets no answer).
    pub first_offset: Option<i64>,
    /// Offset of the last record written (None with acks=0).
    pub last_offset: Option<i64>,
}

/// What a whole produce run did, as the CLI prints it (`--json` serializes this).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProduceSummary {
    /// The topic produced to.
    pub topic: String,
    /// Records acknowledged (or sent, with acks=0), over all partitions.
    pub records: u64,
    /// Their payload bytes (keys, values, headers), before batching and compression.
    pub bytes: u64,
    /// Record batches written.
    pub batches: u64,
    /// Produce requests sent, retries included.
    pub requests: u64,
    /// Requests sent again after a transient failure.
    pub retries: u64,
    /// The producer id when idempotent.
    pub producer_id: Option<i64>,
    /// The same figures per partition.
    pub partitions: BTreeMap<i32, PartitionSummary>,
}

const RETRIABLE: &[i16] = &[
    5,  // LEADER_NOT_AVAILABLE
    6,  // NOT_LEADER_OR_FOLLOWER
    3,  // UNKNOWN_TOPIC_OR_PARTITION (metadata propagating)
    13, // NETWORK_EXCEPTION
];
const MAX_ATTEMPTS: usize = 5;
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

/// The idempotent producer's identity and each partition's next sequence number.
struct Idempotence {
    producer_id: i64,
    producer_epoch: i16,
    next_sequence: BTreeMap<i32, i32>,
}

/// Kafka's sequence arithmetic: sequences wrap from i32::MAX to 0.
fn add_sequence(sequence: i32, count: i32) -> i32 {
    if sequence > i32::MAX - count {
        count - (i32::MAX - sequence) - 1
    } else {
        sequence + count
    }
}

/// Produces to one topic: records are buffered per partition, sealed into batches by size
/// or count, and sent one Produce per leader.
pub struct Producer<'a> {
    client: &'a mut Client,
    config: ProducerConfig,
    topic: String,
    partition_count: i32,
    leaders: BTreeMap<i32, i32>,
    /// Buffered records per partition and their payload bytes.
    buffers: BTreeMap<i32, (Vec<ProduceRecord>, usize)>,
    sticky: i32,
    summary: ProduceSummary,
    idempotence: Option<Idempotence>,
}

impl<'a> Producer<'a> {
    /// A producer for an existing topic.
    pub async fn new(client: &'a mut Client, topic: &str, config: ProducerConfig) -> Result<Self> {
        let info = if config.allow_auto_create_topics {
            client.topic_info_auto_create(topic).await?
        } else {
            client.topic_info(topic).await?
        };
        let partition_count = info.partitions.len() as i32;
        if partition_count == 0 {
            return Err(Error::Invalid(format!("topic {topic:?} has no partitions")));
        }
        let idempotence = if config.idempotent && config.acks == -1 {
            match init_producer_id(client).await {
                Ok(i) => Some(i),
                // A broker without InitProducerId (before Kafka 0.11) still takes plain
                // batches: produce without idempotence, and say so.
                Err(e @ Error::UnsupportedApi { .. }) => {
                    tracing::warn!("{e}: producing without idempotence");
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        Ok(Producer {
            client,
            config,
            topic: topic.to_string(),
            partition_count,
            leaders: info.leaders(),
            buffers: BTreeMap::new(),
            sticky: 0,
            summary: ProduceSummary {
                topic: topic.to_string(),
                producer_id: idempotence.as_ref().map(|i| i.producer_id),
                ..Default::default()
            },
            idempotence,
        })
    }

    /// Partitions of the topic when the producer was made (keys hash over this many).
    pub fn partition_count(&self) -> i32 {
        self.partition_count
    }

    /// Records queued and not yet sent.
    pub fn buffered_records(&self) -> usize {
        self.buffers.values().map(|(recs, _)| recs.len()).sum()
    }

    /// Records produced so far (acknowledged, or sent with acks=0).
    pub fn summary(&self) -> &ProduceSummary {
        &self.summary
    }

    /// Queue `record`; sends when a partition's batch is full.
    pub async fn send(&mut self, record: ProduceRecord) -> Result<()> {
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => {
                if p < 0 || p >= self.partition_count {
                    return Err(Error::Invalid(format!(
                        "topic {:?} has no partition {p} (it has {})",
                        self.topic, self.partition_count
                    )));
                }
                p
            }
            (None, Some(key)) => partition_for_key(key, self.partition_count),
            (None, None) => self.sticky,
        };
        let bytes = record.payload_bytes();
        let buf = self.buffers.entry(partition).or_default();
        buf.0.push(record);
        buf.1 += bytes;
        if buf.0.len() >= self.config.batch_records || buf.1 >= self.config.batch_bytes {
            self.flush_partitions(false).await?;
        }
        Ok(())
    }

    /// Send everything buffered.
    pub async fn flush(&mut self) -> Result<()> {
        self.flush_partitions(true).await
    }

    async fn flush_partitions(&mut self, all: bool) -> Result<()> {
        let full: Vec<i32> = self
            .buffers
            .iter()
            .filter(|(_, (recs, bytes))| {
                !recs.is_empty()
                    && (all
                        || recs.len() >= self.config.batch_records
                        || *bytes >= self.config.batch_bytes)
            })
            .map(|(p, _)| *p)
            .collect();
        if full.is_empty() {
            return Ok(());
        }
        let mut batches: BTreeMap<i32, (Vec<u8>, u64, u64)> = BTreeMap::new();
        for p in &full {
            let (recs, bytes) = self.buffers.remove(p).expect("listed above");
            let stamp = self.idempotence.as_mut().map(|i| {
                let next = i.next_sequence.entry(*p).or_insert(0);
                let base_sequence = *next;
                *next = add_sequence(base_sequence, recs.len() as i32);
                ProducerStamp {
                    producer_id: i.producer_id,
                    producer_epoch: i.producer_epoch,
                    base_sequence,
                }
            });
            let batch = encode_produce_batch(&recs, self.config.compression, stamp)?;
            batches.insert(*p, (batch, recs.len() as u64, bytes as u64));
            if *p == self.sticky {
                self.sticky = (self.sticky + 1) % self.partition_count;
            }
        }
        let idempotent = self.idempotence.is_some();
        let deadline = Instant::now() + self.config.delivery_timeout;
        let mut attempt = 0;
        while !batches.is_empty() {
            attempt += 1;
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for p in batches.keys() {
                by_leader
                    .entry(*self.leaders.get(p).unwrap_or(&-1))
                    .or_default()
                    .push(*p);
            }
            let mut retry_err = None;
            for (leader, parts) in by_leader {
                match self.send_to_leader(leader, &parts, &mut batches).await {
                    Ok(()) => {}
                    // Idempotent: anything transient is retried (the same batch, the same
                    // sequence) until the delivery timeout; the broker writes it once.
                    Err(e) if idempotent && may_retry(&e) && Instant::now() < deadline => {
                        retry_err = Some(e)
                    }
                    Err(e) if attempt < MAX_ATTEMPTS && is_retriable(&e) => retry_err = Some(e),
                    Err(e) if idempotent && may_retry(&e) => {
                        return Err(Error::Invalid(format!(
                            "{e}; gave up after {:?} of retries (the unacknowledged records \
                             may or may not have been written, each at most once)",
                            self.config.delivery_timeout
                        )))
                    }
                    Err(e) if !idempotent && e.is_transient() => {
                        return Err(Error::Invalid(format!(
                            "{e}; the unacknowledged records may or may not have been written \
                             (not retried: without idempotence a retry could write them twice)"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(e) = retry_err {
                self.summary.retries += 1;
                tracing::debug!("produce retry {attempt}: {e}");
                let backoff = Duration::from_millis((100 * attempt as u64).min(1_000));
                tokio::time::sleep(backoff).await;
                match self.client.topic_info(&self.topic).await {
                    Ok(info) => self.leaders = info.leaders(),
                    // The broker may still be coming back: the next attempt tells.
                    Err(e) if idempotent && e.is_transient() => {
                        tracing::debug!("metadata refresh before retry {attempt}: {e}")
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Send the batches of `parts` to `leader`; those acknowledged leave `batches`.
    async fn send_to_leader(
        &mut self,
        leader: i32,
        parts: &[i32],
        batches: &mut BTreeMap<i32, (Vec<u8>, u64, u64)>,
    ) -> Result<()> {
        if leader < 0 {
            return Err(Error::kafka(
                format!("producing to {}{parts:?}", self.topic),
                5,
                None,
            ));
        }
        let req = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(self.config.timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partition_data(
                    parts
                        .iter()
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(*p)
                                .with_records(Some(Bytes::from(batches[p].0.clone())))
                        })
                        .collect(),
                )]);
        self.summary.requests += 1;
        let conn = match self.client.node(leader).await {
            Ok(c) => c,
            Err(e) => {
                self.client.drop_node(leader);
                return Err(e);
            }
        };
        if self.config.acks == 0 {
            if let Err(e) = conn.send_only(&req).await {
                self.client.drop_node(leader);
                return Err(e);
            }
            for p in parts {
                let (_, n, bytes) = batches.remove(p).expect("listed");
                self.account(*p, n, bytes, None);
            }
            return Ok(());
        }
        let resp = match conn.call(&req).await {
            Ok(r) => r,
            Err(e) => {
                self.client.drop_node(leader);
                return Err(e);
            }
        };
        let mut first_err = None;
        for t in &resp.responses {
            for pr in &t.partition_responses {
                // A broker that no longer has a retried batch's offsets in its cache says
                // so: the batch was written before, which is all an idempotent send needs.
                if pr.error_code == DUPLICATE_SEQUENCE_NUMBER && self.idempotence.is_some() {
                    if let Some((_, n, bytes)) = batches.remove(&pr.index) {
                        self.account(pr.index, n, bytes, None);
                    }
                    continue;
                }
                if pr.error_code != 0 {
                    first_err.get_or_insert_with(|| {
                        Error::kafka(
                            format!("producing to {}-{}", self.topic, pr.index),
                            pr.error_code,
                            pr.error_message.as_ref().map(|m| m.to_string()),
                        )
                    });
                    continue;
                }
                if let Some((_, n, bytes)) = batches.remove(&pr.index) {
                    self.account(pr.index, n, bytes, Some(pr.base_offset));
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        for p in parts {
            if batches.contains_key(p) {
                return Err(Error::Invalid(format!(
                    "Produce response did not answer {}-{p}",
                    self.topic
                )));
            }
        }
        Ok(())
    }

    fn account(&mut self, partition: i32, records: u64, bytes: u64, base_offset: Option<i64>) {
        self.summary.records += records;
        self.summary.bytes += bytes;
        self.summary.batches += 1;
        let ps = self.summary.partitions.entry(partition).or_default();
        ps.records += records;
        ps.bytes += bytes;
        if let Some(base) = base_offset {
            ps.first_offset.get_or_insert(base);
            ps.last_offset = Some(base + records as i64 - 1);
        }
    }
}

fn is_retriable(e: &Error) -> bool {
    match e {
        Error::Kafka { code, .. } => RETRIABLE.contains(code),
        _ => false,
    }
}

/// What an idempotent producer may send again: lost connections and answers, and Kafka's
/// retriable errors (a batch is never written twice, whatever happened to the first try).
fn may_retry(e: &Error) -> bool {
    is_retriable(e)
        || e.is_transient()
        || matches!(
            e.code(),
            Some(
                7    // REQUEST_TIMED_OUT
                | 19 // NOT_ENOUGH_REPLICAS
                | 20 // NOT_ENOUGH_REPLICAS_AFTER_APPEND
                | 56 // KAFKA_STORAGE_ERROR
            )
        )
}

/// A producer id for idempotent produce (no transactional id), from any broker.
async fn init_producer_id(client: &mut Client) -> Result<Idempotence> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = match client.call_any(&req).await {
            Ok(r) => r,
            Err(e) if attempt < MAX_ATTEMPTS && e.is_transient() => {
                client.reset();
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        check(resp.error_code, || "InitProducerId".into(), None)?;
        return Ok(Idempotence {
            producer_id: resp.producer_id.0,
            producer_epoch: resp.producer_epoch,
            next_sequence: BTreeMap::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::add_sequence;

    #[test]
    fn sequences_wrap_like_kafkas() {
        assert_eq!(add_sequence(0, 5), 5);
        assert_eq!(add_sequence(i32::MAX - 5, 5), i32::MAX);
        assert_eq!(add_sequence(i32::MAX - 5, 6), 0);
        assert_eq!(add_sequence(i32::MAX, 3), 2);
    }
}
