//! The decisions of recovery, asserted command by command (no file is touched).

use super::*;
use crate::checkpoint::LEADER_EPOCH_CHECKPOINT_FILE;

fn log(base: i64) -> String {
    file_name(base, LOG_SUFFIX)
}
fn index(base: i64) -> String {
    file_name(base, INDEX_SUFFIX)
}
fn time_index(base: i64) -> String {
    file_name(base, TIME_INDEX_SUFFIX)
}
fn cleaned(base: i64) -> String {
    file_name(base, CLEANED_SUFFIX)
}
fn remove(name: impl Into<String>) -> Command {
    Command::RemoveFile { name: name.into() }
}

/// An inventory of `/d` with no checkpoint at all.
fn inventory(files: &[(&str, u64)]) -> Inventory {
    Inventory {
        dir: PathBuf::from("/d"),
        files: files.iter().map(|&(n, l)| (n.to_owned(), l)).collect(),
        clean_swap: None,
        log_checkpoint: None,
        cleaner_checkpoint: None,
        leader_epochs: None,
        offline_recovery_point: None,
    }
}

impl Inventory {
    fn with(mut self, name: &str, len: u64) -> Inventory {
        self.files.insert(name.to_owned(), len);
        self
    }
    fn with_segment(self, base: i64, len: u64) -> Inventory {
        self.with(&log(base), len)
            .with(&index(base), 28)
            .with(&time_index(base), 20)
    }
    fn checkpointed(mut self, recovery_point: i64, log_start_offset: i64) -> Inventory {
        self.log_checkpoint = Some(LogCheckpoint {
            recovery_point,
            log_start_offset,
        });
        self.with(checkpoint::LOG_CHECKPOINT_FILE, 40)
    }
    fn epochs(mut self, epochs: &[(i32, i64)]) -> Inventory {
        self.leader_epochs = Some(epochs.to_vec());
        self.with(LEADER_EPOCH_CHECKPOINT_FILE, 10)
    }
    fn offline(mut self, recovery_point: Option<i64>) -> Inventory {
        self.offline_recovery_point = recovery_point;
        self.with(OFFLINE_CHECKPOINT_FILE, 20)
    }
}

fn decide_dir(inv: &Inventory) -> DirectoryPlan {
    let plan = DirectoryPlan::decide(inv).expect("a plan");
    assert_eq!(plan.validate(inv), Ok(()), "{plan:?}");
    plan
}

fn decide(inv: &Inventory, scan: ScanResult) -> RecoveryPlan {
    let plan = RecoveryPlan::decide(inv, scan);
    assert_eq!(plan.validate(), Ok(()), "{plan:?}");
    plan
}

const CLEAN: CleanerCheckpoint = CleanerCheckpoint {
    clean_offset: 20,
    delete_horizon_ms: -1,
};

// ---- DirectoryPlan ----

#[test]
fn leftover_tmp_files_are_removed_and_the_broker_files_left_alone() {
    let inv = inventory(&[
        ("log-checkpoint.tmp", 3),
        ("leader-epoch-checkpoint.tmp", 0),
        ("producer-state.snapshot", 90),
        ("aborted.txnindex", 12),
    ])
    .with_segment(0, 500);
    let plan = decide_dir(&inv);
    assert_eq!(
        plan.commands,
        [
            remove("leader-epoch-checkpoint.tmp"),
            remove("log-checkpoint.tmp")
        ]
    );
    assert_eq!(plan.segments, BTreeMap::from([(0, 500)]));
    assert_eq!(
        plan.cleaner_checkpoint.clean_offset, 0,
        "no cleaner checkpoint"
    );
}

#[test]
fn index_files_without_their_segment_are_removed() {
    let inv =
        inventory(&[(&index(7), 28), (&time_index(7), 20), ("junk.index", 1)]).with_segment(0, 500);
    let plan = decide_dir(&inv);
    assert_eq!(
        plan.commands,
        [
            remove(index(7)),
            remove(time_index(7)),
            remove("junk.index")
        ]
    );
    assert_eq!(plan.segments, BTreeMap::from([(0, 500)]));
}

#[test]
fn an_interrupted_deletion_below_the_log_start_is_finished_durably() {
    let inv = inventory(&[(&log(10), 100)])
        .with_segment(0, 100)
        .with_segment(20, 100)
        .with_segment(30, 100)
        .checkpointed(35, 25);
    let plan = decide_dir(&inv);
    assert_eq!(
        plan.commands,
        [
            Command::DeleteSegment { base: 0 },
            Command::DeleteSegment { base: 10 },
            Command::SyncDir
        ]
    );
    assert_eq!(plan.segments, BTreeMap::from([(20, 100), (30, 100)]));
}

#[test]
fn the_segment_starting_at_the_log_start_is_kept() {
    let inv = inventory(&[])
        .with_segment(0, 100)
        .with_segment(20, 100)
        .checkpointed(30, 20);
    assert_eq!(
        decide_dir(&inv).commands,
        [Command::DeleteSegment { base: 0 }, Command::SyncDir]
    );
    // A log start below every segment (or no checkpoint at all) deletes nothing.
    let inv = inventory(&[]).with_segment(20, 100).checkpointed(30, 5);
    assert_eq!(decide_dir(&inv).commands, []);
    let inv = inventory(&[]).with_segment(0, 100).with_segment(20, 100);
    assert_eq!(decide_dir(&inv).commands, []);
}

#[test]
fn a_committed_clean_is_completed_from_its_record_and_the_record_goes_last() {
    let mut inv = inventory(&[
        (&cleaned(0), 300),
        (CLEAN_SWAP_FILE, 60),
        // A crashed earlier write of the cleaner checkpoint: the replay's write reuses
        // the name, so there is nothing left to remove afterwards.
        ("cleaner-checkpoint.tmp", 5),
    ])
    .with_segment(0, 400)
    .with_segment(10, 400)
    .with_segment(20, 100);
    inv.clean_swap = Some(CleanSwap {
        checkpoint: CLEAN,
        groups: vec![(0, 20)],
    });
    let plan = decide_dir(&inv);
    assert_eq!(
        plan.commands,
        [
            Command::RemoveIndexes { base: 0 },
            Command::RemoveIndexes { base: 10 },
            Command::InstallCleaned { base: 0 },
            remove(log(10)),
            Command::WriteCleanerCheckpoint(CLEAN),
            remove(CLEAN_SWAP_FILE),
            Command::SyncDir,
        ]
    );
    assert_eq!(plan.segments, BTreeMap::from([(0, 300), (20, 100)]));
    assert_eq!(plan.cleaner_checkpoint, CLEAN);
}

#[test]
fn a_committed_clean_whose_rename_happened_is_finished_without_renaming() {
    let mut inv = inventory(&[(&log(0), 300), (CLEAN_SWAP_FILE, 60)]).with_segment(20, 100);
    inv.clean_swap = Some(CleanSwap {
        checkpoint: CLEAN,
        groups: vec![(0, 20)],
    });
    assert_eq!(
        decide_dir(&inv).commands,
        [
            Command::RemoveIndexes { base: 0 },
            Command::WriteCleanerCheckpoint(CLEAN),
            remove(CLEAN_SWAP_FILE),
            Command::SyncDir,
        ]
    );
}

#[test]
fn a_committed_clean_with_neither_its_cleaned_file_nor_its_segment_fails_the_open() {
    let mut inv = inventory(&[(CLEAN_SWAP_FILE, 60)]).with_segment(20, 100);
    inv.clean_swap = Some(CleanSwap {
        checkpoint: CLEAN,
        groups: vec![(0, 20)],
    });
    let err = DirectoryPlan::decide(&inv).unwrap_err();
    assert!(err.contains("neither"), "{err}");
}

#[test]
fn cleaned_files_of_a_clean_that_never_committed_are_removed_durably() {
    let mut inv = inventory(&[(&cleaned(0), 300)]).with_segment(0, 400);
    inv.cleaner_checkpoint = Some(CLEAN);
    let plan = decide_dir(&inv);
    assert_eq!(plan.commands, [remove(cleaned(0)), Command::SyncDir]);
    assert_eq!(plan.segments, BTreeMap::from([(0, 400)]));
    assert_eq!(plan.cleaner_checkpoint, CLEAN, "the one read");
}

#[test]
fn directory_plan_validation_catches_what_the_rules_forbid() {
    let inv = inventory(&[("log-checkpoint.tmp", 3)])
        .with_segment(0, 100)
        .with_segment(20, 100)
        .checkpointed(30, 25);
    let good = decide_dir(&inv);
    let mut left_tmp = good.clone();
    left_tmp
        .commands
        .retain(|c| *c != remove("log-checkpoint.tmp"));
    assert!(left_tmp
        .validate(&inv)
        .unwrap_err()
        .contains(".tmp is left"));
    let mut deletes_kept = good.clone();
    deletes_kept
        .commands
        .insert(1, Command::DeleteSegment { base: 20 });
    deletes_kept.segments.remove(&20);
    assert!(deletes_kept.validate(&inv).is_err());
    let mut not_durable = good.clone();
    not_durable.commands.pop();
    assert!(not_durable
        .validate(&inv)
        .unwrap_err()
        .contains("not made durable"));
    let mut keeps_deleted = good;
    keeps_deleted.segments.insert(0, 100);
    assert!(keeps_deleted.validate(&inv).is_err());
}

// ---- ScanDriver ----

/// A segment whose index files were loaded: it says where the segment ends.
fn indexed(base: i64, next_offset: i64, bytes: u64) -> SegmentState {
    SegmentState {
        base_offset: base,
        file_bytes: bytes,
        valid_bytes: bytes,
        next_offset,
        indexes_on_disk: true,
    }
}

/// A segment without usable index files: nothing is known of it before a walk.
fn unindexed(base: i64, bytes: u64) -> SegmentState {
    SegmentState {
        next_offset: base,
        indexes_on_disk: false,
        ..indexed(base, base, bytes)
    }
}

fn whole(next_offset: i64, bytes: u64, batches: u64) -> Walked {
    Walked {
        batches,
        valid_bytes: bytes,
        next_offset,
        failure: None,
        epochs: Vec::new(),
    }
}

fn stopped(next_offset: i64, valid_bytes: u64, batches: u64, why: &str) -> Walked {
    Walked {
        failure: Some(why.to_owned()),
        ..whole(next_offset, valid_bytes, batches)
    }
}

enum Answer {
    Walk(Walked),
    Tail(bool),
}

/// Run `driver` answering each step with the next of `answers`; the steps it took.
fn drive(mut driver: ScanDriver, answers: Vec<Answer>) -> (Vec<ScanStep>, ScanResult) {
    let mut answers = answers.into_iter();
    let mut steps = Vec::new();
    loop {
        let step = driver.next_step();
        steps.push(step);
        match (step, answers.next()) {
            (ScanStep::Done, None) => return (steps, driver.finish()),
            (ScanStep::Walk { .. }, Some(Answer::Walk(w))) => driver.walked(w),
            (ScanStep::CheckTail { .. }, Some(Answer::Tail(ok))) => driver.tail_checked(ok),
            (step, _) => panic!("unexpected step {step:?} after {steps:?}"),
        }
    }
}

fn walk(index: usize, verify_crc: bool) -> ScanStep {
    ScanStep::Walk {
        index,
        verify_crc,
        stop_at: i64::MAX,
    }
}

fn three_indexed() -> Vec<SegmentState> {
    vec![
        indexed(0, 10, 1000),
        indexed(10, 20, 1000),
        indexed(20, 30, 1000),
    ]
}

#[test]
fn a_clean_shutdown_trusts_indexed_segments_and_checks_only_the_tail() {
    let inv = inventory(&[]).checkpointed(30, 0).epochs(&[(0, 0)]);
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, three_indexed()),
        vec![Answer::Tail(true)],
    );
    assert_eq!(steps, [ScanStep::CheckTail { index: 2 }, ScanStep::Done]);
    assert_eq!(result.scan_from, None);
    assert_eq!(result.cut, None);
    assert_eq!(result.segments, three_indexed());
}

#[test]
fn a_clean_shutdown_with_data_past_the_recovery_point_rescans_from_the_segment_holding_it() {
    let inv = inventory(&[]).checkpointed(15, 0).epochs(&[(0, 0)]);
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, three_indexed()),
        vec![
            Answer::Tail(true),
            Answer::Walk(whole(20, 1000, 4)),
            Answer::Walk(whole(30, 1000, 5)),
        ],
    );
    assert_eq!(
        steps,
        [
            ScanStep::CheckTail { index: 2 },
            walk(1, true),
            walk(2, true),
            ScanStep::Done
        ]
    );
    assert_eq!(result.scan_from, Some(1));
    assert_eq!(result.batches_scanned, 9);
    assert_eq!(result.cut, None);
}

#[test]
fn an_inconsistent_tail_after_a_clean_shutdown_crc_checks_the_last_segment() {
    let inv = inventory(&[]).checkpointed(30, 0).epochs(&[(0, 0)]);
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, three_indexed()),
        vec![
            Answer::Tail(false),
            Answer::Walk(stopped(27, 800, 3, "crc mismatch")),
        ],
    );
    assert_eq!(
        steps,
        [
            ScanStep::CheckTail { index: 2 },
            walk(2, true),
            ScanStep::Done
        ]
    );
    let cut = result.cut.expect("a cut");
    assert_eq!(cut.index, 2);
    assert!(
        cut.reason.starts_with("crc mismatch in /d/"),
        "{}",
        cut.reason
    );
    assert_eq!(result.segments[2].valid_bytes, 800);
    assert_eq!(result.segments[2].next_offset, 27);
}

#[test]
fn an_unclean_shutdown_crc_checks_from_the_segment_holding_the_recovery_point() {
    let inv = inventory(&[]).checkpointed(12, 0).epochs(&[(0, 0)]);
    let (steps, result) = drive(
        ScanDriver::new(&inv, false, three_indexed()),
        vec![
            Answer::Walk(whole(20, 1000, 4)),
            Answer::Walk(whole(30, 1000, 5)),
        ],
    );
    assert_eq!(steps, [walk(1, true), walk(2, true), ScanStep::Done]);
    assert_eq!(result.scan_from, Some(1));
    assert_eq!(result.batches_scanned, 9);
    assert!(!result.segments[1].indexes_on_disk, "rebuilt in memory");
    assert!(result.segments[0].indexes_on_disk, "trusted, untouched");
}

#[test]
fn without_a_log_checkpoint_every_segment_is_crc_checked_even_after_a_clean_shutdown() {
    let inv = inventory(&[]).epochs(&[]);
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, three_indexed()),
        vec![
            Answer::Walk(whole(10, 1000, 1)),
            Answer::Walk(whole(20, 1000, 1)),
            Answer::Walk(whole(30, 1000, 1)),
        ],
    );
    assert_eq!(
        steps,
        [walk(0, true), walk(1, true), walk(2, true), ScanStep::Done]
    );
    assert_eq!(result.scan_from, Some(0));
}

#[test]
fn a_trusted_segment_that_does_not_parse_is_crc_checked_from_there_on() {
    let inv = inventory(&[]).checkpointed(20, 0).epochs(&[(0, 0)]);
    let segments = vec![unindexed(0, 1000), indexed(10, 20, 1000)];
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, segments),
        vec![
            Answer::Walk(stopped(6, 600, 2, "torn batch header")),
            Answer::Walk(whole(10, 1000, 3)),
            Answer::Walk(whole(20, 1000, 4)),
        ],
    );
    assert_eq!(
        steps,
        [walk(0, false), walk(0, true), walk(1, true), ScanStep::Done]
    );
    assert_eq!(result.scan_from, Some(0));
    assert_eq!(result.cut, None, "the CRC walk found it whole");
    assert_eq!(result.batches_scanned, 7, "the trusted walk does not count");
}

#[test]
fn a_segment_not_starting_where_the_previous_one_ends_is_cut_whole() {
    let inv = inventory(&[]).checkpointed(30, 0).epochs(&[(0, 0)]);
    let segments = vec![indexed(0, 10, 1000), indexed(12, 30, 1000)];
    let (steps, result) = drive(ScanDriver::new(&inv, true, segments), vec![]);
    assert_eq!(steps, [ScanStep::Done], "no tail check after a cut");
    let cut = result.cut.expect("a cut");
    assert_eq!(cut.index, 1);
    assert!(cut.reason.contains("ends at 10"), "{}", cut.reason);
    assert_eq!(result.segments[1].valid_bytes, 0);
}

#[test]
fn an_offline_checkpoint_scans_from_its_segment_and_stops_at_its_offset() {
    // The clean-shutdown marker does not matter: the page cache is suspect.
    let inv = inventory(&[])
        .checkpointed(15, 0)
        .epochs(&[(0, 0)])
        .offline(Some(15));
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, three_indexed()),
        vec![Answer::Walk(stopped(14, 500, 2, "past offset 15"))],
    );
    let stop = ScanStep::Walk {
        index: 1,
        verify_crc: true,
        stop_at: 15,
    };
    assert_eq!(steps, [stop, ScanStep::Done]);
    assert_eq!(result.cut.map(|c| c.index), Some(1));
    assert_eq!(result.scan_from, Some(1));
}

#[test]
fn an_offline_checkpoint_below_the_log_checkpoint_is_ignored() {
    let inv = inventory(&[])
        .checkpointed(30, 0)
        .epochs(&[(0, 0)])
        .offline(Some(5));
    let (steps, _) = drive(
        ScanDriver::new(&inv, true, three_indexed()),
        vec![Answer::Tail(true)],
    );
    assert_eq!(steps, [ScanStep::CheckTail { index: 2 }, ScanStep::Done]);
}

#[test]
fn a_missing_leader_epoch_checkpoint_walks_trusted_segments_without_crc() {
    let inv = inventory(&[]).checkpointed(20, 0);
    let segments = vec![indexed(0, 10, 1000), indexed(10, 20, 1000)];
    let mut first = whole(10, 1000, 3);
    first.epochs = vec![(0, 0), (1, 5)];
    let mut second = whole(20, 1000, 3);
    second.epochs = vec![(1, 12), (2, 15)];
    let (steps, result) = drive(
        ScanDriver::new(&inv, true, segments),
        vec![
            Answer::Walk(first),
            Answer::Walk(second),
            Answer::Tail(true),
        ],
    );
    assert_eq!(
        steps,
        [
            walk(0, false),
            walk(1, false),
            ScanStep::CheckTail { index: 1 },
            ScanStep::Done
        ]
    );
    assert_eq!(result.epochs_seen, [(0, 0), (1, 5), (2, 15)]);
    assert_eq!(result.batches_scanned, 0);
}

// ---- RecoveryPlan ----

fn result(segments: Vec<SegmentState>, scan_from: Option<usize>) -> ScanResult {
    ScanResult {
        segments,
        scan_from,
        cut: None,
        batches_scanned: 0,
        epochs_seen: Vec::new(),
    }
}

fn cut_at(mut scan: ScanResult, index: usize, reason: &str) -> ScanResult {
    scan.cut = Some(Cut {
        index,
        reason: reason.to_owned(),
    });
    scan
}

/// A segment a walk left: valid up to `valid_bytes` / `next_offset` of `file_bytes`.
fn walked(base: i64, next_offset: i64, valid_bytes: u64, file_bytes: u64) -> SegmentState {
    SegmentState {
        base_offset: base,
        file_bytes,
        valid_bytes,
        next_offset,
        indexes_on_disk: false,
    }
}

#[test]
fn a_clean_shutdown_that_checks_out_changes_nothing() {
    let inv = inventory(&[]).checkpointed(30, 5).epochs(&[(0, 0)]);
    let plan = decide(&inv, result(three_indexed(), None));
    assert_eq!(plan.commands, []);
    assert_eq!(
        (plan.log_start_offset, plan.recovery_point),
        (5, 30),
        "as checkpointed"
    );
    assert_eq!(plan.leader_epochs, [(0, 0)]);
    assert_eq!(plan.report, RecoveryReport::default());
}

#[test]
fn a_checkpointed_recovery_point_past_the_log_end_is_lowered_without_a_scan() {
    let inv = inventory(&[]).checkpointed(50, 0).epochs(&[]);
    let plan = decide(&inv, result(three_indexed(), None));
    assert_eq!(plan.recovery_point, 30);
    assert_eq!(
        plan.commands,
        [],
        "nothing to write: the next open decides the same"
    );
}

#[test]
fn a_torn_tail_is_cut_durably_then_fsynced_and_checkpointed_at_the_new_end() {
    let inv = inventory(&[]).checkpointed(12, 0).epochs(&[(0, 0)]);
    let mut scan = cut_at(
        result(
            vec![indexed(0, 10, 1000), walked(10, 17, 300, 350)],
            Some(1),
        ),
        1,
        "torn batch header",
    );
    scan.batches_scanned = 7;
    let plan = decide(&inv, scan);
    assert_eq!(
        plan.commands,
        [
            Command::RemoveIndexes { base: 10 },
            Command::Truncate {
                base: 10,
                len_bytes: 300
            },
            Command::SyncDir,
            Command::FsyncSegment { base: 10 },
            Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point: 17,
                log_start_offset: 0
            }),
        ]
    );
    assert_eq!(plan.recovery_point, 17);
    assert_eq!(
        plan.report,
        RecoveryReport {
            batches_scanned: 7,
            bytes_truncated: 50,
            truncation_reason: Some("torn batch header".into()),
        }
    );
}

#[test]
fn a_cut_in_an_earlier_segment_deletes_every_later_one_first() {
    let inv = inventory(&[]).checkpointed(5, 0).epochs(&[]);
    let segments = vec![
        walked(0, 4, 400, 1000),
        indexed(10, 20, 1000),
        indexed(20, 30, 900),
    ];
    let plan = decide(&inv, cut_at(result(segments, Some(0)), 0, "crc mismatch"));
    assert_eq!(
        plan.commands,
        [
            Command::DeleteSegment { base: 10 },
            Command::DeleteSegment { base: 20 },
            Command::RemoveIndexes { base: 0 },
            Command::Truncate {
                base: 0,
                len_bytes: 400
            },
            Command::SyncDir,
            Command::FsyncSegment { base: 0 },
            Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point: 4,
                log_start_offset: 0
            }),
        ]
    );
    assert_eq!(plan.report.bytes_truncated, 600 + 1000 + 900);
    assert_eq!(plan.segments.len(), 1);
}

#[test]
fn a_later_segment_cut_to_nothing_is_deleted_and_the_first_one_kept_empty() {
    let inv = inventory(&[]).checkpointed(0, 0).epochs(&[]);
    let segments = vec![walked(0, 10, 1000, 1000), walked(10, 10, 0, 200)];
    let plan = decide(&inv, cut_at(result(segments, Some(0)), 1, "crc mismatch"));
    assert_eq!(
        plan.commands,
        [
            Command::DeleteSegment { base: 10 },
            Command::SyncDir,
            Command::FsyncSegment { base: 0 },
            Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point: 10,
                log_start_offset: 0
            }),
        ],
        "segment 0 is active again: its index is written at roll or close"
    );

    let segments = vec![walked(0, 0, 0, 200)];
    let plan = decide(&inv, cut_at(result(segments, Some(0)), 0, "crc mismatch"));
    assert_eq!(
        plan.commands[..3],
        [
            Command::RemoveIndexes { base: 0 },
            Command::Truncate {
                base: 0,
                len_bytes: 0
            },
            Command::SyncDir,
        ]
    );
    assert_eq!(plan.log_end_offset(), 0);
}

#[test]
fn leader_epochs_starting_at_or_past_the_cut_are_dropped_and_rewritten() {
    let inv = inventory(&[])
        .checkpointed(12, 0)
        .epochs(&[(0, 0), (3, 12), (4, 17)]);
    let mut scan = cut_at(
        result(
            vec![indexed(0, 10, 1000), walked(10, 12, 200, 500)],
            Some(1),
        ),
        1,
        "crc mismatch",
    );
    scan.epochs_seen = vec![(4, 11), (5, 12)];
    let plan = decide(&inv, scan);
    assert_eq!(plan.leader_epochs, [(0, 0)]);
    assert!(plan
        .commands
        .contains(&Command::WriteLeaderEpochs(vec![(0, 0)])));
}

#[test]
fn epochs_seen_by_the_scan_extend_the_checkpointed_ones_only_upwards() {
    let inv = inventory(&[]).checkpointed(0, 0).epochs(&[(0, 0), (2, 5)]);
    let mut scan = result(vec![walked(0, 30, 900, 900)], Some(0));
    scan.epochs_seen = vec![(1, 3), (2, 5), (3, 20)];
    let plan = decide(&inv, scan);
    assert_eq!(plan.leader_epochs, [(0, 0), (2, 5), (3, 20)]);
}

#[test]
fn a_missing_leader_epoch_checkpoint_is_rebuilt_from_the_scan_alone() {
    let inv = inventory(&[]).checkpointed(30, 0);
    let mut scan = result(three_indexed(), None);
    scan.epochs_seen = vec![(1, 0), (2, 25)];
    let plan = decide(&inv, scan);
    assert_eq!(
        plan.commands,
        [Command::WriteLeaderEpochs(vec![(1, 0), (2, 25)])]
    );
}

#[test]
fn an_offline_checkpoint_is_removed_last_and_durably() {
    let inv = inventory(&[])
        .checkpointed(10, 0)
        .epochs(&[])
        .offline(Some(15));
    let scan = cut_at(
        result(vec![walked(0, 14, 700, 900)], Some(0)),
        0,
        "past offset 15",
    );
    let plan = decide(&inv, scan);
    assert_eq!(
        plan.commands[plan.commands.len() - 3..],
        [
            Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point: 14,
                log_start_offset: 0
            }),
            remove(OFFLINE_CHECKPOINT_FILE),
            Command::SyncDir,
        ]
    );
    // A torn one (unreadable) is removed all the same.
    let inv = inventory(&[]).checkpointed(10, 0).epochs(&[]).offline(None);
    let plan = decide(&inv, result(vec![walked(0, 14, 900, 900)], Some(0)));
    assert_eq!(
        plan.commands[plan.commands.len() - 2..],
        [remove(OFFLINE_CHECKPOINT_FILE), Command::SyncDir]
    );
}

#[test]
fn an_empty_directory_gets_a_first_segment_at_the_checkpointed_log_start() {
    let inv = inventory(&[]);
    let plan = decide(&inv, result(vec![], Some(0)));
    assert_eq!(
        plan.commands,
        [
            Command::CreateSegment { base: 0 },
            Command::SyncDir,
            Command::WriteLeaderEpochs(vec![]),
            Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point: 0,
                log_start_offset: 0
            }),
        ]
    );
    // Every segment deleted by retention, then a crash: the log resumes at its start.
    let inv = inventory(&[])
        .checkpointed(40, 40)
        .epochs(&[])
        .offline(Some(40));
    let plan = decide(&inv, result(vec![], None));
    assert_eq!(
        plan.commands,
        [
            remove(OFFLINE_CHECKPOINT_FILE),
            Command::CreateSegment { base: 40 },
            Command::SyncDir,
            Command::WriteLogCheckpoint(LogCheckpoint {
                recovery_point: 40,
                log_start_offset: 40
            }),
        ]
    );
    assert_eq!(plan.log_end_offset(), 40);
}

#[test]
fn rebuilt_indexes_of_closed_segments_are_written_but_not_the_active_ones() {
    let inv = inventory(&[]).checkpointed(20, 0).epochs(&[]);
    let segments = vec![walked(0, 10, 1000, 1000), walked(10, 20, 1000, 1000)];
    let plan = decide(&inv, result(segments, None));
    assert_eq!(plan.commands, [Command::WriteIndexes { base: 0 }]);
    assert!(plan.segments[0].indexes_on_disk);
    assert!(!plan.segments[1].indexes_on_disk);
}

#[test]
fn a_log_start_past_the_cut_is_clamped_to_the_new_log_end() {
    let inv = inventory(&[]).checkpointed(20, 30).epochs(&[]);
    let scan = cut_at(
        result(vec![walked(10, 17, 700, 900)], Some(0)),
        0,
        "crc mismatch",
    );
    let plan = decide(&inv, scan);
    assert_eq!((plan.log_start_offset, plan.recovery_point), (17, 17));
    // And one below the first segment (retention moved it, the checkpoint lagged) is
    // raised to it.
    let inv = inventory(&[]).checkpointed(20, 3).epochs(&[]);
    let plan = decide(&inv, result(vec![indexed(10, 20, 900)], None));
    assert_eq!(plan.log_start_offset, 10);
}

#[test]
fn recovery_plan_validation_catches_what_the_rules_forbid() {
    let inv = inventory(&[])
        .checkpointed(12, 0)
        .epochs(&[(0, 0)])
        .offline(Some(30));
    let scan = cut_at(
        result(
            vec![indexed(0, 10, 1000), walked(10, 17, 300, 350)],
            Some(1),
        ),
        1,
        "torn",
    );
    let good = decide(&inv, scan);
    let broken = |f: &dyn Fn(&mut RecoveryPlan)| {
        let mut plan = good.clone();
        f(&mut plan);
        plan.validate().expect_err("invalid")
    };
    assert!(broken(&|p| p.recovery_point = 18).contains("past the log end"));
    assert!(broken(&|p| p.log_start_offset = 18).contains("outside"));
    assert!(broken(&|p| p.leader_epochs.push((1, 17))).contains("past the log end"));
    assert!(broken(&|p| p.commands.swap(1, 2)).contains("without a truncation"));
    // The offline checkpoint removed before the fsync that makes the cut data durable.
    assert!(broken(&|p| {
        let offline = p.commands.split_off(p.commands.len() - 2);
        p.commands.splice(3..3, offline);
    })
    .contains("offline checkpoint"));
    assert!(broken(&|p| {
        let fsync = p.commands.remove(3);
        p.commands.push(fsync);
    })
    .contains("does not follow the fsyncs"));
    assert!(
        broken(&|p| p.commands.insert(0, Command::DeleteSegment { base: 0 })).contains("deleted")
    );
    assert!(broken(&|p| p.segments[1].file_bytes = 350).contains("did not accept"));
    assert!(broken(&|p| p.segments[0].next_offset = 9).contains("does not start"));
    assert!(broken(&|p| {
        p.commands.retain(|c| *c != Command::SyncDir);
    })
    .contains("durable"));
}
