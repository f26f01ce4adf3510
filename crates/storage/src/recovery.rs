//! Log recovery at open (contract: docs/storage.md, "Recovery: what survives a crash").
//!
//! Built as openraft's engine is: the decisions are pure functions of what is on disk and
//! return the commands to perform, so a test can ask "given these files and checkpoints,
//! what survives?" without doing it. `Log::open_in` runs the steps in order:
//! 1. [`Inventory::read`] (I/O): the directory's entries with their sizes, and the
//!    checkpoints as read.
//! 2. [`DirectoryPlan::decide`] (pure): complete a committed clean, remove leftovers (tmp
//!    files, orphan index files, cleaned files of cleans that never committed) and finish
//!    a deletion below the log start offset that a crash interrupted. [`apply`]ed before
//!    any segment is opened.
//! 3. [`ScanDriver`] (pure state machine): which segment to walk next, with or without
//!    CRC, whether to check a clean shutdown's tail, where to restart, where to cut.
//!    [`scan`] does the walking (`Segment::scan`, `Segment::tail_is_consistent`) and
//!    reports each result back.
//! 4. [`RecoveryPlan::decide`] (pure): the cut, the recovery point, the log start offset,
//!    the leader epochs, the index files and checkpoints to write, the offline checkpoint
//!    to remove. [`apply`]ed last.
//!
//! Each [`Command`] is the same file operation (or fixed sequence of them) recovery made
//! before it was split, in the same order; an index removal still tolerates a missing
//! file. So the crash tests' numbering of operations means what it meant. Both plans have
//! a `validate()` of their invariants, called after every decision (`debug_assert!` here,
//! `assert!` in tests).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::checkpoint::{
    self, CleanSwap, CleanerCheckpoint, LogCheckpoint, CLEANER_CHECKPOINT_FILE, CLEAN_SWAP_FILE,
    OFFLINE_CHECKPOINT_FILE, TMP_SUFFIX,
};
use crate::fs::Fs;
use crate::log::{io_err, RecoveryReport, StorageError};
use crate::segment::{
    file_name, parse_log_file_name, Segment, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX,
    LOG_SUFFIX, SCAN_CHUNK_BYTES, TIME_INDEX_SUFFIX,
};

/// What the partition directory holds at open, before recovery changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inventory {
    /// The directory (for log messages; the decisions read nothing from it).
    pub dir: PathBuf,
    /// Every entry by name, with its length in bytes (0 for what is not a file).
    pub files: BTreeMap<String, u64>,
    /// `cleaner-swap`: a clean committed but not finished.
    pub clean_swap: Option<CleanSwap>,
    /// `log-checkpoint`, None if absent or unreadable.
    pub log_checkpoint: Option<LogCheckpoint>,
    /// `cleaner-checkpoint`, None if absent or unreadable.
    pub cleaner_checkpoint: Option<CleanerCheckpoint>,
    /// `leader-epoch-checkpoint`, None if absent or unreadable (then rebuilt from batches).
    pub leader_epochs: Option<Vec<(i32, i64)>>,
    /// `offline-checkpoint`'s recovery point, None if absent or torn. Whether the file is
    /// there at all is in `files`.
    pub offline_recovery_point: Option<i64>,
}

impl Inventory {
    /// List `dir` and read its checkpoints. A malformed `cleaner-swap` is an error (see
    /// `checkpoint::read_clean_swap`); other unreadable checkpoints read as None.
    pub fn read(fs: &dyn Fs, dir: &Path) -> Result<Inventory, StorageError> {
        let in_dir = |what: &str| format!("{what} in log directory {}", dir.display());
        let clean_swap = checkpoint::read_clean_swap(fs, dir)
            .map_err(io_err(in_dir("completing an interrupted clean")))?;
        let mut files = BTreeMap::new();
        let names = fs
            .list_dir(dir)
            .map_err(io_err(format!("listing log directory {}", dir.display())))?;
        for name in names {
            let path = dir.join(&name);
            let len = fs
                .file_len(&path)
                .map_err(io_err(format!("reading {}", path.display())))?;
            files.insert(name, len.unwrap_or(0));
        }
        let log_checkpoint = checkpoint::read_log_checkpoint(fs, dir)
            .map_err(io_err(in_dir("reading checkpoint")))?;
        let cleaner_checkpoint = checkpoint::read_cleaner_checkpoint(fs, dir)
            .map_err(io_err(in_dir("reading cleaner checkpoint")))?;
        let leader_epochs = checkpoint::read_leader_epochs(fs, dir)
            .map_err(io_err(in_dir("reading leader-epoch checkpoint")))?;
        let offline_recovery_point = checkpoint::read_offline_checkpoint(fs, dir)
            .map_err(io_err(in_dir("reading offline checkpoint")))?;
        Ok(Inventory {
            dir: dir.to_owned(),
            files,
            clean_swap,
            log_checkpoint,
            cleaner_checkpoint,
            leader_epochs,
            offline_recovery_point,
        })
    }

    fn has_offline_checkpoint(&self) -> bool {
        self.files.contains_key(OFFLINE_CHECKPOINT_FILE)
    }

    /// The offset from which nothing is trusted because the log went offline there (see
    /// checkpoint.rs). It was written from a recovery point never below the checkpointed
    /// one; one below it is not the file that was written (torn by a power loss): ignored.
    pub fn offline_cut(&self) -> Option<i64> {
        let ck = self.log_checkpoint;
        self.offline_recovery_point.filter(|&rp| {
            let consistent = ck.is_none_or(|c| rp >= c.recovery_point);
            if !consistent {
                tracing::warn!(dir = %self.dir.display(), offline_recovery_point = rp,
                    "offline checkpoint below the log checkpoint ignored");
            }
            consistent
        })
    }
}

/// One step of recovery: a file operation, or a fixed sequence of them on one segment.
/// File names are relative to the partition directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Remove `<base>.index` and `<base>.timeindex`, each only if present.
    RemoveIndexes { base: i64 },
    /// Rename `<base>.log.cleaned` over `<base>.log` (replaying a committed clean).
    InstallCleaned { base: i64 },
    /// Remove a file that is present.
    RemoveFile { name: String },
    /// Write `cleaner-checkpoint` atomically (tmp, fsync, rename, directory fsync).
    WriteCleanerCheckpoint(CleanerCheckpoint),
    /// Remove a segment: its index files (each only if present), then its `.log`, so a
    /// crash midway leaves a `.log` the next open sees again, never an orphan index.
    DeleteSegment { base: i64 },
    /// Cut the segment's `.log` to `len_bytes` (the valid prefix the scan found), fsync it.
    Truncate { base: i64, len_bytes: u64 },
    /// Create an empty `.log` at `base` (the log had no segment).
    CreateSegment { base: i64 },
    /// fsync the segment's `.log`: what a scan accepted may be only in the page cache.
    FsyncSegment { base: i64 },
    /// Write and fsync the index files of a closed segment whose index was rebuilt.
    WriteIndexes { base: i64 },
    /// Write `leader-epoch-checkpoint` atomically.
    WriteLeaderEpochs(Vec<(i32, i64)>),
    /// Write `log-checkpoint` atomically (its directory fsync also makes durable every
    /// entry the recovered log relies on).
    WriteLogCheckpoint(LogCheckpoint),
    /// fsync the partition directory.
    SyncDir,
}

impl Command {
    /// A command that only moves or removes names (allowed before segments are opened).
    fn is_by_name(&self) -> bool {
        matches!(
            self,
            Command::RemoveIndexes { .. }
                | Command::InstallCleaned { .. }
                | Command::RemoveFile { .. }
                | Command::WriteCleanerCheckpoint(_)
                | Command::DeleteSegment { .. }
                | Command::SyncDir
        )
    }
}

fn index_names(base: i64) -> [String; 2] {
    [
        file_name(base, INDEX_SUFFIX),
        file_name(base, TIME_INDEX_SUFFIX),
    ]
}

/// The directory entries as `cmd` leaves them. Err if `cmd` needs a file that is not there
/// (the same command would fail on disk).
fn simulate(files: &mut BTreeMap<String, u64>, cmd: &Command) -> Result<(), String> {
    let take = |files: &mut BTreeMap<String, u64>, name: &str| {
        files
            .remove(name)
            .ok_or_else(|| format!("{cmd:?} needs {name}, which is not there"))
    };
    match cmd {
        Command::RemoveIndexes { base } => {
            for name in index_names(*base) {
                files.remove(&name);
            }
        }
        Command::InstallCleaned { base } => {
            let len = take(files, &file_name(*base, CLEANED_SUFFIX))?;
            files.insert(file_name(*base, LOG_SUFFIX), len);
        }
        Command::RemoveFile { name } => {
            take(files, name)?;
        }
        Command::WriteCleanerCheckpoint(ck) => {
            files.remove(&format!("{CLEANER_CHECKPOINT_FILE}{TMP_SUFFIX}"));
            let len = checkpoint::cleaner_checkpoint_text(*ck).len() as u64;
            files.insert(CLEANER_CHECKPOINT_FILE.to_owned(), len);
        }
        Command::DeleteSegment { base } => {
            for name in index_names(*base) {
                files.remove(&name);
            }
            take(files, &file_name(*base, LOG_SUFFIX))?;
        }
        Command::Truncate { base, len_bytes } => {
            let name = file_name(*base, LOG_SUFFIX);
            let len = files
                .get_mut(&name)
                .ok_or_else(|| format!("{cmd:?}: no {name}"))?;
            *len = *len_bytes;
        }
        Command::CreateSegment { base } => {
            if files.insert(file_name(*base, LOG_SUFFIX), 0).is_some() {
                return Err(format!("{cmd:?}: the segment exists"));
            }
        }
        // Contents the decision does not size; no entry of a segment changes.
        Command::FsyncSegment { .. }
        | Command::WriteIndexes { .. }
        | Command::WriteLeaderEpochs(_)
        | Command::WriteLogCheckpoint(_)
        | Command::SyncDir => {}
    }
    Ok(())
}

/// The index of the segment holding `offset` (the first one if `offset` is below all).
fn segment_containing(bases: &[i64], offset: i64) -> usize {
    bases.partition_point(|&b| b <= offset).saturating_sub(1)
}

/// What to do with the directory before any segment is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectoryPlan {
    pub commands: Vec<Command>,
    /// The segments the commands leave: base offset -> `.log` bytes.
    pub segments: BTreeMap<i64, u64>,
    /// The cleaner checkpoint the log starts with: a replayed clean's, else the one read.
    pub cleaner_checkpoint: CleanerCheckpoint,
}

/// Accumulates commands, keeping track of the directory they leave.
struct Planner {
    files: BTreeMap<String, u64>,
    commands: Vec<Command>,
}

impl Planner {
    fn run(&mut self, cmd: Command) {
        let done = simulate(&mut self.files, &cmd);
        debug_assert!(done.is_ok(), "{done:?}");
        self.commands.push(cmd);
    }
}

impl DirectoryPlan {
    /// Err if a committed clean cannot be completed (a group has neither its cleaned file
    /// nor its `.log`: damaged outside weir).
    pub fn decide(inv: &Inventory) -> Result<DirectoryPlan, String> {
        let dir = &inv.dir;
        let mut p = Planner {
            files: inv.files.clone(),
            commands: Vec::new(),
        };
        let mut cleaner_checkpoint = inv.cleaner_checkpoint;

        // A clean whose commit record is durable: redo the swap from the record
        // (docs/storage.md, "Compaction: crash safety"), the record removed last.
        if let Some(swap) = &inv.clean_swap {
            let bases: Vec<i64> = inv
                .files
                .keys()
                .filter_map(|n| parse_log_file_name(n))
                .collect();
            for &(base, end) in &swap.groups {
                for &b in bases.iter().filter(|&&b| b >= base && b < end) {
                    p.run(Command::RemoveIndexes { base: b });
                }
                let cleaned = file_name(base, CLEANED_SUFFIX);
                if p.files.contains_key(&cleaned) {
                    // Renames are atomic: the cleaned file is whole, the old .log still there.
                    p.run(Command::InstallCleaned { base });
                } else if !bases.contains(&base) {
                    return Err(format!(
                        "interrupted clean in {}: neither {} nor its .log exists",
                        dir.display(),
                        dir.join(cleaned).display()
                    ));
                }
            }
            for &(base, end) in &swap.groups {
                for &b in bases.iter().filter(|&&b| b > base && b < end) {
                    p.run(Command::RemoveFile {
                        name: file_name(b, LOG_SUFFIX),
                    });
                }
            }
            tracing::warn!(dir = %dir.display(), groups = swap.groups.len(),
                "completed a clean interrupted after its commit");
            p.run(Command::WriteCleanerCheckpoint(swap.checkpoint));
            p.run(Command::RemoveFile {
                name: CLEAN_SWAP_FILE.to_owned(),
            });
            p.run(Command::SyncDir);
            cleaner_checkpoint = Some(swap.checkpoint);
        }
        // Cleaned files no commit record names: a clean that never committed.
        let mut removed = false;
        for name in inv.files.keys().filter(|n| n.ends_with(CLEANED_SUFFIX)) {
            if p.files.contains_key(name) {
                p.run(Command::RemoveFile { name: name.clone() });
                removed = true;
            }
        }
        if removed {
            p.run(Command::SyncDir);
        }

        // Stale tmp files of interrupted checkpoint writes go, and files of deleted segments
        // whose file.delete.delay.ms had not passed; index files without their .log go (a
        // deletion that crashed midway).
        let mut bases = BTreeSet::new();
        let mut index_files = Vec::new();
        let names: Vec<String> = p.files.keys().cloned().collect();
        for name in names {
            if name.ends_with(TMP_SUFFIX) || name.ends_with(DELETED_SUFFIX) {
                p.run(Command::RemoveFile { name });
            } else if let Some(base) = parse_log_file_name(&name) {
                bases.insert(base);
            } else if let Some(stem) = name
                .strip_suffix(INDEX_SUFFIX)
                .or_else(|| name.strip_suffix(TIME_INDEX_SUFFIX))
            {
                let base = parse_log_file_name(&format!("{stem}{LOG_SUFFIX}"));
                index_files.push((base, name));
            }
        }
        for (base, name) in index_files {
            if base.is_none_or(|b| !bases.contains(&b)) {
                p.run(Command::RemoveFile { name });
            }
        }

        // Segments below the one holding the log start offset: retention or DeleteRecords
        // checkpointed the new start, then crashed before (durably) deleting them all.
        // Which of their removals survived a power loss is arbitrary, so decide by name
        // only, before anything checks that segments follow each other.
        if let Some(lso) = inv.log_checkpoint.map(|c| c.log_start_offset) {
            let below: Vec<i64> = match bases.range(..=lso).next_back() {
                Some(&keep_from) => bases.range(..keep_from).copied().collect(),
                None => Vec::new(),
            };
            for &base in &below {
                tracing::warn!(dir = %dir.display(), base, log_start_offset = lso,
                    "deleting a segment below the log start offset (interrupted deletion)");
                p.run(Command::DeleteSegment { base });
                bases.remove(&base);
            }
            if !below.is_empty() {
                p.run(Command::SyncDir);
            }
        }

        let segments = bases
            .iter()
            .map(|&b| (b, p.files[&file_name(b, LOG_SUFFIX)]))
            .collect();
        Ok(DirectoryPlan {
            commands: p.commands,
            segments,
            cleaner_checkpoint: cleaner_checkpoint.unwrap_or(CleanerCheckpoint {
                clean_offset: 0,
                delete_horizon_ms: -1,
            }),
        })
    }

    /// The plan's invariants, checked against the inventory it was decided from.
    pub fn validate(&self, inv: &Inventory) -> Result<(), String> {
        let mut files = inv.files.clone();
        for cmd in &self.commands {
            if !cmd.is_by_name() {
                return Err(format!("{cmd:?} before the segments are opened"));
            }
            simulate(&mut files, cmd)?;
        }
        for name in files.keys() {
            let leftover = name.ends_with(TMP_SUFFIX)
                || name.ends_with(DELETED_SUFFIX)
                || name.ends_with(CLEANED_SUFFIX)
                || name == CLEAN_SWAP_FILE;
            if leftover {
                return Err(format!("{name} is left"));
            }
            if let Some(stem) = name
                .strip_suffix(INDEX_SUFFIX)
                .or_else(|| name.strip_suffix(TIME_INDEX_SUFFIX))
            {
                if !files.contains_key(&format!("{stem}{LOG_SUFFIX}")) {
                    return Err(format!("orphan index {name} is left"));
                }
            }
        }
        let left: BTreeMap<i64, u64> = files
            .iter()
            .filter_map(|(n, &len)| parse_log_file_name(n).map(|b| (b, len)))
            .collect();
        if left != self.segments {
            return Err(format!(
                "the commands leave segments {left:?}, the plan says {:?}",
                self.segments
            ));
        }
        // A segment is deleted only below a kept one that starts at or below the log start
        // offset: nothing at or above the first kept segment, never the segment holding
        // the log start itself.
        for cmd in &self.commands {
            if let Command::DeleteSegment { base } = cmd {
                let lso = inv
                    .log_checkpoint
                    .ok_or("a segment deleted without a log checkpoint")?
                    .log_start_offset;
                let first_kept = self.segments.keys().next().copied();
                if first_kept.is_none_or(|k| k <= *base || k > lso) {
                    return Err(format!(
                        "segment {base} deleted, but no later segment at or below the log \
                         start {lso} is kept"
                    ));
                }
            }
        }
        if let Some(ck) = inv.log_checkpoint {
            let at_or_below = self.segments.range(..=ck.log_start_offset).count();
            if at_or_below > 1 {
                return Err(format!(
                    "{at_or_below} segments kept at or below the log start offset {}",
                    ck.log_start_offset
                ));
            }
        }
        let last_delete = self
            .commands
            .iter()
            .rposition(|c| matches!(c, Command::DeleteSegment { .. }));
        let last_sync = self.commands.iter().rposition(|c| *c == Command::SyncDir);
        if last_delete.is_some_and(|d| last_sync.is_none_or(|s| s < d)) {
            return Err("segment deletions are not made durable".into());
        }
        // A replayed clean: every rename and removal before the cleaner checkpoint, the
        // record removed after it, then the directory fsync'd.
        if let Some(swap) = &inv.clean_swap {
            let ck = self
                .commands
                .iter()
                .position(|c| *c == Command::WriteCleanerCheckpoint(swap.checkpoint))
                .ok_or("a committed clean is not completed")?;
            let finish = [
                Command::RemoveFile {
                    name: CLEAN_SWAP_FILE.to_owned(),
                },
                Command::SyncDir,
            ];
            if self.commands.get(ck + 1..ck + 3) != Some(&finish[..]) {
                return Err("the swap record is not removed, durably, right after".into());
            }
            let replays_after = self.commands[ck..].iter().any(|c| {
                matches!(c, Command::InstallCleaned { .. })
                    || matches!(c, Command::RemoveFile { name } if parse_log_file_name(name).is_some())
            });
            if replays_after {
                return Err("a swap step comes after its cleaner checkpoint".into());
            }
            if self.cleaner_checkpoint != swap.checkpoint {
                return Err("the log does not start with the replayed clean's checkpoint".into());
            }
        }
        Ok(())
    }
}

/// What recovery knows of one segment: from its file and index files at open, then from
/// each walk of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentState {
    pub base_offset: i64,
    /// Length of the `.log` file as found.
    pub file_bytes: u64,
    /// Bytes holding whole batches as far as known: the file, unless a walk stopped early.
    pub valid_bytes: u64,
    /// Offset after the last batch, as the index or the latest walk says.
    pub next_offset: i64,
    /// The index files on disk describe exactly the current contents.
    pub indexes_on_disk: bool,
}

impl SegmentState {
    pub fn of(seg: &Segment) -> SegmentState {
        SegmentState {
            base_offset: seg.base_offset,
            file_bytes: seg.size_bytes,
            valid_bytes: seg.size_bytes,
            next_offset: seg.next_offset,
            indexes_on_disk: seg.indexes_on_disk,
        }
    }
}

/// What the scan driver asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanStep {
    /// Walk segment `index` from its start batch by batch (`Segment::scan`), checking each
    /// batch's CRC if `verify_crc`; a batch holding `stop_at` or later is not accepted.
    /// Answer with [`ScanDriver::walked`].
    Walk {
        index: usize,
        verify_crc: bool,
        stop_at: i64,
    },
    /// Check the tail of segment `index` cheaply (`Segment::tail_is_consistent`). Answer
    /// with [`ScanDriver::tail_checked`].
    CheckTail { index: usize },
    /// Nothing more to read: take the result with [`ScanDriver::finish`].
    Done,
}

/// What one walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Walked {
    /// Batches accepted.
    pub batches: u64,
    /// Bytes of the accepted batches (the valid prefix).
    pub valid_bytes: u64,
    /// Offset after the last accepted batch.
    pub next_offset: i64,
    /// Why the walk stopped before the end of the file, if it did.
    pub failure: Option<String>,
    /// `(leader epoch, first offset)` wherever the walk saw the epoch grow
    /// (see [`note_epoch`]).
    pub epochs: Vec<(i32, i64)>,
}

/// Where recovery cuts the log: everything from segment `index`'s valid prefix on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cut {
    pub index: usize,
    pub reason: String,
}

/// Everything the scan learnt, for [`RecoveryPlan::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanResult {
    /// Every segment opened, in offset order, as the walks left them.
    pub segments: Vec<SegmentState>,
    /// The first segment CRC-checked; None if every segment was trusted.
    pub scan_from: Option<usize>,
    pub cut: Option<Cut>,
    /// Batches CRC-checked.
    pub batches_scanned: u64,
    /// Leader epoch starts seen by the walks, epochs strictly increasing.
    pub epochs_seen: Vec<(i32, i64)>,
}

/// Record that a batch starting at `offset` carries `epoch`, if that is a new, greater
/// epoch (negative ones are not recorded, KIP-101).
pub(crate) fn note_epoch(epochs: &mut Vec<(i32, i64)>, epoch: i32, offset: i64) {
    if epoch >= 0 && epochs.last().is_none_or(|&(last, _)| epoch > last) {
        epochs.push((epoch, offset));
    }
}

/// The scan as a state machine without I/O: [`ScanDriver::next_step`] says what to read,
/// the caller reads it and answers. Clean shutdown with a readable checkpoint: segments are
/// trusted (only walked, without CRC, where their index must be rebuilt or the leader
/// epochs recovered), then the last one's tail is checked and the recovery point compared
/// with the log end; either failing restarts with CRC from the relevant segment. Otherwise
/// (or after an offline checkpoint) segments are CRC-checked from the one holding the
/// recovery point. The first bad batch, or a segment not starting where the previous one
/// ends, is the cut.
#[derive(Debug, Clone)]
pub(crate) struct ScanDriver {
    dir: PathBuf,
    segments: Vec<SegmentState>,
    /// The checkpointed recovery point (0 without a checkpoint).
    recovery_point: i64,
    scan_from: Option<usize>,
    stop_at: i64,
    rebuild_epochs: bool,
    /// The segment to look at next, and the offset it must start at.
    at: usize,
    expected: i64,
    tail_checked: bool,
    cut: Option<Cut>,
    done: bool,
    batches_scanned: u64,
    epochs_seen: Vec<(i32, i64)>,
    /// The step handed out and not answered yet.
    pending: Option<ScanStep>,
}

impl ScanDriver {
    pub fn new(inv: &Inventory, clean_shutdown: bool, segments: Vec<SegmentState>) -> ScanDriver {
        let bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
        let ck = inv.log_checkpoint;
        let mut scan_from = if !clean_shutdown || ck.is_none() {
            Some(ck.map_or(0, |c| segment_containing(&bases, c.recovery_point)))
        } else {
            None
        };
        // After the log went offline, batches at or past its recovery point are cut even
        // if they look valid: they may exist only in the page cache (see checkpoint.rs).
        let offline_cut = inv.offline_cut();
        if let Some(rp) = offline_cut {
            let from = segment_containing(&bases, rp);
            scan_from = Some(scan_from.map_or(from, |s| s.min(from)));
        }
        ScanDriver {
            dir: inv.dir.clone(),
            recovery_point: ck.map_or(0, |c| c.recovery_point),
            scan_from,
            stop_at: offline_cut.unwrap_or(i64::MAX),
            rebuild_epochs: inv.leader_epochs.is_none(),
            at: 0,
            expected: bases.first().copied().unwrap_or(0),
            tail_checked: false,
            cut: None,
            done: segments.is_empty(),
            batches_scanned: 0,
            epochs_seen: Vec::new(),
            pending: None,
            segments,
        }
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.dir
            .join(file_name(self.segments[index].base_offset, LOG_SUFFIX))
    }

    pub fn next_step(&mut self) -> ScanStep {
        assert!(self.pending.is_none(), "{:?} not answered", self.pending);
        let step = self.decide_step();
        if step != ScanStep::Done {
            self.pending = Some(step);
        }
        step
    }

    fn decide_step(&mut self) -> ScanStep {
        while !self.done {
            if let Some(seg) = self.segments.get_mut(self.at) {
                let index = self.at;
                if seg.base_offset != self.expected {
                    let reason = format!(
                        "segment {} starts at offset {} but the log before it ends at {}",
                        self.dir
                            .join(file_name(seg.base_offset, LOG_SUFFIX))
                            .display(),
                        seg.base_offset,
                        self.expected
                    );
                    // None of it can be kept.
                    seg.valid_bytes = 0;
                    self.cut = Some(Cut { index, reason });
                    self.done = true;
                    break;
                }
                let verify_crc = self.scan_from.is_some_and(|s| index >= s);
                if verify_crc || !seg.indexes_on_disk || self.rebuild_epochs {
                    return ScanStep::Walk {
                        index,
                        verify_crc,
                        stop_at: self.stop_at,
                    };
                }
                self.expected = seg.next_offset;
                self.at += 1;
                continue;
            }
            if self.cut.is_some() || self.tail_checked || self.scan_from.is_some() {
                self.done = true;
                break;
            }
            // Clean shutdown: check the tail of the last segment cheaply, and that the
            // checkpoint agrees with what is on disk.
            self.tail_checked = true;
            return ScanStep::CheckTail {
                index: self.segments.len() - 1,
            };
        }
        ScanStep::Done
    }

    /// The answer to [`ScanStep::Walk`].
    pub fn walked(&mut self, walked: Walked) {
        let Some(ScanStep::Walk {
            index, verify_crc, ..
        }) = self.pending.take()
        else {
            panic!("walked() answers no walk");
        };
        let seg = &mut self.segments[index];
        seg.valid_bytes = walked.valid_bytes;
        seg.next_offset = walked.next_offset;
        // The walk rebuilt the index in memory; the files describe it no longer.
        seg.indexes_on_disk = false;
        if verify_crc {
            self.batches_scanned += walked.batches;
        }
        for (epoch, offset) in walked.epochs {
            note_epoch(&mut self.epochs_seen, epoch, offset);
        }
        if let Some(reason) = walked.failure {
            if !verify_crc {
                // A trusted segment does not even parse: CRC-check from here.
                tracing::warn!(file = %self.log_path(index).display(), %reason,
                    "trusted segment is inconsistent, recovering from it");
                self.scan_from = Some(index);
                return;
            }
            let reason = format!("{reason} in {}", self.log_path(index).display());
            self.cut = Some(Cut { index, reason });
            self.done = true;
            return;
        }
        self.expected = walked.next_offset;
        self.at += 1;
    }

    /// The answer to [`ScanStep::CheckTail`].
    pub fn tail_checked(&mut self, consistent: bool) {
        let Some(ScanStep::CheckTail { index: last }) = self.pending.take() else {
            panic!("tail_checked() answers no tail check");
        };
        let log_end_offset = self.segments[last].next_offset;
        let rp = self.recovery_point;
        let restart = if !consistent {
            tracing::warn!(file = %self.log_path(last).display(),
                "tail of the last segment is inconsistent despite a clean shutdown");
            Some(last)
        } else if rp < log_end_offset {
            tracing::warn!(dir = %self.dir.display(), recovery_point = rp, log_end_offset,
                "clean shutdown but data past the recovery point; recovering");
            let bases: Vec<i64> = self.segments.iter().map(|s| s.base_offset).collect();
            Some(segment_containing(&bases, rp))
        } else {
            None
        };
        match restart {
            Some(r) => {
                self.scan_from = Some(r);
                self.at = r;
                self.expected = self.segments[r].base_offset;
            }
            None => self.done = true,
        }
    }

    pub fn finish(self) -> ScanResult {
        assert!(
            self.done && self.pending.is_none(),
            "the scan is not finished"
        );
        ScanResult {
            segments: self.segments,
            scan_from: self.scan_from,
            cut: self.cut,
            batches_scanned: self.batches_scanned,
            epochs_seen: self.epochs_seen,
        }
    }
}

/// Run `driver` over the opened `segments` (by base offset, as listed to the driver).
pub(crate) fn scan(
    mut driver: ScanDriver,
    segments: &mut BTreeMap<i64, Segment>,
    index_interval_bytes: u64,
) -> Result<ScanResult, StorageError> {
    let bases: Vec<i64> = segments.keys().copied().collect();
    let mut chunk = Vec::with_capacity(SCAN_CHUNK_BYTES);
    loop {
        match driver.next_step() {
            ScanStep::Walk {
                index,
                verify_crc,
                stop_at,
            } => {
                let seg = segments.get_mut(&bases[index]).expect("listed segment");
                let mut epochs = Vec::new();
                let mut on_batch = |h: &BatchHeader| {
                    note_epoch(&mut epochs, h.partition_leader_epoch, h.base_offset)
                };
                let out = seg
                    .scan(
                        verify_crc,
                        index_interval_bytes,
                        stop_at,
                        &mut chunk,
                        &mut on_batch,
                    )
                    .map_err(io_err(format!("scanning {}", seg.log_path.display())))?;
                driver.walked(Walked {
                    batches: out.batches,
                    valid_bytes: seg.size_bytes,
                    next_offset: seg.next_offset,
                    failure: out.failure,
                    epochs,
                });
            }
            ScanStep::CheckTail { index } => {
                let seg = &segments[&bases[index]];
                let consistent = seg.tail_is_consistent().map_err(io_err(format!(
                    "checking tail of {}",
                    seg.log_path.display()
                )))?;
                driver.tail_checked(consistent);
            }
            ScanStep::Done => return Ok(driver.finish()),
        }
    }
}

/// What recovery does after the scan, and the log it leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecoveryPlan {
    pub commands: Vec<Command>,
    /// The segments the log opens with, in offset order, as the commands leave them.
    pub segments: Vec<SegmentState>,
    pub log_start_offset: i64,
    pub recovery_point: i64,
    pub leader_epochs: Vec<(i32, i64)>,
    pub report: RecoveryReport,
}

impl RecoveryPlan {
    pub fn decide(inv: &Inventory, scan: ScanResult) -> RecoveryPlan {
        if scan.segments.is_empty() {
            return RecoveryPlan::first_segment(inv);
        }
        let dir = &inv.dir;
        let path = |base: i64| dir.join(file_name(base, LOG_SUFFIX));
        let ck = inv.log_checkpoint;
        let bases: Vec<i64> = scan.segments.iter().map(|s| s.base_offset).collect();
        let mut segments = scan.segments;
        let mut commands = Vec::new();
        let mut report = RecoveryReport {
            batches_scanned: scan.batches_scanned,
            ..RecoveryReport::default()
        };

        if let Some(Cut { index: at, reason }) = scan.cut {
            let mut cut_bytes = 0u64;
            for seg in &segments[at + 1..] {
                tracing::warn!(file = %path(seg.base_offset).display(), position = 0,
                    bytes = seg.file_bytes, %reason,
                    "recovery deletes segment after the truncation point");
                cut_bytes += seg.file_bytes;
                commands.push(Command::DeleteSegment {
                    base: seg.base_offset,
                });
            }
            segments.truncate(at + 1);
            let seg = &mut segments[at];
            debug_assert!(seg.valid_bytes <= seg.file_bytes);
            let (base, len, valid) = (seg.base_offset, seg.file_bytes, seg.valid_bytes);
            cut_bytes += len - valid;
            if valid == 0 && at > 0 {
                tracing::warn!(file = %path(base).display(), position = 0, bytes = len,
                    %reason, "recovery deletes segment");
                commands.push(Command::DeleteSegment { base });
                segments.truncate(at);
            } else {
                tracing::warn!(file = %path(base).display(), position = valid,
                    bytes = len - valid, %reason, "recovery truncates segment");
                // Its index files describe the old contents; should the segment ever grow
                // back to their size with other batches, they would look valid.
                commands.push(Command::RemoveIndexes { base });
                commands.push(Command::Truncate {
                    base,
                    len_bytes: valid,
                });
                seg.indexes_on_disk = false;
                seg.file_bytes = valid;
            }
            commands.push(Command::SyncDir);
            report.bytes_truncated = cut_bytes;
            report.truncation_reason = Some(reason);
        }

        let first_base = segments[0].base_offset;
        let log_end_offset = segments.last().expect("segment").next_offset;
        let recovered = scan.scan_from.is_some();
        let recovery_point = if let Some(from) = scan.scan_from {
            // What the scan accepted may sit only in the page cache of a crashed process;
            // make it durable now so the recovery point can be the log end.
            let from_base = bases[from.min(bases.len() - 1)];
            for seg in segments.iter().filter(|s| s.base_offset >= from_base) {
                commands.push(Command::FsyncSegment {
                    base: seg.base_offset,
                });
            }
            log_end_offset
        } else {
            let rp = ck.map_or(log_end_offset, |c| c.recovery_point);
            if rp > log_end_offset {
                tracing::warn!(dir = %dir.display(), recovery_point = rp, log_end_offset,
                    "checkpointed recovery point is past the log end: data was lost outside weir");
            }
            rp.min(log_end_offset)
        };
        let checkpointed_rp = ck.map_or(0, |c| c.recovery_point);
        if report.bytes_truncated > 0 && checkpointed_rp > log_end_offset {
            tracing::warn!(dir = %dir.display(), recovery_point = checkpointed_rp, log_end_offset,
                "recovery truncated below the recovery point: fsync'd data was corrupt");
        }
        let log_start_offset = ck
            .map_or(first_base, |c| c.log_start_offset)
            .clamp(first_base, log_end_offset.max(first_base));

        let mut leader_epochs = inv.leader_epochs.clone().unwrap_or_default();
        for &(epoch, offset) in &scan.epochs_seen {
            if leader_epochs.last().is_none_or(|&(last, _)| epoch > last) {
                leader_epochs.push((epoch, offset));
            }
        }
        // Epochs that start at or past the log end describe data that is gone (KIP-101).
        leader_epochs.retain(|&(_, offset)| offset < log_end_offset);

        // Rebuilt indexes of closed segments are written now; the active one's at roll or
        // close.
        let active = segments.len() - 1;
        for seg in &mut segments[..active] {
            if !seg.indexes_on_disk {
                commands.push(Command::WriteIndexes {
                    base: seg.base_offset,
                });
                seg.indexes_on_disk = true;
            }
        }
        if inv.leader_epochs.as_deref() != Some(&leader_epochs[..]) {
            commands.push(Command::WriteLeaderEpochs(leader_epochs.clone()));
        }
        if recovered || ck.is_none() {
            commands.push(Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point,
                log_start_offset,
            }));
        }
        if inv.has_offline_checkpoint() {
            // Only once the cut is durable; and durably, before any append can be
            // acknowledged past its offset, or a later crash would cut those too.
            commands.push(Command::RemoveFile {
                name: OFFLINE_CHECKPOINT_FILE.to_owned(),
            });
            commands.push(Command::SyncDir);
        }
        RecoveryPlan {
            commands,
            segments,
            log_start_offset,
            recovery_point,
            leader_epochs,
            report,
        }
    }

    /// No segment at all: an empty one at the checkpointed log start offset (0 for a new
    /// partition).
    fn first_segment(inv: &Inventory) -> RecoveryPlan {
        let base = inv.log_checkpoint.map_or(0, |c| c.log_start_offset);
        let mut commands = Vec::new();
        if inv.has_offline_checkpoint() {
            // Nothing to cut; the directory fsync below makes the removal durable.
            commands.push(Command::RemoveFile {
                name: OFFLINE_CHECKPOINT_FILE.to_owned(),
            });
        }
        commands.push(Command::CreateSegment { base });
        commands.push(Command::SyncDir);
        if inv.leader_epochs.as_ref().is_none_or(|e| !e.is_empty()) {
            commands.push(Command::WriteLeaderEpochs(Vec::new()));
        }
        commands.push(Command::WriteLogCheckpoint(LogCheckpoint {
            recovery_point: base,
            log_start_offset: base,
        }));
        RecoveryPlan {
            commands,
            segments: vec![SegmentState {
                base_offset: base,
                file_bytes: 0,
                valid_bytes: 0,
                next_offset: base,
                indexes_on_disk: false,
            }],
            log_start_offset: base,
            recovery_point: base,
            leader_epochs: Vec::new(),
            report: RecoveryReport::default(),
        }
    }

    /// Offset after the last batch the log keeps.
    pub fn log_end_offset(&self) -> i64 {
        self.segments.last().map_or(0, |s| s.next_offset)
    }

    /// The plan's invariants: the log it leaves is well-formed, and the commands do what
    /// the plan says, in an order that is safe against a crash between any two of them.
    pub fn validate(&self) -> Result<(), String> {
        let first = self.segments.first().ok_or("no segment kept")?;
        let mut expected = first.base_offset;
        for seg in &self.segments {
            let base = seg.base_offset;
            if base != expected {
                return Err(format!("segment {base} does not start at {expected}"));
            }
            if seg.next_offset < base || (seg.valid_bytes == 0) != (seg.next_offset == base) {
                return Err(format!("segment {base} ends at {}", seg.next_offset));
            }
            if seg.valid_bytes != seg.file_bytes {
                return Err(format!(
                    "segment {base} keeps bytes the scan did not accept"
                ));
            }
            expected = seg.next_offset;
        }
        let (first_base, end) = (first.base_offset, self.log_end_offset());
        let last = self.segments.last().expect("checked above");
        if !(first_base <= self.log_start_offset && self.log_start_offset <= end) {
            return Err(format!(
                "log start offset {} outside [{first_base}, {end}]",
                self.log_start_offset
            ));
        }
        if self.recovery_point > end {
            return Err(format!(
                "recovery point {} past the log end {end}",
                self.recovery_point
            ));
        }
        for w in self.leader_epochs.windows(2) {
            if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                return Err(format!(
                    "leader epochs out of order: {:?}",
                    self.leader_epochs
                ));
            }
        }
        if self.leader_epochs.last().is_some_and(|&(_, o)| o >= end) {
            return Err(format!(
                "a leader epoch starts at or past the log end {end}"
            ));
        }
        for seg in &self.segments[..self.segments.len() - 1] {
            if !seg.indexes_on_disk {
                return Err(format!(
                    "closed segment {} is left without index files",
                    seg.base_offset
                ));
            }
        }

        let kept = |base: i64| self.segments.iter().any(|s| s.base_offset == base);
        let position = |pred: &dyn Fn(&Command) -> bool| self.commands.iter().position(pred);
        let is_cut = |c: &Command| {
            matches!(
                c,
                Command::DeleteSegment { .. }
                    | Command::Truncate { .. }
                    | Command::RemoveIndexes { .. }
            )
        };
        let mut deleted = Vec::new();
        let mut truncated = None;
        for (i, cmd) in self.commands.iter().enumerate() {
            match *cmd {
                Command::DeleteSegment { base } => {
                    if base <= last.base_offset {
                        return Err(format!(
                            "segment {base} deleted, not past the last kept one"
                        ));
                    }
                    deleted.push(base);
                }
                Command::RemoveIndexes { base } => {
                    if self.commands.get(i + 1).is_none_or(
                        |c| !matches!(c, Command::Truncate { base: b, .. } if *b == base),
                    ) {
                        return Err(format!("indexes of {base} removed without a truncation"));
                    }
                }
                Command::Truncate { base, len_bytes } => {
                    if truncated.replace(base).is_some() {
                        return Err("more than one truncation".into());
                    }
                    if base != last.base_offset || len_bytes != last.file_bytes {
                        return Err(format!(
                            "truncation of {base} to {len_bytes}, not of the last kept segment"
                        ));
                    }
                }
                Command::FsyncSegment { base } | Command::WriteIndexes { base } => {
                    if !kept(base) {
                        return Err(format!("{cmd:?} of a segment the log does not keep"));
                    }
                    if matches!(cmd, Command::WriteIndexes { .. }) && base == last.base_offset {
                        return Err("indexes of the active segment written at open".into());
                    }
                }
                Command::CreateSegment { base } => {
                    let empty = self.segments.len() == 1 && first.file_bytes == 0;
                    if base != first_base || !empty || !deleted.is_empty() {
                        return Err(format!("{cmd:?} beside other segments"));
                    }
                }
                Command::RemoveFile { ref name } => {
                    if name != OFFLINE_CHECKPOINT_FILE {
                        return Err(format!("{name} removed after the scan"));
                    }
                    if self
                        .commands
                        .get(i + 1..)
                        .is_none_or(|r| !r.contains(&Command::SyncDir))
                    {
                        return Err("the offline checkpoint's removal is not made durable".into());
                    }
                }
                Command::WriteLogCheckpoint(ck) => {
                    let want = LogCheckpoint {
                        recovery_point: self.recovery_point,
                        log_start_offset: self.log_start_offset,
                    };
                    if ck != want {
                        return Err(format!("checkpoint {ck:?} written, the log has {want:?}"));
                    }
                }
                Command::WriteLeaderEpochs(ref epochs) => {
                    if *epochs != self.leader_epochs {
                        return Err(format!("leader epochs {epochs:?} written"));
                    }
                }
                Command::InstallCleaned { .. } | Command::WriteCleanerCheckpoint(_) => {
                    return Err(format!("{cmd:?} after the scan"));
                }
                Command::SyncDir => {}
            }
        }
        // The segments after the cut go in offset order, then the cut segment itself if
        // nothing of it is left: a crash between two deletions leaves a shorter tail.
        let after_cut = match deleted.split_last() {
            Some((&cut, rest)) if rest.first().is_some_and(|&f| cut < f) => rest,
            _ => &deleted[..],
        };
        if after_cut.windows(2).any(|w| w[1] <= w[0]) {
            return Err(format!("segments deleted out of order: {deleted:?}"));
        }
        if let Some(t) = truncated {
            if deleted.iter().any(|&d| d < t) {
                return Err("a deleted segment lies below the truncated one".into());
            }
        }
        // The cut is durable before anything builds on it, and the offline checkpoint
        // outlives it.
        if let Some(last_cut) = self.commands.iter().rposition(is_cut) {
            let sync = self.commands[last_cut..]
                .iter()
                .position(|c| *c == Command::SyncDir)
                .map(|p| p + last_cut)
                .ok_or("the cut is not made durable")?;
            if self.commands[..sync].iter().any(|c| !is_cut(c)) {
                return Err("something comes before the cut is durable".into());
            }
        }
        // The recovery point is the log end only once what the scan accepted is fsync'd.
        let last_fsync = self
            .commands
            .iter()
            .rposition(|c| matches!(c, Command::FsyncSegment { .. }));
        let checkpoint = position(&|c| matches!(c, Command::WriteLogCheckpoint(_)));
        if let Some(f) = last_fsync {
            if checkpoint.is_none_or(|c| c < f) || self.recovery_point != end {
                return Err("recovered, but the checkpoint does not follow the fsyncs".into());
            }
        }
        let offline = position(&|c| matches!(c, Command::RemoveFile { .. }));
        if let Some(o) = offline {
            if self.commands[o..].iter().any(is_cut)
                || self.commands[o..]
                    .iter()
                    .any(|c| matches!(c, Command::FsyncSegment { .. }))
            {
                return Err("the offline checkpoint goes before the cut is durable".into());
            }
        }
        Ok(())
    }
}

/// Remove a segment's index files by name, each only if present.
fn remove_index_files(fs: &dyn Fs, dir: &Path, base: i64) -> io::Result<()> {
    for name in index_names(base) {
        match fs.remove_file(&dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Perform `commands` in order on `dir`. Segment commands act on the opened `segments`
/// (a deleted one leaves the map, a created one joins it); by-name commands need none.
pub(crate) fn apply(
    commands: &[Command],
    fs: &dyn Fs,
    dir: &Path,
    segments: &mut BTreeMap<i64, Segment>,
) -> Result<(), StorageError> {
    let log_path = |base: i64| dir.join(file_name(base, LOG_SUFFIX));
    let in_dir = |what: &str| format!("{what} in log directory {}", dir.display());
    for cmd in commands {
        match cmd {
            Command::RemoveIndexes { base } => {
                let removed = match segments.get_mut(base) {
                    Some(seg) => seg.remove_index_files(fs),
                    None => remove_index_files(fs, dir, *base),
                };
                removed.map_err(io_err(format!(
                    "removing indexes of {}",
                    log_path(*base).display()
                )))?;
            }
            Command::InstallCleaned { base } => {
                let cleaned = dir.join(file_name(*base, CLEANED_SUFFIX));
                fs.rename(&cleaned, &log_path(*base))
                    .map_err(io_err(in_dir("completing an interrupted clean")))?;
            }
            Command::RemoveFile { name } => {
                let path = dir.join(name);
                fs.remove_file(&path)
                    .map_err(io_err(format!("removing {}", path.display())))?;
            }
            Command::WriteCleanerCheckpoint(ck) => {
                checkpoint::write_cleaner_checkpoint(fs, dir, *ck)
                    .map_err(io_err(in_dir("writing cleaner checkpoint")))?;
            }
            Command::DeleteSegment { base } => {
                let deleted = match segments.remove(base) {
                    Some(seg) => seg.delete_files(fs),
                    None => remove_index_files(fs, dir, *base)
                        .and_then(|()| fs.remove_file(&log_path(*base))),
                };
                deleted.map_err(io_err(format!("deleting {}", log_path(*base).display())))?;
            }
            Command::Truncate { base, len_bytes } => {
                let seg = segments.get_mut(base).expect("truncated segment is open");
                debug_assert_eq!(seg.size_bytes, *len_bytes, "the scan left the valid prefix");
                seg.size_bytes = *len_bytes;
                seg.truncate_file()
                    .map_err(io_err(format!("truncating {}", seg.log_path.display())))?;
            }
            Command::CreateSegment { base } => {
                let seg = Segment::create(fs, dir, *base)
                    .map_err(io_err(in_dir("creating first segment")))?;
                segments.insert(*base, seg);
            }
            Command::FsyncSegment { base } => {
                let seg = &segments[base];
                seg.file
                    .sync_all()
                    .map_err(io_err(format!("fsync {}", seg.log_path.display())))?;
            }
            Command::WriteIndexes { base } => {
                let seg = segments.get_mut(base).expect("indexed segment is open");
                seg.write_indexes(fs).map_err(io_err(format!(
                    "writing indexes of {}",
                    seg.log_path.display()
                )))?;
            }
            Command::WriteLeaderEpochs(epochs) => {
                checkpoint::write_leader_epochs(fs, dir, epochs).map_err(io_err(format!(
                    "writing leader-epoch checkpoint in {}",
                    dir.display()
                )))?;
            }
            Command::WriteLogCheckpoint(ck) => {
                checkpoint::write_log_checkpoint(fs, dir, *ck)
                    .map_err(io_err(format!("writing checkpoint in {}", dir.display())))?;
            }
            Command::SyncDir => {
                fs.sync_dir(dir)
                    .map_err(io_err(format!("fsync log directory {}", dir.display())))?;
            }
        }
    }
    Ok(())
}

/// Open the segments a [`DirectoryPlan`] left, loading their index files if intact.
pub(crate) fn open_segments(
    fs: &dyn Fs,
    dir: &Path,
    bases: impl IntoIterator<Item = i64>,
) -> Result<BTreeMap<i64, Segment>, StorageError> {
    let mut segments = BTreeMap::new();
    for base in bases {
        let mut seg = Segment::open(fs, dir, base).map_err(io_err(format!(
            "opening segment {base} in log directory {}",
            dir.display()
        )))?;
        seg.load_indexes(fs).map_err(io_err(format!(
            "loading indexes of {}",
            seg.log_path.display()
        )))?;
        segments.insert(base, seg);
    }
    Ok(segments)
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
