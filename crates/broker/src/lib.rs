#![warn(missing_docs)]
//! weir-broker: the broker's state and its request handlers.
//!
//! Owns: the topic catalog, partitions (log + high watermark + group-commit flusher), and one
//! module per Kafka API under `api`. It knows nothing of sockets: `api::dispatch` takes a
//! parsed header and a body and returns the encoded response, now or later.
//!
//! Invariants: the high watermark of a partition never moves backwards and, with the default
//! flush policy, never passes what has been fsync'd; a produce is acknowledged only once its
//! last offset is below the high watermark.

pub mod api;
pub mod broker;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod error;
pub mod error_codes;
pub mod group;
pub mod internal_topic;
pub mod log_manager;
pub mod log_validator;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod producer_state;
pub mod reply;
pub mod settings;
pub mod txn;
pub mod txn_index;

pub use broker::Broker;
pub use config::{BrokerConfig, TopicDefaults};
