//! Behaviour of the partition log through its public API, on real files.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use weir_storage::testkit::record_batch;
use weir_storage::{BatchHeader, Log, LogConfig, StorageError};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clean: bool) -> Log {
    Log::open(dir, config(), clean).unwrap().0
}

fn append(log: &mut Log, records: usize, value_len: usize, ts: i64) -> (i64, i64) {
    let mut b = record_batch(records, value_len, ts);
    let info = log.append(&mut b, 1, ts).unwrap();
    (info.base_offset, info.last_offset)
}

/// (base_offset, last_offset) of each batch in a read result, checking whole batches.
fn batches(bytes: &[u8]) -> Vec<(i64, i64)> {
    let headers = weir_storage::batch::validate_record_set(bytes, usize::MAX).unwrap();
    headers
        .iter()
        .map(|h| (h.base_offset, h.last_offset()))
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn empty_directory_opens_as_empty_log_at_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    let (log, report) = Log::open(&dir, config(), false).unwrap();
    assert_eq!(report, Default::default());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.read(0, 1000, i64::MAX).unwrap().len(), 0);
    assert!(matches!(
        log.read(1, 1000, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(dir.join("00000000000000000000.log").exists());
    assert_eq!(log.max_timestamp().unwrap(), None);
}

#[test]
fn append_then_read_round_trips_bytes_with_stamped_offsets_and_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    let original = record_batch(5, 10, 1_000);
    let mut b = original.clone();
    let info = log.append(&mut b, 7, 2_000).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(info.max_timestamp, 1_004);
    assert_eq!(info.log_append_time_ms, -1);
    let mut b2 = record_batch(2, 10, 1_005);
    log.append(&mut b2, 7, 2_000).unwrap();
    let out = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(&out[..b.len()], &b[..]);
    assert_eq!(&out[b.len()..], &b2[..]);
    let h = BatchHeader::parse(&out[b.len()..]).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (5, 7));
    // Bytes other than the stamped fields are exactly as produced.
    assert_eq!(&out[16..b.len()], &original[16..]);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.leader_epochs(), &[(7, 0)]);
}

#[test]
fn offsets_stay_dense_across_rolls() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    let mut expected = 0;
    for i in 0..60 {
        let (base, last) = append(&mut log, 1 + i % 4, 100, i as i64);
        assert_eq!(base, expected);
        expected = last + 1;
    }
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    let mut next = 0;
    while next < log.log_end_offset() {
        let out = log.read(next, 1 << 20, i64::MAX).unwrap();
        for (base, last) in batches(&out) {
            assert_eq!(base, next);
            next = last + 1;
        }
    }
    assert_eq!(next, expected);
    // Every rolled segment is at most segment_bytes (each batch is far smaller).
    for f in segment_files(tmp.path()) {
        assert!(fs::metadata(f).unwrap().len() <= 4096);
    }
}

#[test]
fn read_from_the_middle_of_a_batch_returns_the_whole_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..20 {
        append(&mut log, 5, 50, 0);
    }
    for offset in [0, 3, 4, 37, 52, 99] {
        let out = log.read(offset, 1, i64::MAX).unwrap();
        let got = batches(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, offset / 5 * 5, "fetch {offset}");
    }
}

#[test]
fn first_batch_is_returned_whole_even_over_max_bytes_kip74() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    let (_, _) = append(&mut log, 3, 500, 0);
    append(&mut log, 1, 10, 0);
    let out = log.read(0, 10, i64::MAX).unwrap();
    assert_eq!(batches(&out), vec![(0, 2)]);
    // max_bytes just short of two batches returns one, enough for both returns both.
    let one = out.len();
    let both = log.read(0, 1 << 20, i64::MAX).unwrap().len();
    assert_eq!(batches(&log.read(0, both - 1, i64::MAX).unwrap()).len(), 1);
    assert_eq!(batches(&log.read(0, both, i64::MAX).unwrap()).len(), 2);
    assert!(one < both);
}

#[test]
fn reads_stop_before_max_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..10 {
        append(&mut log, 2, 10, 0);
    }
    assert_eq!(
        batches(&log.read(0, 1 << 20, 6).unwrap()),
        vec![(0, 1), (2, 3), (4, 5)]
    );
    assert_eq!(log.read(6, 1 << 20, 6).unwrap().len(), 0);
    assert_eq!(
        batches(&log.read(3, 1 << 20, 5).unwrap()),
        vec![(2, 3), (4, 5)]
    );
    assert_eq!(log.read(20, 1 << 20, 30).unwrap().len(), 0);
    assert!(matches!(
        log.read(21, 100, 30),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, 30),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reads_span_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..40 {
        append(&mut log, 1, 300, 0);
    }
    assert!(log.segment_count() >= 3);
    let all = log.read(0, usize::MAX, i64::MAX).unwrap();
    let got = batches(&all);
    assert_eq!(got.len(), 40);
    assert_eq!(got.last(), Some(&(39, 39)));
    assert_eq!(all.len() as u64, log.size_bytes());
}

#[test]
fn segment_rolls_by_size() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    let batch_len = record_batch(1, 1000, 0).len() as u64;
    for _ in 0..4 {
        append(&mut log, 1, 1000, 0);
    }
    assert_eq!(log.segment_count(), 1 + (4 * batch_len / 4096) as usize);
    assert_eq!(
        segment_files(tmp.path())
            .last()
            .unwrap()
            .file_name()
            .unwrap(),
        format!("{:020}.log", 4096 / batch_len).as_str()
    );
    // A batch larger than segment_bytes still goes in (alone).
    append(&mut log, 1, 10_000, 0);
    append(&mut log, 1, 10, 0);
    assert_eq!(batches(&log.read(4, 100, i64::MAX).unwrap()), vec![(4, 4)]);
    assert_eq!(
        log.recovery_point(),
        5,
        "a roll makes the rolled segments durable"
    );
}

#[test]
fn segment_rolls_by_time() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1_000,
        ..config()
    };
    let (mut log, _) = Log::open(tmp.path(), cfg, false).unwrap();
    let mut b = record_batch(1, 10, 0);
    log.append(&mut b, 0, 10_000).unwrap();
    log.append(&mut record_batch(1, 10, 0), 0, 10_900).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut record_batch(1, 10, 0), 0, 11_001).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.recovery_point(), 2);
}

#[test]
fn reopen_after_close_keeps_everything_and_continues_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for i in 0..30 {
        append(&mut log, 3, 100, 1_000 + i);
    }
    let before = log.read(0, usize::MAX, i64::MAX).unwrap();
    let max_ts = log.max_timestamp().unwrap();
    log.close().unwrap();
    let (mut log, report) = Log::open(tmp.path(), config(), true).unwrap();
    assert_eq!(report, Default::default());
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.recovery_point(), 90);
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap(), before);
    assert_eq!(log.max_timestamp().unwrap(), max_ts);
    assert_eq!(append(&mut log, 1, 5, 5_000), (90, 90));
    // Batch 11 holds timestamps 1011..=1013: the record at 35 is the first at 1013.
    assert_eq!(log.offset_for_timestamp(1_013).unwrap(), Some((35, 1_013)));
    log.close().unwrap();
    // Unclean open of a cleanly closed log scans only from the recovery point.
    let (log, report) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(report.bytes_truncated, 0);
    assert!(
        report.batches_scanned < 31,
        "scanned {}",
        report.batches_scanned
    );
    assert_eq!(log.log_end_offset(), 91);
}

#[test]
fn missing_index_files_are_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for i in 0..40 {
        append(&mut log, 2, 200, i);
    }
    let before = log.read(0, usize::MAX, i64::MAX).unwrap();
    log.close().unwrap();
    for e in fs::read_dir(tmp.path()).unwrap() {
        let p = e.unwrap().path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("index") => fs::remove_file(p).unwrap(),
            Some("timeindex") => fs::write(p, b"garbage").unwrap(),
            _ => {}
        }
    }
    let log = open(tmp.path(), true);
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap(), before);
    assert_eq!(batches(&log.read(41, 1, i64::MAX).unwrap()), vec![(40, 41)]);
    assert_eq!(log.offset_for_timestamp(30).unwrap(), Some((59, 30)));
}

fn truncate_file(path: &Path, cut_bytes: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - cut_bytes).unwrap();
}

#[test]
fn unclean_reopen_truncates_a_torn_tail_to_the_last_whole_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..5 {
        append(&mut log, 2, 50, 0);
    }
    let whole = log.size_bytes();
    let batch_len = whole / 5;
    drop(log); // crash: no close
    let last = segment_files(tmp.path()).pop().unwrap();
    truncate_file(&last, 7);
    let (mut log, report) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(report.batches_scanned, 4);
    assert_eq!(report.bytes_truncated, batch_len - 7);
    assert!(report.truncation_reason.is_some());
    assert_eq!(fs::metadata(&last).unwrap().len(), 4 * batch_len);
    assert_eq!(log.recovery_point(), 8);
    assert_eq!(append(&mut log, 1, 1, 0), (8, 8));
}

#[test]
fn corrupt_crc_in_the_middle_of_the_last_segment_truncates_from_there() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..6 {
        append(&mut log, 1, 100, 0);
    }
    let batch_len = log.size_bytes() / 6;
    drop(log);
    let last = segment_files(tmp.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    bytes[(3 * batch_len + 70) as usize] ^= 1;
    fs::write(&last, bytes).unwrap();
    let (log, report) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(report.bytes_truncated, 3 * batch_len);
    let reason = report.truncation_reason.unwrap();
    assert!(reason.contains("crc mismatch at offset 3"), "{reason}");
}

#[test]
fn corruption_in_an_earlier_segment_past_the_recovery_point_deletes_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..30 {
        append(&mut log, 1, 300, 0);
    }
    let segments = log.segment_count();
    assert!(segments >= 3);
    drop(log);
    // Lose the checkpoint: everything is past the recovery point.
    fs::remove_file(tmp.path().join("log-checkpoint")).unwrap();
    let files = segment_files(tmp.path());
    let mut bytes = fs::read(&files[1]).unwrap();
    let batch_len = record_batch(1, 300, 0).len();
    bytes[batch_len + 100] ^= 1; // in the second batch of the second segment
    fs::write(&files[1], bytes).unwrap();
    let (log, report) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(log.segment_count(), 2);
    let first_of_second: i64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(log.log_end_offset(), first_of_second + 1);
    assert!(report.bytes_truncated > 0);
    assert_eq!(segment_files(tmp.path()).len(), 2);
    drop(log);
    // A segment whose very first batch is bad goes entirely.
    let files = segment_files(tmp.path());
    let mut bytes = fs::read(&files[1]).unwrap();
    bytes[100] ^= 1;
    fs::write(&files[1], bytes).unwrap();
    fs::remove_file(tmp.path().join("log-checkpoint")).unwrap();
    let (log, _) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), first_of_second);
    assert_eq!(segment_files(tmp.path()).len(), 1);
}

#[test]
fn appends_fail_after_mark_failed_until_reopened() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    append(&mut log, 1, 1, 0);
    log.flush().unwrap();
    append(&mut log, 1, 1, 0); // not fsync'd when the fsync fails
    let target = log.sync_target();
    log.mark_failed();
    let err = log.append(&mut record_batch(1, 1, 0), 1, 0).unwrap_err();
    assert!(matches!(err, StorageError::Offline(_)));
    assert!(matches!(log.flush(), Err(StorageError::Offline(_))));
    assert!(log.read(0, 100, i64::MAX).is_ok(), "reads still work");
    log.mark_synced(target.end_offset);
    assert_eq!(log.recovery_point(), 1, "no fsync is trusted once offline");
    assert!(matches!(log.close(), Err(StorageError::Offline(_))));
    assert!(tmp.path().join("offline-checkpoint").exists());
    // The reopen discards what was not fsync'd when the log went offline: the page cache
    // may hold pages the failed fsync never wrote.
    let (mut log, report) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    let reason = report.truncation_reason.unwrap();
    assert!(reason.contains("past offset 1"), "{reason}");
    assert!(!tmp.path().join("offline-checkpoint").exists());
    assert_eq!(append(&mut log, 1, 1, 0), (1, 1));
}

#[test]
fn group_commit_sync_target_and_mark_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    append(&mut log, 3, 1, 0);
    let target = log.sync_target();
    assert_eq!(target.end_offset, 3);
    append(&mut log, 3, 1, 0); // an append while the fsync is in flight
    for f in &target.files {
        f.sync_data().unwrap();
    }
    log.mark_synced(target.end_offset);
    assert_eq!(log.recovery_point(), 3);
    log.mark_synced(1);
    assert_eq!(log.recovery_point(), 3, "never moves backwards");
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 6);
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    // Batches of 2 records with timestamps ts and ts + 1. Timestamps not monotonic.
    // The answers are per record: the first record at or after the target.
    let ts = [100, 200, 150, 400, 300, 500, 50];
    for t in ts {
        for _ in 0..3 {
            append(&mut log, 2, 200, t);
        }
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((1, 101)));
    assert_eq!(log.offset_for_timestamp(102).unwrap(), Some((6, 200)));
    assert_eq!(log.offset_for_timestamp(201).unwrap(), Some((7, 201)));
    assert_eq!(log.offset_for_timestamp(250).unwrap(), Some((18, 400)));
    assert_eq!(log.offset_for_timestamp(402).unwrap(), Some((30, 500)));
    assert_eq!(log.offset_for_timestamp(502).unwrap(), None);
    // Three batches reach 501; the earliest record holding it wins.
    assert_eq!(log.max_timestamp().unwrap(), Some((501, 31)));
}

#[test]
fn log_append_time_stamps_max_timestamp_and_keeps_crc_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        log_append_time: true,
        ..config()
    };
    let (mut log, _) = Log::open(tmp.path(), cfg, false).unwrap();
    let mut b = record_batch(2, 10, 5);
    let info = log.append(&mut b, 0, 99_000).unwrap();
    assert_eq!(
        (info.max_timestamp, info.log_append_time_ms),
        (99_000, 99_000)
    );
    let out = log.read(0, 1000, i64::MAX).unwrap();
    let h = weir_storage::batch::validate_record_set(&out, 1 << 20).unwrap()[0];
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 99_000);
    assert_eq!(h.base_timestamp, 5);
}

#[test]
fn malformed_append_is_rejected_without_touching_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    let mut b = record_batch(1, 10, 0);
    b.push(0);
    assert!(matches!(
        log.append(&mut b, 0, 0),
        Err(StorageError::Batch(_))
    ));
    assert!(matches!(
        log.append(&mut [], 0, 0),
        Err(StorageError::Batch(_))
    ));
    assert_eq!(log.size_bytes(), 0);
    assert!(!log.is_offline());
}

#[test]
fn leader_epochs_are_checkpointed_and_truncated_with_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    log.append(&mut record_batch(1, 10, 0), 1, 0).unwrap();
    log.append(&mut record_batch(1, 10, 0), 1, 0).unwrap();
    log.append(&mut record_batch(1, 10, 0), 3, 0).unwrap();
    log.append(&mut record_batch(1, 10, 0), 2, 0).unwrap(); // stale epoch: not recorded
    assert_eq!(log.leader_epochs(), &[(1, 0), (3, 2)]);
    log.close().unwrap();
    let log = open(tmp.path(), true);
    assert_eq!(log.leader_epochs(), &[(1, 0), (3, 2)]);
    drop(log);
    let last = segment_files(tmp.path()).pop().unwrap();
    truncate_file(&last, 30); // tears the last batch
    truncate_file(&last, fs::metadata(&last).unwrap().len() / 2); // and more
    fs::remove_file(tmp.path().join("log-checkpoint")).unwrap();
    let log = open(tmp.path(), false);
    assert!(log.log_end_offset() <= 2);
    assert_eq!(log.leader_epochs(), &[(1, 0)]);
}

#[test]
fn delete_removes_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let mut log = open(&dir, false);
    append(&mut log, 1, 1, 0);
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn clean_open_still_recovers_a_damaged_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    for _ in 0..5 {
        append(&mut log, 2, 50, 0);
    }
    log.close().unwrap();
    let last = segment_files(tmp.path()).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&last).unwrap();
    std::io::Write::write_all(&mut f, &[7u8; 100]).unwrap();
    let (log, report) = Log::open(tmp.path(), config(), true).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(report.bytes_truncated, 100);
}

#[test]
fn clean_open_with_data_past_the_recovery_point_rescans_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), false);
    append(&mut log, 2, 50, 0);
    log.flush().unwrap();
    append(&mut log, 2, 50, 0);
    drop(log); // no close: the checkpoint says recovery point 0 (written at open)
    let (log, report) = Log::open(tmp.path(), config(), true).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(report.batches_scanned, 2);
    assert_eq!(log.recovery_point(), 4);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
    /// Whatever bytes a segment holds, open never panics and yields a readable log.
    #[test]
    fn open_never_panics_on_garbage_segments(
        garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        keep in 0usize..3,
        clean in proptest::bool::ANY,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path(), false);
        for _ in 0..keep {
            append(&mut log, 1, 20, 0);
        }
        log.close().unwrap();
        let last = segment_files(tmp.path()).pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        std::io::Write::write_all(&mut f, &garbage).unwrap();
        let (log, _) = Log::open(tmp.path(), config(), clean).unwrap();
        proptest::prop_assert!(log.log_end_offset() >= keep as i64);
        let all = log.read(0, usize::MAX, i64::MAX).unwrap();
        if !all.is_empty() {
            proptest::prop_assert_eq!(batches(&all).len() as u64, log.log_end_offset() as u64);
        }
    }
}

/// Found by fuzzing (fuzz/regressions/segment_recovery): only a forged segment name can put
/// the log end near i64::MAX, and then an append must be refused, not overflow.
#[test]
fn a_log_ending_near_i64_max_refuses_appends_instead_of_overflowing() {
    let tmp = tempfile::tempdir().unwrap();
    let base = i64::MAX - 1;
    fs::write(tmp.path().join(format!("{base:020}.log")), b"").unwrap();
    let (mut log, _) = Log::open(tmp.path(), config(), false).unwrap();
    assert_eq!(log.log_end_offset(), base);
    let err = log.append(&mut record_batch(3, 10, 0), 0, 0).unwrap_err();
    assert!(err.to_string().contains("largest offset"), "{err}");
}

#[test]
fn a_full_index_rolls_the_segment_as_kafka_does() {
    let tmp = tempfile::tempdir().unwrap();
    // 16 bytes hold two offset-index entries (8 bytes each) and one time-index entry (12).
    let cfg = LogConfig {
        segment_bytes: 1 << 30,
        index_interval_bytes: 0,
        segment_index_bytes: 16,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(tmp.path(), cfg, false).unwrap();
    for i in 0..6 {
        append(&mut log, 1, 10, 1_000 + i);
    }
    assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
    let (mut big, _) = Log::open(
        &tmp.path().join("big"),
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 0,
            ..LogConfig::default()
        },
        false,
    )
    .unwrap();
    for i in 0..6 {
        append(&mut big, 1, 10, 1_000 + i);
    }
    assert_eq!(big.segment_count(), 1);
}

#[test]
fn segment_jitter_rolls_each_segment_somewhat_early() {
    let cfg = LogConfig {
        segment_ms: 1_000,
        segment_jitter_ms: 400,
        ..LogConfig::default()
    };
    let jitters: Vec<i64> = (0..200)
        .map(|o| weir_storage::log::roll_jitter_ms(o, &cfg))
        .collect();
    assert!(jitters.iter().all(|j| (0..400).contains(j)));
    assert!(
        jitters
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 50
    );
    // Never more than segment.ms, and none without a jitter.
    let capped = LogConfig {
        segment_ms: 10,
        segment_jitter_ms: 1_000,
        ..cfg.clone()
    };
    assert!((0..100).all(|o| weir_storage::log::roll_jitter_ms(o, &capped) < 10));
    let none = LogConfig {
        segment_jitter_ms: 0,
        ..cfg.clone()
    };
    assert_eq!(weir_storage::log::roll_jitter_ms(7, &none), 0);

    // A segment whose jitter is j rolls once it is older than segment.ms - j.
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(tmp.path(), cfg.clone(), false).unwrap();
    append(&mut log, 1, 10, 0);
    let j = weir_storage::log::roll_jitter_ms(0, &cfg);
    let mut b = record_batch(1, 10, 0);
    log.append(&mut b, 1, 1_000 - j).unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "not yet older than segment.ms - jitter"
    );
    let mut b = record_batch(1, 10, 0);
    log.append(&mut b, 1, 1_001 - j).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn append_exact_copies_another_logs_batches_byte_for_byte_across_rolls() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut source = open(a.path(), false);
    for i in 0..40 {
        let mut batch = record_batch(1 + i % 4, 200, 1_000 + i as i64);
        source
            .append(&mut batch, 3 + (i as i32 / 20), 5_000)
            .unwrap();
    }
    let all = source.read(0, usize::MAX, i64::MAX).unwrap();
    let mut copy = open(b.path(), false);
    // In two pieces, as journal records arrive: the second starts at the copy's log end.
    let split = batches(&all).len() / 2;
    let cut = weir_storage::batch::validate_record_set(&all, usize::MAX).unwrap()[..split]
        .iter()
        .map(|h| h.total_len())
        .sum::<usize>();
    copy.append_exact(&all[..cut], 6_000).unwrap();
    let info = copy.append_exact(&all[cut..], 6_000).unwrap();
    assert_eq!(info.last_offset + 1, source.log_end_offset());
    assert!(copy.segment_count() > 1, "4 KiB segments roll");
    assert_eq!(copy.read(0, usize::MAX, i64::MAX).unwrap(), all);
    assert_eq!(copy.leader_epochs(), source.leader_epochs());
    drop(copy);
    // And it is all there after an unclean reopen (the CRC-checked scan).
    let copy = open(b.path(), false);
    assert_eq!(copy.read(0, usize::MAX, i64::MAX).unwrap(), all);
}

#[test]
fn append_exact_refuses_gaps_overlaps_and_bad_crcs_without_writing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut source = open(a.path(), false);
    for _ in 0..3 {
        append(&mut source, 2, 50, 1_000);
    }
    let all = source.read(0, usize::MAX, i64::MAX).unwrap();
    let first_len = BatchHeader::parse(&all).unwrap().total_len();
    let mut copy = open(b.path(), false);
    // Not starting at the log end (0): a gap.
    let err = copy.append_exact(&all[first_len..], 0).unwrap_err();
    assert!(matches!(err, StorageError::Batch(_)), "{err}");
    // A flipped byte inside the CRC-covered part of the second batch.
    let mut bad = all.to_vec();
    bad[first_len + 70] ^= 1;
    assert!(copy.append_exact(&bad, 0).is_err());
    assert_eq!(
        copy.log_end_offset(),
        0,
        "nothing of a refused append is written"
    );
    copy.append_exact(&all, 0).unwrap();
    // Again from 0: an overlap.
    assert!(copy.append_exact(&all, 0).is_err());
    assert_eq!(copy.log_end_offset(), 6);
    assert_eq!(copy.read(0, usize::MAX, i64::MAX).unwrap(), all);
}
