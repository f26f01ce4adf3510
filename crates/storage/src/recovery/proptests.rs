//! Property tests of recovery's decisions against a model directory: segments as lists of
//! batches (some corrupt), index files as the sizes and ends they claim, checkpoints as
//! values. The model answers the scan driver's steps and carries out the commands, so
//! "recover, then recover what that left" runs without a file system.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::checkpoint::{LEADER_EPOCH_CHECKPOINT_FILE, LOG_CHECKPOINT_FILE};

/// A batch as stored: `base_offset` is what its header says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    base_offset: i64,
    records: i64,
    bytes: u64,
    crc_ok: bool,
    epoch: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SegmentFile {
    batches: Vec<Batch>,
    /// Bytes after the last batch that are no whole batch (a torn write).
    torn_bytes: u64,
}

impl SegmentFile {
    fn len(&self) -> u64 {
        self.batches.iter().map(|b| b.bytes).sum::<u64>() + self.torn_bytes
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum File {
    Segment(SegmentFile),
    /// A `.index`: the `.log` size it describes and the end offset it claims.
    Index {
        log_bytes: u64,
        next_offset: i64,
    },
    Other(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Disk {
    files: BTreeMap<String, File>,
    log_checkpoint: Option<LogCheckpoint>,
    cleaner_checkpoint: Option<CleanerCheckpoint>,
    leader_epochs: Option<Vec<(i32, i64)>>,
    offline_recovery_point: Option<i64>,
    clean_swap: Option<CleanSwap>,
}

impl Disk {
    fn inventory(&self) -> Inventory {
        let files = self
            .files
            .iter()
            .map(|(n, f)| {
                let len = match f {
                    File::Segment(s) => s.len(),
                    File::Index { .. } => 28,
                    File::Other(len) => *len,
                };
                (n.clone(), len)
            })
            .collect();
        Inventory {
            dir: PathBuf::from("/d"),
            files,
            clean_swap: self.clean_swap.clone(),
            log_checkpoint: self.log_checkpoint,
            cleaner_checkpoint: self.cleaner_checkpoint,
            leader_epochs: self.leader_epochs.clone(),
            offline_recovery_point: self.offline_recovery_point,
        }
    }

    fn segment(&self, base: i64) -> &SegmentFile {
        match self.files.get(&file_name(base, LOG_SUFFIX)) {
            Some(File::Segment(s)) => s,
            other => panic!("segment {base}: {other:?}"),
        }
    }

    fn segment_mut(&mut self, base: i64) -> &mut SegmentFile {
        match self.files.get_mut(&file_name(base, LOG_SUFFIX)) {
            Some(File::Segment(s)) => s,
            other => panic!("segment {base}: {other:?}"),
        }
    }

    /// `Segment::open` + `load_indexes`.
    fn open(&self, base: i64) -> SegmentState {
        let bytes = self.segment(base).len();
        let index = self.files.get(&file_name(base, INDEX_SUFFIX));
        let time_index = self.files.get(&file_name(base, TIME_INDEX_SUFFIX));
        let loaded = match (index, time_index) {
            (
                Some(&File::Index {
                    log_bytes,
                    next_offset,
                }),
                Some(_),
            ) if log_bytes == bytes
                && next_offset >= base
                && (bytes == 0) == (next_offset == base) =>
            {
                Some(next_offset)
            }
            _ => None,
        };
        SegmentState {
            base_offset: base,
            file_bytes: bytes,
            valid_bytes: bytes,
            next_offset: loaded.unwrap_or(base),
            indexes_on_disk: loaded.is_some(),
        }
    }

    /// `Segment::scan`.
    fn walk(&self, base: i64, verify_crc: bool, stop_at: i64) -> Walked {
        let seg = self.segment(base);
        let mut w = Walked {
            batches: 0,
            valid_bytes: 0,
            next_offset: base,
            failure: None,
            epochs: Vec::new(),
        };
        for b in &seg.batches {
            let why = if b.base_offset != w.next_offset {
                "base offset"
            } else if b.base_offset + b.records > stop_at {
                "past the offline recovery point"
            } else if verify_crc && !b.crc_ok {
                "crc mismatch"
            } else {
                w.batches += 1;
                w.valid_bytes += b.bytes;
                w.next_offset += b.records;
                note_epoch(&mut w.epochs, b.epoch, b.base_offset);
                continue;
            };
            w.failure = Some(why.to_owned());
            return w;
        }
        if seg.torn_bytes > 0 {
            w.failure = Some("torn batch".to_owned());
        }
        w
    }

    /// `Segment::tail_is_consistent` (walking from the start: stricter, never wrong).
    fn tail_is_consistent(&self, base: i64, next_offset: i64) -> bool {
        let w = self.walk(base, false, i64::MAX);
        w.failure.is_none() && w.next_offset == next_offset
    }

    fn take(&mut self, name: &str) -> File {
        self.files
            .remove(name)
            .unwrap_or_else(|| panic!("{name} is not there"))
    }

    /// Carry out `commands` as `apply` would on disk. `after` is the plan whose segment
    /// states the written indexes describe.
    fn apply(&mut self, commands: &[Command], after: Option<&RecoveryPlan>) {
        for cmd in commands {
            match cmd {
                Command::RemoveIndexes { base } => {
                    for name in index_names(*base) {
                        self.files.remove(&name);
                    }
                }
                Command::InstallCleaned { base } => {
                    let f = self.take(&file_name(*base, CLEANED_SUFFIX));
                    self.files.insert(file_name(*base, LOG_SUFFIX), f);
                }
                Command::RemoveFile { name } => {
                    self.take(name);
                    if name == OFFLINE_CHECKPOINT_FILE {
                        self.offline_recovery_point = None;
                    }
                    if name == CLEAN_SWAP_FILE {
                        self.clean_swap = None;
                    }
                }
                Command::WriteCleanerCheckpoint(ck) => {
                    self.cleaner_checkpoint = Some(*ck);
                    self.write(CLEANER_CHECKPOINT_FILE);
                }
                Command::DeleteSegment { base } => {
                    for name in index_names(*base) {
                        self.files.remove(&name);
                    }
                    self.take(&file_name(*base, LOG_SUFFIX));
                }
                Command::Truncate { base, len_bytes } => {
                    let seg = self.segment_mut(*base);
                    let mut kept = 0;
                    seg.batches.retain(|b| {
                        kept += b.bytes;
                        kept <= *len_bytes
                    });
                    seg.torn_bytes = 0;
                    assert_eq!(seg.len(), *len_bytes, "a cut between batches");
                }
                Command::CreateSegment { base } => {
                    let new = File::Segment(SegmentFile::default());
                    assert!(self
                        .files
                        .insert(file_name(*base, LOG_SUFFIX), new)
                        .is_none());
                }
                Command::WriteIndexes { base } => {
                    let state = after
                        .and_then(|p| p.segments.iter().find(|s| s.base_offset == *base))
                        .expect("indexes of a kept segment");
                    let index = File::Index {
                        log_bytes: self.segment(*base).len(),
                        next_offset: state.next_offset,
                    };
                    self.files.insert(file_name(*base, INDEX_SUFFIX), index);
                    self.files
                        .insert(file_name(*base, TIME_INDEX_SUFFIX), File::Other(20));
                }
                Command::WriteLeaderEpochs(epochs) => {
                    self.leader_epochs = Some(epochs.clone());
                    self.write(LEADER_EPOCH_CHECKPOINT_FILE);
                }
                Command::WriteLogCheckpoint(ck) => {
                    self.log_checkpoint = Some(*ck);
                    self.write(LOG_CHECKPOINT_FILE);
                }
                Command::FsyncSegment { .. } | Command::SyncDir => {}
            }
        }
    }

    /// An atomic checkpoint write: the tmp file it goes through is renamed over the name.
    /// Every checkpoint file is 40 bytes in the model: only its value (a field) matters.
    fn write(&mut self, name: &str) {
        self.files.remove(&format!("{name}{TMP_SUFFIX}"));
        self.files.insert(name.to_owned(), File::Other(40));
    }
}

/// Everything one recovery decided.
#[derive(Debug)]
struct Recovered {
    inventory: Inventory,
    dir_plan: DirectoryPlan,
    scan: ScanResult,
    plan: RecoveryPlan,
}

/// Recover `disk` as `Log::open_in` does, with the model in place of the files. None if
/// the directory plan refuses (a committed clean missing its files).
fn recover(disk: &mut Disk, clean_shutdown: bool) -> Option<Recovered> {
    let inventory = disk.inventory();
    let dir_plan = DirectoryPlan::decide(&inventory).ok()?;
    assert_eq!(dir_plan.validate(&inventory), Ok(()), "{dir_plan:#?}");
    disk.apply(&dir_plan.commands, None);
    let mut states: Vec<SegmentState> = dir_plan.segments.keys().map(|&b| disk.open(b)).collect();
    let mut driver = ScanDriver::new(&inventory, clean_shutdown, states.clone());
    loop {
        match driver.next_step() {
            ScanStep::Walk {
                index,
                verify_crc,
                stop_at,
            } => {
                let w = disk.walk(states[index].base_offset, verify_crc, stop_at);
                states[index].next_offset = w.next_offset;
                driver.walked(w);
            }
            ScanStep::CheckTail { index } => {
                let s = states[index];
                driver.tail_checked(disk.tail_is_consistent(s.base_offset, s.next_offset));
            }
            ScanStep::Done => break,
        }
    }
    let scan = driver.finish();
    let plan = RecoveryPlan::decide(&inventory, scan.clone());
    assert_eq!(plan.validate(), Ok(()), "{plan:#?}");
    disk.apply(&plan.commands, Some(&plan));
    Some(Recovered {
        inventory,
        dir_plan,
        scan,
        plan,
    })
}

// ---- generators ----

#[derive(Debug, Clone)]
enum Damage {
    Crc { segment: usize, batch: usize },
    BaseOffset { segment: usize, batch: usize },
    Torn { segment: usize, bytes: u64 },
    Missing { segment: usize },
    StaleIndex { segment: usize },
}

#[derive(Debug, Clone)]
enum Leftover {
    Tmp(&'static str),
    OrphanIndex(i64),
    Cleaned(usize),
    Other(&'static str),
}

#[derive(Debug, Clone)]
enum Epochs {
    Missing,
    AsWritten,
    Prefix(usize),
    PastTheEnd,
}

#[derive(Debug, Clone)]
struct Swap {
    first: usize,
    len: usize,
    /// 0: committed only; 1: renamed; 2: renamed and the merged segments removed.
    stage: u8,
}

#[derive(Debug, Clone)]
struct Spec {
    first_base: i64,
    /// (records, bytes, epoch grows) per batch, per segment; only the last may be empty.
    segments: Vec<Vec<(i64, u64, bool)>>,
    indexed: Vec<bool>,
    damage: Vec<Damage>,
    leftovers: Vec<Leftover>,
    log_checkpoint: Option<(i64, i64)>,
    epochs: Epochs,
    /// None: no offline checkpoint; Some(None): a torn one.
    offline: Option<Option<i64>>,
    swap: Option<Swap>,
    clean_shutdown: bool,
}

fn batch() -> impl Strategy<Value = (i64, u64, bool)> {
    (1i64..4, 61u64..300, proptest::bool::weighted(0.3))
}

fn segments() -> impl Strategy<Value = Vec<Vec<(i64, u64, bool)>>> {
    (
        proptest::collection::vec(proptest::collection::vec(batch(), 1..4), 0..5),
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(mut segs, empty_active)| {
            if empty_active || segs.is_empty() {
                segs.push(Vec::new());
            }
            segs
        })
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..6, 0usize..4).prop_map(|(segment, batch)| Damage::Crc { segment, batch }),
        (0usize..6, 0usize..4).prop_map(|(segment, batch)| Damage::BaseOffset { segment, batch }),
        (0usize..6, 1u64..70).prop_map(|(segment, bytes)| Damage::Torn { segment, bytes }),
        (0usize..6).prop_map(|segment| Damage::Missing { segment }),
        (0usize..6).prop_map(|segment| Damage::StaleIndex { segment }),
    ]
}

fn leftover() -> impl Strategy<Value = Leftover> {
    prop_oneof![
        prop_oneof![
            Just("log-checkpoint.tmp"),
            Just("leader-epoch-checkpoint.tmp"),
            Just("cleaner-checkpoint.tmp"),
        ]
        .prop_map(Leftover::Tmp),
        (0i64..120).prop_map(Leftover::OrphanIndex),
        (0usize..6).prop_map(Leftover::Cleaned),
        prop_oneof![Just("producer-state.snapshot"), Just("aborted.txnindex")]
            .prop_map(Leftover::Other),
    ]
}

fn epochs() -> impl Strategy<Value = Epochs> {
    prop_oneof![
        Just(Epochs::Missing),
        Just(Epochs::AsWritten),
        (0usize..3).prop_map(Epochs::Prefix),
        Just(Epochs::PastTheEnd),
    ]
}

fn spec(damaged: bool) -> impl Strategy<Value = Spec> {
    let damage = if damaged {
        proptest::collection::vec(damage(), 0..3).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let offline = if damaged {
        proptest::option::of(proptest::option::weighted(0.8, 0i64..120)).boxed()
    } else {
        Just(None).boxed()
    };
    (
        (
            0i64..40,
            segments(),
            proptest::collection::vec(proptest::bool::weighted(0.8), 6),
        ),
        damage,
        proptest::collection::vec(leftover(), 0..3),
        proptest::option::weighted(0.8, (0i64..120, 0i64..120)),
        epochs(),
        offline,
        proptest::option::weighted(0.2, (0usize..5, 1usize..4, 0u8..3)),
        any::<bool>(),
    )
        .prop_map(
            |(
                (first_base, segments, indexed),
                damage,
                leftovers,
                ck,
                epochs,
                offline,
                swap,
                clean,
            )| {
                Spec {
                    first_base,
                    segments,
                    indexed,
                    damage,
                    leftovers,
                    log_checkpoint: ck,
                    epochs,
                    offline,
                    swap: swap.map(|(first, len, stage)| Swap { first, len, stage }),
                    clean_shutdown: clean,
                }
            },
        )
}

/// The log as a spec writes it, before any damage.
struct Written {
    /// (base offset, contents): dense and valid.
    segments: Vec<(i64, SegmentFile)>,
    end: i64,
    /// The leader epochs its batches carry.
    epochs: Vec<(i32, i64)>,
}

fn written(spec: &Spec) -> Written {
    let mut next = spec.first_base;
    let mut epoch = 0;
    let mut epochs = Vec::new();
    let mut segments = Vec::new();
    for seg in &spec.segments {
        let base = next;
        let mut file = SegmentFile::default();
        for &(records, bytes, grows) in seg {
            epoch += i32::from(grows);
            note_epoch(&mut epochs, epoch, next);
            file.batches.push(Batch {
                base_offset: next,
                records,
                bytes,
                crc_ok: true,
                epoch,
            });
            next += records;
        }
        segments.push((base, file));
    }
    Written {
        segments,
        end: next,
        epochs,
    }
}

fn build(spec: &Spec) -> Disk {
    let Written {
        mut segments,
        end,
        epochs,
    } = written(spec);
    let mut disk = Disk {
        files: BTreeMap::new(),
        log_checkpoint: None,
        cleaner_checkpoint: None,
        leader_epochs: None,
        offline_recovery_point: None,
        clean_swap: None,
    };
    let n = segments.len();
    // Index files describe the segments as written, before any damage.
    let mut indexes = Vec::new();
    for (i, (base, file)) in segments.iter().enumerate() {
        let next_offset = base + file.batches.iter().map(|b| b.records).sum::<i64>();
        if spec.indexed[i] {
            indexes.push((*base, file.len(), next_offset));
        }
    }
    let mut missing = Vec::new();
    for d in &spec.damage {
        match *d {
            Damage::Crc { segment, batch } | Damage::BaseOffset { segment, batch } => {
                let batches = &mut segments[segment % n].1.batches;
                if !batches.is_empty() {
                    let k = batch % batches.len();
                    match d {
                        Damage::Crc { .. } => batches[k].crc_ok = false,
                        _ => batches[k].base_offset += 1,
                    }
                }
            }
            Damage::Torn { segment, bytes } => segments[segment % n].1.torn_bytes += bytes,
            Damage::Missing { segment } => missing.push(segment % n),
            Damage::StaleIndex { segment } => {
                if let Some(ix) = indexes.get_mut(segment % n.max(1)) {
                    ix.1 += 1;
                }
            }
        }
    }
    for (base, log_bytes, next_offset) in indexes {
        disk.files.insert(
            file_name(base, INDEX_SUFFIX),
            File::Index {
                log_bytes,
                next_offset,
            },
        );
        disk.files
            .insert(file_name(base, TIME_INDEX_SUFFIX), File::Other(20));
    }
    for (i, (base, file)) in segments.iter().enumerate() {
        if !missing.contains(&i) {
            disk.files
                .insert(file_name(*base, LOG_SUFFIX), File::Segment(file.clone()));
        }
    }
    if let Some(swap) = &spec.swap {
        let (first, last) = (swap.first % n, (swap.first % n + swap.len).min(n));
        let group = &segments[first..last];
        let base = group[0].0;
        let end = group
            .last()
            .map(|(b, f)| b + f.batches.iter().map(|b| b.records).sum::<i64>())
            .unwrap_or(base);
        if end > base {
            let mut cleaned = SegmentFile::default();
            for (_, f) in group {
                cleaned.batches.extend(f.batches.iter().cloned());
            }
            let cleaned = File::Segment(cleaned);
            if swap.stage == 0 {
                disk.files.insert(file_name(base, CLEANED_SUFFIX), cleaned);
            } else {
                for (b, _) in group {
                    for name in index_names(*b) {
                        disk.files.remove(&name);
                    }
                }
                disk.files.insert(file_name(base, LOG_SUFFIX), cleaned);
                if swap.stage == 2 {
                    for (b, _) in &group[1..] {
                        disk.files.remove(&file_name(*b, LOG_SUFFIX));
                    }
                }
            }
            let checkpoint = CleanerCheckpoint {
                clean_offset: end,
                delete_horizon_ms: -1,
            };
            disk.clean_swap = Some(CleanSwap {
                checkpoint,
                groups: vec![(base, end)],
            });
            disk.files
                .insert(CLEAN_SWAP_FILE.to_owned(), File::Other(60));
        }
    }
    for l in &spec.leftovers {
        match *l {
            Leftover::Tmp(name) | Leftover::Other(name) => {
                disk.files.insert(name.to_owned(), File::Other(7));
            }
            Leftover::OrphanIndex(base) => {
                if !disk.files.contains_key(&file_name(base, LOG_SUFFIX)) {
                    disk.files
                        .insert(file_name(base, TIME_INDEX_SUFFIX), File::Other(20));
                }
            }
            Leftover::Cleaned(i) => {
                // Not beside a committed clean's own group: its cleaned file is either
                // there already or renamed, and no other clean runs before the replay.
                let base = segments[i % n].0;
                let swapped = disk
                    .clean_swap
                    .as_ref()
                    .is_some_and(|s| s.groups.iter().any(|&(b, e)| base >= b && base < e));
                if swapped {
                    continue;
                }
                disk.files
                    .entry(file_name(base, CLEANED_SUFFIX))
                    .or_insert(File::Segment(SegmentFile::default()));
            }
        }
    }
    if let Some((recovery_point, log_start_offset)) = spec.log_checkpoint {
        disk.log_checkpoint = Some(LogCheckpoint {
            recovery_point,
            log_start_offset,
        });
        disk.files
            .insert(LOG_CHECKPOINT_FILE.to_owned(), File::Other(40));
    }
    disk.leader_epochs = match spec.epochs {
        Epochs::Missing => None,
        Epochs::AsWritten => Some(epochs),
        Epochs::Prefix(k) => Some(epochs[..k.min(epochs.len())].to_vec()),
        Epochs::PastTheEnd => {
            let next = epochs.last().map_or(0, |e| e.0 + 1);
            Some(epochs.into_iter().chain([(next, end + 2)]).collect())
        }
    };
    if disk.leader_epochs.is_some() {
        disk.files
            .insert(LEADER_EPOCH_CHECKPOINT_FILE.to_owned(), File::Other(40));
    }
    if let Some(rp) = spec.offline {
        disk.offline_recovery_point = rp;
        disk.files
            .insert(OFFLINE_CHECKPOINT_FILE.to_owned(), File::Other(20));
    }
    disk
}

fn kept(plan: &RecoveryPlan) -> Vec<(i64, i64)> {
    plan.segments
        .iter()
        .map(|s| (s.base_offset, s.next_offset))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_directory_gets_plans_that_validate_and_delete_only_outside_what_they_keep(
        spec in spec(true)
    ) {
        let mut disk = build(&spec);
        let Some(r) = recover(&mut disk, spec.clean_shutdown) else {
            return Ok(());
        };
        // recover() asserted both validate(); the deletions, against what is kept:
        let first_kept = r.dir_plan.segments.keys().next().copied();
        for cmd in &r.dir_plan.commands {
            if let Command::DeleteSegment { base } = cmd {
                prop_assert!(first_kept.is_some_and(|k| *base < k), "{cmd:?} {r:#?}");
            }
        }
        let last_kept = r.plan.segments.last().expect("a segment").base_offset;
        for cmd in &r.plan.commands {
            if let Command::DeleteSegment { base } = cmd {
                prop_assert!(*base > last_kept, "{cmd:?} {r:#?}");
            }
        }
        // What the plans say is left is what the model holds.
        let on_disk: Vec<i64> = disk
            .files
            .keys()
            .filter_map(|n| parse_log_file_name(n))
            .collect();
        let planned: Vec<i64> = r.plan.segments.iter().map(|s| s.base_offset).collect();
        prop_assert_eq!(on_disk, planned);
    }

    #[test]
    fn the_recovery_point_never_exceeds_what_the_scan_found_valid(spec in spec(true)) {
        let mut disk = build(&spec);
        let Some(r) = recover(&mut disk, spec.clean_shutdown) else {
            return Ok(());
        };
        let end = r.plan.log_end_offset();
        prop_assert!(r.plan.recovery_point <= end);
        if let Some(from) = r.scan.scan_from {
            // Recovered: the recovery point is the log end, and every segment from where
            // the scan started holds only batches that pass the CRC walk, to its end.
            prop_assert_eq!(r.plan.recovery_point, end);
            let from_base = r.scan.segments.get(from).map_or(i64::MIN, |s| s.base_offset);
            for s in r.plan.segments.iter().filter(|s| s.base_offset >= from_base) {
                let w = disk.walk(s.base_offset, true, i64::MAX);
                prop_assert_eq!(w.failure, None, "segment {} {:#?}", s.base_offset, r);
                prop_assert_eq!(w.next_offset, s.next_offset);
            }
        }
        // After the log went offline nothing from its recovery point on survives.
        if let Some(rp) = r.inventory.offline_cut() {
            let first_base = r.plan.segments[0].base_offset;
            prop_assert!(end <= rp.max(first_base), "end {} offline {} {:#?}", end, rp, r);
        }
    }

    #[test]
    fn a_log_of_whole_valid_batches_loses_nothing(spec in spec(false)) {
        let written_end = written(&spec).end;
        let mut disk = build(&spec);
        let Some(r) = recover(&mut disk, spec.clean_shutdown) else {
            return Ok(());
        };
        prop_assert_eq!(&r.scan.cut, &None, "{:#?}", r);
        let truncates = r.plan.commands.iter().any(|c| {
            matches!(c, Command::DeleteSegment { .. } | Command::Truncate { .. })
        });
        prop_assert!(!truncates, "{:#?}", r);
        if r.dir_plan.segments.is_empty() {
            // Every segment was below the log start: it resumes there.
            prop_assert_eq!(r.plan.log_end_offset(), r.plan.log_start_offset);
        } else {
            prop_assert_eq!(r.plan.log_end_offset(), written_end);
        }
    }

    /// For logs whose kept data is intact: damage below the checkpointed recovery point is
    /// trusted by design (it was fsync'd), and a second recovery may find it once the
    /// segment holding it holds the recovery point. Exact, except for two more things the
    /// real rules allow:
    /// - a leader-epoch checkpoint that lags the batches below the recovery point (the
    ///   first recovery trusted them) is completed by a second recovery that scans them,
    ///   when the first one's cut moved the recovery point back to its new log end;
    /// - after a clean shutdown, a cut found by the trusted walk (a gap between segments,
    ///   say) ends the scan before the tail check: the first recovery keeps a checkpointed
    ///   recovery point short of the log end and rewrites no checkpoint, so the second
    ///   one CRC-checks from there and raises the recovery point to the log end.
    #[test]
    fn recovering_what_recovery_left_changes_nothing(spec in spec(true)) {
        let mut disk = build(&spec);
        let Some(first) = recover(&mut disk, spec.clean_shutdown) else {
            return Ok(());
        };
        let intact = first
            .plan
            .segments
            .iter()
            .all(|s| disk.walk(s.base_offset, true, i64::MAX).failure.is_none());
        if !intact {
            return Ok(());
        }
        let before = disk.clone();
        let second = recover(&mut disk, spec.clean_shutdown).expect("a tidy directory");
        prop_assert_eq!(&second.dir_plan.commands, &Vec::new(), "{:#?}", second);
        prop_assert_eq!(&second.scan.cut, &None);
        // Epoch starts the kept batches carry (the first kept batch of an epoch may come
        // after its true start, which went with the segments below the log start).
        let carried = |&(epoch, offset): &(i32, i64)| {
            before.files.values().any(|f| match f {
                File::Segment(seg) => seg
                    .batches
                    .iter()
                    .any(|b| b.base_offset == offset && b.epoch == epoch),
                _ => false,
            })
        };
        let completes_epochs = |e: &Vec<(i32, i64)>| {
            e.starts_with(&first.plan.leader_epochs)
                && e[first.plan.leader_epochs.len()..].iter().all(carried)
        };
        let end = first.plan.log_end_offset();
        let trusted_cut = first.scan.scan_from.is_none()
            && first.scan.cut.is_some()
            && first.plan.recovery_point < end;
        let raised = LogCheckpoint {
            recovery_point: end,
            log_start_offset: first.plan.log_start_offset,
        };
        for cmd in &second.plan.commands {
            let harmless = match cmd {
                // Rewrites what is there: the disk is compared below.
                Command::FsyncSegment { .. } | Command::WriteIndexes { .. } => true,
                Command::WriteLogCheckpoint(ck) => {
                    before.log_checkpoint == Some(*ck) || (trusted_cut && *ck == raised)
                }
                Command::WriteLeaderEpochs(e) => completes_epochs(e),
                _ => false,
            };
            prop_assert!(harmless, "{:?} after {:#?}", cmd, first);
        }
        prop_assert!(completes_epochs(&second.plan.leader_epochs));
        disk.leader_epochs.clone_from(&before.leader_epochs);
        if trusted_cut {
            disk.log_checkpoint = before.log_checkpoint;
            prop_assert!([first.plan.recovery_point, end].contains(&second.plan.recovery_point));
        } else {
            prop_assert_eq!(second.plan.recovery_point, first.plan.recovery_point);
        }
        prop_assert_eq!(&disk, &before);
        prop_assert_eq!(kept(&second.plan), kept(&first.plan));
        prop_assert_eq!(second.plan.log_start_offset, first.plan.log_start_offset);
        prop_assert_eq!(second.dir_plan.cleaner_checkpoint, first.dir_plan.cleaner_checkpoint);
    }
}
