//! The cleaner's offset map (key -> latest offset, `cleaner::OffsetMap`): inserting and
//! looking up 1,000,000 distinct 12-byte keys, a 26 MB map as a clean of a few million
//! records would build (pass 1 inserts every dirty record's key, pass 2 looks each up).
//!
//! cargo bench -p weir-storage --bench offset_map

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weir_storage::cleaner::OffsetMap;

const KEYS: usize = 1_000_000;
const KEY_BYTES: usize = 12;
/// Kafka's default `log.cleaner.dedupe.buffer.size`; the map takes only what KEYS needs.
const BUDGET_BYTES: usize = 128 * 1024 * 1024;

/// KEYS keys `key-00000000`.., back to back, in a shuffled order (a fixed LCG permutation
/// walk) so that consecutive inserts do not hash near each other by construction.
fn keys() -> Vec<u8> {
    let mut out = Vec::with_capacity(KEYS * KEY_BYTES);
    let mut k = 0u64;
    for _ in 0..KEYS {
        k = (k + 611_953) % KEYS as u64; // coprime with KEYS: visits each key once
        out.extend_from_slice(format!("key-{k:08}").as_bytes());
    }
    assert_eq!(out.len(), KEYS * KEY_BYTES);
    out
}

fn offset_map(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("offset_map");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.sample_size(10);

    group.bench_function("insert_1M", |b| {
        b.iter_batched(
            // Allocating and clearing the slots is not part of the insert.
            || OffsetMap::new(BUDGET_BYTES, KEYS as u64),
            |mut map| {
                for (offset, key) in keys.chunks_exact(KEY_BYTES).enumerate() {
                    map.put(key, offset as i64);
                }
                map
            },
            BatchSize::PerIteration,
        );
    });

    let mut map = OffsetMap::new(BUDGET_BYTES, KEYS as u64);
    for (offset, key) in keys.chunks_exact(KEY_BYTES).enumerate() {
        map.put(key, offset as i64);
    }
    group.bench_function("lookup_1M", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for key in keys.chunks_exact(KEY_BYTES) {
                found += map.get(black_box(key)).is_some() as usize;
            }
            assert_eq!(found, KEYS);
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = offset_map
}
criterion_main!(benches);
