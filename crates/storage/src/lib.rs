//! weir-storage: the partition log.
//!
//! Owns one directory per partition: segments of RecordBatch v2 stored as produced, sparse
//! offset and time indexes, crash recovery (CRC scan from the recovery point, truncation
//! at the first bad batch), checkpoints (recovery point, log start offset, leader epochs,
//! cleaner progress), the fsync protocol used for group commit ([`SyncTarget`]), retention
//! and DeleteRecords (whole segments, log start offset checkpointed first) and compaction
//! ([`cleaner`]: plan under the lock, execute without it, install with a crash-atomic
//! swap). Invariants: batch offsets dense and never reused, everything below the recovery
//! point fsync'd, reads return whole batches only, fail-stop after an fsync failure. The
//! whole contract, with byte-level file formats, is in docs/storage.md.

#![warn(missing_docs)]

pub mod batch;
pub mod bounded_fs;
mod checkpoint;
pub mod cleaner;
pub mod control;
pub mod fs;
pub mod journal;
pub mod log;
pub mod metrics;
pub mod record_codec;
pub mod records;
mod recovery;
mod segment;
pub mod simfs;
pub mod testkit;

pub use batch::{BatchError, BatchHeader, BATCH_HEADER_LEN};
pub use bounded_fs::BoundedFs;
pub use cleaner::{AbortedTxn, CleanOutput, CleanPlan, CleanRequest, CleanStats, CleanerStatus};
pub use fs::{read_optional, write_atomic, Fs, StdFs, StorageFile};
pub use log::{
    AppendInfo, DelayedRemoval, FileSlice, Log, LogConfig, RecoveryReport, RetentionPolicy,
    RetiredFiles, SegmentsDeleted, StorageError, SyncTarget,
};
pub use simfs::{SimFs, SimRng};
