//! `validate_record_set` on a produced record set of 8 batches (16 records of 1 KiB each,
//! uncompressed): the framing checks and the CRC-32C of every batch that a Produce request
//! pays before anything is appended.
//!
//! cargo bench -p weir-storage --bench validate

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_storage::batch::validate_record_set;
use weir_storage::testkit::record_batch;
use weir_storage::LogConfig;

const BATCHES: usize = 8;
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;

fn validate(c: &mut Criterion) {
    let mut records = Vec::new();
    for i in 0..BATCHES {
        records.extend(record_batch(
            RECORDS_PER_BATCH,
            VALUE_BYTES,
            1_700_000_000_000 + i as i64,
        ));
    }
    let max_message_bytes = LogConfig::default().max_message_bytes;
    let headers = validate_record_set(&records, max_message_bytes).expect("valid");
    assert_eq!(headers.len(), BATCHES);

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Bytes(records.len() as u64));
    group.bench_function("validate_8x16x1KiB", |b| {
        b.iter(|| validate_record_set(black_box(&records), max_message_bytes).expect("valid"));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = validate
}
criterion_main!(benches);
