//! The partition log. API CONTRACT (skeleton: bodies are `todo!()` until implemented).
//!
//! One `Log` per partition directory. Single-threaded API (`&mut self` for writes): the
//! broker keeps each `Log` behind a mutex. fsync can happen outside that mutex through
//! [`SyncTarget`], which is what makes group commit possible: appends go on while an fsync
//! of earlier appends is in flight, and the next fsync covers every append made meanwhile.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::BatchError;

/// Per-partition settings (Kafka topic config names in the comments).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when an append would make it larger.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
    /// `index.interval.bytes`: add a sparse index entry every this many bytes.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type` == LogAppendTime: stamp now_ms as max_timestamp + set attr bit.
    pub log_append_time: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: 1024 * 1024 + 12,
            log_append_time: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A previous fsync or write failed; the log refuses writes until reopened.
    #[error("log {0} is offline after an I/O failure; reopen it to recover")]
    Offline(PathBuf),
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset of the last record; log_end_offset is now last_offset + 1.
    pub last_offset: i64,
    /// Largest max_timestamp among the appended batches (after LogAppendTime stamping).
    pub max_timestamp: i64,
    /// now_ms if LogAppendTime, else -1.
    pub log_append_time_ms: i64,
}

/// What recovery found at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Batches CRC-checked during recovery.
    pub batches_scanned: u64,
    /// Bytes cut from the tail (torn or corrupt batch and everything after it).
    pub bytes_truncated: u64,
    /// Why it truncated, if it did (e.g. "crc mismatch at offset 1234 position 5678").
    pub truncation_reason: Option<String>,
}

/// Files to fsync to make everything up to `end_offset` durable. Cloned handles, so the
/// fsync runs without holding the log's mutex.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub files: Vec<Arc<File>>,
    pub end_offset: i64,
}

pub struct Log {
    _dir: PathBuf,
}

impl Log {
    /// Open (creating if missing) the log in `dir`. `clean_shutdown` says the broker's
    /// clean-shutdown marker was present: then segments are trusted up to their recovery
    /// point checkpoint. Otherwise every segment past the last checkpointed recovery point
    /// is scanned batch by batch (CRC-32C); the first torn/corrupt batch and all after it
    /// is truncated (logged with `tracing::warn!`), and indexes are rebuilt.
    pub fn open(
        _dir: &Path,
        _config: LogConfig,
        _clean_shutdown: bool,
    ) -> Result<(Log, RecoveryReport), StorageError> {
        todo!()
    }

    /// Append an already-validated record set (one or more v2 batches, as from
    /// `batch::validate_record_set`). Rewrites each batch's base_offset (bytes 0..8) and
    /// partition_leader_epoch (bytes 12..16) in place, both outside the CRC; with
    /// LogAppendTime also stamps max_timestamp and the attribute bit and recomputes the CRC.
    /// Writes (no fsync), rolling the segment first if needed.
    pub fn append(
        &mut self,
        _records: &mut [u8],
        _leader_epoch: i32,
        _now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        todo!()
    }

    /// What to fsync to make the current log end durable.
    pub fn sync_target(&self) -> SyncTarget {
        todo!()
    }

    /// Record that everything below `end_offset` is durable (after a successful fsync of a
    /// `SyncTarget`). Never moves backwards.
    pub fn mark_synced(&mut self, _end_offset: i64) {
        todo!()
    }

    /// Mark the log offline after a failed fsync: every later append returns `Offline`.
    pub fn mark_failed(&mut self) {
        todo!()
    }

    /// fsync everything now (sync_target + fsync + mark_synced), used at shutdown and roll.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        todo!()
    }

    /// Whole batches from the batch containing `fetch_offset`, in order, stopping before
    /// `max_offset` (exclusive; the high watermark) and once `max_bytes` is reached, but
    /// always at least one whole batch if any is readable (KIP-74). Empty `Bytes` at the end.
    /// `OffsetOutOfRange` if fetch_offset < log_start_offset or > log_end_offset.
    pub fn read(
        &self,
        _fetch_offset: i64,
        _max_bytes: usize,
        _max_offset: i64,
    ) -> Result<Bytes, StorageError> {
        todo!()
    }

    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }

    /// Everything below this offset has been fsync'd.
    pub fn recovery_point(&self) -> i64 {
        todo!()
    }

    /// First offset whose batch max_timestamp >= `timestamp` (ListOffsets by time):
    /// Some((offset, timestamp)) or None if no such batch.
    pub fn offset_for_timestamp(&self, _timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        todo!()
    }

    /// The batch with the largest max_timestamp: Some((timestamp, offset)) (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        todo!()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// Flush, write indexes and checkpoints (for a clean open next time).
    pub fn close(self) -> Result<(), StorageError> {
        todo!()
    }

    /// Remove the partition directory and everything in it.
    pub fn delete(self) -> Result<(), StorageError> {
        todo!()
    }
}
