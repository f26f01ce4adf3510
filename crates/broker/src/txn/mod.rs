//! The transaction coordinator: transactional ids, their producer id and epoch, and the
//! two-phase completion of each transaction (Kafka's TransactionCoordinator, on one node).
//!
//! State lives in the internal topic `__transaction_state` (Kafka's record formats, see
//! `records`), replayed at start. A transaction goes Empty -> Ongoing (AddPartitionsToTxn /
//! AddOffsetsToTxn) -> PrepareCommit or PrepareAbort (EndTxn, durable before any marker) ->
//! markers written and fsync'd in every partition of the transaction -> CompleteCommit or
//! CompleteAbort. A crash between the two phases is finished after restart from the Prepare
//! record, so a transaction is either wholly committed or wholly aborted.
//!
//! Fencing: InitProducerId for a transactional id bumps its epoch; an open transaction of the
//! previous incarnation is aborted first, with markers carrying the new epoch, so the old
//! producer's later writes are refused everywhere (PRODUCER_FENCED). A transaction open
//! longer than its timeout is aborted the same way by the timer.
//!
//! The classic protocol's hole (a produce delayed past its transaction's end would start a
//! transaction nobody ends) is closed as KIP-890 part 1 does: a transactional batch is
//! appended only if the coordinator has its partition in the producer's Ongoing transaction,
//! checked under the partition's log lock, and markers are appended under the same lock
//! after the state left Ongoing.
//!
//! Every decision is made by [`machine::TxnMachine`], which does no I/O: it takes events
//! (requests, timer ticks, the results of writes) and returns [`machine::TxnCommand`]s
//! (persist a state record, write markers, allocate a producer id, write a tombstone,
//! answer). This module is its shell: it executes the commands and feeds their results
//! back.
//!
//! Lock order: a partition's log lock may be held while taking the machine's lock, never
//! the reverse (the machine is never locked across I/O).

pub mod error;
pub mod machine;
pub mod records;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::MetadataError;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::internal_topic::{InternalRecord, InternalTopic};
use crate::partition::{Partition, PartitionError};
use crate::producer_ids::ProducerIdManager;
use machine::{InitProducerId, TxnCommand, TxnMachine, TxnReply};
use records::TxnValue;

pub use crate::catalog::TXN_TOPIC;
pub use crate::config::TxnConfig;
pub use error::TxnError;
pub use machine::{TxnMeta, TxnState};

/// Transactional ids, their producer ids and epochs, and their transactions: the async
/// shell around [`TxnMachine`]. Each request locks the machine, hands it the event, and
/// executes the commands it returns (feeding each result back) with the lock released.
pub struct TxnCoordinator {
    /// The coordinator's settings.
    pub config: TxnConfig,
    /// Where transaction state is persisted: `__transaction_state`.
    state_topic: InternalTopic,
    /// The data partitions markers are written to.
    catalog: Arc<Catalog>,
    producer_ids: Arc<ProducerIdManager>,
    /// Told when a transaction that committed offsets ends.
    groups: Arc<GroupCoordinator>,
    clock: Arc<dyn Clock>,
    machine: Mutex<TxnMachine>,
}

impl TxnCoordinator {
    /// A coordinator with no transactional ids yet (see [`TxnCoordinator::load`]).
    pub fn new(
        config: TxnConfig,
        state_topic: InternalTopic,
        catalog: Arc<Catalog>,
        producer_ids: Arc<ProducerIdManager>,
        groups: Arc<GroupCoordinator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        TxnCoordinator {
            machine: Mutex::new(TxnMachine::new(&config)),
            config,
            state_topic,
            catalog,
            producer_ids,
            groups,
            clock,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TxnMachine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// InitProducerId with a transactional id. `expected` is the producer id and epoch a
    /// KIP-360 client names when it asks for a bump. Returns (producer id, epoch).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Result<(i64, i16), TxnError> {
        let req = InitProducerId {
            transactional_id: transactional_id.to_string(),
            timeout_ms,
            expected,
            version,
        };
        let now = self.now_ms();
        let commands = self.lock().on_init_producer_id(&req, None, now);
        match self.run(commands).await {
            Some(Ok(TxnReply::ProducerId { producer_id, epoch })) => Ok((producer_id, epoch)),
            other => Err(unanswered(other)),
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): one
    /// answer for all the given partitions. Unknown partitions are the caller's to refuse.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_code: bool,
    ) -> Result<(), TxnError> {
        let now = self.now_ms();
        let commands = self.lock().on_add_partitions(
            transactional_id,
            producer_id,
            epoch,
            partitions,
            fenced_code,
            now,
        );
        match self.run(commands).await {
            Some(Ok(TxnReply::Done)) => Ok(()),
            other => Err(unanswered(other)),
        }
    }

    /// EndTxn: commit or abort the producer's transaction; answered once the markers are
    /// durable in every partition of it.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fenced_code: bool,
    ) -> Result<(), TxnError> {
        let now = self.now_ms();
        let commands = self.lock().on_end_txn(
            transactional_id,
            producer_id,
            epoch,
            commit,
            fenced_code,
            now,
        );
        match self.run(commands).await {
            Some(Ok(TxnReply::Done)) => Ok(()),
            other => Err(unanswered(other)),
        }
    }

    /// KIP-890 verification, run under the partition's log lock before a transactional
    /// batch is appended.
    pub fn verify(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        self.lock()
            .verify(transactional_id, producer_id, epoch, topic, partition)
    }

    /// For TxnOffsetCommit: the producer's transaction includes the group's offsets partition.
    pub fn verify_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), TxnError> {
        self.lock()
            .verify_offsets(transactional_id, producer_id, epoch, offsets_partition)
    }

    /// The state of one transactional id (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.lock().get(transactional_id).cloned()
    }

    /// Every transactional id's state, by id (ListTransactions).
    pub fn list(&self) -> Vec<TxnMeta> {
        let mut v: Vec<TxnMeta> = self.lock().iter().cloned().collect();
        v.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        v
    }

    // ---- executing the machine's commands --------------------------------------------------

    /// Execute `commands` in order, each chain to its end (a command's follow-ups run before
    /// the next command), with the machine unlocked during the I/O. Returns the answer of
    /// the request that started them, if any.
    async fn run(&self, commands: Vec<TxnCommand>) -> Option<Result<TxnReply, TxnError>> {
        let mut queue = VecDeque::from(commands);
        let mut answer = None;
        while let Some(command) = queue.pop_front() {
            let next = match command {
                TxnCommand::Respond(result) => {
                    debug_assert!(answer.is_none(), "one answer per request");
                    answer = Some(result);
                    Vec::new()
                }
                TxnCommand::Persist {
                    transactional_id,
                    value,
                    fsync,
                    then,
                } => {
                    let result = self.persist(&transactional_id, &value, fsync).await;
                    let now = self.now_ms();
                    let mut machine = self.lock();
                    match result {
                        Ok(()) => machine.on_persisted(&transactional_id, then, now),
                        Err(e) => machine.on_persist_failed(&transactional_id, then, e),
                    }
                }
                TxnCommand::WriteMarkers {
                    transactional_id,
                    producer_id,
                    epoch,
                    commit,
                    partitions,
                    waiter,
                } => {
                    let result = self
                        .write_markers(&transactional_id, producer_id, epoch, commit, &partitions)
                        .await;
                    let now = self.now_ms();
                    let mut machine = self.lock();
                    match result {
                        Ok(()) => machine.on_markers_written(&transactional_id, waiter, now),
                        Err(e) => machine.on_markers_failed(&transactional_id, waiter, e),
                    }
                }
                TxnCommand::AllocateProducerId { then } => {
                    let result = self.producer_ids.next_id();
                    let now = self.now_ms();
                    let mut machine = self.lock();
                    match result {
                        Ok(producer_id) => machine.on_producer_id_allocated(then, producer_id, now),
                        Err(e) => {
                            tracing::error!(error = %e, "allocating a producer id block failed");
                            let error = TxnError::ProducerIdsUnavailable(e.to_string());
                            machine.on_producer_id_failed(then, error)
                        }
                    }
                }
                TxnCommand::Tombstone { transactional_id } => {
                    let result = self.append_record(&transactional_id, None).await;
                    let written = match result {
                        Ok(ticket) => ticket.wait().await.map_err(TxnError::from),
                        Err(e) => Err(e),
                    };
                    let mut machine = self.lock();
                    match written {
                        Ok(()) => machine.on_tombstone_written(&transactional_id),
                        Err(e) => {
                            tracing::warn!(transactional_id, error = %e,
                                "the tombstone of an expired transactional id was not written; will retry");
                            machine.on_tombstone_failed(&transactional_id)
                        }
                    }
                }
            };
            for command in next.into_iter().rev() {
                queue.push_front(command);
            }
        }
        answer
    }

    /// Append the transactional id's state to its `__transaction_state` partition, and
    /// wait until it is durable if `fsync`.
    async fn persist(
        &self,
        transactional_id: &str,
        value: &TxnValue,
        fsync: bool,
    ) -> Result<(), TxnError> {
        let ticket = self
            .append_record(transactional_id, Some(records::encode_value(value)))
            .await?;
        if fsync {
            ticket.wait().await?;
        }
        Ok(())
    }

    /// Append a `__transaction_state` record for `transactional_id` (a tombstone if `value`
    /// is None) without waiting for its fsync.
    async fn append_record(
        &self,
        transactional_id: &str,
        value: Option<Vec<u8>>,
    ) -> Result<crate::internal_topic::DurableTicket, TxnError> {
        let record = InternalRecord {
            key: Bytes::from(records::encode_key(transactional_id)),
            value: value.map(Bytes::from),
        };
        Ok(self.state_topic.append(transactional_id, &[record]).await?)
    }

    /// Append a commit or abort marker to every partition of the transaction (a partition
    /// deleted or closed since has nothing to mark), wait until all are durable, then let
    /// the group coordinator apply or drop the offsets committed in the transaction.
    async fn write_markers(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let now = self.now_ms();
        let mut written: Vec<(Arc<Partition>, i64)> = Vec::new();
        for (topic, index) in partitions {
            let Some(p) = self.catalog.partition(topic, *index) else {
                continue;
            };
            match p.append_marker(producer_id, epoch, commit, 0, now) {
                Ok(offset) => written.push((p, offset)),
                Err(PartitionError::Closed(_)) => {}
                Err(e) => {
                    tracing::error!(partition = %p.name(), transactional_id, error = %e,
                        "writing a transaction marker failed; will retry");
                    return Err(TxnError::MarkersNotWritten(format!("{}: {e}", p.name())));
                }
            }
        }
        for (p, offset) in &written {
            if let Err(e) = p.wait_durable(offset + 1).await {
                if !matches!(e, PartitionError::Closed(_)) {
                    tracing::error!(partition = %p.name(), error = %e, "transaction marker not durable; will retry");
                    return Err(TxnError::MarkersNotWritten(format!("{}: {e}", p.name())));
                }
            }
        }
        for (p, _) in &written {
            if p.topic == OFFSETS_TOPIC {
                self.groups
                    .complete_txn_offsets(producer_id, p.index, commit);
            }
        }
        Ok(())
    }

    /// Rebuild every transactional id from `__transaction_state` (at start, before serving).
    pub fn load(&self) -> Result<(), MetadataError> {
        let mut machine = self.lock();
        let records_read = self.state_topic.replay(|_, r| {
            let Some(key) = r.key.as_deref().filter(|_| !r.control) else {
                return;
            };
            let id = match records::decode_key(key) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(offset = r.offset, error = %e, "skipping a {TXN_TOPIC} record");
                    return;
                }
            };
            match r.value.as_deref().map(records::decode_value) {
                None => machine.replay(id, None),
                Some(Ok(v)) => machine.replay(id, Some(v)),
                Some(Err(e)) => {
                    tracing::warn!(offset = r.offset, error = %e, "skipping a {TXN_TOPIC} record")
                }
            }
        })?;
        debug_assert_eq!(machine.validate(), Ok(()));
        let unfinished = machine.iter().filter(|m| m.state.preparing()).count();
        tracing::info!(
            transactional_ids = machine.len(),
            records = records_read,
            unfinished,
            "transactions loaded from {TXN_TOPIC}"
        );
        Ok(())
    }

    /// Finish transactions left in a Prepare state (after a restart or a failed marker
    /// write), and abort those open past their timeout: each in a task of its own. Runs at
    /// start and on a timer.
    fn tick(self: &Arc<Self>) {
        let now = self.now_ms();
        let commands = self.lock().on_tick(now);
        for command in commands {
            let this = self.clone();
            tokio::spawn(async move {
                this.run(vec![command]).await;
            });
        }
    }

    /// Forget transactional ids idle past `transactional.id.expiration.ms`, one tombstone
    /// after the other (see [`TxnMachine::on_expire`]).
    async fn expire_ids(&self) {
        let now = self.now_ms();
        let commands = self.lock().on_expire(now);
        self.run(commands).await;
    }

    /// The coordinator's timers: finishing and timing out transactions (its first tick at
    /// once, to finish what a restart left in a Prepare state) and expiring idle ids. They
    /// stop when the coordinator is dropped.
    pub fn spawn_timer(self: &Arc<Self>) {
        let c = &self.config;
        spawn_every(self, c.abort_check_interval_ms, true, |t| async move {
            t.tick();
        });
        spawn_every(self, c.remove_expired_interval_ms, false, |t| async move {
            t.expire_ids().await;
        });
    }
}

/// The error for a request whose chain of commands ended without the answer its kind
/// expects (a bug in the machine: logged, answered as retriable).
fn unanswered(answer: Option<Result<TxnReply, TxnError>>) -> TxnError {
    match answer {
        Some(Err(e)) => e,
        other => {
            debug_assert!(false, "a transaction request was answered {other:?}");
            tracing::error!(answer = ?other, "a transaction request got no fitting answer");
            TxnError::Vanished
        }
    }
}

/// Run `job` every `interval_ms` (at least 10 ms) while the coordinator lives; the first
/// run at once if `at_once`, else after one interval.
fn spawn_every<F, Fut>(coordinator: &Arc<TxnCoordinator>, interval_ms: i64, at_once: bool, job: F)
where
    F: Fn(Arc<TxnCoordinator>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let weak: Weak<TxnCoordinator> = Arc::downgrade(coordinator);
    let period = Duration::from_millis(interval_ms.max(10) as u64);
    tokio::spawn(async move {
        let now = tokio::time::Instant::now();
        let first = if at_once { now } else { now + period };
        let mut interval = tokio::time::interval_at(first, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(coordinator) = weak.upgrade() else {
                return;
            };
            job(coordinator).await;
        }
    });
}
