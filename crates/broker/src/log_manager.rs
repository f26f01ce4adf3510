//! Background work on every partition's log: retention (whole segments past `retention.ms`
//! or `retention.bytes` are deleted, every `log.retention.check.interval.ms`) and the log
//! cleaner (compacted topics are compacted when `min.cleanable.dirty.ratio` of them is dirty,
//! a dirty record is older than `max.compaction.lag.ms`, or tombstones are due to go).
//!
//! One retention task and one cleaner task per broker (Kafka's `log.cleaner.threads` = 1).
//! The cleaner's expensive part runs on a blocking thread without the partition's lock, so
//! producers are not stalled while it works (see `Partition::clean`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::config::LogManagerConfig;
use crate::partition::Partition;

/// Start the retention loop and (if enabled) the cleaner loop over `catalog`'s partitions.
/// They end once the catalog is dropped.
pub fn spawn(catalog: &Arc<Catalog>, m: LogManagerConfig, clock: Arc<dyn Clock>) {
    let weak = Arc::downgrade(catalog);
    tokio::spawn(retention_loop(
        weak.clone(),
        Arc::clone(&clock),
        Duration::from_millis(m.retention_check_interval_ms.max(1) as u64),
    ));
    if m.cleaner_enable {
        tokio::spawn(cleaner_loop(
            weak,
            clock,
            Duration::from_millis(m.cleaner_backoff_ms.max(1) as u64),
            m.cleaner_dedupe_buffer_size,
        ));
    }
}

/// Every partition of every topic, without keeping the catalog alive; None once it is gone.
fn every_partition(catalog: &Weak<Catalog>) -> Option<Vec<Arc<Partition>>> {
    Some(catalog.upgrade()?.partitions())
}

async fn retention_loop(catalog: Weak<Catalog>, clock: Arc<dyn Clock>, interval: Duration) {
    loop {
        // The first check comes one interval after start (Kafka waits too).
        tokio::time::sleep(interval).await;
        let Some(partitions) = every_partition(&catalog) else {
            return;
        };
        // File deletions: off the async threads.
        let now = clock.now_ms();
        let _ = tokio::task::spawn_blocking(move || {
            for p in partitions {
                match p.apply_retention(now) {
                    Ok(Some((segments, bytes, start))) => tracing::info!(
                        partition = %p.name(), segments, bytes, log_start_offset = start,
                        "retention deleted segments"
                    ),
                    Ok(None) => {}
                    Err(crate::partition::PartitionError::Closed(_)) => {}
                    Err(e) => {
                        tracing::warn!(partition = %p.name(), error = %e, "retention failed")
                    }
                }
            }
        })
        .await;
    }
}

async fn cleaner_loop(
    catalog: Weak<Catalog>,
    clock: Arc<dyn Clock>,
    backoff: Duration,
    dedupe_buffer_bytes: usize,
) {
    loop {
        let Some(partitions) = every_partition(&catalog) else {
            return;
        };
        let mut cleaned = false;
        for p in partitions {
            let now = clock.now_ms();
            match p.needs_cleaning(now) {
                Ok(true) => {}
                Ok(false) | Err(crate::partition::PartitionError::Closed(_)) => continue,
                Err(e) => {
                    tracing::warn!(partition = %p.name(), error = %e, "cleaner status failed");
                    continue;
                }
            }
            let started = std::time::Instant::now();
            match p.clean(now, dedupe_buffer_bytes).await {
                Ok(Some(stats)) => {
                    // Only progress counts: a pass that changed nothing must not spin.
                    cleaned |= stats.clean_offset > stats.first_dirty_offset
                        || stats.records_kept < stats.records_read;
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        partition = %p.name(),
                        bytes_read = stats.bytes_read,
                        bytes_written = stats.bytes_written,
                        records_read = stats.records_read,
                        records_kept = stats.records_kept,
                        tombstones_removed = stats.tombstones_removed,
                        clean_offset = stats.clean_offset,
                        mb_per_s = format!("{:.1}", stats.bytes_read as f64 / 1e6 / secs.max(1e-9)),
                        "log cleaned"
                    );
                }
                Ok(None) | Err(crate::partition::PartitionError::Closed(_)) => {}
                Err(e) => tracing::warn!(partition = %p.name(), error = %e, "cleaning failed"),
            }
        }
        if !cleaned {
            tokio::time::sleep(backoff).await;
        }
    }
}
