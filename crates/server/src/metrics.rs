//! Request and connection figures of the network edge, for the admin endpoint to export.
//!
//! Fixed arrays indexed by API key and version, filled with relaxed atomic adds: a request
//! costs two adds and one histogram observation, with no lock and no map lookup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weir_storage::metrics::Histogram;

/// API keys below this are counted (Kafka 4.1 uses keys up to ~90).
pub const API_KEYS: usize = 128;
/// Versions below this are counted (the newest Kafka APIs are around v17).
pub const API_VERSIONS: usize = 32;

/// Request and error counts per (API, version) and a latency histogram per API; one
/// process-wide instance, [`REQUESTS`].
pub struct RequestMetrics {
    requests: [[AtomicU64; API_VERSIONS]; API_KEYS],
    errors: [[AtomicU64; API_VERSIONS]; API_KEYS],
    latency: [Histogram; API_KEYS],
}

/// One (API, version) row of [`RequestMetrics::rows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRow {
    /// Kafka API key (0 Produce, 1 Fetch, ...).
    pub api_key: i16,
    /// The version the requests used.
    pub api_version: i16,
    /// Requests whose header parsed, since start.
    pub requests: u64,
    /// Of those (and of unsupported ApiVersions), the ones that were not answered normally.
    pub errors: u64,
}

fn slot(api_key: i16, api_version: i16) -> Option<(usize, usize)> {
    let k = usize::try_from(api_key).ok().filter(|&k| k < API_KEYS)?;
    let v = usize::try_from(api_version)
        .ok()
        .filter(|&v| v < API_VERSIONS)?;
    Some((k, v))
}

impl RequestMetrics {
    /// All zero; `const` so that [`REQUESTS`] is a plain static.
    pub const fn new() -> Self {
        RequestMetrics {
            requests: [const { [const { AtomicU64::new(0) }; API_VERSIONS] }; API_KEYS],
            errors: [const { [const { AtomicU64::new(0) }; API_VERSIONS] }; API_KEYS],
            latency: [const { Histogram::new() }; API_KEYS],
        }
    }

    /// A request whose header parsed, about to be handled.
    pub fn request(&self, api_key: i16, api_version: i16) {
        if let Some((k, v)) = slot(api_key, api_version) {
            self.requests[k][v].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request that could not be answered (malformed body, a response that failed): its
    /// connection is closed.
    pub fn error(&self, api_key: i16, api_version: i16) {
        if let Some((k, v)) = slot(api_key, api_version) {
            self.errors[k][v].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// From the whole request read to its response written (Kafka's TotalTimeMs).
    pub fn latency(&self, api_key: i16, took: Duration) {
        if let Some((k, _)) = slot(api_key, 0) {
            self.latency[k].observe(took);
        }
    }

    /// Every (API, version) that saw a request or an error.
    pub fn rows(&self) -> Vec<RequestRow> {
        let mut out = Vec::new();
        for k in 0..API_KEYS {
            for v in 0..API_VERSIONS {
                let requests = self.requests[k][v].load(Ordering::Relaxed);
                let errors = self.errors[k][v].load(Ordering::Relaxed);
                if requests > 0 || errors > 0 {
                    out.push(RequestRow {
                        api_key: k as i16,
                        api_version: v as i16,
                        requests,
                        errors,
                    });
                }
            }
        }
        out
    }

    /// The latency histograms of the APIs that saw a request.
    pub fn latencies(&self) -> impl Iterator<Item = (i16, &Histogram)> {
        self.latency
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(k, h)| (k as i16, h))
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics::new()
    }
}

/// The figures of every connection of this process, read by the admin endpoint.
pub static REQUESTS: RequestMetrics = RequestMetrics::new();
/// Client connections being served now.
pub static CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);
/// Connections accepted since start (including those closed at once by a per-IP limit).
pub static CONNECTIONS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Fetched record bytes sent from segment files by sendfile, without a copy through the
/// broker's memory.
pub static SENDFILE_BYTES: AtomicU64 = AtomicU64::new(0);
/// Fetched record bytes read into memory and written (files without a descriptor).
pub static COPIED_FILE_BYTES: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_report_only_what_was_seen_and_ignore_out_of_range_keys() {
        let m = RequestMetrics::new();
        m.request(0, 9);
        m.request(0, 9);
        m.error(0, 9);
        m.request(3, 12);
        m.request(-1, 0);
        m.request(500, 0);
        m.request(1, 99);
        assert_eq!(
            m.rows(),
            vec![
                RequestRow {
                    api_key: 0,
                    api_version: 9,
                    requests: 2,
                    errors: 1
                },
                RequestRow {
                    api_key: 3,
                    api_version: 12,
                    requests: 1,
                    errors: 0
                },
            ]
        );
    }
}
