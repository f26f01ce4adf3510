//! Wall-clock time behind a small trait, so a coordinator or a test can be handed a clock
//! it controls instead of reading the system's.
//!
//! Kafka's timestamps (record times, commit times, session deadlines) are milliseconds since
//! the Unix epoch; durations and timers that only need to be monotonic use `Instant` or
//! `tokio::time` directly and are not behind this trait.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
