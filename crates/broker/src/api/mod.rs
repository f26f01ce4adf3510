//! One module per Kafka API, and the registry that ties them to the wire.
//!
//! Each `api/<name>.rs` holds everything about its API: the handler, and an
//! `impl KafkaApi` naming the key, the advertised versions, the request and response types,
//! how a request is answered and where its response carries error codes. The codec
//! (kafka-protocol) decodes and encodes the bodies; `dispatch` does it the same way for all.
//!
//! `registry!` below lists the implemented APIs, one line each, in key order. From that list
//! come `dispatch`, the advertised version table `SUPPORTED_APIS` (ApiVersions' answer, and
//! what `weir_protocol::parse_request_header` accepts) and the per-API counting of the
//! error codes in responses. An API not in the registry is neither advertised nor handled.
//!
//! Adding an API:
//! 1. write `api/<name>.rs`: the handler, `pub struct <Name>;` and `impl KafkaApi for <Name>`;
//! 2. add `<name>::<Name>,` to `registry!` at its key's place, and `pub mod <name>;` to the
//!    module list (rustfmt cannot see modules declared by a macro, so they stay listed).
//!
//! The build fails on a registry out of key order or listing a key twice, a `KEY` that is
//! not the request type's, or an advertised max version the codec cannot decode; a test
//! fails on a file in `api/` left out of the registry, and another pins the advertised table.
//!
//! Answers come now, later or never (`Reply`). `handle` is awaited before the connection
//! reads its next request, so what it does before returning (create a topic, register a
//! member) is seen by the requests after it. Work that waits on something (an fsync, a long
//! poll, a rebalance) goes in `Reply::Later`: the connection keeps reading requests
//! meanwhile, and writes responses in request order. Work in `Reply::Later` may change
//! state too (DeleteRecords, AlterConfigs, OffsetCommit write a log first): the server holds
//! back a later request on the same connection until such work is done (only Produce behind
//! Produce and Fetch behind Fetch overlap), so requests take effect in order as on Kafka.

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request};
use weir_protocol::{encode_response, ApiVersionRange, RequestMeta};
use weir_storage::{FileSlice, StorageError};

use crate::broker::Broker;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;

pub use crate::reply::{BoxFuture, Reply};

/// One Kafka API, implemented: what `dispatch` needs to decode, answer, encode and count it.
pub trait KafkaApi: 'static {
    /// The API key; it must be the request type's own (checked at build time).
    const KEY: ApiKey;
    /// The versions advertised in ApiVersions. The header parser accepts them narrowed to
    /// what the codec decodes; the max must be decodable (checked at build time).
    const VERSIONS: RangeInclusive<i16>;
    /// The decoded request body (kafka-protocol's type).
    type Request: Request<Response = <Self::Response as Answer>::Body>;
    /// What the handler builds: the response body, or (Fetch) a body with more beside it.
    type Response: Answer;

    /// Answer one request at `meta.api_version`. Awaited before the connection reads its
    /// next request; anything that waits belongs in `Reply::Later`.
    fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> impl Future<Output = Reply<Self::Response>> + Send;

    /// Calls `f` with every error code in `resp`, top level and per topic, partition, group
    /// or resource (zeros included; the counter skips them). They feed the admin exporter's
    /// `weir_response_errors_total`: what a client was told, not whether the request failed.
    /// Only the response sent is walked, so a long poll that read several times counts once.
    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16));
}

/// A handler's answer, as the connection sends it. Every response body is one, encoded whole
/// by kafka-protocol; Fetch's answer also names the segment-file ranges that go out as its
/// records without passing through user space.
pub trait Answer: Send + 'static {
    /// The response body type (the request type's `Response`).
    type Body: Encodable;
    /// Encode the answer as a response frame for `meta`.
    fn into_frame(self, meta: &RequestMeta) -> Result<Frame, weir_protocol::EncodeError>;
}

impl<T: Encodable + Send + 'static> Answer for T {
    type Body = T;
    fn into_frame(self, meta: &RequestMeta) -> Result<Frame, weir_protocol::EncodeError> {
        Ok(Frame::Whole(encode_response(
            meta.api_key,
            meta.api_version,
            meta.correlation_id,
            &self,
        )?))
    }
}

/// An encoded response frame (size prefix included).
#[derive(Debug)]
pub enum Frame {
    /// All of it in memory.
    Whole(Bytes),
    /// In memory and in segment files, in order: a fetch whose records the connection
    /// sends from the page cache (sendfile).
    Parts(Vec<FramePart>),
}

/// One piece of a [`Frame::Parts`].
#[derive(Debug)]
pub enum FramePart {
    /// Bytes in memory.
    Mem(Bytes),
    /// A range of a segment file.
    File(FileSlice),
}

impl FramePart {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            FramePart::Mem(b) => b.len(),
            FramePart::File(f) => f.len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Frame {
    /// Its length in bytes, size prefix included.
    pub fn len(&self) -> usize {
        match self {
            Frame::Whole(b) => b.len(),
            Frame::Parts(parts) => parts.iter().map(FramePart::len).sum(),
        }
    }

    /// Whether it is empty (never, for a frame that was encoded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All of it in memory: the file ranges read (the copy path, and tests).
    pub fn into_bytes(self) -> Result<Bytes, StorageError> {
        let len = self.len();
        match self {
            Frame::Whole(b) => Ok(b),
            Frame::Parts(parts) => {
                let mut out = Vec::with_capacity(len);
                for part in &parts {
                    match part {
                        FramePart::Mem(b) => out.extend_from_slice(b),
                        FramePart::File(f) => f.read_into(&mut out)?,
                    }
                }
                Ok(Bytes::from(out))
            }
        }
    }
}

/// What an API file's `impl KafkaApi` block needs, in one import, so the block can sit at
/// the end of its file without touching the file's own imports.
pub mod prelude {
    pub use std::ops::RangeInclusive;
    pub use std::sync::Arc;

    pub use kafka_protocol::messages::ApiKey;
    pub use weir_protocol::RequestMeta;

    pub use super::KafkaApi;
    pub use crate::broker::Broker;
    pub use crate::reply::Reply;
}

/// Every implemented API, in key order, one line each: `module::Type`.
macro_rules! registry {
    ($($module:ident::$api:ident,)+) => {
        /// The APIs weir implements and the versions it advertises, in key order: the answer
        /// to ApiVersions, and the table the server checks request headers against.
        pub const SUPPORTED_APIS: &[ApiVersionRange] = &[$(advertised::<$module::$api>(),)+];

        $(const _: () = check::<$module::$api>();)+

        /// The registered modules' names, to find a file in `api/` left out.
        #[cfg(test)]
        const REGISTERED_MODULES: &[&str] = &[$(stringify!($module),)+];

        async fn route(
            broker: &Arc<Broker>,
            meta: &RequestMeta,
            body: &mut Bytes,
        ) -> Result<Response, DispatchError> {
            match meta.api_key {
                $(<$module::$api as KafkaApi>::KEY => run::<$module::$api>(broker, meta, body).await,)+
                other => Err(DispatchError::Malformed {
                    api: other,
                    version: meta.api_version,
                    reason: "not implemented".into(),
                }),
            }
        }
    };
}

registry! {
    produce::Produce,
    fetch::Fetch,
    list_offsets::ListOffsets,
    metadata::Metadata,
    offset_commit::OffsetCommit,
    offset_fetch::OffsetFetch,
    find_coordinator::FindCoordinator,
    join_group::JoinGroup,
    heartbeat::Heartbeat,
    leave_group::LeaveGroup,
    sync_group::SyncGroup,
    describe_groups::DescribeGroups,
    list_groups::ListGroups,
    api_versions::ApiVersions,
    create_topics::CreateTopics,
    delete_topics::DeleteTopics,
    delete_records::DeleteRecords,
    init_producer_id::InitProducerId,
    add_partitions_to_txn::AddPartitionsToTxn,
    add_offsets_to_txn::AddOffsetsToTxn,
    end_txn::EndTxn,
    txn_offset_commit::TxnOffsetCommit,
    describe_configs::DescribeConfigs,
    alter_configs::AlterConfigs,
    describe_log_dirs::DescribeLogDirs,
    create_partitions::CreatePartitions,
    delete_groups::DeleteGroups,
    incremental_alter_configs::IncrementalAlterConfigs,
    offset_delete::OffsetDelete,
    describe_cluster::DescribeCluster,
    describe_producers::DescribeProducers,
    describe_transactions::DescribeTransactions,
    list_transactions::ListTransactions,
    consumer_group_heartbeat::ConsumerGroupHeartbeat,
    consumer_group_describe::ConsumerGroupDescribe,
    list_config_resources::ListConfigResources,
    describe_topic_partitions::DescribeTopicPartitions,
}

const fn advertised<A: KafkaApi>() -> ApiVersionRange {
    (A::KEY, *A::VERSIONS.start(), *A::VERSIONS.end())
}

/// What each registered API must satisfy, checked when the crate builds.
const fn check<A: KafkaApi>() {
    assert!(
        A::KEY as i16 == <A::Request as Request>::KEY,
        "KafkaApi::KEY is not the key of its Request type"
    );
    let (min, max) = (*A::VERSIONS.start(), *A::VERSIONS.end());
    assert!(
        0 <= min && min <= max,
        "KafkaApi::VERSIONS is empty or negative"
    );
    assert!(
        max <= <A::Request as Message>::VERSIONS.max,
        "KafkaApi::VERSIONS advertises a version the codec cannot decode"
    );
}

const _: () = {
    let mut i = 1;
    while i < SUPPORTED_APIS.len() {
        assert!(
            (SUPPORTED_APIS[i - 1].0 as i16) < (SUPPORTED_APIS[i].0 as i16),
            "registry! must list each API once, in key order"
        );
        i += 1;
    }
};

/// An encoded response frame, now or later. Not a `Reply<Bytes>`: encoding a later answer
/// can still fail (a broker bug), and the connection must see that error to close.
pub enum Response {
    /// The encoded frame, ready now.
    Now(Frame),
    /// The frame once the future completes (after an fsync, a long poll, a rebalance).
    Later(BoxFuture<Result<Frame, DispatchError>>),
    /// No response at all (Produce with acks=0).
    Nothing,
}

/// Why a request got no response: the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The body did not decode for its API and version: close the connection.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The request's API.
        api: ApiKey,
        /// The request's version.
        version: i16,
        /// What the codec said.
        reason: String,
    },
    /// A response the codec refused (a broker bug): close the connection, log it.
    #[error(transparent)]
    Encode(#[from] weir_protocol::EncodeError),
}

/// Decode, handle and encode one request whose header has been parsed and checked against
/// `SUPPORTED_APIS`.
pub async fn dispatch(
    broker: &Arc<Broker>,
    meta: &RequestMeta,
    mut body: Bytes,
) -> Result<Response, DispatchError> {
    route(broker, meta, &mut body).await
}

async fn run<A: KafkaApi>(
    broker: &Arc<Broker>,
    meta: &RequestMeta,
    body: &mut Bytes,
) -> Result<Response, DispatchError> {
    let req: A::Request = decode(meta, body)?;
    Ok(match A::handle(broker, meta, req).await {
        Reply::Now(resp) => Response::Now(encode::<A>(meta, resp)?),
        Reply::Later(fut) => {
            let meta = meta.clone();
            Response::Later(Box::pin(async move { encode::<A>(&meta, fut.await) }))
        }
        Reply::Nothing => Response::Nothing,
    })
}

fn decode<T: Decodable>(meta: &RequestMeta, body: &mut Bytes) -> Result<T, DispatchError> {
    T::decode(body, meta.api_version).map_err(|e| DispatchError::Malformed {
        api: meta.api_key,
        version: meta.api_version,
        reason: e.to_string(),
    })
}

fn encode<A: KafkaApi>(meta: &RequestMeta, resp: A::Response) -> Result<Frame, DispatchError> {
    let counts = crate::metrics::response_errors(meta.api_key);
    A::each_error(&resp, &mut |code| counts.record(code));
    Ok(resp.into_frame(meta)?)
}

/// `Some(StrBytes)` from a `&str`, the shape of most optional strings in responses.
pub(crate) fn some_str(s: &str) -> Option<kafka_protocol::protocol::StrBytes> {
    Some(kafka_protocol::protocol::StrBytes::from_string(
        s.to_string(),
    ))
}

pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}

/// The names of the topics whose ids are `ids` (Produce 13 and Fetch 13+ name topics by id);
/// an id no topic has is absent. One index lookup per id.
pub(crate) fn topic_names_by_id(
    broker: &Broker,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> std::collections::HashMap<uuid::Uuid, String> {
    ids.into_iter()
        .filter_map(|id| Some((id, broker.topic_by_id(id)?.name.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What weir advertised when the registry replaced the hand-kept table. A registry edit
    /// that changes it must change this copy too, on purpose.
    const ADVERTISED: &[ApiVersionRange] = &[
        (ApiKey::Produce, 0, 13),
        (ApiKey::Fetch, 4, 18),
        (ApiKey::ListOffsets, 1, 11),
        (ApiKey::Metadata, 0, 13),
        (ApiKey::OffsetCommit, 2, 9),
        (ApiKey::OffsetFetch, 1, 9),
        (ApiKey::FindCoordinator, 0, 4),
        (ApiKey::JoinGroup, 0, 9),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 5),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::DescribeGroups, 0, 5),
        (ApiKey::ListGroups, 0, 5),
        (ApiKey::ApiVersions, 0, 4),
        (ApiKey::CreateTopics, 2, 7),
        (ApiKey::DeleteTopics, 1, 6),
        (ApiKey::DeleteRecords, 0, 2),
        (ApiKey::InitProducerId, 0, 5),
        (ApiKey::AddPartitionsToTxn, 0, 3),
        (ApiKey::AddOffsetsToTxn, 0, 3),
        (ApiKey::EndTxn, 0, 3),
        (ApiKey::TxnOffsetCommit, 0, 3),
        (ApiKey::DescribeConfigs, 1, 4),
        (ApiKey::AlterConfigs, 0, 2),
        (ApiKey::DescribeLogDirs, 1, 4),
        (ApiKey::CreatePartitions, 0, 3),
        (ApiKey::DeleteGroups, 0, 2),
        (ApiKey::IncrementalAlterConfigs, 0, 1),
        (ApiKey::OffsetDelete, 0, 0),
        (ApiKey::DescribeCluster, 0, 1),
        (ApiKey::DescribeProducers, 0, 0),
        (ApiKey::DescribeTransactions, 0, 0),
        (ApiKey::ListTransactions, 0, 1),
        (ApiKey::ConsumerGroupHeartbeat, 0, 1),
        (ApiKey::ConsumerGroupDescribe, 0, 1),
        (ApiKey::ListConfigResources, 0, 1),
        (ApiKey::DescribeTopicPartitions, 0, 0),
    ];

    #[test]
    fn advertised_table_is_unchanged() {
        assert_eq!(SUPPORTED_APIS, ADVERTISED);
    }

    #[test]
    fn produce_v0_is_advertised_but_only_decodable_versions_are_accepted() {
        assert_eq!(
            weir_protocol::supported_range(SUPPORTED_APIS, ApiKey::Produce),
            Some((0, 13))
        );
        assert_eq!(
            weir_protocol::accepted_range(SUPPORTED_APIS, ApiKey::Produce),
            Some((3, 13))
        );
    }

    #[test]
    fn every_api_file_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|n| n.strip_suffix(".rs").map(str::to_string))
            .filter(|n| n != "mod")
            .collect();
        files.sort();
        let mut registered: Vec<String> =
            REGISTERED_MODULES.iter().map(|m| m.to_string()).collect();
        registered.sort();
        assert_eq!(files, registered, "api/<name>.rs without a registry! line");
    }
}
