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
//! Lock order: a partition's log lock may be held while taking `txns`, never the reverse.

pub mod records;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::MetadataError;
use crate::error_codes as ec;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::internal_topic::{DurableTicket, InternalRecord, InternalTopic};
use crate::partition::Partition;
use crate::producer_ids::ProducerIdManager;
use records::TxnValue;

pub use crate::catalog::TXN_TOPIC;
pub use crate::config::TxnConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnState {
    pub fn from_u8(v: u8) -> Option<TxnState> {
        use TxnState::*;
        Some(match v {
            0 => Empty,
            1 => Ongoing,
            2 => PrepareCommit,
            3 => PrepareAbort,
            4 => CompleteCommit,
            5 => CompleteAbort,
            6 => Dead,
            7 => PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        use TxnState::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    fn preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

#[derive(Debug, Clone)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the open transaction started (-1: none).
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// A completion (markers) is running for it now. Not persisted.
    completing: bool,
}

impl TxnMeta {
    fn value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            epoch: self.epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }
}

#[derive(Default)]
struct Txns {
    by_id: HashMap<String, TxnMeta>,
    /// Producer id -> transactional id.
    by_pid: HashMap<i64, String>,
}

impl Txns {
    fn insert(&mut self, m: TxnMeta) {
        if let Some(old) = self.by_id.get(&m.transactional_id) {
            if old.producer_id != m.producer_id {
                self.by_pid.remove(&old.producer_id);
            }
        }
        self.by_pid
            .insert(m.producer_id, m.transactional_id.clone());
        self.by_id.insert(m.transactional_id.clone(), m);
    }
}

/// Transactional ids, their producer ids and epochs, and their transactions.
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
    txns: Mutex<Txns>,
}

/// The errors for a producer id and epoch that do not match the transactional id's.
fn epoch_error(fenced_code: bool) -> i16 {
    if fenced_code {
        ec::PRODUCER_FENCED
    } else {
        ec::INVALID_PRODUCER_EPOCH
    }
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
            config,
            state_topic,
            catalog,
            producer_ids,
            groups,
            clock,
            txns: Mutex::new(Txns::default()),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Txns> {
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// InitProducerId with a transactional id. `expected` is the producer id and epoch a
    /// KIP-360 client names when it asks for a bump. Returns (producer id, epoch).
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        version: i16,
    ) -> Result<(i64, i16), i16> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ec::INVALID_TRANSACTION_TIMEOUT);
        }
        let now = self.now_ms();
        let fenced_code = version >= 4;
        enum Next {
            Persist(TxnMeta),
            AbortFirst,
        }
        let next = {
            let mut txns = self.lock();
            if !txns.by_id.contains_key(transactional_id) {
                if expected.is_some_and(|(pid, _)| pid >= 0) {
                    return Err(epoch_error(fenced_code));
                }
                let pid = self.producer_ids.next_id().map_err(|e| {
                    tracing::error!(error = %e, "allocating a producer id block failed");
                    ec::COORDINATOR_NOT_AVAILABLE
                })?;
                let m = TxnMeta {
                    transactional_id: transactional_id.to_string(),
                    producer_id: pid,
                    epoch: 0,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: now,
                    completing: false,
                };
                txns.insert(m.clone());
                Next::Persist(m)
            } else {
                let m = txns.by_id.get_mut(transactional_id).expect("checked above");
                if let Some((pid, epoch)) = expected.filter(|&(pid, _)| pid >= 0) {
                    if pid != m.producer_id || epoch != m.epoch {
                        return Err(epoch_error(fenced_code));
                    }
                }
                if m.state.preparing() || m.completing {
                    return Err(ec::CONCURRENT_TRANSACTIONS);
                }
                if m.state == TxnState::Ongoing {
                    // Fence the previous incarnation: its transaction is aborted with
                    // markers at a new epoch, which the new producer then uses.
                    m.epoch = m.epoch.saturating_add(1);
                    m.timeout_ms = timeout_ms;
                    m.state = TxnState::PrepareAbort;
                    m.completing = true;
                    m.last_update_ms = now;
                    Next::AbortFirst
                } else {
                    bump_epoch(&self.producer_ids, m, now)?;
                    m.timeout_ms = timeout_ms;
                    m.state = TxnState::Empty;
                    m.partitions.clear();
                    m.start_ms = -1;
                    let snap = m.clone();
                    txns.insert(snap.clone());
                    Next::Persist(snap)
                }
            }
        };
        match next {
            Next::Persist(m) => {
                self.persist(&m).await?;
                Ok((m.producer_id, m.epoch))
            }
            Next::AbortFirst => {
                tracing::info!(
                    transactional_id,
                    "aborting the open transaction of a fenced producer"
                );
                self.complete(transactional_id, false).await?;
                let m = {
                    let mut txns = self.lock();
                    let m = txns
                        .by_id
                        .get_mut(transactional_id)
                        .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?;
                    if m.epoch >= i16::MAX - 1 {
                        bump_epoch(&self.producer_ids, m, self.now_ms())?;
                    }
                    let snap = m.clone();
                    txns.insert(snap.clone());
                    snap
                };
                self.persist(&m).await?;
                Ok((m.producer_id, m.epoch))
            }
        }
    }

    /// Check the producer of an AddPartitionsToTxn, AddOffsetsToTxn or EndTxn.
    fn check_producer(
        m: &TxnMeta,
        producer_id: i64,
        epoch: i16,
        fenced_code: bool,
    ) -> Result<(), i16> {
        if m.producer_id != producer_id {
            return Err(ec::INVALID_PRODUCER_ID_MAPPING);
        }
        if m.epoch != epoch {
            return Err(epoch_error(fenced_code));
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): one
    /// code for all the given partitions. Unknown partitions are the caller's to refuse.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_code: bool,
    ) -> Result<(), i16> {
        let now = self.now_ms();
        let m = {
            let mut txns = self.lock();
            let m = txns
                .by_id
                .get_mut(transactional_id)
                .ok_or(ec::INVALID_PRODUCER_ID_MAPPING)?;
            Self::check_producer(m, producer_id, epoch, fenced_code)?;
            if m.state.preparing() || m.completing {
                return Err(ec::CONCURRENT_TRANSACTIONS);
            }
            if m.state == TxnState::Dead {
                return Err(ec::INVALID_TXN_STATE);
            }
            if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
                return Ok(());
            }
            if m.state != TxnState::Ongoing {
                m.partitions.clear();
                m.start_ms = now;
                m.state = TxnState::Ongoing;
            }
            m.partitions.extend(partitions.iter().cloned());
            m.last_update_ms = now;
            m.clone()
        };
        self.persist(&m).await
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
    ) -> Result<(), i16> {
        {
            let mut txns = self.lock();
            let m = txns
                .by_id
                .get_mut(transactional_id)
                .ok_or(ec::INVALID_PRODUCER_ID_MAPPING)?;
            Self::check_producer(m, producer_id, epoch, fenced_code)?;
            match (m.state, commit) {
                (TxnState::Ongoing, _) if !m.completing => {
                    m.state = if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    };
                    m.completing = true;
                    m.last_update_ms = self.now_ms();
                }
                // A retry of an EndTxn that completed.
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                    return Ok(())
                }
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    return Err(ec::CONCURRENT_TRANSACTIONS)
                }
                _ => return Err(ec::INVALID_TXN_STATE),
            }
        }
        self.complete(transactional_id, commit).await
    }

    /// Second phase of a transaction already in PrepareCommit / PrepareAbort in memory,
    /// claimed by the caller (`completing` set): persist that, write and fsync the markers,
    /// then persist the Complete state.
    async fn complete(&self, transactional_id: &str, commit: bool) -> Result<(), i16> {
        let m = {
            let txns = self.lock();
            txns.by_id
                .get(transactional_id)
                .cloned()
                .ok_or(ec::COORDINATOR_NOT_AVAILABLE)?
        };
        let result = self.write_markers(&m, commit).await;
        let done = {
            let mut txns = self.lock();
            let Some(cur) = txns.by_id.get_mut(transactional_id) else {
                return Err(ec::COORDINATOR_NOT_AVAILABLE);
            };
            cur.completing = false;
            if result.is_err() {
                None
            } else {
                cur.state = if commit {
                    TxnState::CompleteCommit
                } else {
                    TxnState::CompleteAbort
                };
                cur.partitions.clear();
                cur.start_ms = -1;
                cur.last_update_ms = self.now_ms();
                Some(cur.clone())
            }
        };
        result?;
        let done = done.expect("set when the markers succeeded");
        // Not waited for: if this record is lost in a crash, the Prepare record makes the
        // restart write the markers again, which changes nothing in partitions that have
        // them. (Saves an fsync round per commit.)
        self.append_state(&done).await.map(|_| ())
    }

    async fn write_markers(&self, m: &TxnMeta, commit: bool) -> Result<(), i16> {
        self.persist(m).await?;
        let now = self.now_ms();
        let mut written: Vec<(Arc<Partition>, i64)> = Vec::new();
        for (topic, index) in &m.partitions {
            let Some(p) = self.catalog.partition(topic, *index) else {
                continue; // deleted since: nothing to mark
            };
            match p.append_marker(m.producer_id, m.epoch, commit, 0, now) {
                Ok(offset) => written.push((p, offset)),
                Err(crate::partition::PartitionError::Closed(_)) => {}
                Err(e) => {
                    tracing::error!(partition = %p.name(), transactional_id = %m.transactional_id, error = %e,
                        "writing a transaction marker failed; will retry");
                    return Err(ec::COORDINATOR_NOT_AVAILABLE);
                }
            }
        }
        for (p, offset) in &written {
            if let Err(e) = p.wait_durable(offset + 1).await {
                if !matches!(e, crate::partition::PartitionError::Closed(_)) {
                    tracing::error!(partition = %p.name(), error = %e, "transaction marker not durable; will retry");
                    return Err(ec::COORDINATOR_NOT_AVAILABLE);
                }
            }
        }
        for (p, _) in &written {
            if p.topic == OFFSETS_TOPIC {
                self.groups
                    .complete_txn_offsets(m.producer_id, p.index, commit);
            }
        }
        Ok(())
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
    ) -> Result<(), (i16, &'static str)> {
        let txns = self.lock();
        let Some(id) = txns.by_pid.get(&producer_id) else {
            return Err((
                ec::INVALID_PRODUCER_ID_MAPPING,
                "no transactional id has this producer id",
            ));
        };
        if transactional_id.is_some_and(|t| t != id) {
            return Err((
                ec::INVALID_PRODUCER_ID_MAPPING,
                "the producer id belongs to another transactional id",
            ));
        }
        let m = &txns.by_id[id];
        if epoch < m.epoch {
            return Err((ec::INVALID_PRODUCER_EPOCH, "the producer was fenced"));
        }
        if epoch != m.epoch
            || m.state != TxnState::Ongoing
            || m.completing
            || !m.partitions.contains(&(topic.to_string(), partition))
        {
            return Err((
                ec::INVALID_TXN_STATE,
                "the partition is not part of the producer's open transaction",
            ));
        }
        Ok(())
    }

    /// For TxnOffsetCommit: the producer's transaction includes the group's offsets partition.
    pub fn verify_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), i16> {
        let txns = self.lock();
        let m = txns
            .by_id
            .get(transactional_id)
            .ok_or(ec::INVALID_PRODUCER_ID_MAPPING)?;
        if m.producer_id != producer_id {
            return Err(ec::INVALID_PRODUCER_ID_MAPPING);
        }
        if m.epoch != epoch {
            return Err(ec::PRODUCER_FENCED);
        }
        if m.state != TxnState::Ongoing
            || !m
                .partitions
                .contains(&(OFFSETS_TOPIC.to_string(), offsets_partition))
        {
            return Err(ec::INVALID_TXN_STATE);
        }
        Ok(())
    }

    pub fn describe(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.lock().by_id.get(transactional_id).cloned()
    }

    pub fn list(&self) -> Vec<TxnMeta> {
        let mut v: Vec<TxnMeta> = self.lock().by_id.values().cloned().collect();
        v.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        v
    }

    // ---- persistence -----------------------------------------------------------------------

    /// Append the transactional id's state to its `__transaction_state` partition and wait
    /// until it is durable.
    async fn persist(&self, m: &TxnMeta) -> Result<(), i16> {
        let ticket = self.append_state(m).await?;
        ticket.wait().await.map_err(|e| e.code())
    }

    /// Append the state record without waiting for its fsync.
    async fn append_state(&self, m: &TxnMeta) -> Result<DurableTicket, i16> {
        let value = records::encode_value(&m.value());
        self.append_record(&m.transactional_id, Some(value)).await
    }

    /// Append a `__transaction_state` record for `transactional_id` (a tombstone if `value`
    /// is None) without waiting for its fsync.
    async fn append_record(
        &self,
        transactional_id: &str,
        value: Option<Vec<u8>>,
    ) -> Result<DurableTicket, i16> {
        let record = InternalRecord {
            key: Bytes::from(records::encode_key(transactional_id)),
            value: value.map(Bytes::from),
        };
        self.state_topic
            .append(transactional_id, &[record])
            .await
            .map_err(|e| e.code())
    }

    /// Rebuild every transactional id from `__transaction_state` (at start, before serving).
    pub fn load(&self) -> Result<(), MetadataError> {
        let mut txns = self.lock();
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
                None => {
                    if let Some(old) = txns.by_id.remove(&id) {
                        txns.by_pid.remove(&old.producer_id);
                    }
                }
                Some(Ok(v)) => txns.insert(TxnMeta {
                    transactional_id: id,
                    producer_id: v.producer_id,
                    epoch: v.epoch,
                    timeout_ms: v.timeout_ms,
                    state: v.state,
                    partitions: v.partitions,
                    start_ms: v.start_ms,
                    last_update_ms: v.last_update_ms,
                    completing: false,
                }),
                Some(Err(e)) => {
                    tracing::warn!(offset = r.offset, error = %e, "skipping a {TXN_TOPIC} record")
                }
            }
        })?;
        let unfinished = txns.by_id.values().filter(|m| m.state.preparing()).count();
        tracing::info!(
            transactional_ids = txns.by_id.len(),
            records = records_read,
            unfinished,
            "transactions loaded from {TXN_TOPIC}"
        );
        Ok(())
    }

    /// Finish transactions left in a Prepare state (after a restart or a failed marker
    /// write), and abort those open past their timeout. Runs at start and on a timer.
    async fn tick(self: &Arc<Self>) {
        let now = self.now_ms();
        let mut todo = Vec::new();
        {
            let mut txns = self.lock();
            for m in txns.by_id.values_mut() {
                if m.completing {
                    continue;
                }
                match m.state {
                    TxnState::PrepareCommit => {
                        m.completing = true;
                        todo.push((m.transactional_id.clone(), true))
                    }
                    TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                        m.completing = true;
                        todo.push((m.transactional_id.clone(), false))
                    }
                    TxnState::Ongoing
                        if m.start_ms >= 0 && now - m.start_ms > m.timeout_ms as i64 =>
                    {
                        tracing::info!(transactional_id = %m.transactional_id, producer_id = m.producer_id,
                            timeout_ms = m.timeout_ms, "transaction timed out; aborting it");
                        // Fence the producer: its epoch is over.
                        m.epoch = m.epoch.saturating_add(1);
                        m.state = TxnState::PrepareAbort;
                        m.completing = true;
                        m.last_update_ms = now;
                        todo.push((m.transactional_id.clone(), false));
                    }
                    _ => {}
                }
            }
        }
        for (id, commit) in todo {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(code) = this.complete(&id, commit).await {
                    tracing::warn!(transactional_id = %id, code, "completing a transaction failed; will retry");
                }
            });
        }
    }

    /// Forget transactional ids idle past `transactional.id.expiration.ms` with nothing in
    /// flight (Empty, CompleteCommit or CompleteAbort), as Kafka does: each is claimed
    /// (`completing`, so InitProducerId gets CONCURRENT_TRANSACTIONS meanwhile), its
    /// tombstone is made durable, then it leaves memory. A producer that comes back later
    /// gets a new producer id; its old epoch cannot fence anything any more.
    async fn expire_ids(&self) -> usize {
        let now = self.now_ms();
        let claimed: Vec<(String, i64, i16)> = {
            let mut txns = self.lock();
            txns.by_id
                .values_mut()
                .filter(|m| {
                    !m.completing
                        && matches!(
                            m.state,
                            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                        )
                        && now.saturating_sub(m.last_update_ms) >= self.config.id_expiration_ms
                })
                .map(|m| {
                    m.completing = true;
                    (m.transactional_id.clone(), m.producer_id, m.epoch)
                })
                .collect()
        };
        let mut expired = 0;
        for (id, producer_id, epoch) in claimed {
            let written = match self.append_record(&id, None).await {
                Ok(ticket) => ticket.wait().await.is_ok(),
                Err(_) => false,
            };
            let mut txns = self.lock();
            if written {
                if let Some(old) = txns.by_id.remove(&id) {
                    txns.by_pid.remove(&old.producer_id);
                }
                expired += 1;
                tracing::info!(transactional_id = %id, producer_id, epoch,
                    expiration_ms = self.config.id_expiration_ms, "transactional id expired");
            } else if let Some(m) = txns.by_id.get_mut(&id) {
                m.completing = false; // next round tries again
            }
        }
        expired
    }

    /// The coordinator's timers: finishing and timing out transactions (its first tick at
    /// once, to finish what a restart left in a Prepare state) and expiring idle ids. They
    /// stop when the coordinator is dropped.
    pub fn spawn_timer(self: &Arc<Self>) {
        let c = &self.config;
        spawn_every(self, c.abort_check_interval_ms, true, |t| async move {
            t.tick().await;
        });
        spawn_every(self, c.remove_expired_interval_ms, false, |t| async move {
            t.expire_ids().await;
        });
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

/// The next epoch of a transactional id, or a new producer id when the epoch is used up.
fn bump_epoch<'a>(
    producer_ids: &ProducerIdManager,
    m: &'a mut TxnMeta,
    now: i64,
) -> Result<&'a mut TxnMeta, i16> {
    if m.epoch >= i16::MAX - 1 {
        let pid = producer_ids.next_id().map_err(|e| {
            tracing::error!(error = %e, "allocating a producer id block failed");
            ec::COORDINATOR_NOT_AVAILABLE
        })?;
        m.producer_id = pid;
        m.epoch = 0;
    } else {
        m.epoch += 1;
    }
    m.last_update_ms = now;
    Ok(m)
}
