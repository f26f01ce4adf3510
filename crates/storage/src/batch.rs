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
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Total bytes of the batch on the wire/disk: 12 + batch_length.
    pub fn total_len(&self) -> usize {
        12 + self.batch_length as usize
    }
    /// Compression codec: attributes & 0x7 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }
    /// Timestamp type bit (attributes bit 3): true = LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x8 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
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
    TooLarge { size: usize, max: usize },
    /// Record set with no batch at all, or other invalid record: INVALID_RECORD (87).
    #[error("invalid record: {0}")]
    Invalid(String),
}

impl BatchHeader {
    /// Parse the header at the start of `buf` (None if fewer than BATCH_HEADER_LEN bytes).
    /// Does not validate anything.
    pub fn parse(_buf: &[u8]) -> Option<BatchHeader> {
        todo!()
    }
}

/// Validate a produced record set (the `records` bytes of one partition in a Produce
/// request): one or more complete RecordBatch v2, back to back, nothing trailing.
/// Checks per batch: magic == 2, batch_length sane and within the buffer, total size <=
/// `max_message_bytes`, CRC-32C over bytes 21..end, record_count >= 0 and
/// last_offset_delta consistent (record_count == last_offset_delta + 1 for non-empty
/// batches as Kafka requires). Returns the parsed headers.
pub fn validate_record_set(
    _records: &[u8],
    _max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    todo!()
}
