//! Builders for valid RecordBatch v2 bytes, for tests here and in other crates.
//! Not used on any production path.

use crate::batch::{batch_crc, CRC_OFFSET};

/// A valid, uncompressed RecordBatch v2 with `record_count` (>= 1) records, each with a
/// null key and a `value_len`-byte value, timestamps `timestamp_ms + i`, base_offset 0,
/// partition_leader_epoch -1, no producer id, and a correct CRC-32C.
pub fn record_batch(record_count: usize, value_len: usize, timestamp_ms: i64) -> Vec<u8> {
    assert!(record_count >= 1, "a batch needs at least one record");
    let mut records = Vec::new();
    for i in 0..record_count {
        let mut body = vec![0u8]; // record attributes
        put_varlong(&mut body, i as i64); // timestamp delta
        put_varlong(&mut body, i as i64); // offset delta
        put_varlong(&mut body, -1); // null key
        put_varlong(&mut body, value_len as i64);
        body.extend(std::iter::repeat_n((i % 251) as u8, value_len));
        put_varlong(&mut body, 0); // no headers
        put_varlong(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let last_offset_delta = (record_count - 1) as i32;
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base_offset
    b.extend_from_slice(&0i32.to_be_bytes()); // batch_length, patched below
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition_leader_epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes()); // base_timestamp
    b.extend_from_slice(&(timestamp_ms + last_offset_delta as i64).to_be_bytes()); // max
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer_id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer_epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base_sequence
    b.extend_from_slice(&(record_count as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let batch_length = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = batch_crc(&b);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Zigzag varint, as Kafka's record fields use.
fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Builder of a RecordBatch v2 with keyed records, any codec, producer fields, and
/// transaction markers (for compaction tests here and in other crates). Record `i` has
/// timestamp `timestamp_ms + i` and offset delta `i`; base_offset 0 (the log stamps it).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    header: crate::BatchHeader,
    records: Vec<u8>,
    count: i32,
}

impl BatchBuilder {
    /// An empty uncompressed batch whose first record gets `timestamp_ms`, without producer.
    pub fn new(timestamp_ms: i64) -> BatchBuilder {
        BatchBuilder {
            header: crate::BatchHeader {
                base_offset: 0,
                batch_length: 0,
                partition_leader_epoch: -1,
                magic: 2,
                crc: 0,
                attributes: 0,
                last_offset_delta: 0,
                base_timestamp: timestamp_ms,
                max_timestamp: timestamp_ms,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                record_count: 0,
            },
            records: Vec::new(),
            count: 0,
        }
    }

    /// Kafka codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn codec(mut self, codec: i16) -> Self {
        self.header.attributes = (self.header.attributes & !0x7) | codec;
        self
    }

    /// An idempotent producer's batch.
    pub fn producer(mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.header.producer_id = producer_id;
        self.header.producer_epoch = epoch;
        self.header.base_sequence = base_sequence;
        self
    }

    /// Part of a transaction (set `producer` too).
    pub fn transactional(mut self) -> Self {
        self.header.attributes |= 0x10;
        self
    }

    /// One record with this key and value (None: null; a null value is a tombstone).
    pub fn record(mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let i = self.count;
        crate::record_codec::put_record(&mut self.records, i as i64, i, key, value, &[]);
        self.count += 1;
        self.header.last_offset_delta = i;
        self.header.max_timestamp = self.header.base_timestamp + i as i64;
        self
    }

    /// Make this a transaction marker of the producer (commit or abort): one control
    /// record, key (version 0, type 1 commit / 0 abort), value (version 0, epoch 0).
    pub fn marker(mut self, commit: bool) -> Self {
        self.header.attributes |= 0x30;
        let key = [0u8, 0, 0, commit as u8];
        let value = [0u8, 0, 0, 0, 0, 0];
        self.records.clear();
        crate::record_codec::put_record(&mut self.records, 0, 0, Some(&key), Some(&value), &[]);
        self.count = 1;
        self.header.last_offset_delta = 0;
        self
    }

    /// The encoded batch (compressed with the chosen codec, CRC set). Panics if no record
    /// was added: Kafka rejects empty produced batches.
    pub fn build(self) -> Vec<u8> {
        assert!(self.count >= 1, "a batch needs at least one record");
        crate::record_codec::encode_batch(&self.header, self.count, &self.records)
            .expect("encodable batch")
    }
}
