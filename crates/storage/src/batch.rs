//! RecordBatch v2 header parsing and validation (no record decoding).

/// Bytes in a RecordBatch v2 header, up to and including the record count.
pub const BATCH_HEADER_LEN: usize = 61;

/// The fixed header of a RecordBatch v2 (magic 2). Offsets as in the Kafka spec:
/// base_offset 0..8, batch_length 8..12, partition_leader_epoch 12..16, magic 16,
/// crc 17..21 (CRC-32C of bytes 21..end), attributes 21..23, last_offset_delta 23..27,
/// base_timestamp 27..35, max_timestamp 35..43, producer_id 43..51, producer_epoch 51..53,
/// base_sequence 53..57, record_count 57..61.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; 0 as produced, stamped by the log on append.
    pub base_offset: i64,
    /// Bytes after this field (the batch is 12 + batch_length bytes long).
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch; -1 as produced, stamped on append.
    pub partition_leader_epoch: i32,
    /// Format version; weir stores only 2.
    pub magic: i8,
    /// CRC-32C of bytes 21..end (attributes onwards), so base_offset and epoch can be
    /// rewritten without recomputing it.
    pub crc: u32,
    /// Codec (bits 0-2), timestamp type (bit 3), transactional (4), control (5), delete
    /// horizon set (6).
    pub attributes: i16,
    /// Offset of the last record minus base_offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon once the cleaner set bit 6).
    pub base_timestamp: i64,
    /// Largest record timestamp, or the append time with LogAppendTime.
    pub max_timestamp: i64,
    /// Idempotent or transactional producer, -1 for none.
    pub producer_id: i64,
    /// Epoch of `producer_id`, fencing older instances of the same producer.
    pub producer_epoch: i16,
    /// Sequence number of the first record, for idempotent deduplication; -1 for none.
    pub base_sequence: i32,
    /// Records in the batch; last_offset_delta + 1 as produced, fewer after compaction.
    pub record_count: i32,
}

impl BatchHeader {
    /// Total bytes of the batch on the wire/disk: 12 + batch_length.
    pub fn total_len(&self) -> usize {
        // Saturating so a hostile negative length cannot overflow; callers check
        // batch_length >= MIN_BATCH_LENGTH before trusting this.
        12 + self.batch_length.max(0) as usize
    }
    /// Compression codec: attributes & 0x7 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }
    /// Timestamp type bit (attributes bit 3): true = LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x8 != 0
    }
    /// Part of a transaction (attributes bit 4): readable under read_committed only once
    /// its commit marker is in the log.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    /// A control batch (attributes bit 5): a transaction marker, never handed to
    /// applications.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    /// Offset of the batch's last record; the next batch starts at this + 1.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
}

/// Why a produced record set was rejected. The broker maps these to Kafka error codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Bad magic, bad lengths, bad CRC, inconsistent counts: CORRUPT_MESSAGE (2).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// A batch larger than max.message.bytes: MESSAGE_TOO_LARGE (10).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge {
        /// Bytes of the offending batch.
        size: usize,
        /// The limit in force (`max.message.bytes`).
        max: usize,
    },
    /// Record set with no batch at all, or other invalid record: INVALID_RECORD (87).
    #[error("invalid record: {0}")]
    Invalid(String),
}

impl BatchHeader {
    /// Parse the header at the start of `buf` (None if fewer than BATCH_HEADER_LEN bytes).
    /// Does not validate anything.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        let h = buf.get(..BATCH_HEADER_LEN)?;
        Some(BatchHeader {
            base_offset: be_i64(h, 0),
            batch_length: be_i32(h, 8),
            partition_leader_epoch: be_i32(h, 12),
            magic: h[16] as i8,
            crc: be_i32(h, 17) as u32,
            attributes: be_i16(h, 21),
            last_offset_delta: be_i32(h, 23),
            base_timestamp: be_i64(h, 27),
            max_timestamp: be_i64(h, 35),
            producer_id: be_i64(h, 43),
            producer_epoch: be_i16(h, 51),
            base_sequence: be_i32(h, 53),
            record_count: be_i32(h, 57),
        })
    }
}

/// Validate a produced record set (the `records` bytes of one partition in a Produce
/// request): one or more complete RecordBatch v2, back to back, nothing trailing.
/// Checks per batch: magic == 2, batch_length sane and within the buffer, total size <=
/// `max_message_bytes`, CRC-32C over bytes 21..end, record_count >= 0 and
/// last_offset_delta consistent (record_count == last_offset_delta + 1 for non-empty
/// batches as Kafka requires). Returns the parsed headers.
///
/// A batch with record_count == 0 is rejected as `Invalid` (Kafka's LogValidator does the
/// same for produced batches); an empty `records` is `Invalid` too. Never panics.
pub fn validate_record_set(
    records: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Invalid("record set holds no batch".into()));
    }
    let mut headers = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = check_frame(rest, pos)?;
        let total_len = header.total_len();
        if total_len > max_message_bytes {
            return Err(BatchError::TooLarge {
                size: total_len,
                max: max_message_bytes,
            });
        }
        let computed = batch_crc(&rest[..total_len]);
        if computed != header.crc {
            return Err(BatchError::Corrupt(format!(
                "crc mismatch in batch at byte {pos}: stored {:#010x}, computed {computed:#010x}",
                header.crc
            )));
        }
        if header.record_count == 0 {
            // Kafka rejects empty batches from producers (InvalidRecordException).
            return Err(BatchError::Invalid(format!(
                "batch at byte {pos} has no records"
            )));
        }
        if header.record_count < 0
            || header.record_count as i64 != header.last_offset_delta as i64 + 1
        {
            return Err(BatchError::Corrupt(format!(
                "batch at byte {pos}: record_count {} inconsistent with last_offset_delta {}",
                header.record_count, header.last_offset_delta
            )));
        }
        headers.push(header);
        pos += total_len;
    }
    debug_assert_eq!(pos, records.len());
    Ok(headers)
}

/// Structural checks shared by produce validation, append and recovery: a full header,
/// magic 2, a sane batch_length, the whole batch inside `buf`, a known codec and a
/// non-negative last_offset_delta. `pos` only feeds error messages. No CRC check.
pub fn check_frame(buf: &[u8], pos: usize) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf).ok_or_else(|| {
        BatchError::Corrupt(format!(
            "{} trailing bytes at byte {pos}, fewer than a batch header ({BATCH_HEADER_LEN})",
            buf.len()
        ))
    })?;
    check_header(&header, buf.len() as u64, pos as u64)?;
    Ok(header)
}

/// The checks of [`check_frame`] on an already parsed header, `available_bytes` being what
/// is left in the buffer or file from the start of this batch.
pub fn check_header(
    header: &BatchHeader,
    available_bytes: u64,
    pos: u64,
) -> Result<(), BatchError> {
    if header.magic != 2 {
        return Err(BatchError::Corrupt(format!(
            "batch at byte {pos} has magic {}, only magic 2 is supported",
            header.magic
        )));
    }
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::Corrupt(format!(
            "batch at byte {pos} has batch_length {} < {MIN_BATCH_LENGTH}",
            header.batch_length
        )));
    }
    if header.total_len() as u64 > available_bytes {
        return Err(BatchError::Corrupt(format!(
            "batch at byte {pos} claims {} bytes, only {available_bytes} left",
            header.total_len()
        )));
    }
    if header.compression() > 4 {
        return Err(BatchError::Corrupt(format!(
            "batch at byte {pos} has unknown compression codec {}",
            header.compression()
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::Corrupt(format!(
            "batch at byte {pos} has negative last_offset_delta {}",
            header.last_offset_delta
        )));
    }
    Ok(())
}

/// Smallest legal batch_length: a header with zero records (61 - 12).
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - 12) as i32;

/// Byte range of the CRC field and start of the CRC-covered region.
pub const CRC_OFFSET: usize = 17;
/// First byte covered by the CRC-32C (attributes onwards).
pub const CRC_COVERED_FROM: usize = 21;

/// CRC-32C of a whole batch's covered bytes (21..end). `batch` must hold at least 21 bytes.
pub fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(CRC_COVERED_FROM..).unwrap_or(&[]))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::record_batch;

    const MAX: usize = 1024 * 1024;

    #[test]
    fn parse_reads_big_endian_fields_at_spec_positions() {
        let mut b = record_batch(3, 5, 1_000);
        b[0..8].copy_from_slice(&77i64.to_be_bytes());
        b[12..16].copy_from_slice(&9i32.to_be_bytes());
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 77);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(h.partition_leader_epoch, 9);
        assert_eq!(h.magic, 2);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.producer_epoch, -1);
        assert_eq!(h.base_sequence, -1);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset(), 79);
        assert_eq!(h.crc, batch_crc(&b));
        assert!(BatchHeader::parse(&b[..60]).is_none());
    }

    #[test]
    fn valid_record_sets_are_accepted() {
        let mut set = record_batch(1, 0, 5);
        set.extend(record_batch(10, 100, 6));
        let headers = validate_record_set(&set, MAX).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].record_count, 10);
    }

    #[test]
    fn offsets_and_epoch_are_outside_the_crc() {
        let mut b = record_batch(2, 3, 5);
        b[0..8].copy_from_slice(&123i64.to_be_bytes());
        b[12..16].copy_from_slice(&7i32.to_be_bytes());
        validate_record_set(&b, MAX).unwrap();
    }

    #[test]
    fn empty_record_set_is_invalid() {
        assert!(matches!(
            validate_record_set(&[], MAX),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn bad_magic_is_corrupt() {
        let mut b = record_batch(1, 3, 5);
        b[16] = 1;
        assert!(matches!(
            validate_record_set(&b, MAX),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn bad_crc_is_corrupt() {
        let mut b = record_batch(2, 3, 5);
        let last = b.len() - 1;
        b[last] ^= 0x40;
        let err = validate_record_set(&b, MAX).unwrap_err();
        assert!(
            matches!(&err, BatchError::Corrupt(m) if m.contains("crc")),
            "{err}"
        );
    }

    #[test]
    fn bad_lengths_are_corrupt() {
        let b = record_batch(2, 3, 5);
        // Longer than the buffer.
        let mut long = b.clone();
        let len = i32::from_be_bytes(long[8..12].try_into().unwrap());
        long[8..12].copy_from_slice(&(len + 1).to_be_bytes());
        assert!(matches!(
            validate_record_set(&long, MAX),
            Err(BatchError::Corrupt(_))
        ));
        // Shorter than a header, and negative.
        for bad in [48i32, 0, -1, i32::MIN] {
            let mut short = b.clone();
            short[8..12].copy_from_slice(&bad.to_be_bytes());
            assert!(matches!(
                validate_record_set(&short, MAX),
                Err(BatchError::Corrupt(_))
            ));
        }
        // Truncated.
        assert!(matches!(
            validate_record_set(&b[..b.len() - 1], MAX),
            Err(BatchError::Corrupt(_))
        ));
        assert!(matches!(
            validate_record_set(&b[..30], MAX),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let mut b = record_batch(2, 3, 5);
        b.extend_from_slice(&[0; 10]);
        assert!(matches!(
            validate_record_set(&b, MAX),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn batch_over_max_message_bytes_is_too_large() {
        let b = record_batch(2, 300, 5);
        assert_eq!(
            validate_record_set(&b, 100),
            Err(BatchError::TooLarge {
                size: b.len(),
                max: 100
            })
        );
        assert!(validate_record_set(&b, b.len()).is_ok());
    }

    #[test]
    fn inconsistent_record_count_is_rejected() {
        let mut b = record_batch(2, 3, 5);
        b[57..61].copy_from_slice(&3i32.to_be_bytes());
        let crc = batch_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_record_set(&b, MAX),
            Err(BatchError::Corrupt(_))
        ));
        b[57..61].copy_from_slice(&0i32.to_be_bytes());
        let crc = batch_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_record_set(&b, MAX),
            Err(BatchError::Invalid(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn validate_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                                 flip in 0usize..400) {
            let _ = validate_record_set(&bytes, MAX);
            let mut b = record_batch(2, 20, 5);
            b.extend(bytes);
            if flip < b.len() { b[flip] ^= 0xff; }
            let _ = validate_record_set(&b, MAX);
        }
    }
}
