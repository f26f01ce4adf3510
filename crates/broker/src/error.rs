//! Errors of the broker's own metadata: the topic catalog, the broker identity file, the
//! producer-id block file, the clean-shutdown marker, and the partitions opened from them.
//!
//! Each carries its Kafka error code as data ([`MetadataError::code`]); a request that hits
//! one answers with that code, and startup reports it to the operator with its context.

use std::io;
use std::path::PathBuf;

use weir_storage::StorageError;

use crate::error_codes as ec;

/// A metadata file could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// An I/O operation on a metadata file or the data directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A metadata file holds something this version cannot read.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A partition's log could not be opened or recovered.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Some partitions failed to close at shutdown (each was logged): no clean-shutdown
    /// marker was written, so the next start recovers them.
    #[error("{partitions} partitions did not close cleanly; no clean-shutdown marker written")]
    NotClosed {
        /// How many.
        partitions: usize,
    },
    /// A coordinator could not replay its internal topic.
    #[error("replaying {topic}: {reason}")]
    Replay {
        /// The internal topic.
        topic: &'static str,
        /// What failed.
        reason: String,
    },
}

impl MetadataError {
    /// `map_err` adapter: an I/O error with its context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> MetadataError {
        let context = context.into();
        move |source| MetadataError::Io { context, source }
    }

    /// The Kafka error code a request that hits this error answers with.
    pub fn code(&self) -> i16 {
        match self {
            MetadataError::Replay { .. } => ec::COORDINATOR_NOT_AVAILABLE,
            _ => ec::KAFKA_STORAGE_ERROR,
        }
    }
}
