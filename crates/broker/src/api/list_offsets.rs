//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), or the first
//! offset at or after a timestamp. With isolation level read_committed (v2+) "latest" and
//! the searches stop at the last stable offset instead of the high watermark.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use weir_storage::StorageError;

use super::prelude::*;
use crate::error_codes as ec;
use crate::partition::{Partition, PartitionError};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let (code, timestamp, offset, epoch) = lookup(
                        broker,
                        t.name.as_str(),
                        p.partition_index,
                        p.timestamp,
                        version,
                        read_committed,
                    );
                    let r = r
                        .with_error_code(code)
                        .with_timestamp(timestamp)
                        .with_offset(offset);
                    if version >= 4 {
                        r.with_leader_epoch(epoch)
                    } else {
                        r
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (error code, timestamp, offset, leader epoch)
fn lookup(
    broker: &Broker,
    topic: &str,
    index: i32,
    timestamp: i64,
    version: i16,
    read_committed: bool,
) -> (i16, i64, i64, i32) {
    let Some(p) = broker.partition(topic, index) else {
        return (ec::UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1);
    };
    let state = p.state();
    let epoch = p.leader_epoch;
    let end = if read_committed {
        state.last_stable_offset
    } else {
        state.high_watermark
    };
    match timestamp {
        LATEST => (ec::NONE, -1, end, epoch),
        EARLIEST => (ec::NONE, -1, state.log_start_offset, epoch),
        MAX_TIMESTAMP if version >= 7 => {
            let found = p.with_log(|l| l.max_timestamp().map(|m| m.map(|(ts, o)| (o, ts))));
            timestamp_answer(&p, found, end, epoch)
        }
        ts if ts >= 0 => {
            let found = p.with_log(|l| l.offset_for_timestamp(ts));
            timestamp_answer(&p, found, end, epoch)
        }
        _ => (ec::INVALID_REQUEST, -1, -1, -1),
    }
}

/// The answer to a search by timestamp: the found (offset, timestamp) if it is below the high
/// watermark (consumers cannot read past it), else "none" as -1/-1.
fn timestamp_answer(
    p: &Partition,
    found: Result<Result<Option<(i64, i64)>, StorageError>, PartitionError>,
    high_watermark: i64,
    epoch: i32,
) -> (i16, i64, i64, i32) {
    match found {
        Ok(Ok(Some((offset, ts)))) if offset < high_watermark => (ec::NONE, ts, offset, epoch),
        Ok(Ok(_)) => (ec::NONE, -1, -1, -1),
        Ok(Err(e)) => {
            tracing::error!(partition = %p.name(), error = %e, "search by timestamp failed");
            (ec::KAFKA_STORAGE_ERROR, -1, -1, -1)
        }
        Err(_) => (ec::UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1),
    }
}

/// ListOffsets in the API registry (`super::registry!`).
pub struct ListOffsets;

impl KafkaApi for ListOffsets {
    const KEY: ApiKey = ApiKey::ListOffsets;
    const VERSIONS: RangeInclusive<i16> = 1..=7;
    type Request = ListOffsetsRequest;
    type Response = ListOffsetsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
