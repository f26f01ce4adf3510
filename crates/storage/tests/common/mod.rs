//! Helpers shared by the retention and compaction tests (each test file uses a subset).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use weir_storage::record_codec::decode_records;
use weir_storage::testkit::BatchBuilder;
use weir_storage::{BatchHeader, Fs, Log, LogConfig, SimFs, SimRng, StorageError};

pub const DATA_DIR: &str = "/data";
pub const DIR: &str = "/data/topic-0";

/// A SimFs holding an empty, durable data directory.
pub fn fresh_fs(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(Path::new(DATA_DIR)).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        segment_ms: i64::MAX / 4,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

pub fn open_sim(fs: &SimFs, config: LogConfig, clean: bool) -> Result<Log, StorageError> {
    Log::open_in(Arc::new(fs.clone()), Path::new(DIR), config, clean).map(|(log, _)| log)
}

/// Every batch header of `bytes` (back-to-back batches), checking the frames.
pub fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = weir_storage::batch::check_frame(&bytes[pos..], pos).unwrap();
        assert_eq!(
            h.crc,
            weir_storage::batch::batch_crc(&bytes[pos..pos + h.total_len()]),
            "crc of the batch at offset {}",
            h.base_offset
        );
        out.push(h);
        pos += h.total_len();
    }
    out
}

/// The whole readable log, from the log start offset.
pub fn read_all(log: &Log) -> Vec<u8> {
    log.read(log.log_start_offset(), usize::MAX, i64::MAX)
        .unwrap()
        .to_vec()
}

/// A record as the tests compare them: (offset, key, value).
pub type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// (offset, key, value) of every record of `bytes`, skipping transaction markers.
pub fn records(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).unwrap();
        let b = &bytes[pos..pos + h.total_len()];
        if !h.is_control() {
            for r in decode_records(b).unwrap() {
                out.push((r.offset, r.key, r.value));
            }
        }
        pos += h.total_len();
    }
    out
}

/// Batch offsets are dense from the first batch to the end: the first batch starts at or
/// below `from`, each starts where the previous ended, the last ends at `end`.
pub fn assert_dense(bytes: &[u8], from: i64, end: i64, label: &str) {
    let hs = headers(bytes);
    let mut next = None;
    for h in &hs {
        if let Some(n) = next {
            assert_eq!(
                h.base_offset, n,
                "{label}: gap or overlap before {}",
                h.base_offset
            );
        } else {
            assert!(
                h.base_offset <= from,
                "{label}: first batch starts past {from}"
            );
        }
        next = Some(h.last_offset() + 1);
    }
    assert_eq!(
        next.unwrap_or(end),
        end,
        "{label}: batches end at the log end"
    );
}

/// The latest record per key (value None: a tombstone) among `records`, in offset order.
pub fn latest_per_key(records: &[Rec]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for (offset, key, value) in records {
        if let Some(k) = key {
            m.insert(k.clone(), (*offset, value.clone()));
        }
    }
    m
}

/// Random keyed batches: `batches` batches of 1..=8 records over `keys` keys, values
/// tagged with their position, tombstones with probability `tombstone_pct`%.
pub fn keyed_workload(
    log: &mut Log,
    rng: &mut SimRng,
    batches: usize,
    keys: u64,
    tombstone_pct: u64,
    now_ms: &mut i64,
) {
    for _ in 0..batches {
        let n = 1 + rng.below(8);
        let mut b = BatchBuilder::new(*now_ms);
        for _ in 0..n {
            let key = format!("key-{}", rng.below(keys));
            let value = format!("value-{}-{}", *now_ms, rng.next_u64() % 1000);
            let v = (!rng.chance(tombstone_pct, 100)).then_some(value.as_bytes());
            b = b.record(Some(key.as_bytes()), v);
        }
        let mut bytes = b.build();
        log.append(&mut bytes, 0, *now_ms).unwrap();
        *now_ms += 10;
    }
}
