//! Error codes the data path answered with, for the admin exporter.
//!
//! Produce and Fetch answer per partition; a client sees those codes, not a failed request,
//! so they are counted here, where the handlers build the answers: one relaxed atomic add per
//! partition in error, none on success.

use std::sync::atomic::{AtomicU64, Ordering};

/// Kafka error codes run from -1 (UNKNOWN_SERVER_ERROR) to about 130; larger ones share the
/// last slot.
const SLOTS: usize = 132;

pub struct ErrorCodeCounts {
    counts: [AtomicU64; SLOTS],
}

impl ErrorCodeCounts {
    pub const fn new() -> Self {
        ErrorCodeCounts {
            counts: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    pub fn record(&self, code: i16) {
        if code == 0 {
            return;
        }
        let i = usize::try_from(i32::from(code) + 1)
            .unwrap_or(0)
            .min(SLOTS - 1);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `(error code, count)` for every code seen.
    pub fn seen(&self) -> Vec<(i16, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as i16 - 1, n))
            })
            .collect()
    }
}

impl Default for ErrorCodeCounts {
    fn default() -> Self {
        ErrorCodeCounts::new()
    }
}

/// Partition error codes in Produce responses (also for acks=0, which get no response).
pub static PRODUCE_ERRORS: ErrorCodeCounts = ErrorCodeCounts::new();
/// Partition and top-level error codes in the Fetch responses sent.
pub static FETCH_ERRORS: ErrorCodeCounts = ErrorCodeCounts::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_counted_by_value_and_success_is_not() {
        let c = ErrorCodeCounts::new();
        c.record(0);
        c.record(3);
        c.record(3);
        c.record(-1);
        c.record(i16::MAX);
        assert_eq!(c.seen(), vec![(-1, 1), (3, 2), (130, 1)]);
    }
}
