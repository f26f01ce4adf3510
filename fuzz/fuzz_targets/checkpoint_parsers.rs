//! The small file and record parsers that read what an earlier run wrote:
//! - the log's checkpoint files (`log-checkpoint`, `leader-epoch-checkpoint`,
//!   `offline-checkpoint`) and its `.index` / `.timeindex` files. Their parsers are private
//!   to weir-storage, so the input replaces one of those files in a valid three-segment log
//!   on a `SimFs`, and `Log::open_in` reads it;
//! - the producer-state snapshot (`ProducerStateMap::decode_snapshot`);
//! - the `__consumer_offsets` record decoders (`decode_key`, `decode_offset_value`,
//!   `decode_group_value`).
//!
//! Input: byte 0 = what the rest is. Its low 4 bits (modulo 9) pick the parser:
//! 0 `log-checkpoint`, 1 `leader-epoch-checkpoint`, 2 `offline-checkpoint`, 3 `.index`,
//! 4 `.timeindex` (of the segment picked by bits 4-5), 5 producer snapshot, 6-8 the
//! `__consumer_offsets` decoders; bit 6 = recompute the file's CRC (index files, snapshot);
//! bit 7 = open the log as after a clean shutdown.
//!
//! Checks: no panic; whatever a checkpoint or index file says, no data is lost or changed
//! (only an offline checkpoint may cut the log, and only from its end); leader epochs stay
//! ordered and below the log end; decoded snapshots and records re-encode to themselves.

#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use weir_broker::group::records::{
    decode_group_value, decode_key, decode_offset_value, encode_group_value, encode_key,
    encode_offset_value,
};
use weir_broker::producer_state::{ProducerBatch, ProducerStateMap};
use weir_fuzz::{fix_index_crc, read_everything, valid_batch, ReadBatch};
use weir_storage::{Fs, Log, LogConfig, SimFs};

const DIR: &str = "/data/topic-0";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// A cleanly closed log of three segments, ten batches, leader epochs 0, 2 and 5.
fn base_log(fs: &SimFs) -> (Vec<ReadBatch>, Vec<i64>) {
    let (mut log, _) =
        Log::open_in(Arc::new(fs.clone()), Path::new(DIR), config(), true).expect("open");
    for i in 0..10i64 {
        let mut b = valid_batch(1 + (i as usize % 3), 40, 1_700_000_000_000 + i * 10);
        let epoch = [0, 0, 0, 2, 2, 2, 2, 5, 5, 5][i as usize];
        log.append(&mut b, epoch, 1_700_000_000_000)
            .expect("append");
    }
    let batches = read_everything(&log);
    log.close().expect("close");
    let mut bases: Vec<i64> = fs
        .paths()
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort();
    (batches, bases)
}

fn replace(fs: &SimFs, name: &str, bytes: &[u8]) {
    let path = Path::new(DIR).join(name);
    let f = fs.create_truncate(&path).expect("create");
    if !bytes.is_empty() {
        f.write_all_at(bytes, 0).expect("write");
    }
    f.sync_all().expect("fsync");
}

fn log_file(fs: &SimFs, which: u8, seg_choice: usize, clean: bool, rest: &[u8], fix_crc: bool) {
    let (original, bases) = base_log(fs);
    assert_eq!(bases.len(), 3, "the base log has three segments");
    let leo = original.last().unwrap().last_offset + 1;
    let mut bytes = rest.to_vec();
    match which {
        0 => replace(fs, "log-checkpoint", &bytes),
        1 => replace(fs, "leader-epoch-checkpoint", &bytes),
        2 => replace(fs, "offline-checkpoint", &bytes),
        _ => {
            if fix_crc {
                fix_index_crc(&mut bytes);
            }
            let seg = bases[seg_choice % 3];
            let suffix = if which == 3 { ".index" } else { ".timeindex" };
            replace(fs, &format!("{seg:020}{suffix}"), &bytes);
        }
    }
    let (log, report) = Log::open_in(Arc::new(fs.clone()), Path::new(DIR), config(), clean)
        .unwrap_or_else(|e| panic!("opening with a bad file {which} failed: {e}"));
    let end = log.log_end_offset();
    let epochs = log.leader_epochs().to_vec();
    for w in epochs.windows(2) {
        assert!(
            w[0].0 < w[1].0 && w[0].1 <= w[1].1,
            "leader epochs out of order: {epochs:?}"
        );
    }
    assert!(
        epochs.iter().all(|&(_, off)| off < end),
        "epoch past the log end: {epochs:?}"
    );
    if which == 2 {
        assert!(end <= leo, "an offline checkpoint grew the log");
    } else {
        assert_eq!(
            report.bytes_truncated, 0,
            "file {which} made recovery cut: {report:?}"
        );
        assert_eq!(end, leo, "file {which} changed the log end");
    }
    let read = read_everything(&log);
    for b in &read {
        let orig = original
            .iter()
            .find(|o| o.base_offset == b.base_offset)
            .unwrap_or_else(|| panic!("read a batch at {} that was never written", b.base_offset));
        assert_eq!(&orig.bytes, &b.bytes, "batch at {} changed", b.base_offset);
    }
    // Everything from the log start to the end is there.
    let start = log.log_start_offset();
    let expected = original
        .iter()
        .filter(|o| o.last_offset >= start && o.base_offset < end);
    assert_eq!(
        read.len(),
        expected.count(),
        "batches missing after a bad file {which}"
    );
}

fn snapshot(rest: &[u8], fix_crc: bool) {
    let mut bytes = rest.to_vec();
    if fix_crc && bytes.len() >= 4 {
        let n = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_be_bytes());
    }
    let Some((offset, mut map)) = ProducerStateMap::decode_snapshot(&bytes) else {
        return;
    };
    let again = map.encode_snapshot(offset);
    assert_eq!(
        ProducerStateMap::decode_snapshot(&again),
        Some((offset, map.clone())),
        "snapshot does not round-trip"
    );
    // Use it as the broker would: sequence checks, records, expiry.
    for chunk in rest.chunks_exact(18).take(32) {
        let b = ProducerBatch {
            producer_id: i64::from_be_bytes(chunk[..8].try_into().unwrap()) % 4,
            epoch: i16::from_be_bytes(chunk[8..10].try_into().unwrap()),
            first_seq: i32::from_be_bytes(chunk[10..14].try_into().unwrap()),
            last_seq: i32::from_be_bytes(chunk[14..18].try_into().unwrap()),
            seen_ms: 1_700_000_000_000,
            transactional: chunk[0] & 0x40 != 0,
        };
        let _ = map.check(&b);
        if chunk[0] & 0x20 != 0 {
            // A commit or abort marker instead of a batch.
            let _ = map.complete_txn(b.producer_id, b.epoch, 1, chunk[0] & 0x10 != 0, 0, 0);
        } else {
            map.record(&b, 0, 0);
        }
        let _ = map.first_unstable_offset(i64::from(chunk[1]));
        let _ = map.get(b.producer_id);
    }
    map.expire(1_700_000_000_000, 1000);
    let _ = map.encode_snapshot(offset);
}

fn offsets_records(rest: &[u8]) {
    if let Ok(k) = decode_key(rest) {
        assert_eq!(decode_key(&encode_key(&k)).ok(), Some(k), "key round trip");
    }
    if let Ok(v) = decode_offset_value(rest) {
        assert_eq!(
            decode_offset_value(&encode_offset_value(&v)).ok(),
            Some(v),
            "offset value round trip"
        );
    }
    if let Ok(v) = decode_group_value(rest) {
        assert_eq!(
            decode_group_value(&encode_group_value(&v)).ok(),
            Some(v),
            "group value round trip"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let fix_crc = sel & 0x40 != 0;
    let clean = sel & 0x80 != 0;
    match (sel & 0x0f) % 9 {
        which @ 0..=4 => {
            let fs = SimFs::new(3);
            fs.create_dir_all(Path::new(DIR)).unwrap();
            log_file(&fs, which, ((sel >> 4) & 3) as usize, clean, rest, fix_crc);
        }
        5 => snapshot(rest, fix_crc),
        _ => offsets_records(rest),
    }
});
