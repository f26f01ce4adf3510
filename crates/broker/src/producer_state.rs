//! Idempotent and transactional producers: per partition, the sequence numbers of each
//! producer's last five batches, so a retried batch is answered with the offset it was first
//! written at instead of being written twice, and each producer's open transaction (the
//! offset of its first batch), from which the last stable offset follows (Kafka's
//! ProducerStateManager).
//!
//! The state is a function of the log: every batch header carries its producer id, epoch
//! and first sequence. At start it is rebuilt from a snapshot (written at clean shutdown
//! and periodically) plus the batch headers after the snapshot's offset, so deduplication
//! survives restarts and crashes. No I/O here: the partition reads and writes the files.
//!
//! Rules (as Kafka): a batch from an older epoch is INVALID_PRODUCER_EPOCH; a new epoch
//! must start at sequence 0; within an epoch a batch equal to one of the last five is a
//! duplicate, the next batch must start right after the last one (else
//! OUT_OF_ORDER_SEQUENCE_NUMBER); a producer with no state here must start at 0 (else
//! UNKNOWN_PRODUCER_ID, which makes the client bump its epoch, KIP-360).
//!
//! Transactions: a producer's first transactional batch opens its transaction here; the
//! coordinator's commit or abort marker closes it. The last stable offset (LSO) is the first
//! offset of the oldest transaction whose marker is not yet durable (or the high watermark):
//! read_committed consumers never read past it, so they never see a transaction's records
//! before its outcome is known and on disk.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::error_codes as ec;

/// Batches remembered per producer (librdkafka and Java cap in-flight requests at 5).
pub const RETAINED_BATCHES: usize = 5;

const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"WEIRPID1";
/// v2 adds each producer's open transaction (first offset, -1 for none).
const SNAPSHOT_MAGIC: &[u8; 8] = b"WEIRPID2";

/// One remembered batch of a producer: its sequence range and where it landed in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// The batch header's base sequence.
    pub first_seq: i32,
    /// Sequence of its last record (`first_seq + records - 1`, wrapping past i32::MAX).
    pub last_seq: i32,
    /// Offset of its first record in the log.
    pub base_offset: i64,
    /// Offset of its last record in the log.
    pub last_offset: i64,
}

/// What this partition knows of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The newest producer epoch seen; batches of older epochs are fenced.
    pub epoch: i16,
    /// Its last [`RETAINED_BATCHES`] batches of `epoch`, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// When it was last seen (wall clock, ms); idle producers expire by it.
    pub last_timestamp: i64,
    /// First offset of its open transaction in this partition.
    pub txn_first_offset: Option<i64>,
}

/// A producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    /// The producer id.
    pub producer_id: i64,
    /// Its current producer epoch here.
    pub epoch: i16,
    /// Sequence of its last record here; -1 if no batch of this epoch is remembered.
    pub last_sequence: i32,
    /// When it was last seen (wall clock, ms).
    pub last_timestamp: i64,
    /// First offset of its open transaction here (DescribeProducers'
    /// `current_txn_start_offset`).
    pub txn_first_offset: Option<i64>,
}

/// A transaction aborted in this partition: consumers reading read_committed drop the
/// producer's records from `first_offset` up to the marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose records are aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The LSO when the abort was written (Kafka keeps it in the index; informational).
    pub last_stable_offset: i64,
}

/// An idempotent batch as its header describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The batch header's producer id.
    pub producer_id: i64,
    /// The batch header's producer epoch.
    pub epoch: i16,
    /// The batch header's base sequence.
    pub first_seq: i32,
    /// Sequence of the batch's last record (base sequence + last offset delta, wrapping).
    pub last_seq: i32,
    /// When the batch was appended (wall clock, ms). Not the batch's own timestamps, which
    /// the client chooses: a producer writing old CreateTimes must not lose deduplication.
    pub seen_ms: i64,
    /// Part of a transaction.
    pub transactional: bool,
}

/// What [`ProducerStateMap::check`] says of a batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// Already in the log: answer with its offsets.
    Duplicate(BatchMeta),
    /// Refuse with this error code.
    Reject(i16, &'static str),
}

/// The producer state of one partition (Kafka's ProducerStateManager, without the files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
    /// Transactions not known to be durably finished: first offset -> (producer id, offset
    /// of its end marker once written). Derived from `producers` plus recent markers.
    unstable: BTreeMap<i64, (i64, Option<i64>)>,
}

fn next_seq(seq: i32) -> i32 {
    increment_sequence(seq, 1)
}

/// `seq + delta` in Kafka's sequence space, which wraps from i32::MAX to 0.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

impl ProducerStateMap {
    /// Producers with state here.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// No producer has state here.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The state of `producer_id`, if it has any here.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The module's sequence rules applied to `b`, without changing anything: the caller
    /// appends on Append, then calls `record`.
    pub fn check(&self, b: &ProducerBatch) -> SequenceCheck {
        let Some(entry) = self.producers.get(&b.producer_id) else {
            return if b.first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(
                    ec::UNKNOWN_PRODUCER_ID,
                    "no state for this producer and the sequence does not start at 0",
                )
            };
        };
        if b.epoch < entry.epoch {
            return SequenceCheck::Reject(
                ec::INVALID_PRODUCER_EPOCH,
                "the producer epoch is older than the current one",
            );
        }
        if b.epoch > entry.epoch {
            return if b.first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(
                    ec::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    "a new producer epoch must start at sequence 0",
                )
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        let expected = entry.batches.back().map_or(0, |m| next_seq(m.last_seq));
        if b.first_seq == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::Reject(
                ec::OUT_OF_ORDER_SEQUENCE_NUMBER,
                "the batch does not follow the producer's last sequence",
            )
        }
    }

    /// Record a batch written at `base_offset..=last_offset` (after `check` said Append, or
    /// while replaying the log, where whatever is in the log is taken as it is).
    pub fn record(&mut self, b: &ProducerBatch, base_offset: i64, last_offset: i64) {
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: b.epoch,
                batches: VecDeque::new(),
                last_timestamp: b.seen_ms,
                txn_first_offset: None,
            });
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        if b.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
            self.unstable.insert(base_offset, (b.producer_id, None));
        }
        entry.batches.push_back(BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset,
            last_offset,
        });
        while entry.batches.len() > RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(b.seen_ms);
    }

    /// A commit or abort marker of `producer_id` at `marker_offset`, written by the
    /// coordinator with `epoch` (a bumped epoch fences the producer's older one). Closes the
    /// producer's open transaction; for an abort, returns what the aborted-transaction index
    /// must hold. A marker with no open transaction (a retried completion) changes nothing
    /// else, as in Kafka.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker_offset: i64,
        commit: bool,
        seen_ms: i64,
        last_stable_offset: i64,
    ) -> Option<AbortedTxn> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: seen_ms,
                txn_first_offset: None,
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(seen_ms);
        let first_offset = entry.txn_first_offset.take()?;
        if let Some(u) = self.unstable.get_mut(&first_offset) {
            u.1 = Some(marker_offset);
        }
        (!commit).then_some(AbortedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
            last_stable_offset,
        })
    }

    /// The first offset of the oldest transaction whose end marker is not below
    /// `durable_end` (so is open, or finished but not yet on disk), if any.
    pub fn first_unstable_offset(&mut self, durable_end: i64) -> Option<i64> {
        while let Some((&first, &(_, marker))) = self.unstable.iter().next() {
            match marker {
                Some(m) if m < durable_end => {
                    self.unstable.remove(&first);
                }
                _ => return Some(first),
            }
        }
        None
    }

    /// Every producer known here, by producer id.
    pub fn describe(&self) -> Vec<ProducerDescription> {
        let mut v: Vec<_> = self
            .producers
            .iter()
            .map(|(&id, e)| ProducerDescription {
                producer_id: id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                txn_first_offset: e.txn_first_offset,
            })
            .collect();
        v.sort_by_key(|d| d.producer_id);
        v
    }

    /// Producers with an open transaction here: (producer id, epoch, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i16, i64)> {
        let mut v: Vec<_> = self
            .producers
            .iter()
            .filter_map(|(&id, e)| e.txn_first_offset.map(|f| (id, e.epoch, f)))
            .collect();
        v.sort_by_key(|&(_, _, f)| f);
        v
    }

    /// Forget producers idle for `expiration_ms` (`producer.id.expiration.ms`), except those
    /// with an open transaction (the coordinator ends it first).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Snapshot: magic, u64 offset (state covers the log below it), u32 count, entries
    /// (i64 pid, i16 epoch, i64 last_timestamp, i64 open transaction's first offset or -1,
    /// u8 n, n x (i32, i32, i64, i64)), CRC-32C of everything before it. (v1 lacks the
    /// transaction field.)
    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.producers.len() * 64);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            b.extend_from_slice(&id.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.extend_from_slice(&e.last_timestamp.to_be_bytes());
            b.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            b.push(e.batches.len() as u8);
            for m in &e.batches {
                b.extend_from_slice(&m.first_seq.to_be_bytes());
                b.extend_from_slice(&m.last_seq.to_be_bytes());
                b.extend_from_slice(&m.base_offset.to_be_bytes());
                b.extend_from_slice(&m.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// The snapshot's offset and state, or None if it is damaged in any way.
    pub fn decode_snapshot(data: &[u8]) -> Option<(i64, ProducerStateMap)> {
        let v2 = data.starts_with(SNAPSHOT_MAGIC);
        if data.len() < SNAPSHOT_MAGIC.len() + 16 || !(v2 || data.starts_with(SNAPSHOT_MAGIC_V1)) {
            return None;
        }
        let (body, crc) = data.split_at(data.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(&body[SNAPSHOT_MAGIC.len()..]);
        let offset = r.i64()?;
        let count = r.u32()? as usize;
        // Each entry takes at least 19 bytes: a larger count is a lie.
        if count > r.0.len() / 19 + 1 {
            return None;
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let txn_first_offset = if v2 {
                Some(r.i64()?).filter(|&o| o >= 0)
            } else {
                None
            };
            let n = r.u8()? as usize;
            if n > RETAINED_BATCHES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                    txn_first_offset,
                },
            );
        }
        if !r.0.is_empty() {
            return None;
        }
        let unstable = producers
            .iter()
            .filter_map(|(&id, e)| e.txn_first_offset.map(|f| (f, (id, None))))
            .collect();
        Some((
            offset,
            ProducerStateMap {
                producers,
                unstable,
            },
        ))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.0.len() < N {
            return None;
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, first: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: first + count - 1,
            seen_ms: 1_000,
            transactional: false,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut m = ProducerStateMap::default();
        let mut offset = 0;
        for i in 0..8 {
            let b = batch(7, 0, i * 10, 10);
            assert_eq!(m.check(&b), SequenceCheck::Append);
            m.record(&b, offset, offset + 9);
            offset += 10;
        }
        // The last five are remembered with their offsets.
        assert_eq!(
            m.check(&batch(7, 0, 70, 10)),
            SequenceCheck::Duplicate(BatchMeta {
                first_seq: 70,
                last_seq: 79,
                base_offset: 70,
                last_offset: 79
            })
        );
        assert!(matches!(
            m.check(&batch(7, 0, 30, 10)),
            SequenceCheck::Duplicate(_)
        ));
        // Older than five batches ago: not a duplicate we can prove, and out of order.
        assert_eq!(
            m.check(&batch(7, 0, 20, 10)).clone(),
            SequenceCheck::Reject(
                ec::OUT_OF_ORDER_SEQUENCE_NUMBER,
                "the batch does not follow the producer's last sequence"
            )
        );
        // A gap.
        assert!(matches!(
            m.check(&batch(7, 0, 81, 1)),
            SequenceCheck::Reject(ec::OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert_eq!(m.check(&batch(7, 0, 80, 1)), SequenceCheck::Append);
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut m = ProducerStateMap::default();
        m.record(&batch(1, 3, 0, 5), 0, 4);
        assert!(matches!(
            m.check(&batch(1, 2, 5, 1)),
            SequenceCheck::Reject(ec::INVALID_PRODUCER_EPOCH, _)
        ));
        assert!(matches!(
            m.check(&batch(1, 4, 5, 1)),
            SequenceCheck::Reject(ec::OUT_OF_ORDER_SEQUENCE_NUMBER, _)
        ));
        assert_eq!(m.check(&batch(1, 4, 0, 1)), SequenceCheck::Append);
        m.record(&batch(1, 4, 0, 1), 5, 5);
        assert_eq!(
            m.get(1).unwrap().batches.len(),
            1,
            "a new epoch starts over"
        );
    }

    #[test]
    fn unknown_producers_must_start_at_zero() {
        let m = ProducerStateMap::default();
        assert_eq!(m.check(&batch(9, 0, 0, 3)), SequenceCheck::Append);
        assert!(matches!(
            m.check(&batch(9, 0, 3, 3)),
            SequenceCheck::Reject(ec::UNKNOWN_PRODUCER_ID, _)
        ));
    }

    #[test]
    fn sequence_arithmetic_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        let mut m = ProducerStateMap::default();
        let b = ProducerBatch {
            producer_id: 1,
            epoch: 0,
            first_seq: i32::MAX - 1,
            last_seq: i32::MAX,
            seen_ms: 0,
            transactional: false,
        };
        m.record(&b, 0, 1);
        assert_eq!(m.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn idle_producers_expire() {
        let mut m = ProducerStateMap::default();
        m.record(&batch(1, 0, 0, 1), 0, 0);
        let mut late = batch(2, 0, 0, 1);
        late.seen_ms = 50_000;
        m.record(&late, 1, 1);
        assert_eq!(m.expire(60_000, 20_000), 1);
        assert!(m.get(1).is_none() && m.get(2).is_some());
    }

    #[test]
    fn transactions_hold_the_stable_offset_until_their_marker_is_durable() {
        let mut m = ProducerStateMap::default();
        let mut t = batch(1, 0, 0, 5);
        t.transactional = true;
        m.record(&t, 10, 14);
        let mut u = batch(2, 0, 0, 1);
        u.transactional = true;
        m.record(&u, 15, 15);
        m.record(&batch(3, 0, 0, 1), 16, 16); // not transactional
        assert_eq!(m.first_unstable_offset(17), Some(10));
        assert_eq!(m.open_transactions(), vec![(1, 0, 10), (2, 0, 15)]);
        // Producer 1 aborts at 17; until 17 is durable its transaction still holds the LSO.
        let aborted = m.complete_txn(1, 0, 17, false, 2_000, 10);
        assert_eq!(
            aborted,
            Some(AbortedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 17,
                last_stable_offset: 10
            })
        );
        assert_eq!(m.first_unstable_offset(17), Some(10));
        assert_eq!(m.first_unstable_offset(18), Some(15));
        // Producer 2 commits; a retried marker changes nothing.
        assert_eq!(m.complete_txn(2, 0, 18, true, 2_000, 15), None);
        assert_eq!(m.complete_txn(2, 0, 19, true, 2_000, 15), None);
        assert_eq!(m.first_unstable_offset(19), None);
        // A marker with a bumped epoch fences the old one.
        m.complete_txn(3, 1, 20, false, 2_000, 20);
        assert!(matches!(
            m.check(&batch(3, 0, 1, 1)),
            SequenceCheck::Reject(ec::INVALID_PRODUCER_EPOCH, _)
        ));
        assert_eq!(m.check(&batch(3, 1, 0, 1)), SequenceCheck::Append);
    }

    #[test]
    fn open_transactions_survive_snapshots_and_never_expire() {
        let mut m = ProducerStateMap::default();
        let mut t = batch(5, 2, 0, 3);
        t.transactional = true;
        m.record(&t, 40, 42);
        let (off, back) = ProducerStateMap::decode_snapshot(&m.encode_snapshot(43)).unwrap();
        assert_eq!(off, 43);
        assert_eq!(back, m);
        let mut back = back;
        assert_eq!(back.first_unstable_offset(43), Some(40));
        assert_eq!(back.expire(i64::MAX, 1), 0);
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut m = ProducerStateMap::default();
        for pid in 0..20 {
            for i in 0..7 {
                m.record(
                    &batch(pid, (pid % 3) as i16, i * 2, 2),
                    pid * 100 + i as i64 * 2,
                    pid * 100 + i as i64 * 2 + 1,
                );
            }
        }
        let snap = m.encode_snapshot(4242);
        assert_eq!(
            ProducerStateMap::decode_snapshot(&snap),
            Some((4242, m.clone()))
        );
        for i in 0..snap.len() {
            let mut bad = snap.clone();
            bad[i] ^= 0x40;
            assert_eq!(ProducerStateMap::decode_snapshot(&bad), None, "byte {i}");
        }
        for len in 0..snap.len() {
            assert_eq!(ProducerStateMap::decode_snapshot(&snap[..len]), None);
        }
    }
}
