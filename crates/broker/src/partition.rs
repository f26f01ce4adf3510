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
//!
//! Transactions: the partition tracks each producer's open transaction (producer_state) and
//! the aborted ones (txn_index), and publishes the last stable offset next to the high
//! watermark; read_committed reads stop there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use weir_storage::control::{encode_marker, marker_type, MARKER_COMMIT};
use weir_storage::{
    read_optional, write_atomic, AppendInfo, BatchHeader, FileSlice, Fs, Log, StorageError,
    StorageFile,
};

use crate::clock::Clock;
use crate::config::TopicSettings;
use crate::producer_state::{
    increment_sequence, BatchMeta, ProducerBatch, ProducerStateMap, SequenceCheck,
};
use crate::txn_index::TxnIndex;

/// File in the partition directory holding the producer-state snapshot.
pub const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.snapshot";
/// A snapshot is taken at most this often while appends come in (and at clean shutdown),
/// bounding how much log a crash recovery must scan to rebuild producer state.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);
/// A snapshot larger than this is not read (the log is scanned instead).
const SNAPSHOT_MAX_BYTES: u64 = 1 << 30;

/// KIP-890's check, run under the log lock just before a transactional batch is appended:
/// the transaction coordinator's answer to "is this partition in the producer's open
/// transaction?", as (error code, reason) when it is not.
pub type TxnCheck<'a> = dyn Fn() -> Result<(), (i16, &'static str)> + Sync + 'a;

/// What a partition needs from the broker besides its log: the file system its snapshot
/// and index go through, the clock, and how long idle producers are remembered.
#[derive(Debug, Clone)]
pub struct PartitionDeps {
    /// The storage file system (the partition's own files go through it too).
    pub fs: Arc<dyn Fs>,
    /// Wall-clock time for producer expiry.
    pub clock: Arc<dyn Clock>,
    /// `producer.id.expiration.ms`.
    pub producer_expiration_ms: i64,
}

/// Process-wide storage counters (a metrics endpoint will export them; until then the
/// broker logs them at shutdown and benchmarks read that line).
pub mod counters {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Record sets appended to partition logs.
    pub static APPENDS: AtomicU64 = AtomicU64::new(0);
    /// Group-commit fsync rounds (each may cover many appends, and several files).
    pub static FSYNCS: AtomicU64 = AtomicU64::new(0);
    /// Time spent in those fsync rounds.
    pub static FSYNC_NANOS: AtomicU64 = AtomicU64::new(0);

    /// `(APPENDS, FSYNCS, FSYNC_NANOS)` now, each read relaxed (not one consistent cut).
    pub fn snapshot() -> (u64, u64, u64) {
        (
            APPENDS.load(Ordering::Relaxed),
            FSYNCS.load(Ordering::Relaxed),
            FSYNC_NANOS.load(Ordering::Relaxed),
        )
    }
}

/// What readers and waiting producers watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// One past the last offset consumers may read and produces are acknowledged below.
    /// With the default flush policy it is the durable (fsync'd) end; with `flush.messages`
    /// above 1, the log end offset. Never moves backwards.
    pub high_watermark: i64,
    /// Below the first offset of any transaction not durably finished; at most the high
    /// watermark. read_committed consumers read up to here.
    pub last_stable_offset: i64,
    /// The first offset still in the log (moved by retention and DeleteRecords).
    pub log_start_offset: i64,
    /// An fsync failed: nothing after the last durable offset will ever be acknowledged.
    pub offline: bool,
    /// The partition was deleted or the broker is shutting down.
    pub closed: bool,
}

/// Why a partition operation failed. The `String`s name the partition (`topic-index`).
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The log failed (I/O, a corrupt or oversized batch, ...).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An fsync failed earlier: the partition refuses writes until the broker restarts.
    #[error("partition {0} is offline after a storage failure")]
    Offline(String),
    /// The partition was deleted or the broker is shutting down.
    #[error("partition {0} was deleted")]
    Closed(String),
    /// An idempotent batch out of sequence, from a fenced epoch or an unknown producer; or
    /// a transactional batch the coordinator does not expect (KIP-890), or a marker from an
    /// older epoch. Nothing was appended.
    #[error("{reason}")]
    Rejected {
        /// The Kafka error code for the producer.
        code: i16,
        /// Why, for the response's error message.
        reason: &'static str,
    },
}

impl PartitionError {
    fn rejected((code, reason): (i16, &'static str)) -> Self {
        PartitionError::Rejected { code, reason }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy)]
pub enum Appended {
    /// Appended at these offsets (acknowledged once the high watermark passes them).
    New(AppendInfo),
    /// An idempotent producer's retry of a batch already in the log, at these offsets.
    Duplicate(BatchMeta),
}

/// One partition of a topic: its log, high watermark and group-commit flusher.
pub struct Partition {
    /// The topic's name.
    pub topic: String,
    /// The partition index within the topic.
    pub index: i32,
    /// Bumped when leadership changes (cluster mode); constant on a single node.
    pub leader_epoch: i32,
    log: Mutex<Option<Log>>,
    state: watch::Sender<PartitionState>,
    flush_wakeup: Notify,
    settings: Mutex<TopicSettings>,
    /// Messages appended since the last fsync (for the relaxed flush.messages policy).
    unflushed_messages: AtomicI64,
    /// Idempotent producers' recent batches and open transactions. Lock order: `log`, then
    /// `producers`, then `txn_index`.
    producers: Mutex<ProducerStateMap>,
    /// Aborted transactions.
    txn_index: Mutex<TxnIndex>,
    /// Held while a clean executes off the log lock: deleting the partition waits for it,
    /// so no cleaned file is written into a directory being removed.
    cleaning: Mutex<()>,
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
    last_snapshot: Mutex<Instant>,
    /// The log offset of the newest snapshot written, held while one is written: writes
    /// are serialized, and one older than what is on disk is skipped.
    snapshot_written: Mutex<i64>,
    /// `producer.id.expiration.ms`.
    producer_expiration_ms: i64,
    /// Record-set bytes appended by Produce requests (the admin endpoint sums them per
    /// topic). Kept here because the produce path already holds the partition.
    pub bytes_in: AtomicU64,
    /// Record-set bytes sent in Fetch responses.
    pub bytes_out: AtomicU64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("index", &self.index)
            .field("state", &self.state())
            .finish()
    }
}

impl Partition {
    /// Wrap an opened log and start its flusher task.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        topic: &str,
        index: i32,
        dir: PathBuf,
        log: Log,
        producers: ProducerStateMap,
        txn_index: TxnIndex,
        deps: PartitionDeps,
        settings: TopicSettings,
    ) -> Arc<Partition> {
        let state = PartitionState {
            high_watermark: log.log_end_offset(),
            last_stable_offset: log.log_end_offset(),
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
            producers: Mutex::new(producers),
            txn_index: Mutex::new(txn_index),
            cleaning: Mutex::new(()),
            dir,
            fs: deps.fs,
            clock: deps.clock,
            last_snapshot: Mutex::new(Instant::now()),
            snapshot_written: Mutex::new(-1),
            producer_expiration_ms: deps.producer_expiration_ms,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        p.update_stable_offset();
        tokio::spawn(flusher(p.clone()));
        p
    }

    /// `topic-index`, as in its directory name and in logs.
    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    /// The offsets and flags now.
    pub fn state(&self) -> PartitionState {
        *self.state.borrow()
    }

    /// A receiver woken at every change of the state (Fetch waits on it for data).
    pub fn subscribe(&self) -> watch::Receiver<PartitionState> {
        self.state.subscribe()
    }

    /// The topic settings in force (a copy; see `apply_settings`).
    pub fn settings(&self) -> TopicSettings {
        self.settings.lock().unwrap().clone()
    }

    /// New topic settings, live: the flush policy and limits at once, the log's own
    /// settings (segment size and age, index interval, timestamps) from its next append.
    pub fn apply_settings(&self, settings: TopicSettings) {
        if let Ok(mut log) = self.lock_log() {
            log.get().set_config(settings.log_config());
        }
        *self.settings.lock().unwrap() = settings;
        // A relaxed flush policy may have become strict: flush what is pending now.
        self.flush_wakeup.notify_one();
    }

    fn lock_log(&self) -> Result<MutexGuardLog<'_>, PartitionError> {
        let guard = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(PartitionError::Closed(self.name()));
        }
        Ok(MutexGuardLog(guard))
    }

    /// Append a validated record set. Returns once written (not yet durable): call
    /// `wait_durable(last_offset + 1)` before acknowledging. An idempotent batch
    /// (`producer` given) is checked against the producer's sequence under the same lock as
    /// the append, so a retry is recognised however requests interleave.
    pub fn append(
        &self,
        records: &mut [u8],
        now_ms: i64,
        producer: Option<ProducerBatch>,
    ) -> Result<Appended, PartitionError> {
        self.append_checked(records, now_ms, producer, None)
    }

    /// [`Partition::append`] with KIP-890's verification: `txn_check` runs under the log
    /// lock just before a transactional batch is appended. Markers are appended under the
    /// same lock, so a batch either lands before its transaction's marker or is refused.
    pub fn append_checked(
        &self,
        records: &mut [u8],
        now_ms: i64,
        producer: Option<ProducerBatch>,
        txn_check: Option<&TxnCheck<'_>>,
    ) -> Result<Appended, PartitionError> {
        let state = self.state();
        if state.offline {
            return Err(PartitionError::Offline(self.name()));
        }
        let settings = self.settings();
        let mut log = self.lock_log()?;
        // Only idempotent appends touch producer state (under the log lock, so the check and
        // the append are one step).
        let mut producers = producer
            .as_ref()
            .map(|_| self.producers.lock().unwrap_or_else(|e| e.into_inner()));
        if let (Some(b), Some(producers)) = (&producer, producers.as_ref()) {
            match producers.check(b) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(meta) => return Ok(Appended::Duplicate(meta)),
                SequenceCheck::Reject(code, why) => {
                    return Err(PartitionError::rejected((code, why)))
                }
            }
        }
        if let (Some(check), Some(b)) = (txn_check, &producer) {
            if b.transactional {
                check().map_err(PartitionError::rejected)?;
            }
        }
        let info = log.get().append(records, self.leader_epoch, now_ms)?;
        counters::APPENDS.fetch_add(1, Ordering::Relaxed);
        if let (Some(b), Some(producers)) = (&producer, producers.as_mut()) {
            producers.record(b, info.base_offset, info.last_offset);
        }
        drop(producers);
        let count = info.last_offset - info.base_offset + 1;
        self.after_append(log, count, &settings);
        Ok(Appended::New(info))
    }

    /// Append a transactional batch written by a coordinator on a producer's behalf
    /// (TxnOffsetCommit into `__consumer_offsets`): no sequence numbers, but the epoch
    /// fences, and it opens the producer's transaction here like a produced batch.
    pub fn append_for_coordinator(
        &self,
        records: &mut [u8],
        now_ms: i64,
        producer_id: i64,
        epoch: i16,
        txn_check: &TxnCheck<'_>,
    ) -> Result<AppendInfo, PartitionError> {
        if self.state().offline {
            return Err(PartitionError::Offline(self.name()));
        }
        let settings = self.settings();
        let mut log = self.lock_log()?;
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if producers.get(producer_id).is_some_and(|e| e.epoch > epoch) {
            return Err(PartitionError::rejected((
                crate::error_codes::PRODUCER_FENCED,
                "the producer epoch is older than the current one",
            )));
        }
        txn_check().map_err(PartitionError::rejected)?;
        let info = log.get().append(records, self.leader_epoch, now_ms)?;
        counters::APPENDS.fetch_add(1, Ordering::Relaxed);
        producers.record(
            &ProducerBatch {
                producer_id,
                epoch,
                first_seq: -1,
                last_seq: -1,
                seen_ms: now_ms,
                transactional: true,
            },
            info.base_offset,
            info.last_offset,
        );
        drop(producers);
        self.after_append(log, info.last_offset - info.base_offset + 1, &settings);
        Ok(info)
    }

    /// Append the coordinator's commit or abort marker for `producer_id`'s transaction.
    /// Returns the marker's offset; wait_durable(offset + 1) before counting it done.
    pub fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, PartitionError> {
        let state = self.state();
        if state.offline {
            return Err(PartitionError::Offline(self.name()));
        }
        let settings = self.settings();
        let mut batch = encode_marker(producer_id, epoch, commit, coordinator_epoch, now_ms);
        let mut log = self.lock_log()?;
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if producers.get(producer_id).is_some_and(|e| e.epoch > epoch) {
            return Err(PartitionError::rejected((
                crate::error_codes::INVALID_PRODUCER_EPOCH,
                "a marker from an older producer epoch",
            )));
        }
        let info = log.get().append(&mut batch, self.leader_epoch, now_ms)?;
        counters::APPENDS.fetch_add(1, Ordering::Relaxed);
        let lso = self.state().last_stable_offset;
        let aborted =
            producers.complete_txn(producer_id, epoch, info.base_offset, commit, now_ms, lso);
        drop(producers);
        if let Some(a) = aborted {
            let mut idx = self.txn_index.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = idx.append(a) {
                // The marker is in the log; the scan at the next start re-adds the entry.
                tracing::error!(partition = %self.name(), error = %e, "aborted-transaction index append failed");
            }
        }
        self.after_append(log, 1, &settings);
        Ok(info.base_offset)
    }

    /// The producers this partition knows (DescribeProducers).
    pub fn producers(&self) -> Vec<crate::producer_state::ProducerDescription> {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .describe()
    }

    /// Aborted transactions overlapping `[from, upper)` for a read_committed Fetch.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<(i64, i64)> {
        self.txn_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .overlapping(from, upper)
    }

    fn after_append(&self, log: MutexGuardLog<'_>, count: i64, settings: &TopicSettings) {
        if settings.fsync_before_ack() {
            drop(log);
            self.flush_wakeup.notify_one();
        } else {
            // Acknowledged before the fsync (opt-in): visible at once, fsync'd by count or time.
            let leo = log.get_ref().log_end_offset();
            drop(log);
            self.advance_high_watermark(leo);
            let pending = self.unflushed_messages.fetch_add(count, Ordering::Relaxed) + count;
            if pending >= settings.flush_messages {
                self.flush_wakeup.notify_one();
            }
        }
    }

    /// Retention (cleanup.policy with delete): whole segments past `retention.ms` or
    /// `retention.bytes` go, never at or above the high watermark. Returns (segments, bytes,
    /// new log start offset) when something was deleted.
    pub fn apply_retention(
        &self,
        now_ms: i64,
    ) -> Result<Option<(usize, u64, i64)>, PartitionError> {
        let settings = self.settings();
        if !settings.cleanup_delete || self.state().offline {
            return Ok(None);
        }
        let policy = weir_storage::RetentionPolicy {
            retention_ms: settings.retention_ms,
            retention_bytes: settings.retention_bytes,
        };
        let high_watermark = self.state().high_watermark;
        let deleted = {
            let mut log = self.lock_log()?;
            log.get().apply_retention(policy, high_watermark, now_ms)?
        };
        let (segments, bytes, log_start_offset) =
            (deleted.segments, deleted.bytes, deleted.log_start_offset);
        self.retire(deleted)?;
        Ok((segments > 0).then_some((segments, bytes, log_start_offset)))
    }

    /// After retention or DeleteRecords: publish the new log start offset, then remove the
    /// deleted segments' files and close them. Both outside the log lock (unlinking and
    /// freeing blocks take a while), and in that order, so ListOffsets and Fetch never
    /// answer with a start whose files are gone. A failed unlink takes the partition
    /// offline, as any failed write does.
    fn retire(&self, mut deleted: weir_storage::SegmentsDeleted) -> Result<(), PartitionError> {
        self.log_start_moved(deleted.log_start_offset);
        if let Err(e) = deleted.unlink() {
            if let Ok(mut log) = self.lock_log() {
                log.get().mark_failed();
            }
            tracing::error!(partition = %self.name(), error = %e, "deleting segment files failed; partition is offline until restart");
            self.state.send_modify(|s| s.offline = true);
            return Err(PartitionError::Storage(e));
        }
        if let Some(later) = deleted.delayed_removal() {
            self.remove_later(later);
        }
        Ok(())
    }

    /// file.delete.delay.ms: the renamed *.deleted files of deleted or replaced segments go
    /// after the delay (or at the next open, if the broker stops first).
    fn remove_later(&self, later: weir_storage::DelayedRemoval) {
        let name = self.name();
        let delay = later.delay;
        let remove = move || {
            if let Err(e) = later.remove() {
                tracing::warn!(partition = %name, error = %e, "removing deleted segment files failed; the next open retries");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tokio::task::spawn_blocking(remove).await;
                });
            }
            Err(_) => remove(),
        }
    }

    /// DeleteRecords: the log start offset moves to `offset` (at most the high watermark;
    /// below the current start nothing changes). Returns the new start.
    pub fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let state = self.state();
        if offset > state.high_watermark || offset < 0 {
            return Err(PartitionError::Storage(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: state.log_start_offset,
                log_end_offset: state.high_watermark,
            }));
        }
        if offset <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        let deleted = {
            let mut log = self.lock_log()?;
            log.get().delete_records(offset)?
        };
        let start = deleted.log_start_offset;
        self.retire(deleted)?;
        Ok(start)
    }

    fn log_start_moved(&self, log_start_offset: i64) {
        self.state.send_if_modified(|s| {
            let moved = log_start_offset > s.log_start_offset;
            if moved {
                s.log_start_offset = log_start_offset;
            }
            moved
        });
        self.txn_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .prune_below(log_start_offset);
    }

    /// Whether the cleaner should compact this partition now (cleanup.policy with compact):
    /// enough of it is dirty, or a dirty record is older than max.compaction.lag.ms, or
    /// tombstones are past their delete horizon.
    pub fn needs_cleaning(&self, now_ms: i64) -> Result<bool, PartitionError> {
        let settings = self.settings();
        let state = self.state();
        if !settings.cleanup_compact || state.offline {
            return Ok(false);
        }
        let status = {
            let log = self.lock_log()?;
            log.get_ref().cleaner_status(
                now_ms,
                state.last_stable_offset,
                settings.min_compaction_lag_ms,
            )?
        };
        let by_ratio =
            status.dirty_bytes > 0 && status.dirty_ratio >= settings.min_cleanable_dirty_ratio;
        let by_lag = status
            .first_dirty_timestamp_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= settings.max_compaction_lag_ms);
        let by_horizon = status.delete_horizon_ms.is_some_and(|h| now_ms >= h);
        Ok(by_ratio || by_lag || by_horizon)
    }

    /// One pass of the cleaner: plan under the log lock, execute on a blocking thread
    /// without it (appends go on), install under the lock. None if there was nothing to do
    /// or the log changed under the plan (retention, DeleteRecords).
    pub async fn clean(
        self: &Arc<Self>,
        now_ms: i64,
        dedupe_buffer_bytes: usize,
    ) -> Result<Option<weir_storage::CleanStats>, PartitionError> {
        let settings = self.settings();
        let aborted_txns = self
            .txn_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .all()
            .into_iter()
            .map(|a| weir_storage::AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
                last_offset: a.last_offset,
            })
            .collect();
        let request = weir_storage::CleanRequest {
            now_ms,
            max_offset: self.state().last_stable_offset,
            min_compaction_lag_ms: settings.min_compaction_lag_ms,
            delete_retention_ms: settings.delete_retention_ms,
            dedupe_buffer_bytes,
            aborted_txns,
        };
        let plan = {
            let log = self.lock_log()?;
            log.get_ref().plan_clean(request)?
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        let this = self.clone();
        let output = tokio::task::spawn_blocking(move || {
            let _cleaning = this.cleaning.lock().unwrap_or_else(|e| e.into_inner());
            if this.state().closed {
                return Err(StorageError::CleanAborted(
                    "the partition was closed".into(),
                ));
            }
            plan.execute()
        })
        .await
        .map_err(|e| PartitionError::Storage(StorageError::CleanAborted(e.to_string())))?;
        let output = match output {
            Ok(o) => o,
            Err(StorageError::CleanAborted(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // A snapshot older than a removed marker could hold its transaction open, and the
        // scan after it would never find the marker that closes it: the LSO would stick
        // there after a restart. So one from now (past every removed marker, which all lie
        // below the plan's bound, the transactions closed) is made durable before the swap.
        // The removed aborts also leave the aborted-transaction index first: no record of
        // theirs is left to filter, and a reader told of an abort whose marker never comes
        // would drop the producer's next transaction as aborted. Done before the swap, so a
        // crash in between leaves a marker without an entry: harmless. Both off the runtime
        // and outside the log lock: appends go on meanwhile.
        if !output.removed_markers().is_empty() {
            let job = {
                let log = self.lock_log()?;
                self.prepare_snapshot(log.get_ref())
            };
            let this = self.clone();
            let removed = output.removed_markers().to_vec();
            let prepared = tokio::task::spawn_blocking(move || {
                this.write_snapshot(job)?;
                this.txn_index
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove_markers(&removed)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(e) = prepared {
                tracing::warn!(partition = %self.name(), error = %e,
                    "removing transaction markers failed; the clean is not installed");
                return Ok(None);
            }
        }
        let installed = {
            let mut log = self.lock_log()?;
            log.get().install_clean(output)
        };
        match installed {
            Ok((stats, mut retired)) => {
                if let Some(later) = retired.delayed_removal() {
                    self.remove_later(later);
                }
                drop(retired);
                Ok(Some(stats))
            }
            Err(StorageError::CleanAborted(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The producer-state snapshot of the log as it is now (the caller holds the log lock,
    /// so no append slips in between), forgetting producers idle past
    /// `producer.id.expiration.ms` first. Only memory is touched: [`SnapshotJob::write`]
    /// does the I/O, outside the lock.
    fn prepare_snapshot(&self, log: &Log) -> SnapshotJob {
        let offset = log.log_end_offset();
        let bytes = {
            let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
            producers.expire(self.clock.now_ms(), self.producer_expiration_ms);
            producers.encode_snapshot(offset)
        };
        let txn_index = self
            .txn_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync_handle();
        SnapshotJob {
            offset,
            bytes,
            txn_index,
        }
    }

    /// Write a prepared snapshot: the aborted-transaction index first (every abort below
    /// the snapshot's offset must be on disk before the snapshot is, or a crash could leave
    /// an aborted transaction readable), then the snapshot atomically. Writes are
    /// serialized; one older than the snapshot already written is skipped, so the snapshot
    /// on disk only moves forward. Blocking: call it off the async runtime.
    fn write_snapshot(&self, job: SnapshotJob) -> std::io::Result<()> {
        let mut written = self
            .snapshot_written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if job.offset < *written {
            return Ok(());
        }
        if let Some(f) = &job.txn_index {
            f.sync_data()?;
        }
        write_atomic(&*self.fs, &self.dir, PRODUCER_SNAPSHOT_FILE, &job.bytes)?;
        *written = job.offset;
        Ok(())
    }

    /// [`Partition::write_snapshot`] on a blocking thread.
    async fn snapshot_off_runtime(self: &Arc<Self>, job: SnapshotJob) -> std::io::Result<()> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.write_snapshot(job))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
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
        self.update_stable_offset();
    }

    /// Recompute the last stable offset from the open transactions and the high watermark.
    fn update_stable_offset(&self) {
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        self.state.send_if_modified(|s| {
            let hw = s.high_watermark;
            let lso = producers
                .first_unstable_offset(hw)
                .map_or(hw, |f| f.min(hw));
            if lso != s.last_stable_offset {
                s.last_stable_offset = lso;
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
        self.read_upto(fetch_offset, max_bytes, high_watermark)
    }

    /// Read whole batches from `fetch_offset` below `upto` (a high watermark or LSO).
    pub fn read_upto(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        upto: i64,
    ) -> Result<Bytes, PartitionError> {
        let log = self.lock_log()?;
        Ok(log.get_ref().read(fetch_offset, max_bytes, upto)?)
    }

    /// Where the batches [`Partition::read_upto`] would return lie in the segment files, for
    /// a fetch sent from the page cache. Only batch headers are read under the log lock.
    pub fn read_slices_upto(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        upto: i64,
    ) -> Result<Vec<FileSlice>, PartitionError> {
        let log = self.lock_log()?;
        Ok(log.get_ref().read_slices(fetch_offset, max_bytes, upto)?)
    }

    /// Run `f` on the log (for offsets by timestamp, sizes...).
    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> Result<T, PartitionError> {
        let log = self.lock_log()?;
        Ok(f(log.get_ref()))
    }

    /// fsync once, outside the log mutex, then publish the new durable end; every 30 s also
    /// write a producer-state snapshot (after publishing, off the runtime, without the lock).
    async fn fsync_once(self: &Arc<Self>) -> Result<(), PartitionError> {
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
            let started = Instant::now();
            for f in &files {
                f.sync_data()?;
            }
            counters::FSYNCS.fetch_add(1, Ordering::Relaxed);
            counters::FSYNC_NANOS.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            Ok::<(), std::io::Error>(())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = result {
            // Fail-stop: after a failed fsync the page cache may have dropped the dirty
            // pages, so a retry could "succeed" over lost data. Never retry.
            self.lock_log()?.get().mark_failed();
            tracing::error!(partition = %self.name(), error = %e, "fsync failed; partition is offline until restart");
            self.state.send_modify(|s| s.offline = true);
            return Err(PartitionError::Offline(self.name()));
        }
        let (durable, offline, snapshot) = {
            let mut log = self.lock_log()?;
            log.get().mark_synced(end_offset);
            let due = {
                let mut last = self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.elapsed() >= SNAPSHOT_INTERVAL;
                if due {
                    *last = Instant::now();
                }
                due
            };
            // The log's own view of what is durable: after a failure elsewhere (a roll's
            // fsync) it ignores this success, and nothing past its recovery point may be
            // acknowledged.
            (
                log.get_ref().recovery_point(),
                log.get_ref().is_offline(),
                due.then(|| self.prepare_snapshot(log.get_ref())),
            )
        };
        self.advance_high_watermark(durable);
        if offline {
            tracing::error!(partition = %self.name(), "log went offline after a storage failure");
            self.state.send_modify(|s| s.offline = true);
            return Err(PartitionError::Offline(self.name()));
        }
        if let Some(job) = snapshot {
            if let Err(e) = self.snapshot_off_runtime(job).await {
                tracing::warn!(partition = %self.name(), error = %e, "producer-state snapshot failed");
            }
        }
        Ok(())
    }

    /// Stop the flusher, fsync, and close the log (clean shutdown). Idempotent.
    pub fn close(&self) -> Result<(), PartitionError> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.state.send_modify(|s| s.closed = true);
        self.flush_wakeup.notify_one();
        if let Some(log) = log {
            let job = self.prepare_snapshot(&log);
            if let Err(e) = self.write_snapshot(job) {
                tracing::warn!(partition = %self.name(), error = %e, "producer-state snapshot failed");
            }
            log.close()?;
        }
        Ok(())
    }

    /// Stop the flusher and remove the partition's data.
    pub fn delete(&self) -> Result<(), PartitionError> {
        let _no_clean = self.cleaning.lock().unwrap_or_else(|e| e.into_inner());
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.state.send_modify(|s| s.closed = true);
        self.flush_wakeup.notify_one();
        if let Some(log) = log {
            log.delete()?;
        }
        Ok(())
    }
}

/// A producer-state snapshot prepared under the log lock, to be written outside it.
struct SnapshotJob {
    /// The log end offset it describes.
    offset: i64,
    bytes: Vec<u8>,
    /// The aborted-transaction index's file, fsync'd before the snapshot is written.
    txn_index: Option<Arc<dyn StorageFile>>,
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

/// Rebuild producer state for an opened log: the snapshot if it describes a prefix of this
/// log, then the batch headers after it. A snapshot past the log's end (the log was cut by
/// recovery) or damaged is ignored and the whole log is scanned. Producers idle longer than
/// `expiration_ms` (by the snapshot's record of when they were last seen) are dropped.
pub fn rebuild_producer_state(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    log: &Log,
    now_ms: i64,
    expiration_ms: i64,
) -> Result<(ProducerStateMap, TxnIndex), StorageError> {
    let mut index = TxnIndex::open(
        Arc::clone(fs),
        dir,
        log.log_start_offset(),
        log.log_end_offset(),
    )
    .map_err(|source| StorageError::Io {
        context: format!("aborted-transaction index in {}", dir.display()),
        source,
    })?;
    // An unreadable or damaged snapshot is no loss: the whole log is scanned instead.
    let snapshot = read_optional(&**fs, &dir.join(PRODUCER_SNAPSHOT_FILE), SNAPSHOT_MAX_BYTES)
        .ok()
        .flatten()
        .and_then(|b| ProducerStateMap::decode_snapshot(&b));
    let (mut state, mut offset) = match snapshot {
        Some((offset, state))
            if offset <= log.log_end_offset() && offset >= log.log_start_offset() =>
        {
            (state, offset)
        }
        _ => (ProducerStateMap::default(), log.log_start_offset()),
    };
    let mut scanned = 0u64;
    'scan: while offset < log.log_end_offset() {
        let chunk = log.read(offset, 4 * 1024 * 1024, i64::MAX)?;
        if chunk.is_empty() {
            break;
        }
        let mut pos = 0;
        let before = offset;
        while let Some(h) = chunk.get(pos..).and_then(BatchHeader::parse) {
            // A corrupt header trusted at a clean open must not overflow this arithmetic.
            let Some(end) = h.base_offset.checked_add(h.last_offset_delta as i64 + 1) else {
                break 'scan;
            };
            let last_offset = end - 1;
            if last_offset >= offset && h.producer_id >= 0 && h.is_control() {
                let kind = chunk.get(pos..pos + h.total_len()).and_then(marker_type);
                if let Some(kind) = kind {
                    let aborted = state.complete_txn(
                        h.producer_id,
                        h.producer_epoch,
                        h.base_offset,
                        kind == MARKER_COMMIT,
                        now_ms,
                        h.base_offset,
                    );
                    if let Some(a) = aborted {
                        index.append(a).map_err(|source| StorageError::Io {
                            context: format!("aborted-transaction index in {}", dir.display()),
                            source,
                        })?;
                    }
                }
            } else if last_offset >= offset && h.producer_id >= 0 {
                let b = ProducerBatch {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    first_seq: h.base_sequence,
                    last_seq: increment_sequence(h.base_sequence, h.last_offset_delta),
                    // When a batch was appended is not in the log: count producers found
                    // in it as seen now, so a restart never expires one early.
                    seen_ms: now_ms,
                    transactional: h.is_transactional(),
                };
                state.record(&b, h.base_offset, last_offset);
            }
            offset = offset.max(last_offset + 1);
            pos += h.total_len();
            scanned += 1;
        }
        if offset == before {
            break; // nothing parsed: never spin on a chunk that makes no progress
        }
    }
    let expired = state.expire(now_ms, expiration_ms);
    if scanned > 0 || !state.is_empty() {
        tracing::debug!(dir = %dir.display(), producers = state.len(), batches_scanned = scanned, expired, "producer state rebuilt");
    }
    index.sync().map_err(|source| StorageError::Io {
        context: format!("aborted-transaction index in {}", dir.display()),
        source,
    })?;
    Ok((state, index))
}
