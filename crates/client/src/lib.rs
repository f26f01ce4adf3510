//! weir-client: a small async Kafka protocol client, used by the `weir` CLI.
//!
//! It owns the client side of the wire protocol and nothing weir-specific: every request
//! is a public Kafka API encoded by the `kafka-protocol` crate at a version negotiated with
//! ApiVersions, so it works against any Kafka-compatible broker. Pieces:
//! - [`conn::Connection`]: one socket, ApiVersions negotiation, request/response
//!   correlation, bounded response frames, timeouts.
//! - [`client::Client`]: bootstrap, Metadata, a connection per broker, FindCoordinator.
//! - [`admin`]: topics, configs, ListOffsets, cluster info.
//! - [`groups`]: list/describe (with lag)/reset-offsets/delete of consumer groups, and the
//!   "consumer" protocol's Subscription/Assignment and range assignor.
//! - [`producer::Producer`]: murmur2 partitioning, batching, compression, acks.
//! - [`consumer::Consumer`]: a fetcher by assignment, or a classic group member.
//!
//! Invariants: one request in flight per connection (responses are matched by
//! correlation id and a mismatch is an error); a consumer commits only offsets its caller
//! acknowledged; nothing is retried that could have been written.

#![warn(missing_docs)]

pub mod admin;
pub mod client;
pub mod conn;
pub mod consumer;
pub mod error;
pub mod groups;
pub mod partitioner;
pub mod producer;
pub mod records;

pub use client::{Client, ClientConfig};
pub use error::{Error, Result};
