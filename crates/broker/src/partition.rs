//! One partition: its log, its high watermark, and the group-commit flusher.
//!
//! Group commit: a produce appends under the log mutex (short, no fsync) and then waits for
//! the high watermark to pass its last offset. One flusher task per partition takes the files
//! to fsync from the log, fsyncs them outside the mutex, and publishes the new durable end.
//! Appends that arrive during an fsync are covered by the next one, so many produces share
//! one fsync.
//!
//! Invariants: the high watermark never moves backwards; with the default flush policy it
//! never passes the durable end, so nothing a consumer has seen can be lost by a crash.
//! After a failed fsync the partition is offline (fail-stop) until the broker restarts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use weir_storage::{AppendInfo, Log, StorageError};

use crate::config::TopicSettings;

/// What readers and waiting producers watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// An fsync failed: nothing after the last durable offset will ever be acknowledged.
    pub offline: bool,
    /// The partition was deleted or the broker is shutting down.
    pub closed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("partition {0} is offline after a storage failure")]
    Offline(String),
    #[error("partition {0} was deleted")]
    Closed(String),
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    /// Bumped when leadership changes (cluster mode); constant on a single node.
    pub leader_epoch: i32,
    log: Mutex<Option<Log>>,
    state: watch::Sender<PartitionState>,
    flush_wakeup: Notify,
    settings: Mutex<TopicSettings>,
    /// Messages appended since the last fsync (for the relaxed flush.messages policy).
    unflushed_messages: AtomicI64,
}

impl Partition {
    /// Wrap an opened log and start its flusher task.
    pub fn start(topic: &str, index: i32, log: Log, settings: TopicSettings) -> Arc<Partition> {
        let state = PartitionState {
            high_watermark: log.log_end_offset(),
            log_start_offset: log.log_start_offset(),
            offline: false,
            closed: false,
        };
        let (tx, _) = watch::channel(state);
        let p = Arc::new(Partition {
            topic: topic.to_string(),
            index,
            leader_epoch: 0,
            log: Mutex::new(Some(log)),
            state: tx,
            flush_wakeup: Notify::new(),
            settings: Mutex::new(settings),
            unflushed_messages: AtomicI64::new(0),
        });
        tokio::spawn(flusher(p.clone()));
        p
    }

    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    pub fn state(&self) -> PartitionState {
        *self.state.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<PartitionState> {
        self.state.subscribe()
    }

    pub fn settings(&self) -> TopicSettings {
        self.settings.lock().unwrap().clone()
    }

    fn lock_log(&self) -> Result<MutexGuardLog<'_>, PartitionError> {
        let guard = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(PartitionError::Closed(self.name()));
        }
        Ok(MutexGuardLog(guard))
    }

    /// Append a validated record set. Returns once written (not yet durable): call
    /// `wait_durable(info.last_offset + 1)` before acknowledging.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<AppendInfo, PartitionError> {
        let state = self.state();
        if state.offline {
            return Err(PartitionError::Offline(self.name()));
        }
        let settings = self.settings();
        let mut log = self.lock_log()?;
        let info = log.get().append(records, self.leader_epoch, now_ms)?;
        let count = info.last_offset - info.base_offset + 1;
        if settings.fsync_before_ack() {
            drop(log);
            self.flush_wakeup.notify_one();
        } else {
            // Acknowledged before the fsync (opt-in): visible at once, fsync'd by count or time.
            let leo = log.get().log_end_offset();
            drop(log);
            self.advance_high_watermark(leo);
            let pending = self.unflushed_messages.fetch_add(count, Ordering::Relaxed) + count;
            if pending >= settings.flush_messages {
                self.flush_wakeup.notify_one();
            }
        }
        Ok(info)
    }

    fn advance_high_watermark(&self, offset: i64) {
        self.state.send_if_modified(|s| {
            if offset > s.high_watermark {
                s.high_watermark = offset;
                true
            } else {
                false
            }
        });
    }

    /// Wait until everything below `end_offset` is durable (and so visible to consumers).
    pub async fn wait_durable(&self, end_offset: i64) -> Result<(), PartitionError> {
        let mut rx = self.state.subscribe();
        let state = *rx
            .wait_for(|s| s.high_watermark >= end_offset || s.offline || s.closed)
            .await
            .map_err(|_| PartitionError::Closed(self.name()))?;
        if state.high_watermark >= end_offset {
            Ok(())
        } else if state.offline {
            Err(PartitionError::Offline(self.name()))
        } else {
            Err(PartitionError::Closed(self.name()))
        }
    }

    /// Read whole batches from `fetch_offset`, never past the high watermark.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<Bytes, PartitionError> {
        let high_watermark = self.state().high_watermark;
        let log = self.lock_log()?;
        Ok(log
            .get_ref()
            .read(fetch_offset, max_bytes, high_watermark)?)
    }

    /// Run `f` on the log (for offsets by timestamp, sizes...).
    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> Result<T, PartitionError> {
        let log = self.lock_log()?;
        Ok(f(log.get_ref()))
    }

    /// fsync once, outside the log mutex. Returns the new durable end.
    async fn fsync_once(&self) -> Result<(), PartitionError> {
        let target = {
            let log = self.lock_log()?;
            if log.get_ref().recovery_point() >= log.get_ref().log_end_offset() {
                return Ok(());
            }
            log.get_ref().sync_target()
        };
        self.unflushed_messages.store(0, Ordering::Relaxed);
        let end_offset = target.end_offset;
        let files = target.files;
        let result = tokio::task::spawn_blocking(move || {
            for f in &files {
                f.sync_data()?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let mut log = self.lock_log()?;
        match result {
            Ok(()) => {
                log.get().mark_synced(end_offset);
                drop(log);
                self.advance_high_watermark(end_offset);
                Ok(())
            }
            Err(e) => {
                // Fail-stop: after a failed fsync the page cache may have dropped the dirty
                // pages, so a retry could "succeed" over lost data. Never retry.
                log.get().mark_failed();
                drop(log);
                tracing::error!(partition = %self.name(), error = %e, "fsync failed; partition is offline until restart");
                self.state.send_modify(|s| s.offline = true);
                Err(PartitionError::Offline(self.name()))
            }
        }
    }

    /// Stop the flusher, fsync, and close the log (clean shutdown). Idempotent.
    pub fn close(&self) -> Result<(), PartitionError> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.state.send_modify(|s| s.closed = true);
        self.flush_wakeup.notify_one();
        if let Some(log) = log {
            log.close()?;
        }
        Ok(())
    }

    /// Stop the flusher and remove the partition's data.
    pub fn delete(&self) -> Result<(), PartitionError> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.state.send_modify(|s| s.closed = true);
        self.flush_wakeup.notify_one();
        if let Some(log) = log {
            log.delete()?;
        }
        Ok(())
    }
}

/// Log access under the mutex; the Option is Some while the partition is open.
struct MutexGuardLog<'a>(MutexGuard<'a, Option<Log>>);

impl MutexGuardLog<'_> {
    fn get(&mut self) -> &mut Log {
        self.0.as_mut().expect("checked in lock_log")
    }
    fn get_ref(&self) -> &Log {
        self.0.as_ref().expect("checked in lock_log")
    }
}

/// The group-commit loop: one fsync per wake-up covers every append made before it.
async fn flusher(p: Arc<Partition>) {
    loop {
        let flush_ms = {
            let s = p.settings();
            if s.fsync_before_ack() {
                None
            } else {
                Some(s.flush_ms)
            }
        };
        match flush_ms {
            Some(ms) if ms < i64::MAX => {
                let _ = tokio::time::timeout(
                    Duration::from_millis(ms.max(1) as u64),
                    p.flush_wakeup.notified(),
                )
                .await;
            }
            _ => p.flush_wakeup.notified().await,
        }
        let state = p.state();
        if state.closed {
            return;
        }
        if state.offline {
            continue;
        }
        match p.fsync_once().await {
            Ok(()) => {}
            Err(PartitionError::Closed(_)) => return,
            Err(_) => {}
        }
    }
}
