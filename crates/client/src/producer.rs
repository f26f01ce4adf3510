//! A simple producer for one topic: records are partitioned (explicit, murmur2 of the key,
//! or sticky per batch for keyless records, like the Java client), gathered into one
//! RecordBatch per partition, and sent as one Produce request per leader. Not idempotent:
//! only errors that guarantee nothing was written (NOT_LEADER_OR_FOLLOWER and the like) are
//! retried, after a metadata refresh.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::records::{encode_produce_batch, Compression, ProduceRecord};

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// 0, 1 or -1 (all).
    pub acks: i16,
    pub compression: Compression,
    /// A partition's records are sealed into a batch at this many payload bytes...
    pub batch_bytes: usize,
    /// ...or this many records.
    pub batch_records: usize,
    pub timeout_ms: i32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            compression: Compression::None,
            batch_bytes: 256 * 1024,
            batch_records: 10_000,
            timeout_ms: 30_000,
        }
    }
}

/// What was produced, per partition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionSummary {
    pub records: u64,
    pub bytes: u64,
    /// Offset of the first record written (None with acks=0, which gets no answer).
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProduceSummary {
    pub topic: String,
    pub records: u64,
    pub bytes: u64,
    pub batches: u64,
    pub requests: u64,
    pub partitions: BTreeMap<i32, PartitionSummary>,
}

const RETRIABLE: &[i16] = &[
    5,  // LEADER_NOT_AVAILABLE
    6,  // NOT_LEADER_OR_FOLLOWER
    3,  // UNKNOWN_TOPIC_OR_PARTITION (metadata propagating)
    13, // NETWORK_EXCEPTION
];
const MAX_ATTEMPTS: usize = 5;

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
}

impl<'a> Producer<'a> {
    /// A producer for an existing topic.
    pub async fn new(client: &'a mut Client, topic: &str, config: ProducerConfig) -> Result<Self> {
        let info = client.topic_info(topic).await?;
        let partition_count = info.partitions.len() as i32;
        if partition_count == 0 {
            return Err(Error::Invalid(format!("topic {topic:?} has no partitions")));
        }
        Ok(Producer {
            client,
            config,
            topic: topic.to_string(),
            partition_count,
            leaders: info
                .partitions
                .iter()
                .map(|p| (p.partition, p.leader))
                .collect(),
            buffers: BTreeMap::new(),
            sticky: 0,
            summary: ProduceSummary {
                topic: topic.to_string(),
                ..Default::default()
            },
        })
    }

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
            let batch = encode_produce_batch(&recs, self.config.compression)?;
            batches.insert(*p, (batch, recs.len() as u64, bytes as u64));
            if *p == self.sticky {
                self.sticky = (self.sticky + 1) % self.partition_count;
            }
        }
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
                    Err(e) if attempt < MAX_ATTEMPTS && is_retriable(&e) => retry_err = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if let Some(e) = retry_err {
                tracing::debug!("produce retry {attempt}: {e}");
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                let info = self.client.topic_info(&self.topic).await?;
                self.leaders = info
                    .partitions
                    .iter()
                    .map(|p| (p.partition, p.leader))
                    .collect();
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
