//! Record batch validation, the produce path's gate: `validate_record_set`,
//! `BatchHeader::parse` and `records::for_each_record_time` (which decompresses, bounded)
//! on the same bytes; then, for a record set that validates, the path after the gate:
//! append it (twice, so segments roll) to a `Log` on an in-memory `SimFs`, read it back,
//! close, reopen clean, crash and reopen with recovery.
//!
//! Input: byte 0 = flags, the rest = the record set (the `records` of one partition of a
//! Produce request).
//! - bit 0: recompute every batch's CRC-32C first (so mutations get past the CRC check);
//! - bit 1: also append / read / reopen;
//! - bit 2: the log stamps LogAppendTime;
//! - bits 3-4: max.message.bytes: 1 MiB + 12 (the default), 100, 4096, 64 KiB.
//!
//! Checks: no panic; a set that validates is whole batches back to back whose headers are
//! what `validate_record_set` returned; the log assigns dense offsets from its end, reads
//! back exactly what was appended (offsets and stamped fields aside), and keeps all of it
//! across a clean reopen and across a crash after the flush.

#![no_main]

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{fix_batch_crcs, read_everything};
use weir_storage::batch::validate_record_set;
use weir_storage::records::for_each_record_time;
use weir_storage::{BatchHeader, Log, LogConfig, SimFs};

fn walk_records(batch: &[u8]) {
    let mut n = 0u32;
    let _ = for_each_record_time(batch, |_| {
        n += 1;
        if n > 100_000 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
}

/// Compare a batch read back with the one appended, ignoring what the log rewrites.
fn same_batch(read: &[u8], appended: &[u8], log_append_time: bool) -> bool {
    if read.len() != appended.len() {
        return false;
    }
    // base_offset (0..8) and partition_leader_epoch (12..16) are rewritten; with
    // LogAppendTime also crc (17..21), attributes (21..23) and max_timestamp (35..43).
    let skip = |i: usize| {
        i < 8
            || (12..16).contains(&i)
            || (log_append_time && ((17..23).contains(&i) || (35..43).contains(&i)))
    };
    (0..read.len()).all(|i| skip(i) || read[i] == appended[i])
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut set = rest.to_vec();
    if flags & 1 != 0 {
        fix_batch_crcs(&mut set);
    }
    let max = match (flags >> 3) & 3 {
        0 => 1024 * 1024 + 12,
        1 => 100,
        2 => 4096,
        _ => 64 * 1024,
    };
    let _ = BatchHeader::parse(&set);
    walk_records(&set);
    let Ok(headers) = validate_record_set(&set, max) else {
        return;
    };
    // The headers describe the whole set, batch after batch.
    let mut batches = Vec::new();
    let mut pos = 0usize;
    for h in &headers {
        assert_eq!(BatchHeader::parse(&set[pos..]).as_ref(), Some(h));
        assert!(h.total_len() <= max);
        batches.push(set[pos..pos + h.total_len()].to_vec());
        walk_records(&set[pos..pos + h.total_len()]);
        pos += h.total_len();
    }
    assert_eq!(pos, set.len(), "validated set has trailing bytes");

    if flags & 2 == 0 {
        return;
    }
    let log_append_time = flags & 4 != 0;
    let config = LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        max_message_bytes: max,
        log_append_time,
        ..LogConfig::default()
    };
    let fs = SimFs::new(1);
    let dir = Path::new("/data/topic-0");
    let (mut log, _) =
        Log::open_in(Arc::new(fs.clone()), dir, config.clone(), true).expect("open an empty log");
    let offsets: i64 = headers.iter().map(|h| h.last_offset_delta as i64 + 1).sum();
    let mut appended = Vec::new();
    for round in 0..2i64 {
        let leo = log.log_end_offset();
        let mut copy = set.clone();
        match log.append(&mut copy, round as i32, 1_700_000_000_000 + round) {
            Ok(info) => {
                assert_eq!(info.base_offset, leo, "append not at the log end");
                assert_eq!(info.last_offset, leo + offsets - 1, "offsets not dense");
                assert_eq!(log.log_end_offset(), leo + offsets);
                appended.extend(batches.iter().cloned());
            }
            // A set spanning more offsets than one segment can address is refused.
            Err(_) => {
                assert!(offsets - 1 > u32::MAX as i64, "valid set refused by append");
                return;
            }
        }
    }
    log.flush().expect("flush");
    let check = |log: &Log, when: &str| {
        let read = read_everything(log);
        assert_eq!(read.len(), appended.len(), "batches read back {when}");
        for (r, a) in read.iter().zip(&appended) {
            assert!(
                same_batch(&r.bytes, a, log_append_time),
                "batch at {} differs from what was appended ({when})",
                r.base_offset
            );
        }
        read
    };
    let before = check(&log, "after append");
    let leo = log.log_end_offset();
    log.close().expect("close");

    let (log, report) =
        Log::open_in(Arc::new(fs.clone()), dir, config.clone(), true).expect("clean reopen");
    assert_eq!(report.bytes_truncated, 0, "clean reopen truncated");
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(check(&log, "after a clean reopen"), before);
    drop(log);

    fs.crash();
    let (log, report) =
        Log::open_in(Arc::new(fs.clone()), dir, config, false).expect("recovering reopen");
    assert_eq!(
        report.bytes_truncated, 0,
        "recovery cut flushed data: {report:?}"
    );
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(check(&log, "after a crash"), before);
});
