//! Lock-free counters and fixed-bucket histograms, and the storage layer's own figures.
//!
//! These live in the lowest crate so every layer (storage fsyncs, the server's request
//! latencies) can record into them without depending on the admin crate that exports them.
//! Recording is a handful of relaxed atomic adds: no lock, no allocation, no map lookup, so
//! it can sit on the produce hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in nanoseconds (50 µs .. 10 s). Prometheus needs
/// fixed bounds per series; these cover an fsync on NVMe up to a stalled disk.
pub const LATENCY_BUCKETS_NANOS: [u64; 16] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

const BUCKETS: usize = LATENCY_BUCKETS_NANOS.len();

/// A latency histogram with [`LATENCY_BUCKETS_NANOS`] bounds. Counts are per bucket (not
/// cumulative) so one observation is one add; the exporter sums them.
pub struct Histogram {
    /// `buckets[i]` counts observations in `(bound[i-1], bound[i]]`; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`], cumulative as Prometheus wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound in nanoseconds, observations <= bound)`, without +Inf.
    pub cumulative: Vec<(u64, u64)>,
    /// All observations (the +Inf bucket).
    pub count: u64,
    /// Sum of all observed durations, in nanoseconds (Prometheus `_sum`).
    pub sum_nanos: u64,
}

impl Histogram {
    /// An empty histogram; `const` so metrics can be plain statics.
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS + 1],
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Count one duration in its bucket; lock-free, so hot paths can call it.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BUCKETS);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether anything was ever observed (exporters skip idle series).
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// The count is taken as the sum of the buckets read, so `+Inf` always equals `count`
    /// even while observations race with the scrape.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(BUCKETS);
        let mut total = 0;
        for (i, bound) in LATENCY_BUCKETS_NANOS.iter().enumerate() {
            total += self.buckets[i].load(Ordering::Relaxed);
            cumulative.push((*bound, total));
        }
        total += self.buckets[BUCKETS].load(Ordering::Relaxed);
        HistogramSnapshot {
            cumulative,
            count: total,
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Every fsync and fdatasync of a real file or directory ([`crate::StdFs`]), whoever asked
/// for it: group commit, segment rolls, checkpoints, the cleaner.
pub static FSYNC: Histogram = Histogram::new();
/// fsyncs that returned an error (each one takes a log offline).
pub static FSYNC_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Files a [`crate::BoundedFs`] holds open now (every instance in the process).
pub static OPEN_FILES: AtomicU64 = AtomicU64::new(0);
/// Files a [`crate::BoundedFs`] closed to stay within its bound, since start.
pub static FILE_EVICTIONS: AtomicU64 = AtomicU64::new(0);

/// Run one fsync-like call and record it.
pub(crate) fn timed_fsync(f: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let r = f();
    FSYNC.observe(started.elapsed());
    if r.is_err() {
        FSYNC_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], (50_000, 1));
        assert_eq!(s.cumulative[1], (100_000, 2));
        // 60 s is above every bound: only +Inf (the count) holds it.
        assert_eq!(s.cumulative.last().unwrap().1, 2);
        assert_eq!(s.sum_nanos, 50_000 + 51_000 + 60_000_000_000);
    }
}
