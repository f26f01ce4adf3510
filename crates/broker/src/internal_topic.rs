//! A coordinator's handle on its internal topic (`__consumer_offsets`,
//! `__transaction_state`): which partition a key lives in, append records and get a
//! [`DurableTicket`] to wait on, replay everything at start.
//!
//! This is all a coordinator knows of storage. On one node the handle appends to a local
//! partition through the catalog; in a cluster the same calls will reach the partition's
//! leader, and a coordinator that is not the leader will be told so by the ticket.

use std::sync::Arc;

use bytes::Bytes;
use weir_storage::record_codec::{decode_records, encode_batch, put_record};
use weir_storage::BatchHeader;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::MetadataError;
use crate::error_codes as ec;
use crate::partition::{Appended, Partition, PartitionError, TxnCheck};

/// Kafka places a group (or transactional id) in partition `abs(java_hash(id)) % n`.
pub fn partition_for_key(key: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for u in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(u as i32);
    }
    // Kafka's Utils.abs: i32::MIN maps to 0, not to itself.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// Why an internal-topic write did not become durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InternalTopicError {
    /// The topic could not be created, or its partition refused or lost the write.
    #[error("{topic} is not available: {reason}")]
    NotAvailable {
        /// The internal topic.
        topic: &'static str,
        /// What failed.
        reason: String,
    },
    /// The partition refused a transactional write (fenced epoch, not in the transaction).
    #[error("{reason}")]
    Rejected {
        /// The Kafka error code for the client.
        code: i16,
        /// Why.
        reason: &'static str,
    },
}

impl InternalTopicError {
    /// The Kafka error code for a client whose request needed the write.
    pub fn code(&self) -> i16 {
        match self {
            InternalTopicError::NotAvailable { .. } => ec::COORDINATOR_NOT_AVAILABLE,
            InternalTopicError::Rejected { code, .. } => *code,
        }
    }
}

/// One record for an internal topic: a key and a value (None: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRecord {
    /// The coordinator's encoded key.
    pub key: Bytes,
    /// The encoded value, None to delete the key (compaction drops it later).
    pub value: Option<Bytes>,
}

/// A decoded record read back from an internal topic.
#[derive(Debug, Clone)]
pub struct ReplayedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// The batch's producer id (-1 for a coordinator's own writes).
    pub producer_id: i64,
    /// The batch is transactional (a TxnOffsetCommit's offsets).
    pub transactional: bool,
    /// The batch is a control batch (a commit or abort marker).
    pub control: bool,
    /// The record's key.
    pub key: Option<Bytes>,
    /// The record's value, None for a tombstone.
    pub value: Option<Bytes>,
}

/// Records appended to an internal-topic partition; [`DurableTicket::wait`] returns once
/// they are durable (and so will be replayed after a crash).
#[derive(Debug, Clone)]
pub struct DurableTicket {
    partition: Arc<Partition>,
    topic: &'static str,
    /// The partition of the internal topic the records went to.
    pub partition_index: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

impl DurableTicket {
    /// Wait until the records are durable.
    pub async fn wait(&self) -> Result<(), InternalTopicError> {
        self.partition
            .wait_durable(self.last_offset + 1)
            .await
            .map_err(|e| InternalTopicError::NotAvailable {
                topic: self.topic,
                reason: e.to_string(),
            })
    }
}

/// A batch's writer: the coordinator itself, or a transactional producer on whose behalf
/// the coordinator writes (TxnOffsetCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Plain coordinator state: no producer id.
    Coordinator,
    /// Part of this producer's transaction: fenced by its epoch, held back from readers
    /// until the transaction's marker.
    Transaction {
        /// The producer's id.
        producer_id: i64,
        /// Its epoch.
        epoch: i16,
    },
}

/// The handle: an internal topic, created with `partitions` partitions on first use.
#[derive(Debug, Clone)]
pub struct InternalTopic {
    catalog: Arc<Catalog>,
    name: &'static str,
    partitions: i32,
    clock: Arc<dyn Clock>,
}

impl InternalTopic {
    /// The handle on internal topic `name`.
    pub fn new(
        catalog: Arc<Catalog>,
        name: &'static str,
        partitions: i32,
        clock: Arc<dyn Clock>,
    ) -> Self {
        InternalTopic {
            catalog,
            name,
            partitions,
            clock,
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The partition (created with the topic if needed) that holds `key`'s records.
    async fn partition(&self, key: &str) -> Result<Arc<Partition>, InternalTopicError> {
        let topic = self
            .catalog
            .internal_topic(self.name, self.partitions)
            .await
            .map_err(|e| {
                tracing::error!(topic = self.name, error = %e.message, "creating an internal topic failed");
                self.not_available(e.message)
            })?;
        let index = partition_for_key(key, topic.partitions.len() as i32);
        Ok(topic.partitions[index as usize].clone())
    }

    /// Which partition of the topic holds `key`'s records (creating the topic if needed).
    pub async fn partition_for(&self, key: &str) -> Result<i32, InternalTopicError> {
        Ok(self.partition(key).await?.index)
    }

    /// Append `records` for `key` in one batch, without waiting for the fsync.
    pub async fn append(
        &self,
        key: &str,
        records: &[InternalRecord],
    ) -> Result<DurableTicket, InternalTopicError> {
        let partition = self.partition(key).await?;
        let now = self.clock.now_ms();
        let mut batch = encode_records(records, Writer::Coordinator, now);
        match partition.append(&mut batch, now, None) {
            Ok(Appended::New(info)) => Ok(DurableTicket {
                partition_index: partition.index,
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                partition,
                topic: self.name,
            }),
            Ok(Appended::Duplicate(_)) => unreachable!("a coordinator's batch is not idempotent"),
            Err(e) => Err(self.append_failed(&partition, e)),
        }
    }

    /// Append `records` for `key` as part of a producer's transaction. `check` runs under
    /// the partition's log lock just before the append (KIP-890's verification).
    pub async fn append_transactional(
        &self,
        key: &str,
        records: &[InternalRecord],
        producer_id: i64,
        epoch: i16,
        check: &TxnCheck<'_>,
    ) -> Result<DurableTicket, InternalTopicError> {
        let partition = self.partition(key).await?;
        let now = self.clock.now_ms();
        let writer = Writer::Transaction { producer_id, epoch };
        let mut batch = encode_records(records, writer, now);
        match partition.append_for_coordinator(&mut batch, now, producer_id, epoch, check) {
            Ok(info) => Ok(DurableTicket {
                partition_index: partition.index,
                base_offset: info.base_offset,
                last_offset: info.last_offset,
                partition,
                topic: self.name,
            }),
            Err(e) => Err(self.append_failed(&partition, e)),
        }
    }

    fn not_available(&self, reason: impl Into<String>) -> InternalTopicError {
        InternalTopicError::NotAvailable {
            topic: self.name,
            reason: reason.into(),
        }
    }

    fn append_failed(&self, partition: &Partition, e: PartitionError) -> InternalTopicError {
        match e {
            PartitionError::Rejected { code, reason } => {
                InternalTopicError::Rejected { code, reason }
            }
            e => {
                tracing::error!(partition = %partition.name(), error = %e, "internal topic append failed");
                self.not_available(e.to_string())
            }
        }
    }

    /// Every record of every partition from its log start to its high watermark, in offset
    /// order per partition: how a coordinator rebuilds its state at start. `f` gets the
    /// partition index and the record. Returns how many records were read.
    pub fn replay(&self, mut f: impl FnMut(i32, ReplayedRecord)) -> Result<u64, MetadataError> {
        let Some(topic) = self.catalog.topic(self.name) else {
            return Ok(0);
        };
        let mut read = 0;
        for p in &topic.partitions {
            read +=
                replay_partition(p, |r| f(p.index, r)).map_err(|reason| MetadataError::Replay {
                    topic: self.name,
                    reason,
                })?;
        }
        Ok(read)
    }
}

/// Replay one partition (see [`InternalTopic::replay`]).
fn replay_partition(p: &Partition, mut f: impl FnMut(ReplayedRecord)) -> Result<u64, String> {
    let state = p.state();
    let mut offset = state.log_start_offset;
    let mut read = 0u64;
    while offset < state.high_watermark {
        let chunk = p
            .read(offset, 1024 * 1024)
            .map_err(|e| format!("reading {}: {e}", p.name()))?;
        if chunk.is_empty() {
            break;
        }
        let before = offset;
        let mut pos = 0;
        while let Some(h) = chunk.get(pos..).and_then(BatchHeader::parse) {
            let Some(batch) = chunk.get(pos..pos + h.total_len()) else {
                break;
            };
            let records = decode_records(batch)
                .map_err(|e| format!("decoding {} at {}: {e}", p.name(), h.base_offset))?;
            for r in records {
                if r.offset >= state.log_start_offset && r.offset >= offset {
                    read += 1;
                    f(ReplayedRecord {
                        offset: r.offset,
                        producer_id: h.producer_id,
                        transactional: h.is_transactional(),
                        control: h.is_control(),
                        key: r.key.map(Bytes::from),
                        value: r.value.map(Bytes::from),
                    });
                }
            }
            offset = offset.max(h.last_offset() + 1);
            pos += h.total_len();
        }
        if offset == before {
            return Err(format!("{}: no whole batch at offset {offset}", p.name()));
        }
    }
    Ok(read)
}

/// One uncompressed RecordBatch v2 of `records` (offset deltas 0, 1, ...), written by
/// `writer` at `now_ms`; the log stamps the base offset.
pub fn encode_records(records: &[InternalRecord], writer: Writer, now_ms: i64) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        put_record(
            &mut body,
            0,
            i as i32,
            Some(&r.key),
            r.value.as_deref(),
            &[],
        );
    }
    let (producer_id, producer_epoch, attributes) = match writer {
        Writer::Coordinator => (-1, -1, 0),
        Writer::Transaction { producer_id, epoch } => (producer_id, epoch, 0x10),
    };
    let count = records.len() as i32;
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: count - 1,
        base_timestamp: now_ms,
        max_timestamp: now_ms,
        producer_id,
        producer_epoch,
        base_sequence: -1,
        record_count: count,
    };
    encode_batch(&header, count, &body).expect("an uncompressed batch always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_batches_validate_and_decode_back() {
        let recs = vec![
            InternalRecord {
                key: Bytes::from_static(b"k1"),
                value: Some(Bytes::from_static(b"v1")),
            },
            InternalRecord {
                key: Bytes::from_static(b"k2"),
                value: None,
            },
        ];
        for writer in [
            Writer::Coordinator,
            Writer::Transaction {
                producer_id: 9,
                epoch: 2,
            },
        ] {
            let b = encode_records(&recs, writer, 77);
            let h = weir_storage::batch::validate_record_set(&b, usize::MAX).unwrap()[0];
            assert_eq!(h.record_count, 2);
            assert_eq!(h.last_offset_delta, 1);
            assert_eq!(h.is_transactional(), writer != Writer::Coordinator);
            let back = decode_records(&b).unwrap();
            assert_eq!(back[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(back[1].value, None);
            assert_eq!((back[0].timestamp, back[1].offset), (77, 1));
        }
    }
}
