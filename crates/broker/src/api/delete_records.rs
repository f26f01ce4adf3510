//! DeleteRecords (key 21, v0-2): move partitions' log start offsets forward (offset -1: to
//! the high watermark). Records below become unreadable at once and whole segments below are
//! deleted; the new start is checkpointed before the answer, so it survives a crash.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use weir_storage::StorageError;

use super::prelude::*;
use super::BoxFuture;
use crate::error_codes as ec;
use crate::partition::PartitionError;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    _version: i16,
    req: DeleteRecordsRequest,
) -> BoxFuture<DeleteRecordsResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let mut results = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let r =
                    DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                let r = match broker.partition(t.name.as_str(), p.partition_index) {
                    None => r
                        .with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_low_watermark(-1),
                    Some(_) if crate::broker::is_internal_topic(t.name.as_str()) => r
                        .with_error_code(ec::INVALID_TOPIC_EXCEPTION)
                        .with_low_watermark(-1),
                    Some(part) => {
                        let offset = if p.offset == -1 {
                            part.state().high_watermark
                        } else {
                            p.offset
                        };
                        let deleted =
                            tokio::task::spawn_blocking(move || part.delete_records(offset))
                                .await
                                .unwrap_or_else(|e| {
                                    Err(PartitionError::Storage(StorageError::Io {
                                        context: "DeleteRecords".into(),
                                        source: std::io::Error::other(e.to_string()),
                                    }))
                                });
                        match deleted {
                            Ok(start) => r.with_error_code(ec::NONE).with_low_watermark(start),
                            Err(PartitionError::Storage(StorageError::OffsetOutOfRange {
                                ..
                            })) => r
                                .with_error_code(ec::OFFSET_OUT_OF_RANGE)
                                .with_low_watermark(-1),
                            Err(PartitionError::Closed(_)) => r
                                .with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION)
                                .with_low_watermark(-1),
                            Err(e) => {
                                tracing::error!(topic = %t.name.as_str(), partition = p.partition_index, error = %e, "DeleteRecords failed");
                                r.with_error_code(ec::KAFKA_STORAGE_ERROR)
                                    .with_low_watermark(-1)
                            }
                        }
                    }
                };
                results.push(r);
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(results),
            );
        }
        DeleteRecordsResponse::default().with_topics(topics)
    })
}

/// DeleteRecords in the API registry (`super::registry!`).
pub struct DeleteRecords;

impl KafkaApi for DeleteRecords {
    const KEY: ApiKey = ApiKey::DeleteRecords;
    const VERSIONS: RangeInclusive<i16> = 0..=2;
    type Request = DeleteRecordsRequest;
    type Response = DeleteRecordsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Later(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
