//! Log compaction (`cleanup.policy=compact`); contract in docs/storage.md, "Compaction".
//!
//! A clean runs in three phases so that the partition's mutex is held only briefly:
//! 1. [`Log::plan_clean`] (`&self`, under the lock, cheap): picks the cleanable closed
//!    segments and clones their file handles into a [`CleanPlan`].
//! 2. [`CleanPlan::execute`] (no lock): builds the key -> latest offset map from the dirty
//!    section, rewrites the segments into `<base>.log.cleaned` files and fsyncs them.
//! 3. [`Log::install_clean`] (`&mut self`, under the lock, a few renames and fsyncs):
//!    checks that the log still holds the very segments the plan read, commits the swap
//!    (`cleaner-swap` record) and renames the cleaned files into place.
//!
//! What is kept: for each key the record with the highest offset; tombstones until their
//! batch's delete horizon (KIP-534: set to now + delete.retention.ms the first time the
//! batch is cleaned); transaction markers while any batch of their transaction is left, and
//! then until their own delete horizon (as in Kafka); the last data batch of each producer
//! (empty if all its records went) so idempotent sequence state survives; batches that
//! cannot be decoded, verbatim. What goes: superseded records, expired tombstones, keyless
//! records, records of aborted transactions, markers of transactions with nothing left. Offsets never change: a batch keeps its base and last
//! offset, and the offsets of batches dropped whole are covered either by extending the
//! previous batch's last offset (when it has no producer id) or by an empty "filler" batch,
//! so offsets stay dense at batch granularity and every reader and check of the log works
//! unchanged.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::batch::{batch_crc, check_header, BatchHeader, BATCH_HEADER_LEN, CRC_OFFSET};
use crate::checkpoint::{self, CleanSwap, CleanerCheckpoint};
use crate::fs::{Fs, StorageFile};
use crate::log::{io_err, DelayedRemoval, Log, RetiredFiles, StorageError};
use crate::record_codec::{
    encode_batch, parse_records, put_record_tail, records_section, Record, DELETE_HORIZON_FLAG,
};
use crate::segment::{
    file_name, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Sequential reads of a segment by the cleaner are done in chunks of this size.
const READ_CHUNK_BYTES: usize = 1024 * 1024;
/// Cleaned output is written in chunks of this size.
const WRITE_CHUNK_BYTES: usize = 1024 * 1024;
/// The offset map is never filled past this fraction of its slots (Kafka's
/// `log.cleaner.io.buffer.load.factor`), so probes stay short.
const MAP_LOAD_FACTOR: f64 = 0.9;
/// A cleaned segment holds at most this many bytes of input segments, well below the u32
/// positions of the index even if re-encoding grows a batch a little.
const GROUP_BYTES_MAX: u64 = u32::MAX as u64 / 2;

/// A transaction aborted in this partition: records of `producer_id` in transactional
/// batches whose base offset lies in `[first_offset, last_offset]` (the abort marker) are
/// aborted data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker that ended it.
    pub last_offset: i64,
}

/// What one clean may do (Kafka's setting names in the comments).
#[derive(Debug, Clone)]
pub struct CleanRequest {
    /// Wall clock now: delete horizons and the compaction lag are measured against it.
    pub now_ms: i64,
    /// The last stable offset: only segments entirely below it are cleaned, so open
    /// transactions (and anything not yet durable) are never touched.
    pub max_offset: i64,
    /// `min.compaction.lag.ms`: a segment holding a batch newer than now minus this (by its
    /// max timestamp) is not cleaned, nor is anything after it.
    pub min_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone survives after its batch is first cleaned.
    pub delete_retention_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: bytes for the key -> offset map (24 bytes per key).
    /// If the dirty section has more records than fit, this pass cleans only as far as they
    /// fit and the next pass goes on from there.
    pub dedupe_buffer_bytes: usize,
    /// Every aborted transaction whose abort marker is at or past the log start offset (the
    /// whole aborted-transaction index is fine): their records are removed.
    pub aborted_txns: Vec<AbortedTxn>,
}

/// How dirty the log is, for the broker's `min.cleanable.dirty.ratio` and
/// `max.compaction.lag.ms` decisions (see [`Log::cleaner_status`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerStatus {
    /// Offsets below this have been cleaned (the cleaner checkpoint, at least the log start).
    pub first_dirty_offset: i64,
    /// Nothing at or past this offset can be cleaned now (the active segment, the bound
    /// passed, the compaction lag); a segment boundary.
    pub first_uncleanable_offset: i64,
    /// Bytes of the closed segments below `first_uncleanable_offset` that are all clean.
    pub clean_bytes: u64,
    /// Bytes of the closed segments below `first_uncleanable_offset` holding dirty offsets.
    pub dirty_bytes: u64,
    /// `dirty_bytes / (clean_bytes + dirty_bytes)`, 0 when both are 0.
    pub dirty_ratio: f64,
    /// Timestamp of the first dirty batch in a closed segment (its first record, or its
    /// max timestamp under LogAppendTime): the age of the oldest dirty record.
    pub first_dirty_timestamp_ms: Option<i64>,
    /// Earliest delete horizon of a tombstone in the clean section: from then on a clean
    /// pass removes it even without dirty data ([`Log::plan_clean`] plans one).
    pub delete_horizon_ms: Option<i64>,
}

/// What a clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// The dirty section started here.
    pub first_dirty_offset: i64,
    /// The new cleaner checkpoint: offsets below it are clean now.
    pub clean_offset: i64,
    /// Segments read and rewritten.
    pub segments_read: usize,
    /// Cleaned segments that replaced them (fewer: small neighbours are merged).
    pub segments_written: usize,
    /// Bytes of the segments rewritten.
    pub bytes_read: u64,
    /// Bytes of the cleaned segments that replaced them.
    pub bytes_written: u64,
    /// Bytes of dirty batches read to build the offset map.
    pub dirty_bytes_mapped: u64,
    /// Records in the rewritten segments.
    pub records_read: u64,
    /// Records still there after the clean.
    pub records_kept: u64,
    /// Tombstones dropped because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Records of aborted transactions dropped.
    pub aborted_records_removed: u64,
    /// Records without a key dropped (compaction has nothing to keep them by).
    pub keyless_records_removed: u64,
    /// Commit and abort markers removed: their transaction had no batch left and their
    /// delete horizon had passed. The broker must make its producer-state snapshot cover
    /// them before installing the clean (see `Partition::clean`).
    pub markers_removed: u64,
    /// Batches kept verbatim because their records could not be decoded.
    pub unreadable_batches: u64,
    /// Distinct keys in the offset map.
    pub map_keys: usize,
    /// Bytes the offset map took (bounded by `dedupe_buffer_bytes`).
    pub map_bytes: usize,
}

/// Clears the log's "clean in progress" flag when the plan (or its output) is dropped.
#[derive(Debug)]
struct CleanGuard(Arc<AtomicBool>);

impl Drop for CleanGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[derive(Debug)]
struct PlannedSegment {
    base_offset: i64,
    id: u64,
    file: Arc<dyn StorageFile>,
    size_bytes: u64,
    next_offset: i64,
}

/// A clean to run without the log's lock ([`CleanPlan::execute`]), then to install with
/// [`Log::install_clean`]. Only one plan per log exists at a time.
#[derive(Debug)]
pub struct CleanPlan {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// Closed segments from the first one to the last cleanable one, in order.
    segments: Vec<PlannedSegment>,
    first_dirty_offset: i64,
    request: CleanRequest,
    segment_bytes: u64,
    index_interval_bytes: u64,
    guard: CleanGuard,
}

struct CleanedGroup {
    /// (base offset, id) of the segments replaced, in order; the first shares the base.
    replaced: Vec<(i64, u64)>,
    end_offset: i64,
    cleaned_path: PathBuf,
    segment: Segment,
}

/// The cleaned segments, written and fsync'd, waiting for [`Log::install_clean`]. Dropped
/// without install, its `.cleaned` files stay until the next clean or open removes them.
pub struct CleanOutput {
    groups: Vec<CleanedGroup>,
    checkpoint: CleanerCheckpoint,
    stats: CleanStats,
    removed_markers: Vec<i64>,
    _guard: CleanGuard,
}

impl std::fmt::Debug for CleanOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanOutput")
            .field("groups", &self.groups.len())
            .field("checkpoint", &self.checkpoint)
            .field("stats", &self.stats)
            .finish()
    }
}

impl CleanOutput {
    /// Offsets of the commit and abort markers this clean removes. The broker must drop
    /// their aborted-transaction index entries before installing it: a reader told of an
    /// abort whose marker is gone would treat the producer's later transactions as aborted.
    pub fn removed_markers(&self) -> &[i64] {
        &self.removed_markers
    }

    /// What the clean did (final once installed).
    pub fn stats(&self) -> &CleanStats {
        &self.stats
    }
}

/// Key hash -> latest offset, open addressing with linear probing, fixed capacity. Keys are
/// stored as 128-bit hashes (two SipHash-1-3 with random keys, so a producer cannot aim
/// for collisions): two keys colliding would lose the older one's latest value, with
/// probability about n^2 / 2^129.
///
/// `pub` (hidden) only for the criterion benches in `benches/offset_map.rs`; nothing outside
/// this module uses it.
#[doc(hidden)]
pub struct OffsetMap {
    slots: Vec<Slot>,
    len: usize,
    max_len: usize,
    hashers: [RandomState; 2],
}

/// `offset` -1 marks an empty slot.
#[derive(Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

impl OffsetMap {
    /// Room for up to `records` keys, within `budget_bytes`.
    pub fn new(budget_bytes: usize, records: u64) -> OffsetMap {
        let wanted = (records as f64 / MAP_LOAD_FACTOR).ceil() as u64 + 1;
        let slots = (budget_bytes / SLOT_BYTES).min(wanted as usize);
        let max_len = ((slots as f64 * MAP_LOAD_FACTOR) as usize).min(slots.saturating_sub(1));
        OffsetMap {
            slots: vec![
                Slot {
                    hash: [0; 2],
                    offset: -1
                };
                slots
            ],
            len: 0,
            max_len,
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        self.hashers.each_ref().map(|s| {
            let mut h = s.build_hasher();
            h.write(key);
            h.finish()
        })
    }

    fn home(&self, hash: [u64; 2]) -> usize {
        ((hash[0] as u128 * self.slots.len() as u128) >> 64) as usize
    }

    /// Room for `n` more keys.
    fn has_room(&self, n: usize) -> bool {
        self.len.saturating_add(n) <= self.max_len
    }

    /// Record `offset` for `key`, keeping the higher offset if the key is already there.
    /// The caller checks `has_room` first: the map never grows.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        debug_assert!(self.len < self.max_len, "map is full");
        let hash = self.hash(key);
        let mut i = self.home(hash);
        loop {
            let s = &mut self.slots[i];
            if s.offset < 0 {
                *s = Slot { hash, offset };
                self.len += 1;
                return;
            }
            if s.hash == hash {
                s.offset = s.offset.max(offset);
                return;
            }
            i = (i + 1) % self.slots.len();
        }
    }

    /// The latest offset recorded for `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(key);
        let mut i = self.home(hash);
        loop {
            let s = &self.slots[i];
            if s.offset < 0 {
                return None;
            }
            if s.hash == hash {
                return Some(s.offset);
            }
            i = (i + 1) % self.slots.len();
        }
    }

    fn bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }
}

/// Whole batches of a segment file in order, read in large chunks.
struct BatchReader<'a> {
    seg: &'a PlannedSegment,
    pos: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
}

impl<'a> BatchReader<'a> {
    fn new(seg: &'a PlannedSegment) -> Self {
        BatchReader {
            seg,
            pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    fn corrupt(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "segment {} at position {}: {what}",
                self.seg.base_offset, self.pos
            ),
        )
    }

    fn fill(&mut self, need: usize) -> io::Result<()> {
        let have_end = self.buf_pos + self.buf.len() as u64;
        if self.pos >= self.buf_pos && self.pos + need as u64 <= have_end {
            return Ok(());
        }
        let want = (need.max(READ_CHUNK_BYTES) as u64).min(self.seg.size_bytes - self.pos);
        self.buf.resize(want as usize, 0);
        self.seg.file.read_exact_at(&mut self.buf, self.pos)?;
        self.buf_pos = self.pos;
        Ok(())
    }

    fn next_batch(&mut self) -> io::Result<Option<(BatchHeader, &[u8])>> {
        let left = self.seg.size_bytes - self.pos;
        if left == 0 {
            return Ok(None);
        }
        if left < BATCH_HEADER_LEN as u64 {
            return Err(self.corrupt("torn batch header".into()));
        }
        self.fill(BATCH_HEADER_LEN)?;
        let at = (self.pos - self.buf_pos) as usize;
        let h = BatchHeader::parse(&self.buf[at..]).expect("a whole header is buffered");
        check_header(&h, left, self.pos).map_err(|e| self.corrupt(e.to_string()))?;
        if h.base_offset
            .checked_add(h.last_offset_delta as i64 + 1)
            .is_none()
        {
            return Err(self.corrupt("offsets past the largest offset".into()));
        }
        let len = h.total_len();
        self.fill(len)?;
        let at = (self.pos - self.buf_pos) as usize;
        self.pos += len as u64;
        Ok(Some((h, &self.buf[at..at + len])))
    }
}

/// Read the header at `pos` of a planned segment (one small pread).
fn read_header_at(seg: &PlannedSegment, pos: u64) -> io::Result<BatchHeader> {
    let mut buf = [0u8; BATCH_HEADER_LEN];
    let left = seg.size_bytes - pos;
    let corrupt = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("segment {} at position {pos}: {what}", seg.base_offset),
        )
    };
    if left < BATCH_HEADER_LEN as u64 {
        return Err(corrupt("torn batch header".into()));
    }
    seg.file.read_exact_at(&mut buf, pos)?;
    let h = BatchHeader::parse(&buf).expect("a whole header");
    check_header(&h, left, pos).map_err(|e| corrupt(e.to_string()))?;
    Ok(h)
}

fn has_delete_horizon(h: &BatchHeader) -> bool {
    h.attributes & DELETE_HORIZON_FLAG != 0
}

/// Aborted transactions by producer: sorted (first, last) ranges.
struct Aborted(HashMap<i64, Vec<(i64, i64)>>);

impl Aborted {
    fn new(txns: &[AbortedTxn]) -> Aborted {
        let mut m: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            m.entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        for v in m.values_mut() {
            v.sort_unstable();
        }
        Aborted(m)
    }

    /// A data batch of an aborted transaction.
    fn holds(&self, h: &BatchHeader) -> bool {
        if !h.is_transactional() || h.is_control() || h.producer_id < 0 {
            return false;
        }
        let Some(ranges) = self.0.get(&h.producer_id) else {
            return false;
        };
        let i = ranges.partition_point(|&(first, _)| first <= h.base_offset);
        ranges[..i].iter().any(|&(_, last)| h.base_offset <= last)
    }
}

/// Writes one cleaned segment: keeps offsets dense by extending the previous batch or by
/// filler batches over the offsets of batches dropped whole.
struct GroupWriter {
    segment: Segment,
    file: Arc<dyn StorageFile>,
    index_interval_bytes: u64,
    /// Bytes tracked in `segment` but not yet written.
    buf: Vec<u8>,
    written: u64,
    /// The last batch emitted, not yet tracked: its last offset may still grow.
    pending: Option<(BatchHeader, Vec<u8>)>,
    /// Offset after the last emitted batch.
    next_offset: i64,
    /// Leader epoch of the first batch dropped since the last emitted one.
    gap_epoch: Option<i32>,
}

impl GroupWriter {
    fn new(segment: Segment, file: Arc<dyn StorageFile>, index_interval_bytes: u64) -> Self {
        let next_offset = segment.base_offset;
        GroupWriter {
            segment,
            file,
            index_interval_bytes,
            buf: Vec::new(),
            written: 0,
            pending: None,
            next_offset,
            gap_epoch: None,
        }
    }

    fn dropped(&mut self, h: &BatchHeader) {
        self.gap_epoch.get_or_insert(h.partition_leader_epoch);
    }

    fn emit(&mut self, h: BatchHeader, bytes: Vec<u8>) -> io::Result<()> {
        debug_assert!(h.base_offset >= self.next_offset, "batches in offset order");
        if h.base_offset > self.next_offset {
            self.fill_gap(h.base_offset)?;
        }
        self.commit_pending()?;
        self.next_offset = h.last_offset() + 1;
        self.pending = Some((h, bytes));
        self.gap_epoch = None;
        Ok(())
    }

    /// Cover offsets `[next_offset, to)`, which no kept batch holds.
    fn fill_gap(&mut self, to: i64) -> io::Result<()> {
        if let Some((h, bytes)) = self.pending.as_mut() {
            let delta = to - 1 - h.base_offset;
            // A batch without producer id carries no sequence numbers, so its last offset
            // may grow (Kafka's cleaner does the same for the records it drops from a batch).
            if h.producer_id < 0 && !h.is_control() && delta <= i32::MAX as i64 {
                h.last_offset_delta = delta as i32;
                bytes[23..27].copy_from_slice(&h.last_offset_delta.to_be_bytes());
                let crc = batch_crc(bytes);
                h.crc = crc;
                bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
                self.next_offset = to;
                return Ok(());
            }
        }
        self.commit_pending()?;
        let epoch = self.gap_epoch.unwrap_or(-1);
        while self.next_offset < to {
            let n = (to - self.next_offset).min(i32::MAX as i64 + 1);
            let h = filler_header(self.next_offset, (n - 1) as i32, epoch);
            let bytes = encode_batch(&h, 0, &[])?;
            self.track(&h, bytes)?;
            self.next_offset += n;
        }
        Ok(())
    }

    fn commit_pending(&mut self) -> io::Result<()> {
        if let Some((h, bytes)) = self.pending.take() {
            self.track(&h, bytes)?;
        }
        Ok(())
    }

    fn track(&mut self, h: &BatchHeader, bytes: Vec<u8>) -> io::Result<()> {
        let pos = self.segment.size_bytes;
        let mut h = *h;
        h.batch_length = (bytes.len() - 12) as i32;
        self.segment.track_batch(&h, pos, self.index_interval_bytes);
        self.buf.extend_from_slice(&bytes);
        if self.buf.len() >= WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.written)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Cover the offsets up to `end_offset`, write everything and fsync.
    fn finish(mut self, end_offset: i64) -> io::Result<Segment> {
        if self.next_offset < end_offset {
            self.fill_gap(end_offset)?;
        }
        self.commit_pending()?;
        self.flush()?;
        debug_assert_eq!(self.written, self.segment.size_bytes);
        debug_assert_eq!(self.segment.next_offset, end_offset);
        self.file.sync_data()?;
        Ok(self.segment)
    }
}

/// An empty batch covering `last_offset_delta + 1` offsets whose batches were all removed.
fn filler_header(base_offset: i64, last_offset_delta: i32, epoch: i32) -> BatchHeader {
    BatchHeader {
        base_offset,
        batch_length: 0,
        partition_leader_epoch: epoch,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta,
        base_timestamp: -1,
        max_timestamp: -1,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: 0,
    }
}

/// Kafka's empty batch header for a producer's last batch whose records all went: no
/// compression, both timestamps the batch's max timestamp, sequence fields kept.
fn empty_producer_batch(h: &BatchHeader) -> io::Result<(BatchHeader, Vec<u8>)> {
    let mut e = *h;
    e.attributes &= !(0x7 | DELETE_HORIZON_FLAG);
    e.base_timestamp = h.max_timestamp;
    e.record_count = 0;
    let bytes = encode_batch(&e, 0, &[])?;
    Ok((e, bytes))
}

impl CleanPlan {
    /// The expensive part, without the log's lock: build the offset map from the dirty
    /// section, rewrite the segments into `.cleaned` files, fsync them and the directory.
    /// Memory: the offset map (at most `dedupe_buffer_bytes`), a 1 MiB read buffer and a
    /// 1 MiB write buffer, one batch decoded at a time, and a small map per producer id.
    pub fn execute(self) -> Result<CleanOutput, StorageError> {
        let ctx = format!("cleaning {}", self.dir.display());
        let (fs, dir) = (Arc::clone(&self.fs), self.dir.clone());
        let bases: Vec<i64> = self.segments.iter().map(|s| s.base_offset).collect();
        self.run().map_err(|e| {
            // Best effort: whatever is left is removed by the next clean or open.
            for base in bases {
                let _ = remove_if_exists(&*fs, &dir.join(file_name(base, CLEANED_SUFFIX)));
            }
            io_err(ctx)(e)
        })
    }

    fn run(self) -> io::Result<CleanOutput> {
        let req = &self.request;
        let first_dirty = self.first_dirty_offset;
        let mut stats = CleanStats {
            first_dirty_offset: first_dirty,
            ..CleanStats::default()
        };

        // Pass 0, batch headers only: records in the dirty section (sizing the map) and
        // the last batch of each producer (kept, if only as an empty header).
        let mut dirty_records = 0u64;
        let mut producer_last: HashMap<i64, i64> = HashMap::new();
        for seg in &self.segments {
            let mut pos = 0;
            while pos < seg.size_bytes {
                let h = read_header_at(seg, pos)?;
                if h.last_offset() >= first_dirty {
                    dirty_records += h.record_count.max(0) as u64;
                }
                // Data batches only: a marker never carries sequence numbers.
                if h.producer_id >= 0 && !h.is_control() {
                    producer_last.insert(h.producer_id, h.base_offset);
                }
                pos += h.total_len() as u64;
            }
        }

        // Pass 1: the offset map, batch by batch, as far as it has room.
        let aborted = Aborted::new(&req.aborted_txns);
        let mut map = OffsetMap::new(req.dedupe_buffer_bytes, dirty_records);
        let mut map_end = first_dirty - 1;
        'segments: for seg in self.segments.iter().filter(|s| s.next_offset > first_dirty) {
            let mut reader = BatchReader::new(seg);
            while let Some((h, bytes)) = reader.next_batch()? {
                if h.last_offset() < first_dirty {
                    continue;
                }
                let mappable = !h.is_control() && !aborted.holds(&h) && h.record_count > 0;
                if mappable {
                    if !map.has_room(h.record_count as usize) {
                        if map_end < first_dirty {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidInput,
                                format!(
                                    "the cleaner's dedupe buffer ({} bytes, {} keys) cannot \
                                     hold the {} records of the batch at offset {}",
                                    req.dedupe_buffer_bytes,
                                    map.max_len,
                                    h.record_count,
                                    h.base_offset
                                ),
                            ));
                        }
                        break 'segments;
                    }
                    stats.dirty_bytes_mapped += bytes.len() as u64;
                    // An unreadable batch is kept verbatim by pass 2: nothing to map.
                    if let Ok(data) = records_section(bytes) {
                        if let Ok(records) = parse_records(&h, &data) {
                            for r in records {
                                if let Some(key) = r.key {
                                    map.put(key, r.offset);
                                }
                            }
                        }
                    }
                }
                map_end = h.last_offset();
            }
        }
        let clean_offset = map_end + 1;
        stats.clean_offset = clean_offset;
        stats.map_keys = map.len;
        stats.map_bytes = map.bytes();

        // Pass 2: rewrite every segment holding offsets below the new clean offset, in
        // groups that fit one segment.
        let rewrite: Vec<&PlannedSegment> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < clean_offset)
            .collect();
        let mut groups = Vec::new();
        let group_max = self.segment_bytes.clamp(1, GROUP_BYTES_MAX);
        let mut i = 0;
        let horizon = req.now_ms.saturating_add(req.delete_retention_ms.max(0));
        let mut min_horizon: Option<i64> = None;
        // Producers whose current transaction has a batch in the output: its marker stays.
        // The pass starts at the log start, so it sees every batch a marker closes.
        let mut txn_has_data: HashMap<i64, bool> = HashMap::new();
        let mut removed_markers = Vec::new();
        while i < rewrite.len() {
            let mut j = i + 1;
            let mut bytes = rewrite[i].size_bytes;
            while j < rewrite.len()
                && bytes + rewrite[j].size_bytes <= group_max
                && rewrite[j].next_offset - rewrite[i].base_offset <= u32::MAX as i64
            {
                bytes += rewrite[j].size_bytes;
                j += 1;
            }
            let group = &rewrite[i..j];
            let base = group[0].base_offset;
            let end_offset = group[j - i - 1].next_offset;
            let cleaned_path = self.dir.join(file_name(base, CLEANED_SUFFIX));
            let file = self.fs.create_truncate(&cleaned_path)?;
            let segment = Segment::for_cleaned(&self.dir, base, Arc::clone(&file));
            let mut w = GroupWriter::new(segment, file, self.index_interval_bytes);
            for seg in group {
                stats.segments_read += 1;
                stats.bytes_read += seg.size_bytes;
                let mut reader = BatchReader::new(seg);
                while let Some((h, bytes)) = reader.next_batch()? {
                    let cx = CleanCtx {
                        map: &map,
                        map_end,
                        aborted: &aborted,
                        producer_last: &producer_last,
                        now_ms: req.now_ms,
                        horizon,
                    };
                    if h.is_control() {
                        let has_data = h.producer_id >= 0
                            && txn_has_data.remove(&h.producer_id).unwrap_or(false);
                        if clean_marker(&h, bytes, has_data, &cx, &mut w, &mut min_horizon)? {
                            stats.markers_removed += 1;
                            removed_markers.push(h.base_offset);
                        }
                    } else {
                        let kept =
                            clean_batch(&h, bytes, &cx, &mut w, &mut stats, &mut min_horizon)?;
                        if kept && h.is_transactional() && h.producer_id >= 0 {
                            txn_has_data.insert(h.producer_id, true);
                        }
                    }
                }
            }
            let segment = w.finish(end_offset)?;
            stats.segments_written += 1;
            stats.bytes_written += segment.size_bytes;
            groups.push(CleanedGroup {
                replaced: group.iter().map(|s| (s.base_offset, s.id)).collect(),
                end_offset,
                cleaned_path,
                segment,
            });
            i = j;
        }
        if !groups.is_empty() {
            // The .cleaned names must be durable before the swap record can name them.
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(CleanOutput {
            groups,
            checkpoint: CleanerCheckpoint {
                clean_offset,
                delete_horizon_ms: min_horizon.unwrap_or(-1),
            },
            stats,
            removed_markers,
            _guard: self.guard,
        })
    }
}

struct CleanCtx<'a> {
    map: &'a OffsetMap,
    /// Records up to here are judged by the map; batches past it are copied verbatim.
    map_end: i64,
    aborted: &'a Aborted,
    producer_last: &'a HashMap<i64, i64>,
    now_ms: i64,
    /// The delete horizon given to a batch whose tombstones are cleaned for the first time.
    horizon: i64,
}

/// A commit or abort marker (Kafka's rule): it stays while any batch of its transaction is
/// left, because a reader (and the broker's own producer-state scan at start) needs it to
/// close the transaction. Once nothing is left it gets a delete horizon like a tombstone,
/// and goes in the first pass after that, so a consumer that read the transaction's data
/// just before it went still finds the marker. True if it went.
fn clean_marker(
    h: &BatchHeader,
    bytes: &[u8],
    txn_has_data: bool,
    cx: &CleanCtx<'_>,
    w: &mut GroupWriter,
    min_horizon: &mut Option<i64>,
) -> io::Result<bool> {
    let keep = |w: &mut GroupWriter| -> io::Result<bool> {
        w.emit(*h, bytes.to_vec())?;
        Ok(false)
    };
    if txn_has_data || h.producer_id < 0 || h.record_count != 1 || h.last_offset() > cx.map_end {
        return keep(w);
    }
    let Ok(data) = records_section(bytes) else {
        return keep(w);
    };
    let Ok(records) = parse_records(h, &data) else {
        return keep(w);
    };
    // Key: i16 version, i16 type; 0 is ABORT and 1 is COMMIT. Other control records stay.
    let is_marker = records
        .first()
        .and_then(|r| r.key)
        .is_some_and(|key| key.len() >= 4 && matches!(i16::from_be_bytes([key[2], key[3]]), 0 | 1));
    if !is_marker {
        return keep(w);
    }
    if has_delete_horizon(h) {
        if cx.now_ms >= h.base_timestamp {
            w.dropped(h);
            return Ok(true);
        }
        lower(min_horizon, h.base_timestamp);
        return keep(w);
    }
    let all: Vec<&Record<'_>> = records.iter().collect();
    let (nh, b) = rewrite_batch(h, &all, Some(cx.horizon))?;
    lower(min_horizon, cx.horizon);
    w.emit(nh, b)?;
    Ok(false)
}

/// Keep the earliest delete horizon seen.
fn lower(min_horizon: &mut Option<i64>, horizon: i64) {
    *min_horizon = Some(min_horizon.map_or(horizon, |m| m.min(horizon)));
}

/// The batch re-encoded with `kept` records and, if `horizon` is given, the delete-horizon
/// flag with the horizon as its base timestamp (KIP-534).
fn rewrite_batch(
    h: &BatchHeader,
    kept: &[&Record<'_>],
    horizon: Option<i64>,
) -> io::Result<(BatchHeader, Vec<u8>)> {
    let mut nh = *h;
    if let Some(hz) = horizon {
        nh.attributes |= DELETE_HORIZON_FLAG;
        nh.base_timestamp = hz;
    }
    if !h.is_log_append_time() {
        nh.max_timestamp = kept.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    }
    let mut out = Vec::new();
    for r in kept {
        // Record timestamps are relative to the base timestamp (the horizon once set).
        let created = h.base_timestamp.wrapping_add(r.timestamp_delta);
        let delta = created.wrapping_sub(nh.base_timestamp);
        put_record_tail(&mut out, r.attributes, delta, r.offset_delta, r.tail);
    }
    let b = encode_batch(&nh, kept.len() as i32, &out)?;
    let nh = BatchHeader::parse(&b).expect("encoded batch has a header");
    Ok((nh, b))
}

/// Cleans one data batch; true if anything of it (if only an empty header) was kept.
fn clean_batch(
    h: &BatchHeader,
    bytes: &[u8],
    cx: &CleanCtx<'_>,
    w: &mut GroupWriter,
    stats: &mut CleanStats,
    min_horizon: &mut Option<i64>,
) -> io::Result<bool> {
    let is_producer_last =
        h.producer_id >= 0 && cx.producer_last.get(&h.producer_id) == Some(&h.base_offset);
    let keep_empty_or_drop = |w: &mut GroupWriter| -> io::Result<bool> {
        if is_producer_last {
            let (e, b) = empty_producer_batch(h)?;
            w.emit(e, b)?;
            Ok(true)
        } else {
            w.dropped(h);
            Ok(false)
        }
    };
    let keep = |w: &mut GroupWriter| -> io::Result<bool> {
        w.emit(*h, bytes.to_vec())?;
        Ok(true)
    };
    // Batches past the map are next pass's work.
    if h.last_offset() > cx.map_end {
        return keep(w);
    }
    stats.records_read += h.record_count.max(0) as u64;
    if h.record_count <= 0 {
        return if is_producer_last {
            keep(w)
        } else {
            w.dropped(h);
            Ok(false)
        };
    }
    if cx.aborted.holds(h) {
        stats.aborted_records_removed += h.record_count as u64;
        return keep_empty_or_drop(w);
    }
    let data = records_section(bytes);
    let records = match &data {
        Ok(d) => parse_records(h, d),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    };
    let records = match records {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(offset = h.base_offset, error = %e,
                "cleaner keeps a batch whose records it cannot decode");
            stats.unreadable_batches += 1;
            stats.records_kept += h.record_count as u64;
            return keep(w);
        }
    };
    let horizon_passed = has_delete_horizon(h) && cx.now_ms >= h.base_timestamp;
    let mut kept = Vec::with_capacity(records.len());
    let mut tombstones_kept = 0usize;
    for r in &records {
        let Some(key) = r.key else {
            stats.keyless_records_removed += 1;
            continue;
        };
        if cx.map.get(key).is_some_and(|latest| latest > r.offset) {
            continue;
        }
        if r.value.is_none() {
            if horizon_passed {
                stats.tombstones_removed += 1;
                continue;
            }
            tombstones_kept += 1;
        }
        kept.push(r);
    }
    stats.records_kept += kept.len() as u64;
    let set_horizon = tombstones_kept > 0 && !has_delete_horizon(h);
    if tombstones_kept > 0 {
        let hz = if set_horizon {
            cx.horizon
        } else {
            h.base_timestamp
        };
        lower(min_horizon, hz);
    }
    if kept.is_empty() {
        return keep_empty_or_drop(w);
    }
    if kept.len() == records.len() && !set_horizon {
        return keep(w);
    }
    let (nh, b) = rewrite_batch(h, &kept, set_horizon.then_some(cx.horizon))?;
    w.emit(nh, b)?;
    Ok(true)
}

impl Log {
    /// First offset the cleaner has not cleaned (the cleaner checkpoint, at least the log
    /// start; the log start if the checkpoint is past the log end).
    fn first_dirty_offset(&self) -> i64 {
        let ck = self.cleaner_checkpoint.clean_offset;
        if ck > self.log_end_offset() {
            self.log_start_offset
        } else {
            ck.max(self.log_start_offset)
        }
    }

    /// End of the cleanable closed segments: a segment boundary at or below the active
    /// segment, `max_offset`, the recovery point, and the first segment holding a batch
    /// newer than `now_ms - min_compaction_lag_ms`.
    fn first_uncleanable_offset(&self, max_offset: i64, now_ms: i64, min_lag_ms: i64) -> i64 {
        let active = self.active().base_offset;
        let bound = max_offset.min(self.recovery_point).min(active);
        let mut end = *self.segments.keys().next().expect("a segment");
        for seg in self.segments.values() {
            if seg.base_offset == active
                || seg.next_offset > bound
                || (min_lag_ms > 0 && seg.max_timestamp > now_ms.saturating_sub(min_lag_ms))
            {
                break;
            }
            end = seg.next_offset;
        }
        end
    }

    /// How dirty the log is: dirty and clean bytes of the cleanable closed segments (the
    /// dirty ratio of `min.cleanable.dirty.ratio`), the age of the oldest dirty record
    /// (`max.compaction.lag.ms`) and when tombstones become removable. `max_offset` and
    /// `min_compaction_lag_ms` as in [`CleanRequest`]. Reads at most one batch header.
    pub fn cleaner_status(
        &self,
        now_ms: i64,
        max_offset: i64,
        min_compaction_lag_ms: i64,
    ) -> Result<CleanerStatus, StorageError> {
        let first_dirty = self.first_dirty_offset();
        let end = self.first_uncleanable_offset(max_offset, now_ms, min_compaction_lag_ms);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        for seg in self.segments.values().take_while(|s| s.next_offset <= end) {
            if seg.next_offset <= first_dirty {
                clean_bytes += seg.size_bytes;
            } else {
                dirty_bytes += seg.size_bytes;
            }
        }
        let total = clean_bytes + dirty_bytes;
        let active = self.active().base_offset;
        let first_dirty_timestamp_ms = if first_dirty < active {
            self.locate(first_dirty)?
                .map(|(_, _, h)| {
                    if h.is_log_append_time() || has_delete_horizon(&h) {
                        h.max_timestamp
                    } else {
                        h.base_timestamp
                    }
                })
                // An empty filler (the log start inside a cleaned range) has no time.
                .filter(|&ts| ts >= 0)
        } else {
            None
        };
        let hz = self.cleaner_checkpoint.delete_horizon_ms;
        Ok(CleanerStatus {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: end,
            clean_bytes,
            dirty_bytes,
            dirty_ratio: if total == 0 {
                0.0
            } else {
                dirty_bytes as f64 / total as f64
            },
            first_dirty_timestamp_ms,
            delete_horizon_ms: (hz >= 0).then_some(hz),
        })
    }

    /// Phase 1 of a clean (cheap, `&self`): what to clean, with cloned file handles.
    /// `Ok(None)` if there is nothing to clean (no dirty closed segment below the bounds of
    /// `request`, and no tombstone whose delete horizon has passed) or if another plan of
    /// this log is still alive. Run the plan with [`CleanPlan::execute`] (no lock needed),
    /// then [`Log::install_clean`].
    pub fn plan_clean(&self, request: CleanRequest) -> Result<Option<CleanPlan>, StorageError> {
        if self.offline {
            return Err(StorageError::Offline(self.dir.clone()));
        }
        let first_dirty = self.first_dirty_offset();
        let end = self.first_uncleanable_offset(
            request.max_offset,
            request.now_ms,
            request.min_compaction_lag_ms,
        );
        let first_base = *self.segments.keys().next().expect("a segment");
        let hz = self.cleaner_checkpoint.delete_horizon_ms;
        let horizon_due = hz >= 0 && hz <= request.now_ms && first_base < first_dirty.min(end);
        if first_dirty >= end && !horizon_due {
            return Ok(None);
        }
        if self
            .cleaning
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(None);
        }
        let guard = CleanGuard(Arc::clone(&self.cleaning));
        let segments = self
            .segments
            .values()
            .take_while(|s| s.next_offset <= end)
            .map(|s| PlannedSegment {
                base_offset: s.base_offset,
                id: s.id,
                file: Arc::clone(&s.file),
                size_bytes: s.size_bytes,
                next_offset: s.next_offset,
            })
            .collect();
        Ok(Some(CleanPlan {
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
            segments,
            first_dirty_offset: first_dirty,
            request,
            segment_bytes: self.config.segment_bytes,
            index_interval_bytes: self.config.index_interval_bytes,
            guard,
        }))
    }

    /// Phase 3 of a clean (`&mut self`, short): swap the cleaned segments in. Aborts with
    /// `CleanAborted` (removing the `.cleaned` files, the log unchanged and online) if the
    /// log no longer holds exactly the segments the plan read: retention or DeleteRecords
    /// deleted one, or another clean replaced it. Otherwise the swap is committed by the
    /// `cleaner-swap` record; any failure after that takes the log offline, and the next
    /// open completes the swap. Returns the stats and the replaced segments' files: drop
    /// those after releasing the partition lock ([`RetiredFiles`]).
    pub fn install_clean(
        &mut self,
        output: CleanOutput,
    ) -> Result<(CleanStats, RetiredFiles), StorageError> {
        let CleanOutput {
            groups,
            checkpoint,
            stats,
            removed_markers: _,
            _guard,
        } = output;
        let abort = |this: &Log, reason: String| -> Result<_, StorageError> {
            for g in &groups {
                if let Err(e) = this.fs.remove_file(&g.cleaned_path) {
                    tracing::warn!(file = %g.cleaned_path.display(), error = %e,
                        "could not remove an aborted clean's file; the next open removes it");
                }
            }
            tracing::info!(dir = %this.dir.display(), %reason, "clean aborted");
            Err(StorageError::CleanAborted(reason))
        };
        if self.offline {
            return abort(self, "the log is offline".into());
        }
        let active = self.active().base_offset;
        for g in &groups {
            for &(base, id) in &g.replaced {
                let same = self
                    .segments
                    .get(&base)
                    .is_some_and(|s| s.id == id && base < active);
                if !same {
                    return abort(
                        self,
                        format!("segment {base} changed or went away while cleaning"),
                    );
                }
            }
        }
        if groups.is_empty() {
            self.cleaner_checkpoint = checkpoint;
            if let Err(e) = checkpoint::write_cleaner_checkpoint(&*self.fs, &self.dir, checkpoint) {
                return self.fail(io_err(format!(
                    "writing cleaner checkpoint in {}",
                    self.dir.display()
                ))(e));
            }
            return Ok((stats, RetiredFiles::default()));
        }
        let swap = CleanSwap {
            checkpoint,
            groups: groups
                .iter()
                .map(|g| (g.segment.base_offset, g.end_offset))
                .collect(),
        };
        let renamed = match self.swap_in(&swap, &groups) {
            Ok(renamed) => renamed,
            Err(e) => {
                return self.fail(io_err(format!(
                    "swapping cleaned segments into {}",
                    self.dir.display()
                ))(e));
            }
        };
        let mut retired = RetiredFiles::default();
        if !renamed.is_empty() {
            retired.1 = Some(DelayedRemoval {
                delay: std::time::Duration::from_millis(self.config.file_delete_delay_ms),
                paths: renamed,
                fs: Arc::clone(&self.fs),
            });
        }
        for g in groups {
            for &(base, _) in &g.replaced {
                let old = self.segments.remove(&base).expect("validated segment");
                retired.0.push(old.file);
            }
            self.segments.insert(g.segment.base_offset, g.segment);
        }
        self.cleaner_checkpoint = checkpoint;
        debug_assert!(self.validate().is_ok(), "{:?}", self.validate());
        tracing::info!(dir = %self.dir.display(), segments_read = stats.segments_read,
            segments_written = stats.segments_written, bytes_read = stats.bytes_read,
            bytes_written = stats.bytes_written, clean_offset = stats.clean_offset,
            "cleaned segments installed");
        Ok((stats, retired))
    }

    /// The file operations of a swap: commit record, renames, removals (docs/storage.md).
    /// With `file.delete.delay.ms` set the replaced `.log` files are renamed to `*.deleted`
    /// instead of removed; returns those names.
    fn swap_in(&self, swap: &CleanSwap, groups: &[CleanedGroup]) -> io::Result<Vec<PathBuf>> {
        let (fs, dir) = (&*self.fs, &self.dir);
        let delay = self.config.file_delete_delay_ms > 0;
        let mut renamed = Vec::new();
        let mut retire = |path: PathBuf| -> io::Result<()> {
            if delay {
                let mut to = path.clone().into_os_string();
                to.push(DELETED_SUFFIX);
                let to = PathBuf::from(to);
                fs.rename(&path, &to)?;
                renamed.push(to);
                Ok(())
            } else {
                fs.remove_file(&path)
            }
        };
        checkpoint::write_clean_swap(fs, dir, swap)?;
        // Committed: from here on an open completes the swap from the (durable) cleaned
        // files (whether or not the replaced .log is still there), so the renames and
        // removals below need no fsync of their own until the record goes. Stale index
        // files first, so none can pair with a new .log.
        for g in groups {
            for &(base, _) in &g.replaced {
                remove_index_files(fs, dir, base)?;
            }
            if delay {
                retire(g.segment.log_path.clone())?;
            }
            fs.rename(&g.cleaned_path, &g.segment.log_path)?;
        }
        for g in groups {
            for &(base, _) in &g.replaced[1..] {
                retire(dir.join(file_name(base, LOG_SUFFIX)))?;
            }
        }
        finish_swap(fs, dir, swap)?;
        Ok(renamed)
    }
}

fn remove_if_exists(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_index_files(fs: &dyn Fs, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(fs, &dir.join(file_name(base, suffix)))?;
    }
    Ok(())
}

/// The cleaner checkpoint (whose directory fsync also makes the removals durable), then
/// the swap record goes.
fn finish_swap(fs: &dyn Fs, dir: &Path, swap: &CleanSwap) -> io::Result<()> {
    checkpoint::write_cleaner_checkpoint(fs, dir, swap.checkpoint)?;
    fs.remove_file(&dir.join(checkpoint::CLEAN_SWAP_FILE))?;
    fs.sync_dir(dir)
}
