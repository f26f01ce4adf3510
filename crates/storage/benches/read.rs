//! `Log::read` of 1 MiB (a Fetch's partition max bytes) from a filled log of 64 MiB in
//! 16 MiB segments: the segment and sparse index lookup, then whole batches read from the
//! file (page cache, as for a consumer close behind the producer).
//!
//! cargo bench -p weir-storage --bench read

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_storage::testkit::record_batch;
use weir_storage::{Log, LogConfig};

const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;
const LOG_BYTES: usize = 64 * 1024 * 1024;
const FETCH_MAX_BYTES: usize = 1024 * 1024;
const NOW_MS: i64 = 1_700_000_000_000;

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 16 * 1024 * 1024,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir.path().join("bench-0"), config, false).expect("open");
    let mut batch = record_batch(RECORDS_PER_BATCH, VALUE_BYTES, NOW_MS);
    for _ in 0..LOG_BYTES / batch.len() {
        log.append(&mut batch, 0, NOW_MS).expect("append");
    }
    log.flush().expect("flush");
    let log_end_offset = log.log_end_offset();
    assert!(log.segment_count() >= 4, "reads should cross segments");

    // Fetch offsets spread over the first half of the log (so every read is a full 1 MiB),
    // each not on a batch boundary, so every read pays the index lookup and the scan to the
    // batch holding it.
    let span = log_end_offset / 2;
    let offsets: Vec<i64> = (0..64i64).map(|i| (i * 7_919 * 16 + 5) % span).collect();
    let bytes_per_read = log
        .read(offsets[0], FETCH_MAX_BYTES, log_end_offset)
        .expect("read")
        .len();
    assert!(bytes_per_read >= FETCH_MAX_BYTES - batch.len());

    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(bytes_per_read as u64));
    let mut next = 0usize;
    group.bench_function("read_1MiB", |b| {
        b.iter(|| {
            let offset = offsets[next % offsets.len()];
            next += 1;
            log.read(black_box(offset), FETCH_MAX_BYTES, log_end_offset)
                .expect("read")
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = read
}
criterion_main!(benches);
