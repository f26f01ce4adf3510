//! `Log::append` of produced batches: RecordBatch v2, 16 records of 1 KiB, uncompressed,
//! into a log on a tempdir. No fsync (the broker's group commit does that off the append
//! path), so this is the page-cache write, the offset stamping and the sparse index upkeep.
//!
//! cargo bench -p weir-storage --bench append

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_storage::testkit::record_batch;
use weir_storage::{Log, LogConfig};

const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;
const NOW_MS: i64 = 1_700_000_000_000;

fn append(c: &mut Criterion) {
    let batch = record_batch(RECORDS_PER_BATCH, VALUE_BYTES, NOW_MS);
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("append_16x1KiB", |b| {
        // A fresh log per sample, so a sample's size does not depend on the ones before it
        // and the tempdir's blocks are freed as the run goes.
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = LogConfig {
                // Rolls happen (with their checkpoint fsync) as in production, every
                // 128 MiB rather than 1 GiB, so the larger samples include a few.
                segment_bytes: 128 * 1024 * 1024,
                ..LogConfig::default()
            };
            let (mut log, _) = Log::open(&dir.path().join("bench-0"), config, false).expect("open");
            // `append` rewrites base_offset and leader epoch in place: the same buffer serves
            // every append, as a request buffer would.
            let mut records = batch.clone();
            let start = Instant::now();
            for _ in 0..iters {
                log.append(&mut records, 0, NOW_MS).expect("append");
            }
            let elapsed = start.elapsed();
            drop(log);
            elapsed
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = append
}
criterion_main!(benches);
