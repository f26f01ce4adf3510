//! weir-storage: the partition log (skeleton; see the API contract in each item's docs).
//! The whole contract is in docs/storage.md.

pub mod batch;
pub mod log;

pub use batch::{BatchError, BatchHeader, BATCH_HEADER_LEN};
pub use log::{AppendInfo, Log, LogConfig, RecoveryReport, StorageError, SyncTarget};
