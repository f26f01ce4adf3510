//! weir-storage: the partition log.
//!
//! Owns one directory per partition: segments of RecordBatch v2 stored as produced, sparse
//! offset and time indexes, crash recovery (CRC scan from the recovery point, truncation
//! at the first bad batch), checkpoints (recovery point, log start offset, leader epochs)
//! and the fsync protocol used for group commit ([`SyncTarget`]). Invariants: offsets dense
//! and never reused, everything below the recovery point fsync'd, reads return whole
//! batches only, fail-stop after an fsync failure. The whole contract, with byte-level file
//! formats, is in docs/storage.md.

pub mod batch;
mod checkpoint;
pub mod fs;
pub mod log;
pub mod records;
mod segment;
pub mod simfs;
pub mod testkit;

pub use batch::{BatchError, BatchHeader, BATCH_HEADER_LEN};
pub use fs::{Fs, StdFs, StorageFile};
pub use log::{AppendInfo, Log, LogConfig, RecoveryReport, StorageError, SyncTarget};
pub use simfs::{SimFs, SimRng};
