//! What Kafka's `LogValidator` decides per record of a produced record set, and the
//! recompression a topic's `compression.type` asks for. No I/O: bytes and settings in, a
//! verdict (or new bytes) out.
//!
//! Per record (KIP-467): a compacted topic refuses a record without a key (INVALID_RECORD);
//! a CreateTime topic refuses a record whose timestamp lies outside
//! `message.timestamp.before/after.max.ms` around the broker's clock, and any topic refuses a
//! producer that set the LogAppendTime bit itself (INVALID_TIMESTAMP). Every bad record of the
//! batch is named in `record_errors` by its index in the batch, so a client fails exactly
//! those records; the response's code is INVALID_TIMESTAMP when any timestamp is bad, else
//! INVALID_RECORD, with Kafka's summary as `error_message`.
//!
//! Records are only walked when a rule can refuse one (a compacted topic, a bounded window, a
//! batch claiming LogAppendTime): the default topic never decodes a record here.

use std::ops::ControlFlow;

use weir_storage::batch::BatchHeader;
use weir_storage::record_codec::{recompress_batch, CompressionLevels};

use crate::config::TopicSettings;
use crate::error_codes as ec;

/// `topic-index`, as Kafka names a partition in its messages; formatted only when a message
/// is written, so the produce path allocates nothing for it.
#[derive(Debug, Clone, Copy)]
pub struct PartitionName<'a>(pub &'a str, pub i32);

impl std::fmt::Display for PartitionName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The most record errors one response names. The count in the message stays exact.
pub const MAX_RECORD_ERRORS: usize = 1_000;

/// A record set refused because of some of its records, or because it cannot be re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// INVALID_RECORD, INVALID_TIMESTAMP, MESSAGE_TOO_LARGE or CORRUPT_MESSAGE.
    pub code: i16,
    /// The partition-level `error_message`.
    pub message: String,
    /// `(batch_index, message)` of each bad record, in order (KIP-467's `record_errors`).
    pub record_errors: Vec<(i32, String)>,
}

impl Rejection {
    fn whole(code: i16, message: String) -> Self {
        Rejection {
            code,
            message,
            record_errors: Vec::new(),
        }
    }
}

/// The per-record rules of one topic at one moment.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules {
    /// cleanup.policy includes compact: every record needs a key.
    pub compacted: bool,
    /// message.timestamp.type is LogAppendTime (no window applies).
    pub log_append_time: bool,
    /// (before, after) the clock a CreateTime timestamp may lie; `i64::MAX` for no bound.
    pub window: (i64, i64),
    /// The broker's clock.
    pub now_ms: i64,
}

impl RecordRules {
    /// The rules of a topic with `settings`, now.
    pub fn new(settings: &TopicSettings, now_ms: i64) -> Self {
        RecordRules {
            compacted: settings.cleanup_compact,
            log_append_time: settings.log_append_time,
            window: settings.timestamp_window(),
            now_ms,
        }
    }

    /// Whether a rule could refuse a record of the batch `h` (else its records are not read).
    pub fn must_walk(&self, h: &BatchHeader) -> bool {
        self.compacted
            || h.is_log_append_time()
            || (!self.log_append_time && self.window != (i64::MAX, i64::MAX))
    }

    /// Why one record is refused, as (code, message), if it is.
    fn check(
        &self,
        batch_log_append_time: bool,
        key_len: i64,
        timestamp: i64,
        offset_delta: i64,
        partition: PartitionName<'_>,
    ) -> Option<(i16, String)> {
        if self.compacted && key_len < 0 {
            return Some((
                ec::INVALID_RECORD,
                format!("Compacted topic cannot accept message without key in topic partition {partition}"),
            ));
        }
        // -1 is Kafka's NO_TIMESTAMP: no window applies to it.
        if !self.log_append_time && timestamp != -1 {
            let (before, after) = self.window;
            let diff = i128::from(self.now_ms) - i128::from(timestamp);
            if diff > i128::from(before) || -diff > i128::from(after) {
                return Some((
                    ec::INVALID_TIMESTAMP,
                    format!(
                        "Timestamp {timestamp} of message with offset {offset_delta} is out of range. The timestamp should be within [{}, {}]",
                        self.now_ms.saturating_sub(before),
                        self.now_ms.saturating_add(after)
                    ),
                ));
            }
        } else if batch_log_append_time {
            return Some((
                ec::INVALID_TIMESTAMP,
                format!("Invalid timestamp type in message with offset {offset_delta}. Producer should not set timestamp type to LogAppendTime."),
            ));
        }
        None
    }
}

/// Check every record of `records` (validated batches whose headers are `headers`) against
/// `rules`, batch by batch as Kafka does: the first batch with a bad record refuses the set,
/// naming each of its bad records.
pub fn check_records(
    records: &[u8],
    headers: &[BatchHeader],
    rules: &RecordRules,
    partition: PartitionName<'_>,
) -> Result<(), Rejection> {
    let mut pos = 0usize;
    for h in headers {
        let batch = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if !rules.must_walk(h) {
            continue;
        }
        let (mut errors, mut total, mut any_timestamp) = (Vec::new(), 0usize, false);
        let mut index = 0i32;
        weir_storage::records::for_each_record_time(batch, |r| {
            let delta = r.offset - h.base_offset;
            if let Some((code, why)) = rules.check(
                h.is_log_append_time(),
                r.key_len,
                r.timestamp,
                delta,
                partition,
            ) {
                total += 1;
                any_timestamp |= code == ec::INVALID_TIMESTAMP;
                if errors.len() < MAX_RECORD_ERRORS {
                    errors.push((index, why));
                }
            }
            index += 1;
            ControlFlow::Continue(())
        })
        .map_err(|e| {
            Rejection::whole(
                ec::INVALID_RECORD,
                format!("the records of a batch cannot be read: {e}"),
            )
        })?;
        if total > 0 {
            return Err(summarise(errors, total, any_timestamp));
        }
    }
    Ok(())
}

/// Kafka's `processRecordErrors`: INVALID_TIMESTAMP if any timestamp was bad, else
/// INVALID_RECORD listing the first three.
fn summarise(errors: Vec<(i32, String)>, total: usize, any_timestamp: bool) -> Rejection {
    if any_timestamp {
        return Rejection {
            code: ec::INVALID_TIMESTAMP,
            message: "One or more records have been rejected due to invalid timestamp".into(),
            record_errors: errors,
        };
    }
    let first: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
        .collect();
    Rejection {
        code: ec::INVALID_RECORD,
        message: format!(
            "One or more records have been rejected due to {total} record errors in total, and only showing the first three errors at most: [{}]",
            first.join(", ")
        ),
        record_errors: errors,
    }
}

/// The record set re-encoded in the topic's `compression.type`, when that is a codec and
/// some batch is in another one (None: store it as produced). Kafka rebuilds such batches
/// keeping their producer id, epoch, base sequence and transactional bit, so idempotence and
/// transactions see the same batch; produced control batches never get here. A re-encoded
/// batch larger than `max.message.bytes` is refused (MESSAGE_TOO_LARGE), as in Kafka.
pub fn recompress(
    records: &[u8],
    headers: &[BatchHeader],
    settings: &TopicSettings,
    partition: PartitionName<'_>,
) -> Result<Option<Vec<u8>>, Rejection> {
    let Some(codec) = settings.compression else {
        return Ok(None);
    };
    if headers.iter().all(|h| h.compression() == codec) {
        return Ok(None);
    }
    let max = settings.max_message_bytes.max(0) as usize;
    let mut out = Vec::with_capacity(records.len());
    let mut pos = 0usize;
    for h in headers {
        let batch = &records[pos..pos + h.total_len()];
        pos += h.total_len();
        if h.compression() == codec {
            out.extend_from_slice(batch);
            continue;
        }
        let levels = CompressionLevels {
            gzip: settings.compression_gzip_level,
            lz4: settings.compression_lz4_level,
            zstd: settings.compression_zstd_level,
        };
        let re = recompress_batch(batch, codec, levels).map_err(|e| {
            Rejection::whole(
                ec::CORRUPT_MESSAGE,
                format!("the records of a batch cannot be re-encoded for compression.type: {e}"),
            )
        })?;
        if re.len() > max {
            return Err(Rejection::whole(
                ec::MESSAGE_TOO_LARGE,
                format!(
                    "Message batch size is {} bytes in append to partition {partition} which exceeds the maximum configured size of {max}.",
                    re.len()
                ),
            ));
        }
        out.extend_from_slice(&re);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use weir_storage::batch::validate_record_set;
    use weir_storage::record_codec::{encode_batch, put_record};

    use super::*;
    use crate::config::TopicDefaults;

    fn settings(pairs: &[(&str, &str)]) -> TopicSettings {
        let o: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TopicSettings::resolve(&TopicDefaults::default(), &o).unwrap()
    }

    /// A produced batch (base offset 0) whose records have these keys and timestamps.
    fn batch(codec: i16, records: &[(Option<&[u8]>, i64)]) -> Vec<u8> {
        let base = records[0].1;
        let mut body = Vec::new();
        for (i, (k, ts)) in records.iter().enumerate() {
            put_record(&mut body, ts - base, i as i32, *k, Some(b"v"), &[]);
        }
        let h = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: codec,
            last_offset_delta: records.len() as i32 - 1,
            base_timestamp: base,
            max_timestamp: records.iter().map(|r| r.1).max().unwrap(),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 0,
        };
        encode_batch(&h, records.len() as i32, &body).unwrap()
    }

    fn check(b: &[u8], s: &TopicSettings, now_ms: i64) -> Result<(), Rejection> {
        let headers = validate_record_set(b, usize::MAX).unwrap();
        check_records(
            b,
            &headers,
            &RecordRules::new(s, now_ms),
            PartitionName("t", 0),
        )
    }

    #[test]
    fn keyless_records_of_a_compacted_topic_are_each_named() {
        let s = settings(&[("cleanup.policy", "compact")]);
        for codec in [0, 1, 4] {
            let b = batch(
                codec,
                &[(Some(b"a"), 5), (None, 5), (Some(b"c"), 5), (None, 5)],
            );
            let r = check(&b, &s, 5).unwrap_err();
            assert_eq!(r.code, ec::INVALID_RECORD);
            assert_eq!(
                r.record_errors.iter().map(|e| e.0).collect::<Vec<_>>(),
                vec![1, 3]
            );
            assert!(r.record_errors[0].1.contains("without key"), "{r:?}");
            assert!(r.message.contains("2 record errors"), "{r:?}");
            assert!(r.message.contains("RecordError(batchIndex=1"), "{r:?}");
        }
        assert!(check(&batch(0, &[(Some(b"a"), 5)]), &s, 5).is_ok());
    }

    #[test]
    fn timestamps_outside_the_window_are_invalid_timestamp() {
        let s = settings(&[
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.after.max.ms", "100"),
        ]);
        let now = 1_000_000;
        assert!(check(&batch(0, &[(None, now - 1000), (None, now + 100)]), &s, now).is_ok());
        let b = batch(0, &[(None, now), (None, now - 1001), (None, now + 101)]);
        let r = check(&b, &s, now).unwrap_err();
        assert_eq!(r.code, ec::INVALID_TIMESTAMP);
        assert_eq!(
            r.message,
            "One or more records have been rejected due to invalid timestamp"
        );
        assert_eq!(
            r.record_errors.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(r.record_errors[0]
            .1
            .contains(&format!("[{}, {}]", now - 1000, now + 100)));
        // LogAppendTime topics overwrite timestamps: no window.
        let lat = settings(&[
            ("message.timestamp.type", "LogAppendTime"),
            ("message.timestamp.before.max.ms", "1"),
        ]);
        assert!(check(&b, &lat, now).is_ok());
        // The deprecated difference.max.ms bounds both sides while they are unset.
        let diff = settings(&[("message.timestamp.difference.max.ms", "10")]);
        assert_eq!(diff.timestamp_window(), (10, 10));
        assert!(check(&b, &diff, now).is_err());
        // Hostile timestamps do not overflow.
        assert!(check(
            &batch(0, &[(None, i64::MIN + 1), (None, i64::MIN + 2)]),
            &s,
            now
        )
        .is_err());
        assert!(check(
            &batch(0, &[(None, i64::MAX - 1), (None, i64::MAX)]),
            &s,
            now
        )
        .is_err());
    }

    #[test]
    fn a_mixed_batch_reports_invalid_timestamp_with_every_bad_record() {
        let s = settings(&[
            ("cleanup.policy", "compact"),
            ("message.timestamp.before.max.ms", "10"),
        ]);
        let b = batch(0, &[(None, 100), (Some(b"k"), 0)]);
        let r = check(&b, &s, 100).unwrap_err();
        assert_eq!(r.code, ec::INVALID_TIMESTAMP);
        assert_eq!(r.record_errors.len(), 2);
    }

    #[test]
    fn default_topics_never_walk_records() {
        let s = settings(&[]);
        let rules = RecordRules::new(&s, 0);
        let b = batch(0, &[(None, 0)]);
        let h = validate_record_set(&b, usize::MAX).unwrap()[0];
        assert!(!rules.must_walk(&h));
    }

    #[test]
    fn recompression_follows_compression_type() {
        let b = batch(1, &[(Some(b"a"), 5), (Some(b"b"), 6)]);
        let headers = validate_record_set(&b, usize::MAX).unwrap();
        assert_eq!(
            recompress(&b, &headers, &settings(&[]), PartitionName("t", 0)),
            Ok(None)
        );
        assert_eq!(
            recompress(
                &b,
                &headers,
                &settings(&[("compression.type", "gzip")]),
                PartitionName("t", 0)
            ),
            Ok(None)
        );
        let z = recompress(
            &b,
            &headers,
            &settings(&[("compression.type", "zstd")]),
            PartitionName("t", 0),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            validate_record_set(&z, usize::MAX).unwrap()[0].compression(),
            4
        );
        let u = recompress(
            &b,
            &headers,
            &settings(&[("compression.type", "uncompressed")]),
            PartitionName("t", 0),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            validate_record_set(&u, usize::MAX).unwrap()[0].compression(),
            0
        );
        let small = settings(&[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "70"),
        ]);
        assert_eq!(
            recompress(&b, &headers, &small, PartitionName("t", 0))
                .unwrap_err()
                .code,
            ec::MESSAGE_TOO_LARGE
        );
    }
}
