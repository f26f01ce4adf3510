//! Cleaner throughput and memory: N keyed updates over K keys (uniform), then one clean on
//! real files, while a producer keeps appending to the same log behind a mutex (as the
//! broker does) to show that appends do not wait for the clean.
//!
//! cargo run --release -p weir-storage --example cleaner_bench -- [records] [keys] [codec]
//! (defaults 1000000 10000 0; codec 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weir_storage::testkit::BatchBuilder;
use weir_storage::{CleanRequest, Log, LogConfig, SimRng};

/// A `kB` field of /proc/self/status (`VmRSS`, `VmHWM`), in bytes; None off Linux.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Reset the peak RSS (`VmHWM`) to the current RSS and return that RSS, so a later `VmHWM`
/// is the peak since now. Peak RSS rather than a counting allocator keeps the example free
/// of `unsafe`; it is a floor on heap growth (freed memory the allocator kept resident can be
/// reused without showing), but the offset map, the bulk of the clean, is fresh pages.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status_bytes("VmRSS")
}

const RECORDS_PER_BATCH: usize = 100;
const VALUE_BYTES: usize = 100;

fn batch(rng: &mut SimRng, keys: u64, codec: i16, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ts).codec(codec);
    let value = [b'v'; VALUE_BYTES];
    for _ in 0..RECORDS_PER_BATCH {
        let key = format!("key-{:08}", rng.below(keys));
        b = b.record(Some(key.as_bytes()), Some(&value));
    }
    b.build()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let records = arg(1, 1_000_000);
    let keys = arg(2, 10_000);
    let codec = arg(3, 0) as i16;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench-0");
    let config = LogConfig {
        segment_bytes: 16 * 1024 * 1024,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir, config, false).unwrap();
    let mut rng = SimRng::new(1);
    let t0 = 1_000_000_000i64;
    for i in 0..records as usize / RECORDS_PER_BATCH {
        let mut b = batch(&mut rng, keys, codec, t0 + i as i64);
        log.append(&mut b, 0, t0).unwrap();
    }
    log.flush().unwrap();
    let size_before = log.size_bytes();
    let segments_before = log.segment_count();
    // Roll: everything written so far becomes cleanable.
    let mut b = batch(&mut rng, keys, codec, t0);
    log.append(&mut b, 0, i64::MAX / 2).unwrap();
    log.flush().unwrap();

    let log = Mutex::new(log);
    let request = CleanRequest {
        now_ms: t0 + 1_000_000,
        max_offset: i64::MAX,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 86_400_000,
        dedupe_buffer_bytes: 128 * 1024 * 1024,
        aborted_txns: Vec::new(),
    };
    let plan = log
        .lock()
        .unwrap()
        .plan_clean(request)
        .unwrap()
        .expect("dirty");
    let base_rss = reset_peak_rss();

    // A producer appends under the mutex while the clean executes without it.
    let done = AtomicBool::new(false);
    let (output, execute_time, latencies) = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut rng = SimRng::new(2);
            let mut lat = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let mut b = batch(&mut rng, keys, codec, t0);
                let start = Instant::now();
                let mut l = log.lock().unwrap();
                l.append(&mut b, 0, t0).unwrap();
                drop(l);
                lat.push(start.elapsed());
                std::thread::sleep(Duration::from_millis(1));
            }
            lat
        });
        let start = Instant::now();
        let output = plan.execute().unwrap();
        let execute_time = start.elapsed();
        done.store(true, Ordering::Relaxed);
        (output, execute_time, producer.join().unwrap())
    });
    let peak_growth = base_rss
        .zip(proc_status_bytes("VmHWM"))
        .map(|(base, peak)| peak.saturating_sub(base));
    let start = Instant::now();
    let (stats, retired) = log.lock().unwrap().install_clean(output).unwrap();
    let install_time = start.elapsed();
    // Closing the replaced files frees their blocks: after the lock, as the broker must.
    let start = Instant::now();
    drop(retired);
    let retire_time = start.elapsed();
    let log = log.into_inner().unwrap();

    let mut lat = latencies;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    let mb = |b: u64| b as f64 / 1e6;
    let input = stats.bytes_read;
    println!(
        "records {records}, keys {keys}, codec {codec}, {RECORDS_PER_BATCH} records/batch, \
         {VALUE_BYTES}-byte values"
    );
    println!(
        "log before: {:.1} MB in {segments_before} segments; after: {:.2} MB in {} segments",
        mb(size_before),
        mb(log.size_bytes()),
        log.segment_count()
    );
    println!(
        "clean: read {:.1} MB ({:.1} MB dirty mapped), wrote {:.2} MB, {} -> {} records, in \
         {:.2} s: {:.0} MB/s of input",
        mb(input),
        mb(stats.dirty_bytes_mapped),
        mb(stats.bytes_written),
        stats.records_read,
        stats.records_kept,
        execute_time.as_secs_f64(),
        mb(input) / execute_time.as_secs_f64()
    );
    println!(
        "memory: offset map {:.1} MB for {} keys; peak RSS growth during the clean {}",
        mb(stats.map_bytes as u64),
        stats.map_keys,
        peak_growth.map_or("n/a (no /proc)".to_string(), |b| format!("{:.1} MB", mb(b)))
    );
    println!(
        "install (under the lock): {:.2} ms, then closing the replaced files {:.2} ms \
         (without it); {} appends during the clean: p50 {:?} p99 {:?} max {:?}",
        install_time.as_secs_f64() * 1e3,
        retire_time.as_secs_f64() * 1e3,
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().unwrap()
    );
}
