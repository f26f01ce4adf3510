//! Compaction (the cleaner) through the public API: what a clean keeps and removes, the
//! plan / execute / install protocol, its bounds, and crash safety on `SimFs`.

mod common;

use std::collections::BTreeMap;

use common::*;
use weir_storage::record_codec::decode_records;
use weir_storage::testkit::{record_batch, BatchBuilder};
use weir_storage::{
    AbortedTxn, BatchHeader, CleanRequest, CleanStats, Fs, Log, RetentionPolicy, SimFs, SimRng,
    StorageError,
};

const NOW: i64 = 1_000_000_000;

fn request(now_ms: i64) -> CleanRequest {
    CleanRequest {
        now_ms,
        max_offset: i64::MAX,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 60_000,
        dedupe_buffer_bytes: 1 << 20,
        aborted_txns: Vec::new(),
    }
}

/// Plan, execute and install in one go.
fn clean(log: &mut Log, req: CleanRequest) -> Option<CleanStats> {
    let plan = log.plan_clean(req).unwrap()?;
    let out = plan.execute().unwrap();
    Some(log.install_clean(out).unwrap().0)
}

/// Clean until nothing is left to clean (each pass may stop early on a small buffer).
fn clean_fully(log: &mut Log, req: &CleanRequest) -> usize {
    let mut passes = 0;
    while clean(log, req.clone()).is_some() {
        passes += 1;
        assert!(passes < 100, "the cleaner makes no progress");
    }
    passes
}

fn append(log: &mut Log, b: BatchBuilder, now_ms: i64) -> (i64, i64) {
    let mut bytes = b.build();
    let info = log.append(&mut bytes, 0, now_ms).unwrap();
    (info.base_offset, info.last_offset)
}

/// Roll the active segment so that everything written so far is cleanable.
fn roll(log: &mut Log, now_ms: i64) {
    let mut cfg = log.config().clone();
    let saved = cfg.segment_ms;
    cfg.segment_ms = 0;
    log.set_config(cfg.clone());
    append(
        log,
        BatchBuilder::new(now_ms).record(Some(b"roll"), Some(b"r")),
        now_ms + 1,
    );
    cfg.segment_ms = saved;
    log.set_config(cfg);
}

/// The checks every cleaned log must pass against the records written before the clean
/// (`before`, in offset order) for the cleaned part `[.., clean_end)`:
/// - what is left is a subsequence of what was written, at the same offsets;
/// - every key's latest record below `clean_end` is still there (tombstones may be gone,
///   with every older record of their key);
/// - no key has two records below `clean_end` (the latest wins);
/// - batch offsets are dense, and a read at every offset returns the batch holding it.
fn check_cleaned(log: &Log, before: &[Rec], clean_end: i64, label: &str) {
    log.validate().unwrap();
    let all = read_all(log);
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert_dense(&all, start, end, label);
    let after = records(&all);
    let by_offset: BTreeMap<i64, _> = before.iter().map(|r| (r.0, r)).collect();
    for r in &after {
        let orig = by_offset
            .get(&r.0)
            .unwrap_or_else(|| panic!("{label}: record at {} was never written", r.0));
        assert_eq!(
            (&orig.1, &orig.2),
            (&r.1, &r.2),
            "{label}: record {} changed",
            r.0
        );
    }
    let model = latest_per_key(
        &before
            .iter()
            .filter(|r| r.0 < clean_end)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let got = latest_per_key(
        &after
            .iter()
            .filter(|r| r.0 < clean_end)
            .cloned()
            .collect::<Vec<_>>(),
    );
    for (k, (offset, value)) in &model {
        match got.get(k) {
            Some(g) => assert_eq!(g, &(*offset, value.clone()), "{label}: key {k:?}"),
            None => assert!(value.is_none(), "{label}: key {k:?} lost its latest value"),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in after.iter().filter(|r| r.0 < clean_end) {
        if let Some(k) = &r.1 {
            assert!(
                seen.insert(k.clone()),
                "{label}: key {k:?} twice below {clean_end}"
            );
        }
    }
    for offset in start..end {
        let got = log.read(offset, 1, i64::MAX).unwrap();
        let h = BatchHeader::parse(&got).unwrap();
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "{label}: read at {offset} gave {}..={}",
            h.base_offset,
            h.last_offset()
        );
    }
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    for seed in 0..8 {
        let label = format!("seed {seed}");
        let fs = fresh_fs(seed);
        let mut log = open_sim(&fs, small_config(), false).unwrap();
        let mut rng = SimRng::new(seed);
        let mut now = NOW;
        keyed_workload(&mut log, &mut rng, 120, 20, 10, &mut now);
        log.flush().unwrap();
        let mut before = records(&read_all(&log));
        let size_before = log.size_bytes();
        let segments_before = log.segment_count();
        let stats = clean(&mut log, request(now)).expect("something to clean");
        let clean_end = stats.clean_offset;
        assert!(
            stats.segments_read >= 2 && stats.segments_written >= 1,
            "{label}: {stats:?}"
        );
        assert!(log.size_bytes() < size_before, "{label}: nothing saved");
        assert!(log.segment_count() <= segments_before);
        check_cleaned(&log, &before, clean_end, &label);
        assert_eq!(
            log.cleaner_status(now, i64::MAX, 0).unwrap().dirty_bytes,
            0,
            "{label}"
        );
        // Nothing more to do; appends go on at the end.
        assert!(log.plan_clean(request(now)).unwrap().is_none(), "{label}");
        let end = log.log_end_offset();
        let (base, _) = append(
            &mut log,
            BatchBuilder::new(now).record(Some(b"k"), Some(b"v")),
            now,
        );
        assert_eq!(base, end);
        before.extend(records(&log.read(base, usize::MAX, i64::MAX).unwrap()));
        // The cleaned log reads the same after a clean and an unclean reopen.
        let content = read_all(&log);
        log.close().unwrap();
        let log = open_sim(&fs, small_config(), true).unwrap();
        assert_eq!(read_all(&log), content, "{label}: clean reopen");
        drop(log);
        fs.crash();
        let log = open_sim(&fs, small_config(), false).unwrap();
        assert_eq!(read_all(&log), content, "{label}: unclean reopen");
        check_cleaned(&log, &before, clean_end, &label);
        // Without a checkpoint every segment is CRC-scanned: cleaned ones pass too.
        drop(log);
        fs.remove_file(std::path::Path::new(&format!("{DIR}/log-checkpoint")))
            .unwrap();
        let log = open_sim(&fs, small_config(), false).unwrap();
        assert_eq!(read_all(&log), content, "{label}: full recovery scan");
        // Timestamp lookups find every kept record (or an earlier one).
        let kept = records(&content);
        for r in kept.iter().step_by(7) {
            let ts = decode_records(&log.read(r.0, 1, i64::MAX).unwrap())
                .unwrap()
                .into_iter()
                .find(|d| d.offset == r.0)
                .unwrap()
                .timestamp;
            let (o, t) = log.offset_for_timestamp(ts).unwrap().unwrap();
            assert!(
                o <= r.0 && t >= ts,
                "{label}: timestamp {ts} of {} gave {o}",
                r.0
            );
        }
    }
}

#[test]
fn a_log_start_inside_the_dirty_section_is_respected() {
    let fs = fresh_fs(11);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut now = NOW;
    keyed_workload(&mut log, &mut SimRng::new(11), 150, 15, 5, &mut now);
    log.flush().unwrap();
    let start = log.log_end_offset() / 3 + 1;
    log.delete_records(start).unwrap();
    let before = records(&read_all(&log));
    let status = log.cleaner_status(now, i64::MAX, 0).unwrap();
    assert_eq!(status.first_dirty_offset, start);
    let stats = clean(&mut log, request(now)).unwrap();
    assert_eq!(stats.first_dirty_offset, start);
    assert_eq!(log.log_start_offset(), start);
    check_cleaned(&log, &before, stats.clean_offset, "start inside");
    assert!(matches!(
        log.read(start - 1, 1, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn repeated_cleans_with_new_data_converge_on_the_model() {
    let fs = fresh_fs(42);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut rng = SimRng::new(42);
    let mut now = NOW;
    let mut written = Vec::new();
    for round in 0..6 {
        let from = log.log_end_offset();
        keyed_workload(&mut log, &mut rng, 60, 30, 5, &mut now);
        written.extend(records(&log.read(from, usize::MAX, i64::MAX).unwrap()));
        let stats = clean(&mut log, request(now)).expect("dirty data");
        check_cleaned(
            &log,
            &written,
            stats.clean_offset,
            &format!("round {round}"),
        );
    }
}

#[test]
fn tombstones_go_once_their_delete_horizon_passes() {
    let fs = fresh_fs(1);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let t = NOW;
    for i in 0..30 {
        let v = format!("v{i}");
        append(
            &mut log,
            BatchBuilder::new(t)
                .record(Some(b"a"), Some(v.as_bytes()))
                .record(Some(b"b"), Some(v.as_bytes())),
            t,
        );
    }
    append(&mut log, BatchBuilder::new(t).record(Some(b"a"), None), t);
    roll(&mut log, t);
    let before = records(&read_all(&log));
    let mut req = request(t);
    req.delete_retention_ms = 1_000;
    let first = clean(&mut log, req.clone()).unwrap();
    assert_eq!(first.tombstones_removed, 0);
    let keys = |log: &Log| {
        records(&read_all(log))
            .into_iter()
            .filter(|r| r.1.as_deref() != Some(b"roll"))
            .map(|r| (r.1.unwrap(), r.2))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&log),
        vec![
            (b"b".to_vec(), Some(b"v29".to_vec())),
            (b"a".to_vec(), None)
        ],
        "the tombstone stays, every older value of its key went"
    );
    let status = log.cleaner_status(t, i64::MAX, 0).unwrap();
    assert_eq!(status.delete_horizon_ms, Some(t + 1_000));
    // Before the horizon nothing happens; at the horizon a pass runs without dirty data.
    req.now_ms = t + 999;
    assert!(log.plan_clean(req.clone()).unwrap().is_none());
    req.now_ms = t + 1_000;
    let second = clean(&mut log, req.clone()).unwrap();
    assert_eq!(second.tombstones_removed, 1);
    assert_eq!(keys(&log), vec![(b"b".to_vec(), Some(b"v29".to_vec()))]);
    assert_eq!(
        log.cleaner_status(t, i64::MAX, 0)
            .unwrap()
            .delete_horizon_ms,
        None
    );
    assert!(log.plan_clean(req).unwrap().is_none());
    check_cleaned(&log, &before, 0, "after tombstone removal");
}

#[test]
fn min_compaction_lag_and_max_offset_leave_recent_segments_dirty() {
    let fs = fresh_fs(2);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut rng = SimRng::new(2);
    let mut now = NOW;
    keyed_workload(&mut log, &mut rng, 80, 10, 0, &mut now);
    let mid_time = now;
    keyed_workload(&mut log, &mut rng, 80, 10, 0, &mut now);
    log.flush().unwrap();
    let before = read_all(&log);
    // Lag: only segments whose newest batch is older than mid_time are cleaned.
    let mut req = request(now);
    req.min_compaction_lag_ms = now - mid_time;
    let status = log
        .cleaner_status(now, i64::MAX, req.min_compaction_lag_ms)
        .unwrap();
    let bound = status.first_uncleanable_offset;
    assert!(bound > 0 && bound < log.log_end_offset());
    let stats = clean(&mut log, req).unwrap();
    assert!(stats.clean_offset <= bound);
    let after = read_all(&log);
    let tail = |b: &[u8]| {
        let recs = records(b);
        recs.into_iter()
            .filter(|r| r.0 >= bound)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tail(&after),
        tail(&before),
        "nothing at or past the bound changed"
    );
    // max_offset (the last stable offset) bounds it the same way, at segment granularity.
    let fs = fresh_fs(3);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut now = NOW;
    keyed_workload(&mut log, &mut SimRng::new(3), 160, 10, 0, &mut now);
    log.flush().unwrap();
    let before = read_all(&log);
    let lso = log.log_end_offset() / 2;
    let mut req = request(now);
    req.max_offset = lso;
    let stats = clean(&mut log, req).unwrap();
    assert!(stats.clean_offset <= lso);
    let after = read_all(&log);
    let from_lso = |b: &[u8]| {
        records(b)
            .into_iter()
            .filter(|r| r.0 >= lso)
            .collect::<Vec<_>>()
    };
    assert_eq!(from_lso(&after), from_lso(&before));
}

#[test]
fn a_small_dedupe_buffer_cleans_in_several_passes_to_the_same_result() {
    let build = |seed| {
        let fs = fresh_fs(seed);
        let mut log = open_sim(&fs, small_config(), false).unwrap();
        let mut now = NOW;
        keyed_workload(&mut log, &mut SimRng::new(9), 200, 300, 5, &mut now);
        roll(&mut log, now);
        (fs, log, now)
    };
    let (_fs, mut big, now) = build(1);
    let (_fs2, mut small, _) = build(2);
    let before = records(&read_all(&big));
    assert_eq!(clean_fully(&mut big, &request(now)), 1);
    let mut req = request(now);
    req.dedupe_buffer_bytes = 24 * 60; // room for 53 records a pass
    let passes = clean_fully(&mut small, &req);
    assert!(passes > 3, "{passes} passes");
    // Same records at the same offsets (the batch framing may differ).
    assert_eq!(records(&read_all(&small)), records(&read_all(&big)));
    check_cleaned(&small, &before, small.log_end_offset() - 1, "small buffer");
    // A buffer smaller than one batch is an error, not a loop.
    let (_fs3, tiny, now) = build(3);
    let plan = tiny.plan_clean(request(now)).unwrap().unwrap();
    drop(plan);
    let mut r = request(now);
    r.dedupe_buffer_bytes = 24;
    let err = tiny.plan_clean(r).unwrap().unwrap().execute().unwrap_err();
    assert!(err.to_string().contains("dedupe buffer"), "{err}");
    assert!(
        tiny.plan_clean(request(now)).unwrap().is_some(),
        "the failed plan let go"
    );
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    for codec in 1..=4i16 {
        let fs = fresh_fs(codec as u64);
        let mut log = open_sim(&fs, small_config(), false).unwrap();
        for i in 0..40 {
            let mut b = BatchBuilder::new(NOW).codec(codec);
            for k in 0..5 {
                let key = format!("k{}", (i + k) % 7);
                let value = format!("value {i} {k} {}", "x".repeat(50));
                b = b.record(Some(key.as_bytes()), Some(value.as_bytes()));
            }
            append(&mut log, b, NOW);
        }
        roll(&mut log, NOW);
        let before = records(&read_all(&log));
        let stats = clean(&mut log, request(NOW)).unwrap();
        assert_eq!(stats.unreadable_batches, 0);
        check_cleaned(&log, &before, stats.clean_offset, &format!("codec {codec}"));
        for h in headers(&read_all(&log)) {
            if h.record_count > 0 && h.base_offset < stats.clean_offset {
                assert_eq!(h.compression(), codec, "codec kept at {}", h.base_offset);
            }
        }
    }
}

#[test]
fn an_idempotent_producers_last_batch_stays_as_an_empty_header() {
    let fs = fresh_fs(4);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut seq = 0;
    let mut last = (0, 0);
    for i in 0..20 {
        let b = BatchBuilder::new(NOW)
            .producer(77, 3, seq)
            .record(Some(b"p"), Some(format!("v{i}").as_bytes()))
            .record(Some(b"q"), Some(b"x"));
        seq += 2;
        last = append(&mut log, b, NOW);
    }
    // Another producer supersedes every key of producer 77.
    for _ in 0..10 {
        append(
            &mut log,
            BatchBuilder::new(NOW)
                .record(Some(b"p"), Some(b"new"))
                .record(Some(b"q"), Some(b"new")),
            NOW,
        );
    }
    roll(&mut log, NOW);
    clean(&mut log, request(NOW)).unwrap();
    let hs = headers(&read_all(&log));
    let p77: Vec<&BatchHeader> = hs.iter().filter(|h| h.producer_id == 77).collect();
    assert_eq!(p77.len(), 1, "only the producer's last batch is kept");
    let h = p77[0];
    assert_eq!((h.base_offset, h.last_offset()), last);
    assert_eq!(
        (h.record_count, h.producer_epoch, h.base_sequence),
        (0, 3, 38)
    );
    assert!(
        decode_records(&log.read(h.base_offset, 1, i64::MAX).unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn aborted_transactions_lose_their_data_and_markers_stay() {
    let fs = fresh_fs(5);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let txn = |pid: i64, key: &str, v: &str| {
        BatchBuilder::new(NOW)
            .producer(pid, 0, 0)
            .transactional()
            .record(Some(key.as_bytes()), Some(v.as_bytes()))
    };
    append(
        &mut log,
        BatchBuilder::new(NOW).record(Some(b"k"), Some(b"committed-before")),
        NOW,
    );
    let (first, _) = append(&mut log, txn(5, "k", "aborted"), NOW);
    append(&mut log, txn(5, "other", "aborted-too"), NOW);
    let (abort_marker, _) = append(
        &mut log,
        BatchBuilder::new(NOW).producer(5, 0, -1).marker(false),
        NOW,
    );
    append(&mut log, txn(6, "c", "committed"), NOW);
    let (commit_marker, _) = append(
        &mut log,
        BatchBuilder::new(NOW).producer(6, 0, -1).marker(true),
        NOW,
    );
    for _ in 0..20 {
        append(
            &mut log,
            BatchBuilder::new(NOW).record(Some(b"filler"), Some(&[0u8; 100])),
            NOW,
        );
    }
    roll(&mut log, NOW);
    let mut req = request(NOW);
    req.aborted_txns = vec![AbortedTxn {
        producer_id: 5,
        first_offset: first,
        last_offset: abort_marker,
    }];
    let stats = clean(&mut log, req).unwrap();
    assert_eq!(stats.aborted_records_removed, 2);
    let all = read_all(&log);
    let recs = records(&all);
    let value_of = |k: &[u8]| {
        recs.iter()
            .find(|r| r.1.as_deref() == Some(k))
            .and_then(|r| r.2.clone())
    };
    assert_eq!(
        value_of(b"k").as_deref(),
        Some(&b"committed-before"[..]),
        "the aborted value does not win"
    );
    assert_eq!(value_of(b"other"), None);
    assert_eq!(value_of(b"c").as_deref(), Some(&b"committed"[..]));
    let markers: Vec<i64> = headers(&all)
        .iter()
        .filter(|h| h.is_control())
        .map(|h| h.base_offset)
        .collect();
    assert_eq!(markers, vec![abort_marker, commit_marker]);
}

#[test]
fn markers_of_emptied_transactions_go_after_their_delete_horizon() {
    let fs = fresh_fs(6);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut seq = 0;
    let mut txn = |key: &str, v: &str| {
        let b = BatchBuilder::new(NOW)
            .producer(5, 0, seq)
            .transactional()
            .record(Some(key.as_bytes()), Some(v.as_bytes()));
        seq += 1;
        b
    };
    let marker = |commit: bool| BatchBuilder::new(NOW).producer(5, 0, -1).marker(commit);
    // A: aborted. B: committed, its only value superseded by C. C: committed, holds the
    // producer's last data batch, so it and its marker stay.
    let (a_first, _) = append(&mut log, txn("a", "aborted"), NOW);
    let (a_marker, _) = append(&mut log, marker(false), NOW);
    append(&mut log, txn("b", "old"), NOW);
    let (b_marker, _) = append(&mut log, marker(true), NOW);
    append(&mut log, txn("b", "new"), NOW);
    let (c_marker, _) = append(&mut log, marker(true), NOW);
    for _ in 0..20 {
        append(
            &mut log,
            BatchBuilder::new(NOW).record(Some(b"filler"), Some(&[0u8; 100])),
            NOW,
        );
    }
    roll(&mut log, NOW);
    let before = records(&read_all(&log));
    let mut req = request(NOW);
    req.delete_retention_ms = 1_000;
    req.aborted_txns = vec![AbortedTxn {
        producer_id: 5,
        first_offset: a_first,
        last_offset: a_marker,
    }];
    let markers = |log: &Log| -> Vec<(i64, bool)> {
        headers(&read_all(log))
            .iter()
            .filter(|h| h.is_control())
            .map(|h| (h.base_offset, h.attributes & 0x40 != 0))
            .collect()
    };

    // First pass: A's and B's data go; their markers stay, stamped with a delete horizon.
    let first = clean(&mut log, req.clone()).unwrap();
    assert_eq!(first.markers_removed, 0);
    assert_eq!(
        markers(&log),
        vec![(a_marker, true), (b_marker, true), (c_marker, false)]
    );
    assert_eq!(
        log.cleaner_status(NOW, i64::MAX, 0)
            .unwrap()
            .delete_horizon_ms,
        Some(NOW + 1_000)
    );
    req.now_ms = NOW + 999;
    assert!(log.plan_clean(req.clone()).unwrap().is_none());

    // At the horizon a pass removes them; C's marker stays with C's batch.
    req.now_ms = NOW + 1_000;
    let second = clean(&mut log, req.clone()).unwrap();
    assert_eq!(second.markers_removed, 2);
    assert_eq!(markers(&log), vec![(c_marker, false)]);
    let p5: Vec<BatchHeader> = headers(&read_all(&log))
        .into_iter()
        .filter(|h| h.producer_id == 5 && !h.is_control())
        .collect();
    assert_eq!(p5.len(), 1, "only C's batch is left of the producer's data");
    assert!(p5[0].base_offset < c_marker && p5[0].base_offset > b_marker);
    check_cleaned(&log, &before, 0, "after marker removal");
    assert!(log.plan_clean(req).unwrap().is_none());
}

#[test]
fn a_marker_stays_while_any_batch_of_its_transaction_is_left() {
    let fs = fresh_fs(7);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    // Producer 8's transaction writes "x" and "y"; only "x" is superseded later, by a
    // plain producer. Producer 8 writes again afterwards, so no batch of the transaction
    // is its last.
    let t8 = |seq: i32, key: &str| {
        BatchBuilder::new(NOW)
            .producer(8, 0, seq)
            .transactional()
            .record(Some(key.as_bytes()), Some(b"t"))
    };
    append(&mut log, t8(0, "x"), NOW);
    append(&mut log, t8(1, "y"), NOW);
    let (m1, _) = append(
        &mut log,
        BatchBuilder::new(NOW).producer(8, 0, -1).marker(true),
        NOW,
    );
    append(&mut log, t8(2, "z"), NOW);
    let (m2, _) = append(
        &mut log,
        BatchBuilder::new(NOW).producer(8, 0, -1).marker(true),
        NOW,
    );
    append(
        &mut log,
        BatchBuilder::new(NOW).record(Some(b"x"), Some(b"plain")),
        NOW,
    );
    roll(&mut log, NOW);
    let mut req = request(NOW);
    req.delete_retention_ms = 0;
    for _ in 0..3 {
        clean(&mut log, req.clone());
        req.now_ms += 1;
    }
    let control: Vec<i64> = headers(&read_all(&log))
        .iter()
        .filter(|h| h.is_control())
        .map(|h| h.base_offset)
        .collect();
    assert_eq!(control, vec![m1, m2], "\"y\" is left, so its marker stays");
}

#[test]
fn appends_and_rolls_during_a_clean_do_not_stop_its_install() {
    let fs = fresh_fs(6);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut rng = SimRng::new(6);
    let mut now = NOW;
    keyed_workload(&mut log, &mut rng, 100, 10, 0, &mut now);
    log.flush().unwrap();
    let plan = log.plan_clean(request(now)).unwrap().unwrap();
    assert!(
        log.plan_clean(request(now)).unwrap().is_none(),
        "one plan at a time"
    );
    // Off-lock work meanwhile: the log takes appends and rolls.
    let out = std::thread::scope(|s| {
        let t = s.spawn(|| plan.execute().unwrap());
        keyed_workload(&mut log, &mut rng, 100, 10, 0, &mut now);
        t.join().unwrap()
    });
    let written = records(&read_all(&log));
    let (stats, _retired) = log.install_clean(out).unwrap();
    check_cleaned(
        &log,
        &written,
        stats.clean_offset,
        "after concurrent appends",
    );
    assert!(
        log.plan_clean(request(now)).unwrap().is_some(),
        "the rest is dirty"
    );
}

#[test]
fn retention_during_a_clean_aborts_its_install() {
    let fs = fresh_fs(7);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut now = NOW;
    keyed_workload(&mut log, &mut SimRng::new(7), 100, 10, 0, &mut now);
    log.flush().unwrap();
    let plan = log.plan_clean(request(now)).unwrap().unwrap();
    let out = plan.execute().unwrap();
    let end = log.log_end_offset();
    let policy = RetentionPolicy {
        retention_ms: -1,
        retention_bytes: log.size_bytes() as i64 - 3_000,
    };
    assert!(log.apply_retention(policy, end, now).unwrap().segments > 0);
    let before = read_all(&log);
    let err = log.install_clean(out).unwrap_err();
    assert!(matches!(err, StorageError::CleanAborted(_)), "{err}");
    assert!(!log.is_offline());
    assert_eq!(read_all(&log), before, "nothing changed");
    assert!(
        !fs.paths()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".cleaned")),
        "the aborted clean's files are gone"
    );
    // The next clean works.
    assert!(clean(&mut log, request(now)).is_some());
}

#[test]
fn cleaner_status_reports_the_dirty_ratio() {
    let fs = fresh_fs(8);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    let mut now = NOW;
    let s = log.cleaner_status(now, i64::MAX, 0).unwrap();
    assert_eq!((s.clean_bytes, s.dirty_bytes, s.dirty_ratio), (0, 0, 0.0));
    keyed_workload(&mut log, &mut SimRng::new(8), 100, 10, 0, &mut now);
    log.flush().unwrap();
    let s = log.cleaner_status(now, i64::MAX, 0).unwrap();
    assert_eq!(s.clean_bytes, 0);
    assert!(s.dirty_bytes > 0 && s.dirty_ratio == 1.0);
    assert_eq!(s.first_dirty_timestamp_ms, Some(NOW));
    clean(&mut log, request(now)).unwrap();
    keyed_workload(&mut log, &mut SimRng::new(9), 100, 10, 0, &mut now);
    log.flush().unwrap();
    let s = log.cleaner_status(now, i64::MAX, 0).unwrap();
    assert!(s.clean_bytes > 0 && s.dirty_bytes > 0, "{s:?}");
    assert!(s.dirty_ratio > 0.0 && s.dirty_ratio < 1.0, "{s:?}");
    assert_eq!(
        s.dirty_ratio,
        s.dirty_bytes as f64 / (s.dirty_bytes + s.clean_bytes) as f64
    );
    // The cleaner checkpoint survives a reopen.
    let first_dirty = s.first_dirty_offset;
    log.close().unwrap();
    let log = open_sim(&fs, small_config(), true).unwrap();
    assert_eq!(
        log.cleaner_status(now, i64::MAX, 0)
            .unwrap()
            .first_dirty_offset,
        first_dirty
    );
}

#[test]
fn a_plan_and_its_output_can_move_to_another_thread() {
    fn send<T: Send>() {}
    send::<weir_storage::CleanPlan>();
    send::<weir_storage::CleanOutput>();
    send::<CleanStats>();
}

#[test]
fn keyless_records_are_removed_by_compaction() {
    let fs = fresh_fs(10);
    let mut log = open_sim(&fs, small_config(), false).unwrap();
    for _ in 0..10 {
        log.append(&mut record_batch(3, 100, NOW), 0, NOW).unwrap();
        append(
            &mut log,
            BatchBuilder::new(NOW).record(Some(b"k"), Some(b"v")),
            NOW,
        );
    }
    roll(&mut log, NOW);
    let stats = clean(&mut log, request(NOW)).unwrap();
    assert_eq!(stats.keyless_records_removed, 30);
    let recs = records(&read_all(&log));
    assert!(recs.iter().all(|r| r.1.is_some()));
    log.validate().unwrap();
}

/// Crash (power loss, torn power loss, process crash in turn) at every file-system
/// operation of a clean (execute and install), sometimes again during the recovery: after
/// the unclean reopen the log reads exactly as before the clean or exactly as after it,
/// the latest value of every key equals the model, and appends go on at the log end.
#[test]
fn a_crash_at_every_operation_of_a_clean_leaves_the_log_before_or_after() {
    crash_at_every_operation_of_a_clean(0);
}

/// The same with `file.delete.delay.ms`: the replaced `.log` files are renamed to
/// `*.deleted` in the swap, then removed (here at once, as the broker does after the
/// delay); a crash anywhere leaves none of them after the reopen.
#[test]
fn a_crash_at_every_operation_of_a_clean_with_delayed_deletion_leaves_the_log_before_or_after() {
    crash_at_every_operation_of_a_clean(60_000);
}

#[test]
fn a_clean_with_delayed_deletion_renames_the_replaced_segments() {
    let mut config = small_config();
    config.segment_bytes = 1_500;
    config.file_delete_delay_ms = 60_000;
    let fs = fresh_fs(3);
    let mut log = open_sim(&fs, config.clone(), false).unwrap();
    let mut now = NOW;
    let mut rng = SimRng::new(77);
    keyed_workload(&mut log, &mut rng, 90, 12, 8, &mut now);
    log.flush().unwrap();
    let before = read_all(&log);
    let plan = log.plan_clean(request(now)).unwrap().expect("dirty");
    let out = plan.execute().unwrap();
    let (stats, mut retired) = log.install_clean(out).unwrap();
    let later = retired.delayed_removal().expect("renamed files");
    assert_eq!(later.delay, std::time::Duration::from_millis(60_000));
    assert_eq!(later.paths.len(), stats.segments_read);
    for p in &later.paths {
        assert!(p.to_string_lossy().ends_with(".log.deleted"), "{p:?}");
        assert!(fs.paths().contains(p), "{p:?} is on disk until removed");
    }
    // The log reads as cleaned meanwhile, and a reopen removes what was not removed yet.
    assert!(records(&read_all(&log)).len() < records(&before).len());
    drop(retired);
    log.close().unwrap();
    let log = open_sim(&fs, config.clone(), true).unwrap();
    assert!(!fs
        .paths()
        .iter()
        .any(|p| p.to_string_lossy().ends_with(".deleted")));
    log.validate().unwrap();
}

fn crash_at_every_operation_of_a_clean(file_delete_delay_ms: u64) {
    let mut config = small_config();
    config.segment_bytes = 1_500;
    config.file_delete_delay_ms = file_delete_delay_ms;
    let setup = |seed: u64| -> (SimFs, Log, i64) {
        let fs = fresh_fs(seed);
        let mut log = open_sim(&fs, config.clone(), false).unwrap();
        let mut now = NOW;
        let mut rng = SimRng::new(77);
        keyed_workload(&mut log, &mut rng, 90, 12, 8, &mut now);
        log.flush().unwrap();
        // A first clean leaves small segments, which the clean under test merges.
        clean(&mut log, request(now)).unwrap();
        keyed_workload(&mut log, &mut rng, 60, 12, 8, &mut now);
        log.flush().unwrap();
        (fs, log, now)
    };
    let run_clean = |log: &mut Log, now: i64| -> Result<CleanStats, StorageError> {
        let plan = log.plan_clean(request(now))?.expect("dirty");
        let out = plan.execute()?;
        let (stats, mut retired) = log.install_clean(out)?;
        if let Some(later) = retired.delayed_removal() {
            later.remove().map_err(|source| StorageError::Io {
                context: "removing *.deleted files".into(),
                source,
            })?;
        }
        Ok(stats)
    };
    let (fs, mut log, now) = setup(0);
    let pre = read_all(&log);
    // Records as first written are gone (the first clean); the model is the log as it
    // stands before the clean under test.
    let written = records(&pre);
    let end = log.log_end_offset();
    let first_op = fs.op_count();
    let stats = run_clean(&mut log, now).unwrap();
    let total_ops = fs.op_count();
    let post = read_all(&log);
    assert_ne!(pre, post);
    assert!(stats.segments_written >= 2, "several groups: {stats:?}");
    assert!(
        stats.segments_read > stats.segments_written + 2,
        "groups merge segments: {stats:?}"
    );
    assert!(total_ops - first_op > 20, "{} ops", total_ops - first_op);
    let (mut saw_pre, mut saw_post) = (0, 0);
    // Torn power losses draw which unsynced changes survive: several draws per point.
    const MODES: [u64; 6] = [0, 1, 1, 1, 1, 2];
    for k in first_op..total_ops {
        for (trial, &mode) in MODES.iter().enumerate() {
            let seed = k * MODES.len() as u64 + trial as u64;
            let label = format!("crash at op {k} mode {mode} seed {seed}");
            let (fs, mut log, now) = setup(seed);
            fs.crash_at_op(k);
            assert!(run_clean(&mut log, now).is_err(), "{label}: no crash");
            drop(log);
            let mut rng = SimRng::new(seed);
            let crash = |fs: &SimFs, m: u64| match m {
                0 => fs.crash(),
                1 => fs.crash_torn(),
                _ => fs.restart(),
            };
            crash(&fs, mode);
            // Sometimes the power goes again during the recovery.
            let log = loop {
                if rng.chance(1, 3) {
                    fs.crash_at_op(fs.op_count() + rng.below(12));
                }
                match open_sim(&fs, config.clone(), false) {
                    Ok(log) => break log,
                    Err(_) if fs.is_down() => crash(&fs, rng.below(3)),
                    Err(e) => panic!("{label}: reopen: {e}"),
                }
            };
            fs.heal();
            let mut log = log;
            let got = read_all(&log);
            if got == pre {
                saw_pre += 1;
            } else if got == post {
                saw_post += 1;
            } else {
                panic!("{label}: the log is neither as before nor as after the clean");
            }
            check_cleaned(
                &log,
                &written,
                if got == pre { 0 } else { stats.clean_offset },
                &label,
            );
            assert!(
                !fs.paths().iter().any(|p| {
                    let p = p.to_string_lossy();
                    p.ends_with(".cleaned")
                        || p.ends_with("cleaner-swap")
                        || p.ends_with(".deleted")
                }),
                "{label}: leftovers"
            );
            assert_eq!(log.log_end_offset(), end, "{label}");
            let (base, _) = append(
                &mut log,
                BatchBuilder::new(now).record(Some(b"k"), Some(b"v")),
                now,
            );
            assert_eq!(base, end, "{label}: appends continue at the log end");
            log.flush().unwrap();
            // The recovered state itself survives the next power loss.
            let content = read_all(&log);
            drop(log);
            fs.crash();
            let log = open_sim(&fs, config.clone(), false).unwrap();
            assert_eq!(
                read_all(&log),
                content,
                "{label}: after a second power loss"
            );
            // And a clean from there still works.
            let mut log = log;
            if let Some(s) = clean(&mut log, request(now)) {
                assert!(s.clean_offset > 0);
            }
        }
    }
    assert!(saw_pre > 0 && saw_post > 0, "pre {saw_pre} post {saw_post}");
}
