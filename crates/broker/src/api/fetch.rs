//! Fetch (key 1): whole batches straight from the log, never decoded or re-encoded, up to
//! the high watermark (read_uncommitted) or the last stable offset (read_committed, with the
//! aborted transactions in the range so the client drops their records). Long-polls on the
//! partitions' state signals while fewer than min_bytes are available and max_wait_ms has
//! not passed.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::Encodable;
use uuid::Uuid;
use weir_protocol::EncodeError;
use weir_storage::{FileSlice, StorageError};

use super::prelude::*;
use super::{Answer, Frame, FramePart, Reply};
use crate::error_codes as ec;
use crate::partition::{Partition, PartitionError};

/// Upper bound on one fetch response, whatever the client asks for (Kafka's
/// fetch.max.bytes default is 55 MiB; the client's own max_bytes usually applies first).
const FETCH_MAX_BYTES_CAP: usize = 64 * 1024 * 1024;

/// The first version that names topics by id instead of by name (KIP-516).
const BY_TOPIC_ID: i16 = 13;

/// The first flexible version (compact arrays and bytes, tagged fields).
const FLEXIBLE: i16 = 12;

/// A partition's records of at least this many bytes go out from the page cache by
/// sendfile; smaller ones are copied into the response (one syscall per part is not worth
/// it for a few KiB).
const ZERO_COPY_MIN_BYTES: usize = 16 * 1024;

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

pub(crate) fn handle(broker: &Arc<Broker>, version: i16, req: FetchRequest) -> Reply<FetchAnswer> {
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
    answer: FetchAnswer,
    bytes: usize,
    has_error: bool,
    /// Record bytes read per partition, counted only once this read is the one sent (a
    /// long poll may read several times).
    sent: Vec<(Arc<Partition>, usize)>,
}

impl ReadResult {
    fn finish(self) -> FetchAnswer {
        for (p, n) in &self.sent {
            p.bytes_out
                .fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.answer
    }
}

/// A fetch response whose larger record sets stay in the segment files until the
/// connection sends them (sendfile): in `response` those partitions' records are empty.
pub struct FetchAnswer {
    /// The response, with the records read into memory where they were.
    pub response: FetchResponse,
    /// (topic index, partition index) in `response`, in response order, and the file
    /// ranges that are that partition's records.
    pub files: Vec<((usize, usize), Vec<FileSlice>)>,
}

impl From<FetchResponse> for FetchAnswer {
    fn from(response: FetchResponse) -> Self {
        FetchAnswer {
            response,
            files: Vec::new(),
        }
    }
}

impl Answer for FetchAnswer {
    type Body = FetchResponse;

    fn into_frame(self, meta: &RequestMeta) -> Result<Frame, EncodeError> {
        if self.files.is_empty() {
            return self.response.into_frame(meta);
        }
        encode_parts(self, meta)
    }
}

/// The array-length prefix of `n` elements at `version`.
fn put_array_len(buf: &mut BytesMut, version: i16, n: usize) -> Result<(), EncodeError> {
    let n = u32::try_from(n).map_err(|_| EncodeError("array too long".into()))?;
    if version >= FLEXIBLE {
        put_varint(buf, n + 1);
    } else {
        buf.put_i32(n as i32);
    }
    Ok(())
}

/// An unsigned varint (LEB128), as the flexible versions write lengths.
fn put_varint(buf: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

/// Bytes `put_varint` writes for `n`: 7 bits each.
fn varint_len(n: u32) -> usize {
    ((32 - n.leading_zeros()) as usize).div_ceil(7).max(1)
}

fn codec<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, EncodeError> {
    r.map_err(|e| EncodeError(format!("Fetch {what}: {e}")))
}

/// Encode a fetch answer as in-memory parts around file ranges, byte for byte what
/// kafka-protocol encodes for the same response with those records in memory. The levels
/// around the partitions come from the codec too: a response or topic encoded with no
/// elements is its own fields, an empty array, then its tagged fields; the empty array is
/// replaced by the real one.
fn encode_parts(answer: FetchAnswer, meta: &RequestMeta) -> Result<Frame, EncodeError> {
    let v = meta.api_version;
    let FetchAnswer {
        response: mut skeleton,
        files,
    } = answer;
    let topics = std::mem::take(&mut skeleton.responses);
    let empty_array: &[u8] = if v >= FLEXIBLE { &[1] } else { &[0, 0, 0, 0] };
    // The tail a partition encoded with empty records ends with: the records' length
    // (-1 for null is never used here) and, when flexible, no tagged fields.
    let empty_records: &[u8] = if v >= FLEXIBLE {
        &[1, 0]
    } else {
        &[0, 0, 0, 0]
    };

    let mut parts: Vec<(BytesMut, Vec<FileSlice>)> = Vec::new();
    let mut buf = BytesMut::with_capacity(4096);
    weir_protocol::encode_response_header(&mut buf, meta.api_key, v, meta.correlation_id)?;

    let mut outer = BytesMut::new();
    codec("response", skeleton.encode(&mut outer, v))?;
    let fields = 4 + if v >= 7 { 6 } else { 0 };
    if outer.get(fields..fields + empty_array.len()) != Some(empty_array) {
        return Err(EncodeError("Fetch: unexpected response layout".into()));
    }
    buf.extend_from_slice(&outer[..fields]);
    put_array_len(&mut buf, v, topics.len())?;

    let mut files = files.into_iter().peekable();
    for (ti, mut topic) in topics.into_iter().enumerate() {
        let partitions = std::mem::take(&mut topic.partitions);
        let mut t_enc = BytesMut::new();
        codec("topic", topic.encode(&mut t_enc, v))?;
        let name_len = if v >= BY_TOPIC_ID {
            16
        } else if v >= FLEXIBLE {
            varint_len(topic.topic.len() as u32 + 1) + topic.topic.len()
        } else {
            2 + topic.topic.len()
        };
        if t_enc.get(name_len..name_len + empty_array.len()) != Some(empty_array) {
            return Err(EncodeError("Fetch: unexpected topic layout".into()));
        }
        buf.extend_from_slice(&t_enc[..name_len]);
        put_array_len(&mut buf, v, partitions.len())?;
        for (pi, partition) in partitions.iter().enumerate() {
            codec("partition", partition.encode(&mut buf, v))?;
            let Some((_, slices)) = files.next_if(|(at, _)| *at == (ti, pi)) else {
                continue;
            };
            if !buf.ends_with(empty_records)
                || partition.records.as_ref().map(Bytes::len) != Some(0)
            {
                return Err(EncodeError("Fetch: unexpected partition layout".into()));
            }
            buf.truncate(buf.len() - empty_records.len());
            let len: usize = slices.iter().map(|s| s.len).sum();
            let len = u32::try_from(len)
                .ok()
                .filter(|&n| n < i32::MAX as u32)
                .ok_or_else(|| EncodeError("Fetch: records too long".into()))?;
            if v >= FLEXIBLE {
                put_varint(&mut buf, len + 1);
            } else {
                buf.put_i32(len as i32);
            }
            parts.push((buf.split(), slices));
            if v >= FLEXIBLE {
                buf.put_u8(0); // the partition's tagged fields: none
            }
        }
        buf.extend_from_slice(&t_enc[name_len + empty_array.len()..]);
    }
    if files.next().is_some() {
        return Err(EncodeError("Fetch: file records for no partition".into()));
    }
    buf.extend_from_slice(&outer[fields + empty_array.len()..]);
    parts.push((buf, Vec::new()));

    let total: usize = parts
        .iter()
        .map(|(mem, slices)| mem.len() + slices.iter().map(|s| s.len).sum::<usize>())
        .sum();
    let size = i32::try_from(total - 4).map_err(|_| EncodeError("Fetch: frame too long".into()))?;
    parts[0].0[..4].copy_from_slice(&size.to_be_bytes());
    let mut out = Vec::with_capacity(parts.len() * 2);
    for (mem, slices) in parts {
        if !mem.is_empty() {
            out.push(FramePart::Mem(mem.freeze()));
        }
        out.extend(slices.into_iter().map(FramePart::File));
    }
    Ok(Frame::Parts(out))
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
    let mut files = Vec::new();
    let mut topics = Vec::with_capacity(wanted.len());
    for (ti, w) in wanted.iter().enumerate() {
        let mut parts = Vec::with_capacity(w.partitions.len());
        for (pi, &(index, fetch_offset, partition_max_bytes)) in w.partitions.iter().enumerate() {
            let remaining = max_bytes.saturating_sub(total);
            let limit = (partition_max_bytes.max(0) as usize).min(remaining);
            let (pd, slices, partition) =
                read_partition(broker, w, index, fetch_offset, limit, read_committed);
            if pd.error_code != ec::NONE {
                has_error = true;
            }
            let in_files: usize = slices.iter().map(|s| s.len).sum();
            let n = pd.records.as_ref().map_or(0, |r| r.len()) + in_files;
            if let (Some(p), true) = (partition, n > 0) {
                sent.push((p, n));
            }
            if !slices.is_empty() {
                files.push(((ti, pi), slices));
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
        answer: FetchAnswer {
            response: FetchResponse::default()
                .with_error_code(ec::NONE)
                .with_session_id(0)
                .with_responses(topics),
            files,
        },
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
) -> (PartitionData, Vec<FileSlice>, Option<Arc<Partition>>) {
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
            return (pd, Vec::new(), None);
        }
    };
    let state = p.state();
    let pd = pd
        .with_high_watermark(state.high_watermark)
        .with_last_stable_offset(state.last_stable_offset)
        .with_log_start_offset(state.log_start_offset);
    if limit == 0 {
        return (pd.with_error_code(ec::NONE), Vec::new(), None);
    }
    let upto = if read_committed {
        state.last_stable_offset
    } else {
        state.high_watermark
    };
    let read = p
        .read_slices_upto(fetch_offset, limit, upto)
        .and_then(|slices| {
            let len: usize = slices.iter().map(|s| s.len).sum();
            if len >= ZERO_COPY_MIN_BYTES && slices.iter().all(|s| s.file.fd().is_some()) {
                return Ok((Bytes::new(), slices));
            }
            let mut records = Vec::with_capacity(len);
            for slice in &slices {
                slice.read_into(&mut records)?;
            }
            Ok((Bytes::from(records), Vec::new()))
        });
    let mut in_files = Vec::new();
    let pd = match read {
        Ok((records, slices)) if read_committed => {
            let aborted = if records.is_empty() && slices.is_empty() {
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
            in_files = slices;
            pd.with_error_code(ec::NONE)
                .with_records(Some(records))
                .with_aborted_transactions(Some(aborted))
        }
        Ok((records, slices)) => {
            in_files = slices;
            pd.with_error_code(ec::NONE).with_records(Some(records))
        }
        Err(PartitionError::Storage(StorageError::OffsetOutOfRange { .. })) => {
            pd.with_error_code(ec::OFFSET_OUT_OF_RANGE)
        }
        Err(PartitionError::Closed(_)) => pd.with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => {
            tracing::error!(partition = %p.name(), error = %e, "read failed");
            pd.with_error_code(ec::KAFKA_STORAGE_ERROR)
        }
    };
    (pd, in_files, Some(p))
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
    type Response = FetchAnswer;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        handle(broker, meta.api_version, req)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        let resp = &resp.response;
        f(resp.error_code);
        for t in &resp.responses {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use kafka_protocol::protocol::StrBytes;
    use weir_storage::StorageFile;

    use super::*;

    fn meta(version: i16) -> RequestMeta {
        RequestMeta {
            api_key: ApiKey::Fetch,
            api_version: version,
            correlation_id: 0x0102_0304,
            client_id: None,
            client_host: String::new(),
        }
    }

    /// A response of three topics: one partition from files (two ranges, as a read across
    /// a segment roll gives), one in memory, one with an error; then a topic with a long
    /// name (its length takes two varint bytes) whose only partition is in a file.
    fn answer(version: i16, file: &Arc<dyn StorageFile>, read_committed: bool) -> FetchAnswer {
        let slice = |pos: u64, len: usize| FileSlice {
            file: file.clone(),
            path: PathBuf::from("segment"),
            pos,
            len,
        };
        let aborted = read_committed.then(|| {
            vec![AbortedTransaction::default()
                .with_producer_id(ProducerId(7))
                .with_first_offset(3)]
        });
        let partition = |index: i32, records: &'static [u8]| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(100 + index as i64)
                .with_last_stable_offset(90)
                .with_log_start_offset(if version >= 5 { 2 } else { -1 })
                .with_aborted_transactions(aborted.clone())
                .with_records(Some(Bytes::from_static(records)))
        };
        let topic = |name: &str, id: u128, partitions| {
            let t = FetchableTopicResponse::default().with_partitions(partitions);
            if version >= BY_TOPIC_ID {
                t.with_topic_id(Uuid::from_u128(id))
            } else {
                t.with_topic(TopicName(StrBytes::from_string(name.to_string())))
            }
        };
        let response = FetchResponse::default()
            .with_throttle_time_ms(5)
            .with_responses(vec![
                topic(
                    "orders",
                    1,
                    vec![
                        partition(0, b""),
                        partition(1, b"in-memory records"),
                        partition(2, b"").with_error_code(ec::OFFSET_OUT_OF_RANGE),
                    ],
                ),
                topic("empty", 2, Vec::new()),
                topic(&"t".repeat(200), 3, vec![partition(0, b"")]),
            ]);
        let response = if version >= 7 {
            response.with_session_id(0)
        } else {
            response
        };
        FetchAnswer {
            response,
            files: vec![
                ((0, 0), vec![slice(10, 300), slice(5000, 20_000)]),
                ((2, 0), vec![slice(0, 70_000)]),
            ],
        }
    }

    /// The same response with the file ranges read into the records, encoded by the codec.
    fn materialized(answer: &FetchAnswer) -> FetchResponse {
        let mut response = answer.response.clone();
        for ((t, p), slices) in &answer.files {
            let mut records = Vec::new();
            for s in slices {
                s.read_into(&mut records).unwrap();
            }
            response.responses[*t].partitions[*p].records = Some(Bytes::from(records));
        }
        response
    }

    #[test]
    fn parts_are_byte_for_byte_the_codecs_encoding_at_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let mut f = std::fs::File::create(&path).unwrap();
        let content: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        f.write_all(&content).unwrap();
        let file: Arc<dyn StorageFile> = Arc::new(std::fs::File::open(&path).unwrap());
        for version in 4..=18 {
            for read_committed in [false, true] {
                let answer = answer(version, &file, read_committed);
                let want = weir_protocol::encode_response(
                    ApiKey::Fetch,
                    version,
                    0x0102_0304,
                    &materialized(&answer),
                )
                .unwrap();
                let frame = answer.into_frame(&meta(version)).unwrap();
                let Frame::Parts(parts) = &frame else {
                    panic!("v{version}: file records were not sent as file parts");
                };
                let files = parts
                    .iter()
                    .filter(|p| matches!(p, FramePart::File(_)))
                    .count();
                assert_eq!(files, 3, "v{version}");
                assert_eq!(frame.len(), want.len(), "v{version}");
                let got = frame.into_bytes().unwrap();
                assert!(
                    got == want,
                    "v{version} read_committed={read_committed}: bytes differ"
                );
            }
        }
    }

    #[test]
    fn an_answer_without_file_records_is_encoded_whole() {
        let response = FetchResponse::default().with_session_id(0);
        let frame = FetchAnswer::from(response.clone())
            .into_frame(&meta(12))
            .unwrap();
        let want = weir_protocol::encode_response(ApiKey::Fetch, 12, 0x0102_0304, &response);
        assert!(matches!(frame, Frame::Whole(b) if b == want.unwrap()));
    }
}
