//! Fetch (key 1): whole batches straight from the log, never decoded or re-encoded, up to
//! the high watermark (read_uncommitted) or the last stable offset (read_committed, with the
//! aborted transactions in the range so the client drops their records). Long-polls on the
//! partitions' state signals while fewer than min_bytes are available and max_wait_ms has
//! not passed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use uuid::Uuid;
use weir_storage::StorageError;

use super::prelude::*;
use super::Reply;
use crate::error_codes as ec;
use crate::partition::{Partition, PartitionError};

/// Upper bound on one fetch response, whatever the client asks for (Kafka's
/// fetch.max.bytes default is 55 MiB; the client's own max_bytes usually applies first).
const FETCH_MAX_BYTES_CAP: usize = 64 * 1024 * 1024;

/// The first version that names topics by id instead of by name (KIP-516).
const BY_TOPIC_ID: i16 = 13;

struct Wanted {
    /// The topic as the request names it (v4-12), echoed in the response.
    topic: TopicName,
    /// The topic's id as the request names it (v13+), echoed in the response.
    topic_id: Uuid,
    /// Whether the request names topics by id (v13+).
    by_id: bool,
    /// The topic's name, resolved from its id at v13+; `None`: no topic had that id.
    name: Option<String>,
    partitions: Vec<(i32, i64, i32)>, // (index, fetch_offset, partition_max_bytes)
}

impl Wanted {
    /// The partition, looked up again at every read of a long poll: a topic named by id that
    /// was deleted (and maybe created again under its name, with a new id) meanwhile is
    /// UNKNOWN_TOPIC_ID, never the new topic's data.
    fn partition(&self, broker: &Broker, index: i32) -> Result<Arc<Partition>, i16> {
        let gone = if self.by_id {
            ec::UNKNOWN_TOPIC_ID
        } else {
            ec::UNKNOWN_TOPIC_OR_PARTITION
        };
        let topic = self
            .name
            .as_deref()
            .and_then(|n| broker.topic(n))
            .ok_or(gone)?;
        if self.by_id && topic.id != self.topic_id {
            return Err(ec::UNKNOWN_TOPIC_ID);
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i).cloned())
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)
    }
}

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: FetchRequest,
) -> Reply<FetchResponse> {
    let by_id = version >= BY_TOPIC_ID;
    let names = if by_id {
        super::topic_names_by_id(broker, req.topics.iter().map(|t| t.topic_id))
    } else {
        Default::default()
    };
    let wanted: Vec<Wanted> = req
        .topics
        .into_iter()
        .map(|t| Wanted {
            name: if by_id {
                names.get(&t.topic_id).cloned()
            } else {
                Some(t.topic.to_string())
            },
            by_id,
            topic: t.topic,
            topic_id: t.topic_id,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| (p.partition, p.fetch_offset, p.partition_max_bytes))
                .collect(),
        })
        .collect();
    let max_bytes = if req.max_bytes <= 0 {
        FETCH_MAX_BYTES_CAP
    } else {
        (req.max_bytes as usize).min(FETCH_MAX_BYTES_CAP)
    };
    let read_committed = req.isolation_level == 1;
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);

    let first = read_all(broker, &wanted, max_bytes, read_committed);
    if max_wait.is_zero() || first.bytes >= min_bytes.max(1) || first.has_error {
        return Reply::Now(first.finish());
    }
    let broker = broker.clone();
    Reply::Later(Box::pin(async move {
        let deadline = Instant::now() + max_wait;
        let partitions: Vec<Arc<Partition>> = wanted
            .iter()
            .flat_map(|w| {
                w.partitions
                    .iter()
                    .filter_map(|&(i, _, _)| w.partition(&broker, i).ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut receivers: Vec<_> = partitions.iter().map(|p| p.subscribe()).collect();
        for rx in receivers.iter_mut() {
            rx.borrow_and_update();
        }
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || receivers.is_empty() {
                break;
            }
            let changed = select_all(receivers.iter_mut().map(|rx| Box::pin(rx.changed())));
            match tokio::time::timeout(remaining, changed).await {
                Err(_) => break, // max_wait_ms passed
                Ok((Err(_), _, _)) => break,
                Ok((Ok(()), _, _)) => {
                    let again = read_all(&broker, &wanted, max_bytes, read_committed);
                    if again.bytes >= min_bytes.max(1) || again.has_error {
                        return again.finish();
                    }
                }
            }
        }
        read_all(&broker, &wanted, max_bytes, read_committed).finish()
    }))
}

struct ReadResult {
    response: FetchResponse,
    bytes: usize,
    has_error: bool,
    /// Record bytes read per partition, counted only once this read is the one sent (a
    /// long poll may read several times).
    sent: Vec<(Arc<Partition>, usize)>,
}

impl ReadResult {
    fn finish(self) -> FetchResponse {
        for (p, n) in &self.sent {
            p.bytes_out
                .fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.response
    }
}

fn read_all(
    broker: &Broker,
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
) -> ReadResult {
    let mut total = 0usize;
    let mut has_error = false;
    let mut sent = Vec::new();
    let mut topics = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut parts = Vec::with_capacity(w.partitions.len());
        for &(index, fetch_offset, partition_max_bytes) in &w.partitions {
            let remaining = max_bytes.saturating_sub(total);
            let limit = (partition_max_bytes.max(0) as usize).min(remaining);
            let (pd, partition) =
                read_partition(broker, w, index, fetch_offset, limit, read_committed);
            if pd.error_code != ec::NONE {
                has_error = true;
            }
            let n = pd.records.as_ref().map_or(0, |r| r.len());
            if let (Some(p), true) = (partition, n > 0) {
                sent.push((p, n));
            }
            total += n;
            parts.push(pd);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(w.topic.clone())
                .with_topic_id(w.topic_id)
                .with_partitions(parts),
        );
    }
    ReadResult {
        response: FetchResponse::default()
            .with_error_code(ec::NONE)
            .with_session_id(0)
            .with_responses(topics),
        bytes: total,
        has_error,
        sent,
    }
}

fn read_partition(
    broker: &Broker,
    topic: &Wanted,
    index: i32,
    fetch_offset: i64,
    limit: usize,
    read_committed: bool,
) -> (PartitionData, Option<Arc<Partition>>) {
    let pd = PartitionData::default()
        .with_partition_index(index)
        .with_records(Some(Bytes::new()))
        .with_aborted_transactions(if read_committed {
            Some(Vec::new())
        } else {
            None
        });
    let p = match topic.partition(broker, index) {
        Ok(p) => p,
        Err(code) => {
            let pd = pd
                .with_error_code(code)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            return (pd, None);
        }
    };
    let state = p.state();
    let pd = pd
        .with_high_watermark(state.high_watermark)
        .with_last_stable_offset(state.last_stable_offset)
        .with_log_start_offset(state.log_start_offset);
    if limit == 0 {
        return (pd.with_error_code(ec::NONE), None);
    }
    let upto = if read_committed {
        state.last_stable_offset
    } else {
        state.high_watermark
    };
    let pd = match p.read_upto(fetch_offset, limit, upto) {
        Ok(records) if read_committed => {
            let aborted = if records.is_empty() {
                Vec::new()
            } else {
                p.aborted_transactions(fetch_offset, upto)
                    .into_iter()
                    .map(|(producer_id, first_offset)| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(producer_id))
                            .with_first_offset(first_offset)
                    })
                    .collect()
            };
            pd.with_error_code(ec::NONE)
                .with_records(Some(records))
                .with_aborted_transactions(Some(aborted))
        }
        Ok(records) => pd.with_error_code(ec::NONE).with_records(Some(records)),
        Err(PartitionError::Storage(StorageError::OffsetOutOfRange { .. })) => {
            pd.with_error_code(ec::OFFSET_OUT_OF_RANGE)
        }
        Err(PartitionError::Closed(_)) => pd.with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => {
            tracing::error!(partition = %p.name(), error = %e, "read failed");
            pd.with_error_code(ec::KAFKA_STORAGE_ERROR)
        }
    };
    (pd, Some(p))
}

/// Fetch in the API registry (`super::registry!`).
pub struct Fetch;

impl KafkaApi for Fetch {
    const KEY: ApiKey = ApiKey::Fetch;
    /// v13 names topics by id; v14 adds an error for tiered storage, which weir does not
    /// have; v15-v18 change only what a follower sends (its replica state, directory id and
    /// high watermark) and NodeEndpoints for NOT_LEADER_OR_FOLLOWER, which a single node
    /// never answers.
    const VERSIONS: RangeInclusive<i16> = 4..=18;
    type Request = FetchRequest;
    type Response = FetchResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
        for t in &resp.responses {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
