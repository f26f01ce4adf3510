//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local
//! (-4, v8+), latest tiered (-5, v9+), earliest pending upload (-6, v11+, KIP-1023), or the
//! first offset at or after a timestamp. With
//! isolation level read_committed (v2+) "latest" and the searches stop at the last stable
//! offset instead of the high watermark.
//!
//! weir has no tiered storage (KIP-405): the whole log is local, so the earliest local
//! offset is the log start offset, and nothing is tiered or waiting for upload (-5 and -6
//! answer offset -1 with epoch -1, as Kafka's `UnifiedLog` does for a topic without remote
//! storage). v10's timeout is for remote reads: unused here. A
//! special timestamp the request's version does not know, or one that no version knows,
//! is UNSUPPORTED_VERSION (Kafka's answer).

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
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

/// The first version that knows each special (negative) timestamp; any other negative
/// timestamp is unsupported at every version.
fn special_min_version(timestamp: i64) -> Option<i16> {
    match timestamp {
        LATEST | EARLIEST => Some(1),
        MAX_TIMESTAMP => Some(7),
        EARLIEST_LOCAL => Some(8),
        LATEST_TIERED => Some(9),
        EARLIEST_PENDING_UPLOAD => Some(11),
        _ => None,
    }
}

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
    if timestamp < 0 && special_min_version(timestamp).is_none_or(|min| version < min) {
        return (ec::UNSUPPORTED_VERSION, -1, -1, -1);
    }
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
        EARLIEST | EARLIEST_LOCAL => (ec::NONE, -1, state.log_start_offset, epoch),
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => (ec::NONE, -1, -1, -1),
        MAX_TIMESTAMP => {
            let found = p.with_log(|l| l.max_timestamp().map(|m| m.map(|(ts, o)| (o, ts))));
            timestamp_answer(&p, found, end, epoch)
        }
        ts => {
            debug_assert!(ts >= 0, "negative timestamps are specials, handled above");
            let found = p.with_log(|l| l.offset_for_timestamp(ts));
            timestamp_answer(&p, found, end, epoch)
        }
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
    const VERSIONS: RangeInclusive<i16> = 1..=11;
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
