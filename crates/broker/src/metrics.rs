//! Error codes the broker answered with, by API, for the admin exporter.
//!
//! Responses answer per topic, partition or group; a client sees those codes, not a failed
//! request, so they are counted as the responses are encoded (Produce's in its handler):
//! one relaxed atomic add per code in error, none on success.

use std::sync::atomic::{AtomicU64, Ordering};

/// Kafka error codes run from -1 (UNKNOWN_SERVER_ERROR) to about 130; larger ones share the
/// last slot.
const SLOTS: usize = 132;

/// How often each Kafka error code was answered, one relaxed counter per code.
pub struct ErrorCodeCounts {
    counts: [AtomicU64; SLOTS],
}

impl ErrorCodeCounts {
    /// All zero; `const` so the per-API table can be a static.
    pub const fn new() -> Self {
        ErrorCodeCounts {
            counts: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    /// Count one answer with `code`; NONE is not counted, codes past the table share its
    /// last slot.
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

/// API keys below this have their response error codes counted (Kafka 4.1 is near 90).
pub const API_KEYS: usize = 96;

/// Error codes in responses, by API key: every API's through
/// `api::KafkaApi::each_error`, Produce's by its handler (acks=0 too).
static RESPONSE_ERRORS: [ErrorCodeCounts; API_KEYS] = [const { ErrorCodeCounts::new() }; API_KEYS];

/// The counts of one API (keys past the table share its last row).
pub fn response_errors(api_key: kafka_protocol::messages::ApiKey) -> &'static ErrorCodeCounts {
    let k = usize::try_from(api_key as i16)
        .unwrap_or(0)
        .min(API_KEYS - 1);
    &RESPONSE_ERRORS[k]
}

/// `(api key, error code, count)` for every code seen.
pub fn response_errors_seen() -> Vec<(i16, i16, u64)> {
    RESPONSE_ERRORS
        .iter()
        .enumerate()
        .flat_map(|(k, c)| {
            c.seen()
                .into_iter()
                .map(move |(code, n)| (k as i16, code, n))
        })
        .collect()
}

/// Partition error codes in Produce responses (also for acks=0, which get no response).
pub static PRODUCE_ERRORS: &ErrorCodeCounts = &RESPONSE_ERRORS[0];

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
