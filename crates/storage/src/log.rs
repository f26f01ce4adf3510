//! The partition log (contract: docs/storage.md).
//!
//! One `Log` per partition directory. Single-threaded API (`&mut self` for writes): the
//! broker keeps each `Log` behind a mutex. fsync can happen outside that mutex through
//! [`SyncTarget`], which is what makes group commit possible: appends go on while an fsync
//! of earlier appends is in flight, and the next fsync covers every append made meanwhile.
//!
//! Every file operation goes through [`Fs`] ([`StdFs`] in production, `SimFs` in crash
//! tests). Fail-stop: after any failed write or fsync the log refuses writes, and the next
//! open discards everything past the recovery point of that moment.

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{batch_crc, check_frame, BatchError, BatchHeader, CRC_OFFSET};
use crate::checkpoint::{self, CleanerCheckpoint, LogCheckpoint};
use crate::fs::{Fs, StdFs, StorageFile};
use crate::records;
use crate::recovery::{self, DirectoryPlan, Inventory, RecoveryPlan, ScanDriver, SegmentState};
use crate::segment::{HeaderReadAhead, Segment};

/// Per-partition settings (Kafka topic config names in the comments).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when an append would make it larger.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much before `segment_ms`, by an
    /// amount fixed per segment (see [`roll_jitter_ms`]), so partitions created together do
    /// not all roll at the same moment.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: roll when the active segment's offset index (8 bytes an entry)
    /// or time index (12 bytes an entry) would grow past this.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: add a sparse index entry every this many bytes.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type` == LogAppendTime: stamp now_ms as max_timestamp + set attr bit.
    pub log_append_time: bool,
    /// `file.delete.delay.ms`: a segment deleted by retention or DeleteRecords has its
    /// files renamed to `*.deleted` and removed this much later (0: removed at once).
    pub file_delete_delay_ms: u64,
    /// `preallocate`: the active segment's disk blocks are reserved up to `segment_bytes`
    /// (its length stays what was written, so recovery is unchanged); a rolled segment
    /// gives back what it did not use.
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_message_bytes: 1024 * 1024 + 12,
            log_append_time: false,
            file_delete_delay_ms: 0,
            preallocate: false,
        }
    }
}

/// How much earlier than `segment_ms` the segment based at `base_offset` rolls: Kafka draws
/// a random amount below `min(segment_jitter_ms, segment_ms)` per segment; weir derives it
/// from the base offset (a fixed mix of its bits), so it is the same after a restart.
pub fn roll_jitter_ms(base_offset: i64, config: &LogConfig) -> i64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    // splitmix64's finaliser: neighbouring offsets get unrelated amounts.
    let mut z = (base_offset as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % bound as u64) as i64
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An appended record set is not valid RecordBatch v2 (nothing was written).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A previous fsync or write failed (fail-stop): the log refuses writes until it is
    /// reopened, and that reopen discards everything past the recovery point.
    #[error("log {0} is offline after a failed fsync or write; it refuses writes until reopened")]
    Offline(PathBuf),
    /// A read or DeleteRecords at an offset outside the log.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The first offset the log holds.
        log_start_offset: i64,
        /// The offset the next append gets (or the bound the caller gave).
        log_end_offset: i64,
    },
    /// `install_clean` found the log changed under the clean (retention or DeleteRecords
    /// deleted a segment it read, say): nothing was swapped, the log is as before and
    /// online; plan again later.
    #[error("clean aborted: {0}")]
    CleanAborted(String),
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset of the last record; log_end_offset is now last_offset + 1.
    pub last_offset: i64,
    /// Largest max_timestamp among the appended batches (after LogAppendTime stamping).
    pub max_timestamp: i64,
    /// now_ms if LogAppendTime, else -1.
    pub log_append_time_ms: i64,
}

/// What recovery found at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Batches CRC-checked during recovery.
    pub batches_scanned: u64,
    /// Bytes cut from the tail (torn or corrupt batch and everything after it).
    pub bytes_truncated: u64,
    /// Why it truncated, if it did (e.g. "crc mismatch at offset 1234 position 5678").
    pub truncation_reason: Option<String>,
}

/// Files to fsync to make everything up to `end_offset` durable. Cloned handles, so the
/// fsync runs without holding the log's mutex: call `sync_data()` on each, then
/// `Log::mark_synced(end_offset)`, or `Log::mark_failed()` if any fsync failed (never
/// retry it). Every target taken must be answered by one of the two: while one is
/// outstanding, the log's own fsyncs (roll, flush) do not advance the recovery point (see
/// docs/storage.md, "Fail-stop").
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// The files with unsynced writes, to `sync_data` (off the lock).
    pub files: Vec<Arc<dyn StorageFile>>,
    /// Everything below this offset is durable once every file is synced.
    pub end_offset: i64,
}

/// Retention settings (Kafka's topic config names); a negative value means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `retention.ms`: a segment whose newest record is older than this is deleted.
    pub retention_ms: i64,
    /// `retention.bytes`: the oldest segments go while the log without them is still at
    /// least this large.
    pub retention_bytes: i64,
}

/// What retention or DeleteRecords deleted.
///
/// The segments have left the log and the new log start offset is checkpointed, but their
/// files are still on disk: the caller publishes the new start first (so nobody is told of
/// offsets whose files are gone), then calls [`SegmentsDeleted::unlink`]. Dropping it
/// unlinks too, logging a failure; a crash before the unlink is harmless, because opening
/// the log deletes what lies below the checkpointed start.
pub struct SegmentsDeleted {
    /// How many segments left the log.
    pub segments: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// The log start offset now (moved even if no segment went, for DeleteRecords).
    pub log_start_offset: i64,
    /// The deleted segments' files: drop after releasing the partition lock.
    pub retired: RetiredFiles,
    fs: Arc<dyn Fs>,
    to_unlink: Vec<Segment>,
    delete_delay_ms: u64,
    renamed: Vec<PathBuf>,
}

/// Files of deleted segments renamed to `*.deleted`, to be removed once
/// `file.delete.delay.ms` has passed ([`SegmentsDeleted::delayed_removal`]).
pub struct DelayedRemoval {
    /// How long to wait before removing them.
    pub delay: std::time::Duration,
    /// The renamed files.
    pub paths: Vec<PathBuf>,
    pub(crate) fs: Arc<dyn Fs>,
}

impl DelayedRemoval {
    /// Remove the files (one already gone, e.g. with its deleted topic, is skipped). What
    /// is not removed now goes at the next open of the log.
    pub fn remove(self) -> io::Result<()> {
        for path in &self.paths {
            match self.fs.remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for SegmentsDeleted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentsDeleted")
            .field("segments", &self.segments)
            .field("bytes", &self.bytes)
            .field("log_start_offset", &self.log_start_offset)
            .field("to_unlink", &self.to_unlink.len())
            .finish()
    }
}

impl SegmentsDeleted {
    /// Remove the deleted segments' files, oldest first, or with `file.delete.delay.ms` set
    /// rename them to `*.deleted` (see [`Self::delayed_removal`]). A failure leaves the rest
    /// for the next open (they are below the checkpointed start); the caller should take
    /// the log offline, as for any failed write.
    pub fn unlink(&mut self) -> Result<(), StorageError> {
        // Taken, so a failure (which drops the rest) or a second call unlinks nothing twice.
        for seg in std::mem::take(&mut self.to_unlink) {
            let path = seg.log_path.clone();
            if self.delete_delay_ms > 0 {
                match seg.rename_deleted(&*self.fs) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        let context = format!("renaming {} to delete it", path.display());
                        return Err(StorageError::Io { context, source });
                    }
                    Ok(renamed) => self.renamed.extend(renamed),
                }
                continue;
            }
            match seg.delete_files(&*self.fs) {
                // Already gone: the whole partition was deleted meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    let context = format!("deleting {}", path.display());
                    return Err(StorageError::Io { context, source });
                }
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// After [`Self::unlink`] with `file.delete.delay.ms` set: the renamed files and when
    /// to remove them (None if there is nothing to remove later).
    pub fn delayed_removal(&mut self) -> Option<DelayedRemoval> {
        if self.renamed.is_empty() {
            return None;
        }
        Some(DelayedRemoval {
            delay: std::time::Duration::from_millis(self.delete_delay_ms),
            paths: std::mem::take(&mut self.renamed),
            fs: Arc::clone(&self.fs),
        })
    }
}

impl Drop for SegmentsDeleted {
    fn drop(&mut self) {
        if let Err(e) = self.unlink() {
            tracing::error!(error = %e, "deleting retired segment files; the next open retries");
        }
    }
}

/// Open handles of segment files the log no longer uses (deleted by retention, replaced by
/// a clean). Dropping this closes them, and closing the last handle of a deleted file is
/// when the file system frees its blocks: milliseconds per large segment. Drop it after
/// releasing the partition lock, so appends do not wait for that.
///
/// After a clean with `file.delete.delay.ms` set, it also carries the replaced `.log` files,
/// renamed to `*.deleted`, to remove once the delay has passed
/// ([`RetiredFiles::delayed_removal`]); not taken, they go at the next open.
#[derive(Default)]
pub struct RetiredFiles(
    pub(crate) Vec<Arc<dyn StorageFile>>,
    pub(crate) Option<DelayedRemoval>,
);

impl RetiredFiles {
    /// The renamed files of replaced segments and when to remove them, if any.
    pub fn delayed_removal(&mut self) -> Option<DelayedRemoval> {
        self.1.take()
    }
}

impl std::fmt::Debug for RetiredFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RetiredFiles({})", self.0.len())
    }
}

/// A byte range of one segment file, whole batches: part of a fetch answer. It holds the
/// file open, so it can be sent (sendfile) or read after the log has moved on.
#[derive(Debug, Clone)]
pub struct FileSlice {
    /// The segment file.
    pub file: Arc<dyn StorageFile>,
    /// The segment's path, for error messages.
    pub path: PathBuf,
    /// Where the range starts in the file.
    pub pos: u64,
    /// Its length in bytes (never 0).
    pub len: usize,
}

impl FileSlice {
    /// Append the range's bytes to `out` (the copy path: simulated files, TLS later).
    pub fn read_into(&self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        let at = out.len();
        out.resize(at + self.len, 0);
        self.file
            .read_exact_at(&mut out[at..], self.pos)
            .map_err(io_err(format!(
                "reading {} at position {}",
                self.path.display(),
                self.pos
            )))
    }
}

/// One partition's log: its segments, indexes and checkpoints in one directory (see
/// docs/storage.md). Not thread-safe by itself: the broker holds it under a mutex and does
/// its fsyncs outside it ([`Log::sync_target`]).
pub struct Log {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// By base offset; never empty (the last one is the active segment).
    pub(crate) segments: BTreeMap<i64, Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    /// (leader epoch, first offset written in it), epochs strictly increasing (KIP-101).
    leader_epochs: Vec<(i32, i64)>,
    pub(crate) offline: bool,
    /// The cleaner's progress (`cleaner-checkpoint`).
    pub(crate) cleaner_checkpoint: CleanerCheckpoint,
    /// A `CleanPlan` (or its output) of this log is alive: no second one is planned.
    pub(crate) cleaning: Arc<AtomicBool>,
    /// SyncTargets handed out and not yet answered by mark_synced / mark_failed.
    syncs_in_flight: AtomicU32,
    /// Recovery point earned by the log's own fsyncs while a SyncTarget was in flight;
    /// granted when the last one succeeds.
    deferred_recovery_point: i64,
}

/// The directory holding `path` ("." for a bare relative name), None for a root.
fn parent_dir(path: &Path) -> Option<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    }
}

/// Create `dir` (and missing ancestors) so that it survives a power loss: each entry is
/// only durable once its parent directory is fsync'd. The parent of `dir` is fsync'd even
/// if `dir` already existed: a crash may have come between its creation and that fsync.
fn create_dir_durably(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    let mut new_dirs = Vec::new();
    for a in dir.ancestors().skip(1) {
        if a.as_os_str().is_empty() || fs.exists(a)? {
            break;
        }
        new_dirs.push(a);
    }
    fs.create_dir_all(dir)?;
    for d in new_dirs.into_iter().rev().chain([dir]) {
        if let Some(parent) = parent_dir(d) {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

impl Log {
    /// Open (creating if missing) the log in `dir`. `clean_shutdown` says the broker's
    /// clean-shutdown marker was present: then segments are trusted up to their recovery
    /// point checkpoint. Otherwise every segment past the last checkpointed recovery point
    /// is scanned batch by batch (CRC-32C); the first torn/corrupt batch and all after it
    /// is truncated (logged with `tracing::warn!`), and indexes are rebuilt. If the log
    /// went offline last time (`offline-checkpoint`), everything past the recovery point it
    /// had then is cut too, however valid it looks.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<(Log, RecoveryReport), StorageError> {
        Log::open_in(Arc::new(StdFs), dir, config, clean_shutdown)
    }

    /// `open` with every file operation going through `fs` (a [`crate::SimFs`] in tests).
    ///
    /// Recovery decides without I/O what survives and then does it (see `recovery.rs`):
    /// inventory -> directory plan (applied) -> scan -> recovery plan (applied).
    pub fn open_in(
        fs: Arc<dyn Fs>,
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<(Log, RecoveryReport), StorageError> {
        let fsr: &dyn Fs = &*fs;
        create_dir_durably(fsr, dir)
            .map_err(io_err(format!("creating log directory {}", dir.display())))?;
        let inventory = Inventory::read(fsr, dir)?;
        let dir_plan = DirectoryPlan::decide(&inventory).map_err(|e| StorageError::Io {
            context: format!(
                "completing an interrupted clean in log directory {}",
                dir.display()
            ),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        debug_assert_eq!(dir_plan.validate(&inventory), Ok(()), "{dir_plan:?}");
        let mut segments = BTreeMap::new();
        recovery::apply(&dir_plan.commands, fsr, dir, &mut segments)?;

        let mut segments = recovery::open_segments(fsr, dir, dir_plan.segments.keys().copied())?;
        let states = segments.values().map(SegmentState::of).collect();
        let driver = ScanDriver::new(&inventory, clean_shutdown, states);
        let scanned = recovery::scan(driver, &mut segments, config.index_interval_bytes)?;
        let plan = RecoveryPlan::decide(&inventory, scanned);
        debug_assert_eq!(plan.validate(), Ok(()), "{plan:?}");
        recovery::apply(&plan.commands, fsr, dir, &mut segments)?;

        let log_end_offset = plan.log_end_offset();
        let log = Log {
            fs: Arc::clone(&fs),
            dir: dir.to_owned(),
            config,
            segments,
            log_start_offset: plan.log_start_offset,
            recovery_point: plan.recovery_point,
            leader_epochs: plan.leader_epochs,
            offline: false,
            cleaner_checkpoint: dir_plan.cleaner_checkpoint,
            cleaning: Arc::new(AtomicBool::new(false)),
            syncs_in_flight: AtomicU32::new(0),
            deferred_recovery_point: plan.recovery_point,
        };
        debug_assert_eq!(log.log_end_offset(), log_end_offset);
        debug_assert_eq!(log.validate(), Ok(()));
        log.preallocate_active();
        let report = plan.report;
        if report.truncation_reason.is_some() {
            tracing::warn!(dir = %dir.display(), batches_scanned = report.batches_scanned,
                bytes_truncated = report.bytes_truncated, log_end_offset,
                "log recovered with truncation");
        }
        Ok((log, report))
    }

    /// `preallocate`: reserve the active segment's blocks (a failure only costs the
    /// reservation, so it is logged, not raised).
    fn preallocate_active(&self) {
        if !self.config.preallocate {
            return;
        }
        let seg = self.active();
        if let Err(e) = seg.file.preallocate(self.config.segment_bytes) {
            tracing::warn!(segment = %seg.log_path.display(), error = %e, "preallocating a segment failed");
        }
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    fn write_log_checkpoint(&self) -> Result<(), StorageError> {
        let ck = LogCheckpoint {
            recovery_point: self.recovery_point,
            log_start_offset: self.log_start_offset,
        };
        checkpoint::write_log_checkpoint(&*self.fs, &self.dir, ck).map_err(io_err(format!(
            "writing checkpoint in {}",
            self.dir.display()
        )))
    }

    fn write_leader_epochs(&self) -> Result<(), StorageError> {
        checkpoint::write_leader_epochs(&*self.fs, &self.dir, &self.leader_epochs).map_err(io_err(
            format!("writing leader-epoch checkpoint in {}", self.dir.display()),
        ))
    }

    /// Replace the settings (a topic config change): applies from the next append.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Leader epochs and the first offset of each (KIP-101), oldest first.
    pub fn leader_epochs(&self) -> &[(i32, i64)] {
        &self.leader_epochs
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// True after `mark_failed` or a failed write: appends are refused until reopened.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Fail-stop after a failed write or fsync: refuse writes from now on, and record the
    /// recovery point so that the next open discards everything past it.
    pub(crate) fn fail<T>(&mut self, err: StorageError) -> Result<T, StorageError> {
        tracing::error!(dir = %self.dir.display(), error = %err, "log goes offline");
        self.go_offline();
        Err(err)
    }

    fn go_offline(&mut self) {
        if self.offline {
            return;
        }
        self.offline = true;
        // Best effort: a failing disk may refuse this too (then see docs/storage.md).
        if let Err(e) =
            checkpoint::write_offline_checkpoint(&*self.fs, &self.dir, self.recovery_point)
        {
            tracing::error!(dir = %self.dir.display(), error = %e,
                "could not write the offline checkpoint; the next open may trust unsynced data");
        }
    }

    /// Record the log end as durable after one of the log's own fsyncs (roll, flush). While
    /// a SyncTarget is out, that fsync may have "succeeded" because the broker's concurrent
    /// fsync of the same file consumed the error (Linux reports a writeback error once per
    /// open file description): the gain then waits for the broker's fsync to succeed.
    fn own_fsync_succeeded(&mut self, end_offset: i64) {
        if self.syncs_in_flight.load(Ordering::Acquire) == 0 {
            self.recovery_point = self.recovery_point.max(end_offset);
        } else {
            self.deferred_recovery_point = self.deferred_recovery_point.max(end_offset);
        }
    }

    /// Segments that may hold data not yet known durable: from the one holding the
    /// recovery point to the active one (usually just the active one).
    fn unsynced_files(&self) -> Vec<Arc<dyn StorageFile>> {
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        self.segments
            .range(from..)
            .map(|(_, s)| Arc::clone(&s.file))
            .collect()
    }

    fn should_roll(&self, set_bytes: u64, offsets: i64, now_ms: i64) -> bool {
        let seg = self.active();
        if seg.size_bytes == 0 {
            return false;
        }
        let new_size = seg.size_bytes + set_bytes;
        new_size > self.config.segment_bytes
            // Positions and relative offsets are u32 in the index.
            || new_size > u32::MAX as u64
            || seg.next_offset + offsets - 1 - seg.base_offset > u32::MAX as i64
            || seg.first_append_ms.is_some_and(|t| {
                let jitter = roll_jitter_ms(seg.base_offset, &self.config);
                now_ms - t > self.config.segment_ms - jitter
            })
            // As Kafka's index isFull: entries of 8 (offset) and 12 (time) bytes.
            || (seg.offset_index.len() as u64 + 1) * 8 > self.config.segment_index_bytes
            || (seg.time_index.len() as u64 + 1) * 12 > self.config.segment_index_bytes
    }

    /// Make the active segment durable and closed, then start a new one at the log end.
    fn roll(&mut self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        let fs = Arc::clone(&self.fs);
        let seg = self.active_mut();
        let path = seg.log_path.clone();
        let result = seg
            .file
            .sync_data()
            .map_err(io_err(format!("fsync {} at roll", path.display())))
            .and_then(|()| {
                seg.write_indexes(&*fs)
                    .map_err(io_err(format!("writing indexes of {}", path.display())))
            });
        if let Err(e) = result {
            return self.fail(e);
        }
        if self.config.preallocate {
            let seg = self.active();
            if let Err(e) = seg.file.release_preallocated() {
                tracing::warn!(segment = %seg.log_path.display(), error = %e, "releasing a segment's preallocated blocks failed");
            }
        }
        let log_end_offset = self.log_end_offset();
        // Every earlier segment was fsync'd at its own roll, so the whole log below the
        // new segment is durable now (unless a SyncTarget is out: own_fsync_succeeded).
        self.own_fsync_succeeded(log_end_offset);
        let created = Segment::create(&*fs, &dir, log_end_offset)
            .map_err(io_err(format!(
                "creating segment {log_end_offset} in {}",
                dir.display()
            )))
            .and_then(|seg| {
                fs.sync_dir(&dir)
                    .map_err(io_err(format!("fsync {}", dir.display())))
                    .map(|()| seg)
            });
        match created {
            Ok(seg) => {
                self.segments.insert(log_end_offset, seg);
                self.preallocate_active();
            }
            Err(e) => return self.fail(e),
        }
        tracing::info!(dir = %dir.display(), base_offset = log_end_offset, segments = self.segments.len(),
            "segment rolled");
        if let Err(e) = self.write_log_checkpoint() {
            return self.fail(e);
        }
        Ok(())
    }

    /// Append an already-validated record set (one or more v2 batches, as from
    /// `batch::validate_record_set`). Rewrites each batch's base_offset (bytes 0..8) and
    /// partition_leader_epoch (bytes 12..16) in place, both outside the CRC; with
    /// LogAppendTime also stamps max_timestamp and the attribute bit and recomputes the CRC.
    /// Writes (no fsync), rolling the segment first if needed.
    pub fn append(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.check_appendable(records)?;
        // Structural walk only (the CRC was checked by validate_record_set): never write a
        // record set that would misalign the segment.
        let mut frames: Vec<(usize, BatchHeader)> = Vec::new();
        let mut pos = 0usize;
        let mut offsets = 0i64;
        while pos < records.len() {
            let h = check_frame(&records[pos..], pos)?;
            offsets += h.last_offset_delta as i64 + 1;
            frames.push((pos, h));
            pos += h.total_len();
        }
        if offsets - 1 > u32::MAX as i64 {
            return Err(BatchError::Invalid(format!("record set spans {offsets} offsets")).into());
        }
        // Only a forged checkpoint or segment name puts the log end near i64::MAX.
        if self.log_end_offset().checked_add(offsets).is_none() {
            return Err(BatchError::Invalid(format!(
                "{offsets} offsets from log end {} run past the largest offset",
                self.log_end_offset()
            ))
            .into());
        }
        if self.should_roll(records.len() as u64, offsets, now_ms) {
            self.roll()?;
        }

        let base_offset = self.log_end_offset();
        let mut next_offset = base_offset;
        let mut max_timestamp = -1i64;
        for (pos, h) in frames.iter_mut() {
            let b = &mut records[*pos..*pos + h.total_len()];
            h.base_offset = next_offset;
            h.partition_leader_epoch = leader_epoch;
            b[0..8].copy_from_slice(&next_offset.to_be_bytes());
            b[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
            if self.config.log_append_time {
                h.attributes |= 0x8;
                h.max_timestamp = now_ms;
                b[21..23].copy_from_slice(&h.attributes.to_be_bytes());
                b[35..43].copy_from_slice(&now_ms.to_be_bytes());
                // Attributes and max_timestamp are inside the CRC-covered region.
                let crc = batch_crc(b);
                h.crc = crc;
                b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            }
            max_timestamp = max_timestamp.max(h.max_timestamp);
            next_offset = h.last_offset() + 1;
        }
        debug_assert_eq!(next_offset, base_offset + offsets);

        self.write_batches(records, &frames, now_ms)?;
        debug_assert_eq!(self.log_end_offset(), next_offset);
        self.note_epochs([(leader_epoch, base_offset)])?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            max_timestamp,
            log_append_time_ms: if self.config.log_append_time {
                now_ms
            } else {
                -1
            },
        })
    }

    /// What every append refuses first: an offline log, an empty record set.
    fn check_appendable(&self, records: &[u8]) -> Result<(), StorageError> {
        if self.offline {
            return Err(StorageError::Offline(self.dir.clone()));
        }
        if records.is_empty() {
            return Err(BatchError::Invalid("record set holds no batch".into()).into());
        }
        Ok(())
    }

    /// Write checked batches (`frames`: position in `records` and header of each) at the
    /// active segment's end and index them. A failed write is cut off again; a full disk
    /// leaves the log online, any other failure takes it offline.
    fn write_batches(
        &mut self,
        records: &[u8],
        frames: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let interval = self.config.index_interval_bytes;
        let seg = self.active_mut();
        let start = seg.size_bytes;
        if let Err(source) = seg.file.write_all_at(records, start) {
            // Do not leave a partial batch for a clean reopen to trust.
            let truncated = seg.file.set_len(start);
            let context = format!("writing {} at position {start}", seg.log_path.display());
            if source.kind() == std::io::ErrorKind::StorageFull && truncated.is_ok() {
                // Disk full: nothing of this append remains and nothing durable was
                // touched, so the log stays online and takes writes again once there is
                // space. (A failed fsync, by contrast, is never survivable: see `fail`.)
                tracing::warn!(dir = %self.dir.display(), "disk full: append refused");
                return Err(StorageError::Io { context, source });
            }
            return self.fail(StorageError::Io { context, source });
        }
        for (pos, h) in frames {
            seg.track_batch(h, start + *pos as u64, interval);
        }
        seg.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Record each (leader epoch, first offset) newer than the last known epoch, and write
    /// the leader-epoch checkpoint once if any was.
    fn note_epochs(
        &mut self,
        epochs: impl IntoIterator<Item = (i32, i64)>,
    ) -> Result<(), StorageError> {
        let mut changed = false;
        for (epoch, offset) in epochs {
            if epoch >= 0 && self.leader_epochs.last().is_none_or(|&(e, _)| epoch > e) {
                self.leader_epochs.push((epoch, offset));
                changed = true;
            }
        }
        if changed {
            if let Err(e) = self.write_leader_epochs() {
                return self.fail(e);
            }
        }
        Ok(())
    }

    /// Append batches that already carry their offsets and leader epochs, byte for byte:
    /// the journal's replay after a crash (and a follower's fetched batches, later). The
    /// first batch must start at the log end and each must follow the one before; every
    /// batch's CRC is checked, since these bytes did not come through
    /// `validate_record_set`. Writes (no fsync), rolling the segment first if needed.
    pub fn append_exact(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.check_appendable(records)?;
        let base_offset = self.log_end_offset();
        let mut frames: Vec<(usize, BatchHeader)> = Vec::new();
        let mut pos = 0usize;
        let mut next_offset = base_offset;
        let mut max_timestamp = -1i64;
        while pos < records.len() {
            let h = check_frame(&records[pos..], pos)?;
            if h.base_offset != next_offset {
                return Err(BatchError::Invalid(format!(
                    "batch at offset {} where {next_offset} comes next",
                    h.base_offset
                ))
                .into());
            }
            if batch_crc(&records[pos..pos + h.total_len()]) != h.crc {
                return Err(BatchError::Invalid(format!(
                    "batch at offset {} fails its CRC",
                    h.base_offset
                ))
                .into());
            }
            next_offset = h
                .base_offset
                .checked_add(h.last_offset_delta as i64 + 1)
                .ok_or_else(|| BatchError::Invalid("batch runs past the largest offset".into()))?;
            max_timestamp = max_timestamp.max(h.max_timestamp);
            frames.push((pos, h));
            pos += h.total_len();
        }
        if self.should_roll(records.len() as u64, next_offset - base_offset, now_ms) {
            self.roll()?;
        }
        self.write_batches(records, &frames, now_ms)?;
        self.note_epochs(
            frames
                .iter()
                .map(|(_, h)| (h.partition_leader_epoch, h.base_offset)),
        )?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            max_timestamp,
            log_append_time_ms: -1,
        })
    }

    /// What to fsync to make the current log end durable: the active segment, and earlier
    /// ones if the recovery point is still in them (a roll while a SyncTarget was out).
    /// Answer it with `mark_synced` or `mark_failed`.
    pub fn sync_target(&self) -> SyncTarget {
        self.syncs_in_flight.fetch_add(1, Ordering::AcqRel);
        SyncTarget {
            files: self.unsynced_files(),
            end_offset: self.log_end_offset(),
        }
    }

    fn sync_answered(&mut self) {
        let n = self.syncs_in_flight.get_mut();
        *n = n.saturating_sub(1);
    }

    /// Record that everything below `end_offset` is durable (after a successful fsync of a
    /// `SyncTarget`). Never moves backwards. Ignored once the log is offline: a successful
    /// fsync after a failed one proves nothing, so acknowledge only up to
    /// `recovery_point()` after this call.
    pub fn mark_synced(&mut self, end_offset: i64) {
        debug_assert!(
            end_offset <= self.log_end_offset(),
            "synced past the log end"
        );
        self.sync_answered();
        if self.offline {
            tracing::warn!(dir = %self.dir.display(), end_offset,
                "fsync completed on an offline log; not trusted");
            return;
        }
        let mut rp = end_offset;
        if *self.syncs_in_flight.get_mut() == 0 {
            rp = rp.max(self.deferred_recovery_point);
        }
        self.recovery_point = self.recovery_point.max(rp.min(self.log_end_offset()));
    }

    /// The fsync of a `SyncTarget` failed: the log goes offline (every later append, flush
    /// and close returns `Offline`) and the next open discards everything past the recovery
    /// point. Never retry the fsync.
    pub fn mark_failed(&mut self) {
        tracing::error!(dir = %self.dir.display(), "fsync failed; log is offline until reopened");
        self.sync_answered();
        self.go_offline();
    }

    /// fsync everything now, inline (used at close; the broker's group commit uses
    /// `sync_target` instead). Afterwards `recovery_point() == log_end_offset()`, unless a
    /// SyncTarget is out (then the gain waits for it, see `own_fsync_succeeded`).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.offline {
            return Err(StorageError::Offline(self.dir.clone()));
        }
        let end_offset = self.log_end_offset();
        for f in self.unsynced_files() {
            if let Err(source) = f.sync_data() {
                let context = format!("fsync of a segment in {}", self.dir.display());
                return self.fail(StorageError::Io { context, source });
            }
        }
        self.own_fsync_succeeded(end_offset);
        Ok(())
    }

    /// Whole batches from the batch containing `fetch_offset`, in order, stopping before
    /// `max_offset` (exclusive; the high watermark) and once `max_bytes` is reached, but
    /// always at least one whole batch if any is readable (KIP-74). Empty `Bytes` at the end.
    /// `OffsetOutOfRange` if fetch_offset < log_start_offset or > log_end_offset.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes, StorageError> {
        let slices = self.read_slices(fetch_offset, max_bytes, max_offset)?;
        let mut out = Vec::with_capacity(slices.iter().map(|s| s.len).sum());
        for slice in &slices {
            slice.read_into(&mut out)?;
        }
        Ok(Bytes::from(out))
    }

    /// Where the bytes [`Log::read`] would return lie: one range of each segment file it
    /// spans, in order, none empty. Only batch headers are read, so the records can go to
    /// a socket straight from the page cache. The ranges stay valid after the log moves on:
    /// segment data below the log end is never rewritten in place (retention and
    /// compaction replace or unlink whole files, and an open descriptor keeps them).
    pub fn read_slices(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Vec<FileSlice>, StorageError> {
        let log_end_offset = self.log_end_offset();
        if fetch_offset < self.log_start_offset || fetch_offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        let mut slices = Vec::new();
        if fetch_offset == log_end_offset || fetch_offset >= max_offset {
            return Ok(slices);
        }
        let Some((first_base, first_pos, _)) = self.locate(fetch_offset)? else {
            return Ok(slices);
        };
        let mut total = 0usize;
        for seg in self.segments.range(first_base..).map(|(_, s)| s) {
            let start = if seg.base_offset == first_base {
                first_pos
            } else {
                0
            };
            let mut pos = start;
            let mut stop = false;
            let mut ahead = HeaderReadAhead::default();
            while pos < seg.size_bytes {
                let h = seg
                    .read_header_ahead(pos, &mut ahead)
                    .map_err(io_err(format!("reading {}", seg.log_path.display())))?;
                let taken = total + (pos - start) as usize;
                // KIP-74: the first batch goes out whole whatever max_bytes says.
                if h.base_offset >= max_offset || (taken > 0 && taken + h.total_len() > max_bytes) {
                    stop = true;
                    break;
                }
                pos += h.total_len() as u64;
            }
            if pos > start {
                let len = (pos - start) as usize;
                total += len;
                let file = seg
                    .file
                    .clone()
                    .pinned()
                    .map_err(io_err(format!("opening {}", seg.log_path.display())))?;
                slices.push(FileSlice {
                    file,
                    path: seg.log_path.clone(),
                    pos: start,
                    len,
                });
            }
            if stop || total >= max_bytes {
                break;
            }
        }
        debug_assert!(
            !slices.is_empty(),
            "fetch below the log end returns at least one batch"
        );
        Ok(slices)
    }

    /// Segment base, file position and header of the batch holding `offset` (last_offset >=
    /// offset), walking headers from the sparse index entry at or below it.
    pub(crate) fn locate(
        &self,
        offset: i64,
    ) -> Result<Option<(i64, u64, BatchHeader)>, StorageError> {
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            if seg.next_offset <= offset {
                continue;
            }
            let mut pos = seg.lookup_position(offset);
            while pos < seg.size_bytes {
                let h = seg
                    .read_header(pos)
                    .map_err(io_err(format!("locating offset {offset}")))?;
                if h.last_offset() >= offset {
                    return Ok(Some((seg.base_offset, pos, h)));
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The first offset the log holds (moved by retention and DeleteRecords).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Everything below this offset has been fsync'd.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// The first record whose timestamp is >= `timestamp` (ListOffsets by time):
    /// Some((offset, record timestamp)), or None if there is none.
    ///
    /// The time index and batch headers find the first batch that can hold such a record;
    /// its records are then walked (decompressing if needed) for the exact one. A batch
    /// whose records cannot be read (they were accepted as the client compressed them and
    /// never decoded) answers at batch granularity: its base offset and max timestamp, which
    /// makes a consumer re-read a few records but never skip one.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let ctx = || format!("searching timestamp {timestamp}");
        for seg in self.segments.values() {
            if seg.offset_of_max_timestamp < 0 || seg.max_timestamp < timestamp {
                continue;
            }
            let from = seg.lookup_time(timestamp);
            let mut pos = seg.lookup_position(from);
            while pos < seg.size_bytes {
                let h = seg.read_header(pos).map_err(io_err(ctx()))?;
                if h.max_timestamp >= timestamp {
                    let batch = seg.read_bytes(pos, h.total_len()).map_err(io_err(ctx()))?;
                    let mut found = None;
                    let walked = records::for_each_record_time(&batch, |r| {
                        if r.timestamp >= timestamp {
                            found = Some((r.offset, r.timestamp));
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    });
                    match (walked, found) {
                        // Record offset deltas come from the client and are not validated:
                        // an answer outside the batch falls back to the batch's start.
                        (Ok(()), Some((offset, ts)))
                            if offset < h.base_offset || offset > h.last_offset() =>
                        {
                            return Ok(Some((h.base_offset, ts)))
                        }
                        (Ok(()), Some(hit)) => return Ok(Some(hit)),
                        // The header's max_timestamp disagrees with the records: go on.
                        (Ok(()), None) => {}
                        (Err(e), _) => {
                            tracing::debug!(dir = %self.dir.display(), offset = h.base_offset,
                                error = %e, "records unreadable, answering per batch");
                            return Ok(Some((h.base_offset, h.max_timestamp)));
                        }
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp, the earliest on a tie (ListOffsets -3,
    /// KIP-734): Some((timestamp, offset)).
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let best = self
            .segments
            .values()
            .filter(|seg| seg.offset_of_max_timestamp >= 0)
            .map(|seg| seg.max_timestamp)
            .max();
        let Some(ts) = best else {
            return Ok(None);
        };
        // No record is later than `ts`: the first at or after it is the earliest holding it.
        Ok(self
            .offset_for_timestamp(ts)?
            .map(|(offset, timestamp)| (timestamp, offset)))
    }

    /// Retention (Kafka semantics, whole segments only, oldest first): deletes the longest
    /// prefix of segments that are each entirely below `max_offset` (the high watermark:
    /// nothing not yet durable is deleted) and, as a prefix, expired by one of:
    /// - time: the segment's newest record (its max timestamp) is more than
    ///   `retention_ms` older than `now_ms`. A segment with no timestamp at all (records
    ///   stamped -1, or only what compaction left) takes the verdict of the next segment
    ///   that has one: its records were appended before that segment's;
    /// - size: the log without it is still at least `retention_bytes`;
    /// - log start: it ends at or below the log start offset (after DeleteRecords).
    ///
    /// The active segment is deleted too if every segment expired and it is not empty: a
    /// new empty active segment is rolled first, so an idle topic's data does expire. The
    /// log start offset moves to the first remaining segment and is checkpointed before any
    /// file is deleted; an open after a crash midway deletes what is left below it.
    /// Failures take the log offline. Returns what went, for a log line, and the deleted
    /// files' handles (drop them after releasing the lock, see [`RetiredFiles`]).
    pub fn apply_retention(
        &mut self,
        policy: RetentionPolicy,
        max_offset: i64,
        now_ms: i64,
    ) -> Result<SegmentsDeleted, StorageError> {
        if self.offline {
            return Err(StorageError::Offline(self.dir.clone()));
        }
        let segs: Vec<&Segment> = self.segments.values().collect();
        let n = segs.len();
        let eligible = segs
            .iter()
            .enumerate()
            .take_while(|(i, s)| s.next_offset <= max_offset && !(i + 1 == n && s.size_bytes == 0))
            .count();
        let segs = &segs[..eligible];
        let by_start = segs
            .iter()
            .enumerate()
            .take_while(|(i, s)| i + 1 < n && s.next_offset <= self.log_start_offset)
            .count();
        let mut by_time = 0;
        if policy.retention_ms >= 0 {
            let mut undated = 0;
            for s in segs {
                if s.offset_of_max_timestamp < 0 {
                    undated += 1;
                } else if now_ms.saturating_sub(s.max_timestamp) > policy.retention_ms {
                    by_time += undated + 1;
                    undated = 0;
                } else {
                    break;
                }
            }
        }
        let mut by_size = 0;
        if policy.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i128 - policy.retention_bytes as i128;
            for s in segs {
                if excess - (s.size_bytes as i128) < 0 {
                    break;
                }
                excess -= s.size_bytes as i128;
                by_size += 1;
            }
        }
        let count = by_start.max(by_time).max(by_size);
        if count > 0 {
            tracing::info!(dir = %self.dir.display(), by_time, by_size, by_start,
                retention_ms = policy.retention_ms, retention_bytes = policy.retention_bytes,
                "retention deletes segments");
        }
        self.delete_oldest_segments(count)
    }

    /// DeleteRecords: move the log start offset up to `offset` (at most the log end; the
    /// broker also keeps it at most the high watermark), checkpoint it, then delete the
    /// segments entirely below it. Reads below the log start offset get `OffsetOutOfRange`;
    /// a read at it returns the batch holding it. An offset at or below the current log
    /// start changes nothing.
    pub fn delete_records(&mut self, offset: i64) -> Result<SegmentsDeleted, StorageError> {
        if self.offline {
            return Err(StorageError::Offline(self.dir.clone()));
        }
        let log_end_offset = self.log_end_offset();
        if offset < 0 || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            if let Err(e) = self.write_log_checkpoint() {
                return self.fail(e);
            }
        }
        let n = self.segments.len();
        let count = self
            .segments
            .values()
            .enumerate()
            .take_while(|(i, s)| i + 1 < n && s.next_offset <= offset)
            .count();
        self.delete_oldest_segments(count)
    }

    /// Take the `count` oldest segments out of the log (rolling first if that is all of
    /// them), after checkpointing the log start offset at the first segment left. Their
    /// files go when the returned value is unlinked or dropped.
    fn delete_oldest_segments(&mut self, count: usize) -> Result<SegmentsDeleted, StorageError> {
        let mut deleted = SegmentsDeleted {
            segments: 0,
            bytes: 0,
            log_start_offset: self.log_start_offset,
            retired: RetiredFiles::default(),
            fs: Arc::clone(&self.fs),
            to_unlink: Vec::new(),
            delete_delay_ms: self.config.file_delete_delay_ms,
            renamed: Vec::new(),
        };
        if count == 0 {
            return Ok(deleted);
        }
        if count == self.segments.len() {
            debug_assert!(self.active().size_bytes > 0, "never roll an empty segment");
            self.roll()?;
        }
        let bases: Vec<i64> = self.segments.keys().take(count).copied().collect();
        let first_kept = *self.segments.keys().nth(count).expect("a segment is left");
        if first_kept > self.log_start_offset {
            self.log_start_offset = first_kept;
            if let Err(e) = self.write_log_checkpoint() {
                return self.fail(e);
            }
        }
        for base in bases {
            let seg = self.segments.remove(&base).expect("listed segment");
            deleted.segments += 1;
            deleted.bytes += seg.size_bytes;
            deleted.retired.0.push(Arc::clone(&seg.file));
            deleted.to_unlink.push(seg);
        }
        deleted.log_start_offset = self.log_start_offset;
        tracing::info!(dir = %self.dir.display(), segments = deleted.segments,
            bytes = deleted.bytes, log_start_offset = deleted.log_start_offset,
            "segments deleted");
        debug_assert!(self.validate().is_ok(), "{:?}", self.validate());
        Ok(deleted)
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Check the log's invariants (for tests and debug assertions): segments follow each
    /// other without gap or overlap, the active one is last, and
    /// `first segment base <= log_start_offset <= log_end_offset`,
    /// `recovery_point <= log_end_offset`.
    pub fn validate(&self) -> Result<(), String> {
        let mut expected: Option<i64> = None;
        for seg in self.segments.values() {
            if expected.is_some_and(|e| e != seg.base_offset) {
                return Err(format!(
                    "segment {} does not start where the previous one ends ({expected:?})",
                    seg.base_offset
                ));
            }
            if seg.next_offset < seg.base_offset {
                return Err(format!("segment {} ends before it starts", seg.base_offset));
            }
            expected = Some(seg.next_offset);
        }
        let first = *self.segments.keys().next().ok_or("no segment")?;
        let end = self.log_end_offset();
        if !(first <= self.log_start_offset && self.log_start_offset <= end) {
            return Err(format!(
                "log start offset {} outside [{first}, {end}]",
                self.log_start_offset
            ));
        }
        if self.recovery_point > end {
            return Err(format!(
                "recovery point {} past the log end {end}",
                self.recovery_point
            ));
        }
        Ok(())
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    /// Flush, write indexes and checkpoints (for a clean open next time).
    ///
    /// An offline log returns `Offline` and writes nothing: the broker must then not write
    /// its clean-shutdown marker, so that the next open recovers this log.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.flush()?;
        let fs = Arc::clone(&self.fs);
        for seg in self.segments.values_mut() {
            if !seg.indexes_on_disk {
                if let Err(source) = seg.write_indexes(&*fs) {
                    let context = format!("writing indexes of {}", seg.log_path.display());
                    return self.fail(StorageError::Io { context, source });
                }
            }
        }
        if let Err(e) = self.write_log_checkpoint() {
            return self.fail(e);
        }
        if let Err(source) = self.fs.sync_dir(&self.dir) {
            let context = format!("fsync {}", self.dir.display());
            return self.fail(StorageError::Io { context, source });
        }
        Ok(())
    }

    /// Remove the partition directory and everything in it, durably (the parent directory
    /// is fsync'd, so the partition does not come back after a power loss).
    pub fn delete(self) -> Result<(), StorageError> {
        let (fs, dir) = (Arc::clone(&self.fs), self.dir.clone());
        drop(self);
        fs.remove_dir_all(&dir)
            .map_err(io_err(format!("deleting {}", dir.display())))?;
        match parent_dir(&dir) {
            Some(parent) => fs
                .sync_dir(parent)
                .map_err(io_err(format!("fsync {}", parent.display()))),
            None => Ok(()),
        }
    }
}
