//! One module per Kafka API: each decodes nothing itself (the codec does), applies the
//! request to the broker, and builds the response for the client's version.
//!
//! `dispatch` is the only entry point: it decodes the body for the header's API and version,
//! calls the handler, and encodes the response frame. Produce and Fetch may answer later
//! (after the fsync, or when data arrives): they return `Reply::Later` and the connection
//! keeps reading requests meanwhile, writing responses in request order.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use weir_protocol::{encode_response, RequestMeta};

use crate::broker::Broker;
use response_errors::ResponseErrors;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
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
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod response_errors;
pub mod sync_group;
pub mod txn_offset_commit;

pub use crate::reply::{BoxFuture, Reply};

/// An encoded response frame, now or later.
pub enum Response {
    Now(Bytes),
    Later(BoxFuture<Result<Bytes, DispatchError>>),
    Nothing,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The body did not decode for its API and version: close the connection.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    /// A response the codec refused (a broker bug): close the connection, log it.
    #[error(transparent)]
    Encode(#[from] weir_protocol::EncodeError),
}

fn decode<T: Decodable>(meta: &RequestMeta, body: &mut Bytes) -> Result<T, DispatchError> {
    T::decode(body, meta.api_version).map_err(|e| DispatchError::Malformed {
        api: meta.api_key,
        version: meta.api_version,
        reason: e.to_string(),
    })
}

fn encode<T: Encodable + ResponseErrors>(
    meta: &RequestMeta,
    body: &T,
) -> Result<Bytes, DispatchError> {
    let counts = crate::metrics::response_errors(meta.api_key);
    body.each_error(&mut |code| counts.record(code));
    Ok(encode_response(
        meta.api_key,
        meta.api_version,
        meta.correlation_id,
        body,
    )?)
}

fn encode_reply<T: Encodable + ResponseErrors + Send + 'static>(
    meta: &RequestMeta,
    reply: Reply<T>,
) -> Result<Response, DispatchError> {
    Ok(match reply {
        Reply::Now(body) => Response::Now(encode(meta, &body)?),
        Reply::Later(fut) => {
            let meta = meta.clone();
            Response::Later(Box::pin(async move {
                let body = fut.await;
                encode(&meta, &body)
            }))
        }
        Reply::Nothing => Response::Nothing,
    })
}

/// Decode, handle and encode one request whose header has been parsed and checked against
/// the version table.
pub async fn dispatch(
    broker: &Arc<Broker>,
    meta: &RequestMeta,
    mut body: Bytes,
) -> Result<Response, DispatchError> {
    let v = meta.api_version;
    let b = &mut body;
    match meta.api_key {
        ApiKey::ApiVersions => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(meta, &api_versions::handle(v, req))?))
        }
        ApiKey::Metadata => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &metadata::handle(broker, v, req).await,
            )?))
        }
        ApiKey::Produce => {
            let req = decode(meta, b)?;
            encode_reply(meta, produce::handle(broker, v, req))
        }
        ApiKey::Fetch => {
            let req = decode(meta, b)?;
            encode_reply(meta, fetch::handle(broker, v, req))
        }
        ApiKey::ListOffsets => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &list_offsets::handle(broker, v, req),
            )?))
        }
        ApiKey::CreateTopics => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &create_topics::handle(broker, v, req).await,
            )?))
        }
        ApiKey::DeleteTopics => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &delete_topics::handle(broker, v, req).await,
            )?))
        }
        ApiKey::CreatePartitions => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &create_partitions::handle(broker, v, req).await,
            )?))
        }
        ApiKey::DescribeConfigs => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &describe_configs::handle(broker, v, req),
            )?))
        }
        ApiKey::FindCoordinator => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &find_coordinator::handle(broker, v, req),
            )?))
        }
        ApiKey::JoinGroup => {
            let req = decode(meta, b)?;
            encode_reply(meta, join_group::handle(broker, meta, req))
        }
        ApiKey::SyncGroup => {
            let req = decode(meta, b)?;
            encode_reply(meta, sync_group::handle(broker, v, req))
        }
        ApiKey::Heartbeat => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &heartbeat::handle(broker, v, req),
            )?))
        }
        ApiKey::LeaveGroup => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &leave_group::handle(broker, v, req),
            )?))
        }
        ApiKey::OffsetCommit => {
            let req = decode(meta, b)?;
            encode_reply(meta, offset_commit::handle(broker, v, req).await)
        }
        ApiKey::OffsetFetch => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &offset_fetch::handle(broker, v, req),
            )?))
        }
        ApiKey::OffsetDelete => {
            let req = decode(meta, b)?;
            encode_reply(meta, offset_delete::handle(broker, v, req))
        }
        ApiKey::ListGroups => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &list_groups::handle(broker, v, req),
            )?))
        }
        ApiKey::DescribeGroups => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &describe_groups::handle(broker, v, req),
            )?))
        }
        ApiKey::DeleteGroups => {
            let req = decode(meta, b)?;
            encode_reply(meta, delete_groups::handle(broker, v, req))
        }
        ApiKey::InitProducerId => {
            let req = decode(meta, b)?;
            encode_reply(meta, Reply::Later(init_producer_id::handle(broker, v, req)))
        }
        ApiKey::AddPartitionsToTxn => {
            let req = decode(meta, b)?;
            encode_reply(
                meta,
                Reply::Later(add_partitions_to_txn::handle(broker, v, req)),
            )
        }
        ApiKey::AddOffsetsToTxn => {
            let req = decode(meta, b)?;
            encode_reply(
                meta,
                Reply::Later(add_offsets_to_txn::handle(broker, v, req)),
            )
        }
        ApiKey::EndTxn => {
            let req = decode(meta, b)?;
            encode_reply(meta, Reply::Later(end_txn::handle(broker, v, req)))
        }
        ApiKey::TxnOffsetCommit => {
            let req = decode(meta, b)?;
            encode_reply(
                meta,
                Reply::Later(txn_offset_commit::handle(broker, v, req)),
            )
        }
        ApiKey::DeleteRecords => {
            let req = decode(meta, b)?;
            encode_reply(meta, Reply::Later(delete_records::handle(broker, v, req)))
        }
        ApiKey::AlterConfigs => {
            let req = decode(meta, b)?;
            encode_reply(meta, Reply::Later(alter_configs::handle(broker, v, req)))
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = decode(meta, b)?;
            encode_reply(
                meta,
                Reply::Later(incremental_alter_configs::handle(broker, v, req)),
            )
        }
        ApiKey::DescribeLogDirs => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &describe_log_dirs::handle(broker, v, req),
            )?))
        }
        ApiKey::DescribeProducers => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &describe_producers::handle(broker, v, req),
            )?))
        }
        ApiKey::DescribeTransactions => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &describe_transactions::handle(broker, v, req),
            )?))
        }
        ApiKey::ListTransactions => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &list_transactions::handle(broker, v, req),
            )?))
        }
        ApiKey::DescribeCluster => {
            let req = decode(meta, b)?;
            Ok(Response::Now(encode(
                meta,
                &describe_cluster::handle(broker, v, req),
            )?))
        }
        other => Err(DispatchError::Malformed {
            api: other,
            version: v,
            reason: "not implemented".into(),
        }),
    }
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
