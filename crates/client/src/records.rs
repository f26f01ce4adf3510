//! Records as the CLI sees them, and their RecordBatch v2 encoding. The byte layout and the
//! codecs are weir-storage's `record_codec` (one codec for broker and client); this module
//! adds what only a client does: building batches to produce, and reading fetched batches
//! the way a consumer must (skip control batches and records before the fetch offset, drop
//! aborted transactions under read_committed, stop at a batch cut short by max_bytes).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use weir_storage::record_codec::{decode_records, encode_batch, put_record};
use weir_storage::{BatchHeader, BATCH_HEADER_LEN};

use crate::error::{Error, Result};

/// Compression codecs by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed records (the cheapest for the broker to validate).
    None = 0,
    /// gzip (deflate): small output, slow.
    Gzip = 1,
    /// Snappy, in the xerial framing Java clients use.
    Snappy = 2,
    /// LZ4 frames: fast, the usual choice.
    Lz4 = 3,
    /// Zstandard (needs Produce v7+).
    Zstd = 4,
}

impl Compression {
    /// From a `compression.type` name (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn parse(s: &str) -> Result<Compression> {
        Ok(match s {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown compression {other:?} (none, gzip, snappy, lz4, zstd)"
                )))
            }
        })
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct ProduceRecord {
    /// None for a null key (then the producer spreads records over partitions).
    pub key: Option<Vec<u8>>,
    /// None for a null value: a tombstone on a compacted topic.
    pub value: Option<Vec<u8>>,
    /// (name, value) of each header, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// CreateTime in ms since the epoch.
    pub timestamp_ms: i64,
    /// Explicit partition, else the partitioner decides.
    pub partition: Option<i32>,
}

impl ProduceRecord {
    /// Bytes of key, value and headers: what the summary counts as produced.
    pub fn payload_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}

/// An idempotent producer's identity and the sequence number of a batch's first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    /// From InitProducerId.
    pub producer_id: i64,
    /// From InitProducerId; a newer epoch fences older instances.
    pub producer_epoch: i16,
    /// Sequence of the batch's first record in its partition.
    pub base_sequence: i32,
}

/// One RecordBatch v2 holding `records`; with a stamp it carries the producer id, epoch and
/// base sequence the broker deduplicates retries by (KIP-98), else -1 in each.
pub fn encode_produce_batch(
    records: &[ProduceRecord],
    compression: Compression,
    stamp: Option<ProducerStamp>,
) -> Result<Vec<u8>> {
    if records.is_empty() {
        return Err(Error::Invalid("an empty batch".into()));
    }
    let base_timestamp = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let max_timestamp = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()))
            .collect();
        put_record(
            &mut body,
            r.timestamp_ms - base_timestamp,
            i as i32,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
        );
    }
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: compression as i16,
        last_offset_delta: records.len() as i32 - 1,
        base_timestamp,
        max_timestamp,
        producer_id: stamp.map_or(-1, |s| s.producer_id),
        producer_epoch: stamp.map_or(-1, |s| s.producer_epoch),
        base_sequence: stamp.map_or(-1, |s| s.base_sequence),
        record_count: records.len() as i32,
    };
    encode_batch(&header, records.len() as i32, &body)
        .map_err(|e| Error::Invalid(format!("encoding a batch: {e}")))
}

/// Whose clock a record's timestamp is (the topic's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

/// A record read from a partition.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Milliseconds since the epoch, by `timestamp_type`'s clock.
    pub timestamp_ms: i64,
    /// Whether the producer or the broker set `timestamp_ms`.
    pub timestamp_type: TimestampType,
    /// None for a null key.
    pub key: Option<Vec<u8>>,
    /// None for a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// (name, value) of each header, in order; names that are not UTF-8 are lossily
    /// converted.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What a fetched records section held.
pub struct FetchedRecords {
    /// Data records at or after the fetch offset, in offset order.
    pub records: Vec<ConsumedRecord>,
    /// The offset after the last whole batch read (control and aborted batches included):
    /// where the next fetch starts. Equal to the fetch offset if nothing whole arrived.
    pub next_offset: i64,
    /// Decoding stopped at a data batch because the budget was spent: the rest of the
    /// fetched data is dropped and fetched again from `next_offset`.
    pub out_of_budget: bool,
}

/// Rough heap cost of one decoded record beyond its key, value and headers.
const RECORD_OVERHEAD: usize = 96;

impl ConsumedRecord {
    /// Approximate heap bytes this record holds: what a decode budget counts.
    pub fn heap_bytes(&self) -> usize {
        RECORD_OVERHEAD
            + self.topic.len()
            + self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| 48 + k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}

/// Decode the records section of one fetched partition.
///
/// `budget` bounds memory: compressed batches can expand many times over, so a fetch of a
/// few MiB could otherwise become hundreds of MiB of records. Data batches are decoded
/// while the budget (in `heap_bytes`) lasts; the batch that spends it is still decoded
/// whole, so at least one batch is read whenever the budget is not already spent.
pub fn decode_fetched(
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    data: &[u8],
    aborted: &[(i64, i64)],
    budget: &mut usize,
) -> Result<FetchedRecords> {
    let mut records = Vec::new();
    let mut out_of_budget = false;
    let mut next_offset = fetch_offset;
    // (first_offset, producer_id) of the aborted transactions, in offset order; a producer
    // becomes "aborting" at its first offset and stops at its ABORT marker.
    let mut pending: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &(producer_id, first_offset) in aborted {
        pending.entry(first_offset).or_default().push(producer_id);
    }
    let mut aborting: HashSet<i64> = HashSet::new();
    let mut pos = 0usize;
    while data.len() - pos >= BATCH_HEADER_LEN {
        let Some(h) = BatchHeader::parse(&data[pos..]) else {
            break;
        };
        if h.batch_length < (BATCH_HEADER_LEN - 12) as i32 {
            return Err(Error::Invalid(format!(
                "{topic}-{partition}: batch at offset {} has length {}",
                h.base_offset, h.batch_length
            )));
        }
        let end = pos + h.total_len();
        if end > data.len() {
            // The broker cut the last batch at max_bytes; the next fetch starts there.
            break;
        }
        let batch = &data[pos..end];
        pos = end;
        if h.magic != 2 {
            return Err(Error::Invalid(format!(
                "{topic}-{partition}: batch at offset {} has magic {} (only v2 is read)",
                h.base_offset, h.magic
            )));
        }
        let last_offset = h.last_offset();
        if *budget == 0 && !h.is_control() && last_offset >= fetch_offset {
            out_of_budget = true;
            break;
        }
        while let Some((&first, _)) = pending.first_key_value() {
            if first > last_offset {
                break;
            }
            aborting.extend(pending.pop_first().expect("non-empty").1);
        }
        next_offset = next_offset.max(last_offset + 1);
        if last_offset < fetch_offset {
            continue;
        }
        if h.is_control() {
            let decoded = decode_records(batch).map_err(|e| bad_batch(topic, partition, &h, e))?;
            for r in decoded {
                // Control record key: version i16, type i16 (0 = ABORT, 1 = COMMIT).
                if r.key.as_deref().map(|k| k.get(2..4) == Some(&[0, 0])) == Some(true) {
                    aborting.remove(&h.producer_id);
                }
            }
            continue;
        }
        if h.is_transactional() && aborting.contains(&h.producer_id) {
            continue;
        }
        let timestamp_type = if h.is_log_append_time() {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        let decoded = decode_records(batch).map_err(|e| bad_batch(topic, partition, &h, e))?;
        for r in decoded {
            if r.offset < fetch_offset {
                continue;
            }
            let record = ConsumedRecord {
                topic: topic.to_string(),
                partition,
                offset: r.offset,
                timestamp_ms: r.timestamp,
                timestamp_type,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                    .collect(),
            };
            *budget = budget.saturating_sub(record.heap_bytes());
            records.push(record);
        }
    }
    Ok(FetchedRecords {
        records,
        next_offset,
        out_of_budget,
    })
}

fn bad_batch(topic: &str, partition: i32, h: &BatchHeader, e: std::io::Error) -> Error {
    Error::Invalid(format!(
        "{topic}-{partition}: batch at offset {} does not decode: {e}",
        h.base_offset
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, value: &str) -> ProduceRecord {
        ProduceRecord {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![("h".into(), Some(b"1".to_vec())), ("h".into(), None)],
            timestamp_ms: 1_700_000_000_000,
            partition: None,
        }
    }

    #[test]
    fn every_codec_round_trips_through_the_fetch_decoder() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_produce_batch(&[rec("a", "1"), rec("b", "2")], c, None).unwrap();
            let mut unlimited = usize::MAX;
            let got = decode_fetched("t", 0, 0, &batch, &[], &mut unlimited).unwrap();
            assert_eq!(got.next_offset, 2, "{c:?}");
            assert_eq!(got.records.len(), 2);
            assert_eq!(got.records[1].key.as_deref(), Some(&b"b"[..]));
            assert_eq!(got.records[1].value.as_deref(), Some(&b"2"[..]));
            assert_eq!(
                got.records[0].headers.len(),
                2,
                "duplicate header keys are kept"
            );
        }
    }

    #[test]
    fn records_before_the_fetch_offset_and_torn_tails_are_skipped() {
        let batch =
            encode_produce_batch(&[rec("a", "1"), rec("b", "2")], Compression::None, None).unwrap();
        let mut data = batch.clone();
        data.extend_from_slice(&batch[..batch.len() - 3]);
        let mut unlimited = usize::MAX;
        let got = decode_fetched("t", 0, 1, &data, &[], &mut unlimited).unwrap();
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].offset, 1);
        assert_eq!(got.next_offset, 2);
    }

    #[test]
    fn a_spent_budget_stops_before_the_next_data_batch_and_says_so() {
        let one = |k: &str| {
            encode_produce_batch(&[rec(k, "1"), rec(k, "2")], Compression::Lz4, None).unwrap()
        };
        let mut data = one("a");
        let mut second = one("b");
        // Re-base the second batch at offset 2 (the base offset is not under the CRC).
        second[..8].copy_from_slice(&2i64.to_be_bytes());
        data.extend_from_slice(&second);

        // A budget smaller than one record still reads the first batch whole.
        let mut budget = 1;
        let got = decode_fetched("t", 0, 0, &data, &[], &mut budget).unwrap();
        assert_eq!(got.records.len(), 2);
        assert_eq!(
            got.next_offset, 2,
            "the next fetch starts at the unread batch"
        );
        assert!(got.out_of_budget);
        assert_eq!(budget, 0);

        // A spent budget reads nothing and leaves the position where it was.
        let got = decode_fetched("t", 0, 2, &data, &[], &mut budget).unwrap();
        assert!(got.records.is_empty());
        assert_eq!(got.next_offset, 2);
        assert!(got.out_of_budget);

        // Enough budget reads both.
        let mut budget = 1 << 20;
        let got = decode_fetched("t", 0, 0, &data, &[], &mut budget).unwrap();
        assert_eq!(got.records.len(), 4);
        assert_eq!(got.next_offset, 4);
        assert!(!got.out_of_budget);
        assert!(budget < 1 << 20);
    }
}
