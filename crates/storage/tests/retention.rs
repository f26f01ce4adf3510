//! Retention (delete whole segments by time, size and log start offset) and DeleteRecords,
//! through the public API, with crash tests on `SimFs`.

mod common;

use std::path::Path;

use common::*;
use weir_storage::testkit::record_batch;
use weir_storage::{Log, LogConfig, RetentionPolicy, SimFs, StorageError};

const UNLIMITED: RetentionPolicy = RetentionPolicy {
    retention_ms: -1,
    retention_bytes: -1,
};

fn by_time(ms: i64) -> RetentionPolicy {
    RetentionPolicy {
        retention_ms: ms,
        ..UNLIMITED
    }
}

fn by_size(bytes: i64) -> RetentionPolicy {
    RetentionPolicy {
        retention_bytes: bytes,
        ..UNLIMITED
    }
}

/// Appends `n` batches of 4 records, 200-byte values, timestamps `ts0 + 1000 * i`, on a
/// log whose segments take about 3 such batches. Returns every stored batch
/// (base, last, bytes).
fn fill(log: &mut Log, n: usize, ts0: i64) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..n {
        let ts = ts0 + 1000 * i as i64;
        let mut b = record_batch(4, 200, ts);
        let info = log.append(&mut b, 0, ts).unwrap();
        out.push((info.base_offset, info.last_offset, b));
    }
    log.flush().unwrap();
    out
}

fn segment_bases(fs: &SimFs) -> Vec<i64> {
    fs.paths()
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect()
}

fn bytes_from(batches: &[(i64, i64, Vec<u8>)], offset: i64) -> Vec<u8> {
    batches
        .iter()
        .filter(|b| b.1 >= offset)
        .flat_map(|b| b.2.clone())
        .collect()
}

#[test]
fn time_retention_deletes_expired_segments_oldest_first_and_stops_at_the_first_fresh_one() {
    let fs = fresh_fs(1);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let batches = fill(&mut log, 20, 0);
    let segments = log.segment_count();
    assert!(segments >= 6, "{segments} segments");
    let end = log.log_end_offset();
    // Nothing is older than an hour.
    let none = log
        .apply_retention(by_time(3_600_000), end, 20_000)
        .unwrap();
    assert_eq!((none.segments, none.log_start_offset), (0, 0));
    // Records older than now - 9.5 s expire: batches with ts < 10_500 - ... whole segments.
    let now = 19_000 + 9_500;
    let mut d = log.apply_retention(by_time(9_500), end, now).unwrap();
    assert!(d.segments > 0 && d.segments < segments, "{d:?}");
    d.unlink().unwrap();
    assert_eq!(log.segment_count(), segments - d.segments);
    let start = log.log_start_offset();
    assert_eq!(d.log_start_offset, start);
    assert_eq!(
        segment_bases(&fs)[0],
        start,
        "files of the deleted segments are gone"
    );
    // Every deleted batch had expired; the first segment left did not, so a second pass
    // deletes nothing.
    for b in batches.iter().filter(|b| b.1 < start) {
        let max_ts = i64::from_be_bytes(b.2[35..43].try_into().unwrap());
        assert!(now - max_ts > 9_500, "batch {} deleted too early", b.0);
    }
    assert_eq!(
        log.apply_retention(by_time(9_500), end, now)
            .unwrap()
            .segments,
        0
    );
    assert!(matches!(
        log.read(start - 1, 1 << 20, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.read(start, usize::MAX, i64::MAX).unwrap().to_vec(),
        bytes_from(&batches, start)
    );
    log.validate().unwrap();
    // The start survives a clean and an unclean reopen.
    log.close().unwrap();
    let log = open_sim(&fs, small_config(), true).unwrap();
    assert_eq!(log.log_start_offset(), start);
    drop(log);
    fs.crash();
    let log = open_sim(&fs, small_config(), false).unwrap();
    assert_eq!(log.log_start_offset(), start);
    assert_eq!(read_all(&log), bytes_from(&batches, start));
}

#[test]
fn size_retention_keeps_at_least_retention_bytes() {
    let fs = fresh_fs(2);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    fill(&mut log, 20, 0);
    let total = log.size_bytes() as i64;
    let end = log.log_end_offset();
    let d = log.apply_retention(by_size(total / 2), end, 0).unwrap();
    assert!(d.segments > 0);
    let left = log.size_bytes() as i64;
    assert!(left >= total / 2, "{left} < {}", total / 2);
    assert_eq!(total - d.bytes as i64, left);
    // One more segment would have gone below the limit.
    let again = log.apply_retention(by_size(total / 2), end, 0).unwrap();
    assert_eq!(again.segments, 0);
    log.validate().unwrap();
}

#[test]
fn retention_never_deletes_data_at_or_above_max_offset() {
    let fs = fresh_fs(3);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    fill(&mut log, 20, 0);
    let end = log.log_end_offset();
    // Everything is expired, but the high watermark is in the third segment.
    let d = log.apply_retention(by_time(0), 30, 1_000_000).unwrap();
    assert!(log.log_start_offset() <= 30, "{d:?}");
    assert!(log.read(30, 1, i64::MAX).is_ok());
    assert_eq!(log.log_end_offset(), end);
    let d = log.apply_retention(by_size(0), 30, 0).unwrap();
    assert!(log.log_start_offset() <= 30, "{d:?}");
}

#[test]
fn an_idle_log_whose_data_all_expired_rolls_and_empties() {
    let fs = fresh_fs(4);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    fill(&mut log, 10, 0);
    let end = log.log_end_offset();
    let d = log.apply_retention(by_time(1_000), end, 100_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
    assert_eq!(d.log_start_offset, end);
    assert_eq!(log.size_bytes(), 0);
    // The files stay until the caller has published the new start and unlinks them.
    assert!(segment_bases(&fs).len() > 1);
    let mut d = d;
    d.unlink().unwrap();
    assert_eq!(segment_bases(&fs), vec![end]);
    assert!(log.read(end, 100, i64::MAX).unwrap().is_empty());
    // The empty active segment is never deleted; appends go on at the end.
    let d = log.apply_retention(by_time(0), end, 200_000).unwrap();
    assert_eq!(d.segments, 0);
    let info = log.append(&mut record_batch(1, 1, 0), 0, 0).unwrap();
    assert_eq!(info.base_offset, end);
    log.close().unwrap();
    let log = open_sim(&fs, small_config(), true).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (end, end + 1)
    );
}

#[test]
fn segments_without_timestamps_expire_with_the_next_dated_segment() {
    let fs = fresh_fs(5);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    // Two segments of records stamped -1, then dated ones.
    for _ in 0..6 {
        log.append(&mut record_batch(4, 200, -1), 0, 0).unwrap();
    }
    let undated_end = log.log_end_offset();
    fill(&mut log, 9, 10_000);
    let end = log.log_end_offset();
    // Only the undated segments are "older" than nothing: kept while the next is fresh.
    let d = log.apply_retention(by_time(60_000), end, 20_000).unwrap();
    assert_eq!(d.segments, 0);
    // Once the first dated segment expires, the undated ones before it go too.
    let d = log.apply_retention(by_time(1_000), end, 13_500).unwrap();
    assert!(d.segments >= 3, "{d:?}");
    assert!(log.log_start_offset() > undated_end);
}

#[test]
fn delete_records_moves_the_start_inside_a_segment_and_reads_from_there() {
    let fs = fresh_fs(6);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let batches = fill(&mut log, 20, 0);
    let segments = log.segment_count();
    // Offset 41 is in the middle of a batch (40..=43), a few segments in.
    let d = log.delete_records(41).unwrap();
    assert_eq!(log.log_start_offset(), 41);
    assert_eq!(d.log_start_offset, 41);
    assert!(d.segments > 0);
    assert_eq!(log.segment_count(), segments - d.segments);
    assert!(matches!(
        log.read(40, 1 << 20, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // The batch holding 41 comes back whole (the client skips records below its offset).
    let got = log.read(41, usize::MAX, i64::MAX).unwrap().to_vec();
    assert_eq!(got, bytes_from(&batches, 41));
    assert_eq!(headers(&got)[0].base_offset, 40);
    // Backwards is a no-op; past the end is out of range.
    assert_eq!(log.delete_records(10).unwrap().log_start_offset, 41);
    let end = log.log_end_offset();
    assert!(matches!(
        log.delete_records(end + 1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Up to the end: only the active segment is left, and reads at the end are empty.
    log.delete_records(end).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(end, 100, i64::MAX).unwrap().is_empty());
    log.validate().unwrap();
    drop(log);
    fs.crash();
    let log = open_sim(&fs, small_config(), false).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
}

/// Crash (power loss, torn power loss, process crash in turn) at every file-system operation
/// of a retention pass and of a DeleteRecords: after the unclean reopen the log starts at
/// the old or the new start offset, never inside a deleted segment, no segment below it is
/// left, every offset from the start on reads back exactly, and appends go on at the end.
#[test]
fn a_crash_at_every_operation_of_retention_leaves_a_consistent_log() {
    crash_at_every_operation_of_retention(small_config());
}

/// The same with `file.delete.delay.ms`: the files are renamed to `*.deleted`, then removed
/// (here at once, as the broker does after the delay); a crash anywhere in between leaves
/// none of them after the reopen.
#[test]
fn a_crash_at_every_operation_of_a_delayed_deletion_leaves_a_consistent_log() {
    crash_at_every_operation_of_retention(LogConfig {
        file_delete_delay_ms: 60_000,
        ..small_config()
    });
}

fn crash_at_every_operation_of_retention(config: LogConfig) {
    type Op = fn(&mut Log, i64) -> Result<weir_storage::SegmentsDeleted, StorageError>;
    // Each op includes the unlink of the deleted files, which the broker does after
    // publishing the new start: crash points fall among those removals too.
    fn unlinked(
        r: Result<weir_storage::SegmentsDeleted, StorageError>,
    ) -> Result<weir_storage::SegmentsDeleted, StorageError> {
        let mut deleted = r?;
        deleted.unlink()?;
        if let Some(later) = deleted.delayed_removal() {
            later.remove().map_err(|source| StorageError::Io {
                context: "removing *.deleted files".into(),
                source,
            })?;
        }
        Ok(deleted)
    }
    let ops: [(&str, Op); 3] = [
        ("time retention", |log, end| {
            unlinked(log.apply_retention(by_time(5_000), end, 20_000))
        }),
        ("retention of everything", |log, end| {
            unlinked(log.apply_retention(by_time(0), end, 100_000))
        }),
        ("delete records", |log, _| unlinked(log.delete_records(45))),
    ];
    let setup = |seed: u64| {
        let fs = fresh_fs(seed);
        let mut log = open_sim(&fs, config.clone(), false).unwrap();
        let batches = fill(&mut log, 18, 0);
        (fs, log, batches)
    };
    for (name, op) in ops {
        let (fs, mut log, _) = setup(0);
        let end = log.log_end_offset();
        let first_op = fs.op_count();
        let after = op(&mut log, end).unwrap();
        let total_ops = fs.op_count();
        assert!(
            total_ops - first_op >= 4,
            "{name}: {} ops",
            total_ops - first_op
        );
        // Torn power losses draw which unsynced changes survive: several draws per point.
        for (k, mode) in (first_op..total_ops).flat_map(|k| [0, 1, 1, 1, 2].map(|m| (k, m))) {
            let label = format!("{name}: crash at op {k} mode {mode}");
            let (fs, mut log, batches) = setup(k * 5 + mode);
            let before = log.log_start_offset();
            fs.crash_at_op(k);
            assert!(op(&mut log, end).is_err(), "{label}: no crash");
            drop(log);
            match mode {
                0 => fs.crash(),
                1 => fs.crash_torn(),
                _ => fs.restart(),
            }
            let mut log = open_sim(&fs, config.clone(), false)
                .unwrap_or_else(|e| panic!("{label}: reopen: {e}"));
            log.validate().unwrap();
            let deleted_left: Vec<_> = fs
                .paths()
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".deleted"))
                .collect();
            assert!(deleted_left.is_empty(), "{label}: {deleted_left:?} left");
            let start = log.log_start_offset();
            assert!(
                start == before || start == after.log_start_offset,
                "{label}: start {start}"
            );
            let below: Vec<i64> = segment_bases(&fs)
                .into_iter()
                .filter(|&b| b < start)
                .collect();
            assert!(
                below.len() <= 1,
                "{label}: segments below the start {start}: {below:?}"
            );
            let end_now = log.log_end_offset();
            assert_eq!(end_now, end, "{label}: nothing acknowledged is lost");
            let want = bytes_from(&batches, start);
            assert_eq!(read_all(&log), want, "{label}: content from the start");
            let info = log.append(&mut record_batch(1, 1, 0), 0, 0).unwrap();
            assert_eq!(info.base_offset, end, "{label}");
        }
    }
}

/// `file.delete.delay.ms`: the deleted segments' files stay as `*.deleted` (out of the log)
/// until the delayed removal, or until the next open if the broker stopped first.
#[test]
fn a_delayed_deletion_renames_the_files_and_the_next_open_removes_them() {
    let config = LogConfig {
        file_delete_delay_ms: 60_000,
        ..small_config()
    };
    let fs = fresh_fs(11);
    let mut log = open_sim(&fs, config.clone(), false).unwrap();
    fill(&mut log, 18, 0);
    let end = log.log_end_offset();
    let segments = segment_bases(&fs).len();
    let mut d = log.apply_retention(by_time(5_000), end, 20_000).unwrap();
    assert!(d.segments > 0);
    d.unlink().unwrap();
    let deleted = |fs: &SimFs| -> Vec<String> {
        fs.paths()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .filter(|n| n.ends_with(".deleted"))
            .collect()
    };
    let renamed = deleted(&fs);
    assert!(
        renamed.iter().any(|n| n.ends_with(".log.deleted")),
        "{renamed:?}"
    );
    assert_eq!(segment_bases(&fs).len(), segments - d.segments);
    let later = d.delayed_removal().expect("files to remove later");
    assert_eq!(later.delay, std::time::Duration::from_millis(60_000));
    assert_eq!(later.paths.len(), renamed.len());
    // The broker stops before the delay has passed: the next open removes them.
    drop(later);
    drop(d);
    drop(log);
    fs.crash();
    let log = open_sim(&fs, config, false).unwrap();
    log.validate().unwrap();
    assert_eq!(deleted(&fs), Vec::<String>::new());
}

#[test]
fn retention_on_an_offline_log_is_refused() {
    let fs = fresh_fs(7);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    fill(&mut log, 5, 0);
    log.mark_failed();
    assert!(matches!(
        log.apply_retention(by_time(0), i64::MAX, 0),
        Err(StorageError::Offline(_))
    ));
    assert!(matches!(
        log.delete_records(1),
        Err(StorageError::Offline(_))
    ));
}

#[test]
fn retention_works_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 2_000,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir, config.clone(), false).unwrap();
    fill(&mut log, 12, 0);
    let end = log.log_end_offset();
    let mut d = log.apply_retention(by_size(2_000), end, 0).unwrap();
    assert!(d.segments > 0);
    d.unlink().unwrap();
    let logs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(logs, log.segment_count());
    log.close().unwrap();
    let (log, _) = Log::open(&dir, config, true).unwrap();
    assert_eq!(log.log_start_offset(), d.log_start_offset);
    assert!(Path::new(&dir).exists());
}
