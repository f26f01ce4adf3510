//! The transaction coordinator's decisions, without I/O (as openraft's Engine): every
//! transition of every transactional id happens here, and what must be written or
//! allocated comes out as [`TxnCommand`]s for the async shell (`txn::TxnCoordinator`) to
//! execute. The shell feeds each command's result back (`on_persisted`,
//! `on_markers_written`, `on_producer_id_allocated`, `on_tombstone_written`, or their
//! failures) and executes what that returns, until a [`TxnCommand::Respond`] answers the
//! request. Time comes in as `now_ms`.
//!
//! A command carries its continuation (`then`, `waiter`): what the machine does when its
//! result comes back. So one request is one chain of commands, for example EndTxn(commit):
//! `Persist(PrepareCommit, fsync)` -> `WriteMarkers(commit)` -> `Persist(CompleteCommit, no
//! fsync)` -> `Respond(Ok)`.
//!
//! A transactional id whose markers are being written (or whose tombstone is) is claimed:
//! requests that would change it get CONCURRENT_TRANSACTIONS until the claim is released,
//! and the timer leaves it alone. Between the commands of one chain other events may come
//! in; every continuation re-reads the state it acts on.
//!
//! Invariants (checked by [`TxnMachine::validate`] after every event in debug builds):
//! `by_pid` and `by_id` are inverse maps; producer ids and epochs are non-negative and
//! timeouts positive; Ongoing has a start time; Empty, CompleteCommit and CompleteAbort have
//! no partitions and no start time; a markers claim is only on a Prepare state, a tombstone
//! claim only on Empty, CompleteCommit or CompleteAbort.

use std::collections::{BTreeSet, HashMap};

use super::error::TxnError;
use super::records::TxnValue;
use super::TxnConfig;
use crate::catalog::OFFSETS_TOPIC;

/// Where a transactional id's transaction is (Kafka's TransactionState, same numbers on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction open.
    Empty = 0,
    /// A transaction is open: partitions were added.
    Ongoing = 1,
    /// EndTxn(commit) is durable; markers are being written.
    PrepareCommit = 2,
    /// An abort is durable (EndTxn, fencing or timeout); markers are being written.
    PrepareAbort = 3,
    /// The last transaction committed everywhere.
    CompleteCommit = 4,
    /// The last transaction aborted everywhere.
    CompleteAbort = 5,
    /// The id is gone (Kafka's state; weir writes a tombstone instead).
    Dead = 6,
    /// Kafka's fencing abort in progress; finished like PrepareAbort.
    PrepareEpochFence = 7,
}

impl TxnState {
    /// The state stored as `v`, None if it is no state.
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

    /// The outcome is decided and durable; the markers are what is left to do.
    pub fn preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }

    /// No transaction open or completing: the states an idle id may expire in.
    fn idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// What is in flight for a transactional id (not persisted: a restart finds none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Its Prepare record and markers are being written.
    Markers,
    /// Its tombstone is being written (expiry).
    Tombstone,
}

/// One transactional id and its transaction.
#[derive(Debug, Clone)]
pub struct TxnMeta {
    /// The producer's `transactional.id`.
    pub transactional_id: String,
    /// The producer id it holds.
    pub producer_id: i64,
    /// Its current epoch: older ones are fenced.
    pub epoch: i16,
    /// `transaction.timeout.ms`: an open transaction older than this is aborted.
    pub timeout_ms: i32,
    /// Where its transaction is.
    pub state: TxnState,
    /// The partitions in the open transaction (markers go there).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the open transaction started (-1: none).
    pub start_ms: i64,
    /// When the state last changed (expiry counts from here).
    pub last_update_ms: i64,
    claim: Option<Claim>,
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

    /// The next epoch, or a new producer id (`fresh`) when the epoch is used up. None: a
    /// producer id is needed and was not given.
    fn bump_epoch(&mut self, fresh: Option<i64>, now_ms: i64) -> Option<()> {
        if self.epoch >= i16::MAX - 1 {
            self.producer_id = fresh?;
            self.epoch = 0;
        } else {
            self.epoch += 1;
        }
        self.last_update_ms = now_ms;
        Some(())
    }
}

/// An InitProducerId with a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerId {
    /// The producer's `transactional.id`.
    pub transactional_id: String,
    /// `transaction.timeout.ms`: an open transaction older than this is aborted.
    pub timeout_ms: i32,
    /// The producer id and epoch a KIP-360 client (v3+) names when it asks for a bump.
    pub expected: Option<(i64, i16)>,
    /// The request version: v4+ is answered PRODUCER_FENCED for a wrong epoch.
    pub version: i16,
}

/// A successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnReply {
    /// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn.
    Done,
    /// InitProducerId.
    ProducerId {
        /// The producer id to use.
        producer_id: i64,
        /// Its epoch.
        epoch: i16,
    },
}

/// Who waits for a transaction's markers and Complete record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    /// An EndTxn, answered once the Complete record is appended.
    EndTxn,
    /// An InitProducerId that fences an open transaction: once it is aborted, the id's
    /// state is persisted again (with a new producer id if the epoch is used up).
    InitProducerId,
    /// The timer (a Prepare state left by a restart or a failure, or a timeout): nobody.
    Timer,
}

/// What the machine does once a [`TxnCommand::Persist`] is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPersist {
    /// Answer the request with this.
    Reply(TxnReply),
    /// The Prepare record is durable: write the markers.
    WriteMarkers(Waiter),
    /// The Complete record is appended.
    Completed(Waiter),
}

/// What the machine does with a producer id from [`TxnCommand::AllocateProducerId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAllocate {
    /// Decide the InitProducerId again, with the id in hand.
    Init(InitProducerId),
    /// Finish an InitProducerId that fenced an open transaction at the last epoch.
    FinishFence {
        /// The transactional id whose fencing abort finished.
        transactional_id: String,
    },
}

/// The I/O the machine asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnCommand {
    /// Append `value` for `transactional_id` to `__transaction_state`, and wait for its
    /// fsync if `fsync`; then `on_persisted` or `on_persist_failed`.
    Persist {
        /// The record's key.
        transactional_id: String,
        /// The state to record.
        value: TxnValue,
        /// Wait for the fsync (a Prepare record must be durable before any marker).
        fsync: bool,
        /// What follows.
        then: AfterPersist,
    },
    /// Append a commit or abort marker to each partition (under its log lock), wait until
    /// all are durable, then tell the group coordinator about `__consumer_offsets` ones;
    /// then `on_markers_written` or `on_markers_failed`.
    WriteMarkers {
        /// The transaction's id.
        transactional_id: String,
        /// The producer whose transaction ends.
        producer_id: i64,
        /// The epoch the markers carry (a fencing abort's is the bumped one).
        epoch: i16,
        /// Commit markers, or abort markers.
        commit: bool,
        /// The partitions of the transaction.
        partitions: Vec<(String, i32)>,
        /// Who waits for the end of the chain.
        waiter: Waiter,
    },
    /// Allocate a producer id (a durable block file write); then
    /// `on_producer_id_allocated` or `on_producer_id_failed`.
    AllocateProducerId {
        /// What follows, with the id.
        then: AfterAllocate,
    },
    /// Append a tombstone for `transactional_id` and wait for its fsync; then
    /// `on_tombstone_written` or `on_tombstone_failed`.
    Tombstone {
        /// The id to forget.
        transactional_id: String,
    },
    /// Answer the request that started this chain.
    Respond(Result<TxnReply, TxnError>),
}

fn respond(result: Result<TxnReply, TxnError>) -> Vec<TxnCommand> {
    vec![TxnCommand::Respond(result)]
}

fn persist(m: &TxnMeta, fsync: bool, then: AfterPersist) -> TxnCommand {
    TxnCommand::Persist {
        transactional_id: m.transactional_id.clone(),
        value: m.value(),
        fsync,
        then,
    }
}

/// The error for an epoch that is not the transactional id's.
fn epoch_error(fenced_code: bool, reason: &'static str) -> TxnError {
    if fenced_code {
        TxnError::ProducerFenced(reason)
    } else {
        TxnError::InvalidProducerEpoch(reason)
    }
}

/// Check the producer of an AddPartitionsToTxn, AddOffsetsToTxn or EndTxn.
fn check_producer(
    m: &TxnMeta,
    producer_id: i64,
    epoch: i16,
    fenced_code: bool,
) -> Result<(), TxnError> {
    if m.producer_id != producer_id {
        return Err(TxnError::InvalidProducerIdMapping(
            "the transactional id has another producer id",
        ));
    }
    if m.epoch != epoch {
        return Err(epoch_error(
            fenced_code,
            "the producer's epoch is not the transactional id's",
        ));
    }
    Ok(())
}

const UNKNOWN_ID: TxnError = TxnError::InvalidProducerIdMapping("unknown transactional id");

/// Every transactional id and its transaction, and the transitions between their states.
pub struct TxnMachine {
    max_timeout_ms: i32,
    id_expiration_ms: i64,
    by_id: HashMap<String, TxnMeta>,
    /// Producer id -> transactional id.
    by_pid: HashMap<i64, String>,
}

impl TxnMachine {
    /// A machine with no transactional ids.
    pub fn new(config: &TxnConfig) -> Self {
        TxnMachine {
            max_timeout_ms: config.max_timeout_ms,
            id_expiration_ms: config.id_expiration_ms,
            by_id: HashMap::new(),
            by_pid: HashMap::new(),
        }
    }

    /// The state of `transactional_id`.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMeta> {
        self.by_id.get(transactional_id)
    }

    /// Every transactional id's state, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &TxnMeta> {
        self.by_id.values()
    }

    /// How many transactional ids are known.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// No transactional id is known.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// One `__transaction_state` record read at start (None: a tombstone).
    pub fn replay(&mut self, transactional_id: String, value: Option<TxnValue>) {
        match value {
            None => self.remove(&transactional_id),
            Some(v) => self.insert(TxnMeta {
                transactional_id,
                producer_id: v.producer_id,
                epoch: v.epoch,
                timeout_ms: v.timeout_ms,
                state: v.state,
                partitions: v.partitions,
                start_ms: v.start_ms,
                last_update_ms: v.last_update_ms,
                claim: None,
            }),
        }
    }

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

    fn remove(&mut self, transactional_id: &str) {
        if let Some(old) = self.by_id.remove(transactional_id) {
            self.by_pid.remove(&old.producer_id);
        }
    }

    /// `by_pid` after `transactional_id` moved from `old_pid` to a new producer id.
    fn repoint(&mut self, transactional_id: &str, old_pid: i64) {
        let Some(m) = self.by_id.get(transactional_id) else {
            return;
        };
        if m.producer_id != old_pid {
            self.by_pid.remove(&old_pid);
            self.by_pid
                .insert(m.producer_id, transactional_id.to_string());
        }
    }

    /// Every event ends here: the state is checked in debug builds.
    fn checked(&self, commands: Vec<TxnCommand>) -> Vec<TxnCommand> {
        debug_assert_eq!(self.validate(), Ok(()));
        commands
    }

    // ---- requests --------------------------------------------------------------------------

    /// InitProducerId. `fresh_producer_id` is one allocated for this request (after an
    /// [`TxnCommand::AllocateProducerId`]); without it, a request that needs one asks for it.
    pub fn on_init_producer_id(
        &mut self,
        req: &InitProducerId,
        fresh_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let commands = self.init_producer_id(req, fresh_producer_id, now_ms);
        self.checked(commands)
    }

    fn init_producer_id(
        &mut self,
        req: &InitProducerId,
        fresh: Option<i64>,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        if req.timeout_ms <= 0 || req.timeout_ms > self.max_timeout_ms {
            return respond(Err(TxnError::InvalidTransactionTimeout {
                timeout_ms: req.timeout_ms,
                max_timeout_ms: self.max_timeout_ms,
            }));
        }
        let fenced_code = req.version >= 4;
        let expected = req.expected.filter(|&(pid, _)| pid >= 0);
        let allocate = || {
            vec![TxnCommand::AllocateProducerId {
                then: AfterAllocate::Init(req.clone()),
            }]
        };
        let Some(m) = self.by_id.get_mut(&req.transactional_id) else {
            if expected.is_some() {
                return respond(Err(epoch_error(
                    fenced_code,
                    "the transactional id has no producer id yet",
                )));
            }
            let Some(producer_id) = fresh else {
                return allocate();
            };
            let m = TxnMeta {
                transactional_id: req.transactional_id.clone(),
                producer_id,
                epoch: 0,
                timeout_ms: req.timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                claim: None,
            };
            let command = persist(
                &m,
                true,
                AfterPersist::Reply(TxnReply::ProducerId {
                    producer_id,
                    epoch: 0,
                }),
            );
            self.insert(m);
            return vec![command];
        };
        if let Some((pid, epoch)) = expected {
            if pid != m.producer_id || epoch != m.epoch {
                return respond(Err(epoch_error(
                    fenced_code,
                    "the producer id and epoch are not the transactional id's",
                )));
            }
        }
        if m.state.preparing() || m.claim.is_some() {
            return respond(Err(TxnError::ConcurrentTransactions));
        }
        if m.state == TxnState::Ongoing {
            // Fence the previous incarnation: its transaction is aborted with markers at a
            // new epoch, which the new producer then uses.
            tracing::info!(
                transactional_id = %m.transactional_id,
                "aborting the open transaction of a fenced producer"
            );
            m.epoch = m.epoch.saturating_add(1);
            m.timeout_ms = req.timeout_ms;
            m.state = TxnState::PrepareAbort;
            m.claim = Some(Claim::Markers);
            m.last_update_ms = now_ms;
            return vec![persist(
                m,
                true,
                AfterPersist::WriteMarkers(Waiter::InitProducerId),
            )];
        }
        let old_pid = m.producer_id;
        if m.bump_epoch(fresh, now_ms).is_none() {
            return allocate();
        }
        m.timeout_ms = req.timeout_ms;
        m.state = TxnState::Empty;
        m.partitions.clear();
        m.start_ms = -1;
        let reply = TxnReply::ProducerId {
            producer_id: m.producer_id,
            epoch: m.epoch,
        };
        let command = persist(m, true, AfterPersist::Reply(reply));
        self.repoint(&req.transactional_id, old_pid);
        vec![command]
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition).
    pub fn on_add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_code: bool,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let commands = self.add_partitions(
            transactional_id,
            producer_id,
            epoch,
            partitions,
            fenced_code,
            now_ms,
        );
        self.checked(commands)
    }

    fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        fenced_code: bool,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let Some(m) = self.by_id.get_mut(transactional_id) else {
            return respond(Err(UNKNOWN_ID));
        };
        if let Err(e) = check_producer(m, producer_id, epoch, fenced_code) {
            return respond(Err(e));
        }
        if m.state.preparing() || m.claim.is_some() {
            return respond(Err(TxnError::ConcurrentTransactions));
        }
        if m.state == TxnState::Dead {
            return respond(Err(TxnError::InvalidTxnState(
                "the transactional id is dead",
            )));
        }
        // A retry: nothing new to write.
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return respond(Ok(TxnReply::Done));
        }
        if m.state != TxnState::Ongoing {
            m.partitions.clear();
            m.start_ms = now_ms;
            m.state = TxnState::Ongoing;
        }
        m.partitions.extend(partitions.iter().cloned());
        m.last_update_ms = now_ms;
        vec![persist(m, true, AfterPersist::Reply(TxnReply::Done))]
    }

    /// EndTxn: commit or abort the producer's transaction.
    pub fn on_end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fenced_code: bool,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let commands = self.end_txn(
            transactional_id,
            producer_id,
            epoch,
            commit,
            fenced_code,
            now_ms,
        );
        self.checked(commands)
    }

    fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fenced_code: bool,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let Some(m) = self.by_id.get_mut(transactional_id) else {
            return respond(Err(UNKNOWN_ID));
        };
        if let Err(e) = check_producer(m, producer_id, epoch, fenced_code) {
            return respond(Err(e));
        }
        match (m.state, commit) {
            (TxnState::Ongoing, _) if m.claim.is_none() => {
                m.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                m.claim = Some(Claim::Markers);
                m.last_update_ms = now_ms;
                vec![persist(m, true, AfterPersist::WriteMarkers(Waiter::EndTxn))]
            }
            // A retry of an EndTxn that completed.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                respond(Ok(TxnReply::Done))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                respond(Err(TxnError::ConcurrentTransactions))
            }
            _ => respond(Err(TxnError::InvalidTxnState(
                "no open transaction to end that way",
            ))),
        }
    }

    // ---- results of commands ---------------------------------------------------------------

    /// A [`TxnCommand::Persist`] is done (appended, and durable if it asked for an fsync).
    pub fn on_persisted(
        &mut self,
        transactional_id: &str,
        then: AfterPersist,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let commands = match then {
            AfterPersist::Reply(reply) => respond(Ok(reply)),
            AfterPersist::WriteMarkers(waiter) => match self.by_id.get(transactional_id) {
                None => self.failed(transactional_id, waiter, TxnError::Vanished),
                Some(m) => {
                    debug_assert_eq!(m.claim, Some(Claim::Markers));
                    vec![TxnCommand::WriteMarkers {
                        transactional_id: transactional_id.to_string(),
                        producer_id: m.producer_id,
                        epoch: m.epoch,
                        commit: m.state == TxnState::PrepareCommit,
                        partitions: m.partitions.iter().cloned().collect(),
                        waiter,
                    }]
                }
            },
            AfterPersist::Completed(Waiter::EndTxn) => respond(Ok(TxnReply::Done)),
            AfterPersist::Completed(Waiter::Timer) => Vec::new(),
            AfterPersist::Completed(Waiter::InitProducerId) => {
                self.finish_fence(transactional_id, None, now_ms)
            }
        };
        self.checked(commands)
    }

    /// A [`TxnCommand::Persist`] failed. A Prepare state stays in memory (ahead of the log)
    /// for the timer to finish.
    pub fn on_persist_failed(
        &mut self,
        transactional_id: &str,
        then: AfterPersist,
        error: TxnError,
    ) -> Vec<TxnCommand> {
        let commands = match then {
            AfterPersist::Reply(_) => respond(Err(error)),
            AfterPersist::WriteMarkers(waiter) => {
                self.release(transactional_id, Claim::Markers);
                self.failed(transactional_id, waiter, error)
            }
            AfterPersist::Completed(waiter) => self.failed(transactional_id, waiter, error),
        };
        self.checked(commands)
    }

    /// Every marker of a [`TxnCommand::WriteMarkers`] is durable: the transaction is
    /// complete. The Complete record is not waited for: if a crash loses it, the Prepare
    /// record makes the restart write the markers again, which changes nothing.
    pub fn on_markers_written(
        &mut self,
        transactional_id: &str,
        waiter: Waiter,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let commands = match self.by_id.get_mut(transactional_id) {
            None => self.failed(transactional_id, waiter, TxnError::Vanished),
            Some(m) => {
                debug_assert_eq!(m.claim, Some(Claim::Markers));
                m.claim = None;
                m.state = if m.state == TxnState::PrepareCommit {
                    TxnState::CompleteCommit
                } else {
                    TxnState::CompleteAbort
                };
                m.partitions.clear();
                m.start_ms = -1;
                m.last_update_ms = now_ms;
                vec![persist(m, false, AfterPersist::Completed(waiter))]
            }
        };
        self.checked(commands)
    }

    /// A [`TxnCommand::WriteMarkers`] failed: the Prepare state stays, the timer retries.
    pub fn on_markers_failed(
        &mut self,
        transactional_id: &str,
        waiter: Waiter,
        error: TxnError,
    ) -> Vec<TxnCommand> {
        self.release(transactional_id, Claim::Markers);
        let commands = self.failed(transactional_id, waiter, error);
        self.checked(commands)
    }

    /// A producer id from [`TxnCommand::AllocateProducerId`].
    pub fn on_producer_id_allocated(
        &mut self,
        then: AfterAllocate,
        producer_id: i64,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let commands = match then {
            AfterAllocate::Init(req) => self.init_producer_id(&req, Some(producer_id), now_ms),
            AfterAllocate::FinishFence { transactional_id } => {
                self.finish_fence(&transactional_id, Some(producer_id), now_ms)
            }
        };
        self.checked(commands)
    }

    /// [`TxnCommand::AllocateProducerId`] failed.
    pub fn on_producer_id_failed(
        &mut self,
        _then: AfterAllocate,
        error: TxnError,
    ) -> Vec<TxnCommand> {
        self.checked(respond(Err(error)))
    }

    /// An InitProducerId's fencing abort is complete: persist the id's state again (after
    /// moving to a new producer id if the bumped epoch is the last), and answer.
    fn finish_fence(
        &mut self,
        transactional_id: &str,
        fresh: Option<i64>,
        now_ms: i64,
    ) -> Vec<TxnCommand> {
        let Some(m) = self.by_id.get_mut(transactional_id) else {
            return respond(Err(TxnError::Vanished));
        };
        let old_pid = m.producer_id;
        if m.epoch >= i16::MAX - 1 && m.bump_epoch(fresh, now_ms).is_none() {
            return vec![TxnCommand::AllocateProducerId {
                then: AfterAllocate::FinishFence {
                    transactional_id: transactional_id.to_string(),
                },
            }];
        }
        let reply = TxnReply::ProducerId {
            producer_id: m.producer_id,
            epoch: m.epoch,
        };
        let command = persist(m, true, AfterPersist::Reply(reply));
        self.repoint(transactional_id, old_pid);
        vec![command]
    }

    /// The end of a completion that failed: the waiting request gets the error.
    fn failed(&self, transactional_id: &str, waiter: Waiter, error: TxnError) -> Vec<TxnCommand> {
        match waiter {
            Waiter::EndTxn | Waiter::InitProducerId => respond(Err(error)),
            Waiter::Timer => {
                tracing::warn!(transactional_id, error = %error, code = error.code(),
                    "completing a transaction failed; will retry");
                Vec::new()
            }
        }
    }

    fn release(&mut self, transactional_id: &str, claim: Claim) {
        if let Some(m) = self.by_id.get_mut(transactional_id) {
            debug_assert_eq!(m.claim, Some(claim));
            m.claim = None;
        }
    }

    // ---- timers ----------------------------------------------------------------------------

    /// The timer: finish transactions left in a Prepare state (after a restart or a failed
    /// write), and abort those open past their timeout, bumping the epoch (the producer is
    /// fenced). One independent chain per transactional id, in id order.
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<TxnCommand> {
        let mut ids: Vec<&String> = self.by_id.keys().collect();
        ids.sort();
        let ids: Vec<String> = ids.into_iter().cloned().collect();
        let mut commands = Vec::new();
        for id in ids {
            let m = self.by_id.get_mut(&id).expect("listed above");
            if m.claim.is_some() {
                continue;
            }
            match m.state {
                s if s.preparing() => {}
                TxnState::Ongoing
                    if m.start_ms >= 0 && now_ms - m.start_ms > m.timeout_ms as i64 =>
                {
                    tracing::info!(transactional_id = %m.transactional_id, producer_id = m.producer_id,
                        timeout_ms = m.timeout_ms, "transaction timed out; aborting it");
                    m.epoch = m.epoch.saturating_add(1);
                    m.state = TxnState::PrepareAbort;
                    m.last_update_ms = now_ms;
                }
                _ => continue,
            }
            m.claim = Some(Claim::Markers);
            commands.push(persist(m, true, AfterPersist::WriteMarkers(Waiter::Timer)));
        }
        self.checked(commands)
    }

    /// Expiry: claim every id idle (Empty, CompleteCommit, CompleteAbort, nothing in flight)
    /// for `transactional.id.expiration.ms`, and ask for its tombstone. InitProducerId gets
    /// CONCURRENT_TRANSACTIONS meanwhile.
    pub fn on_expire(&mut self, now_ms: i64) -> Vec<TxnCommand> {
        let mut ids: Vec<String> = self
            .by_id
            .values_mut()
            .filter(|m| {
                m.claim.is_none()
                    && m.state.idle()
                    && now_ms.saturating_sub(m.last_update_ms) >= self.id_expiration_ms
            })
            .map(|m| {
                m.claim = Some(Claim::Tombstone);
                m.transactional_id.clone()
            })
            .collect();
        ids.sort();
        let commands = ids
            .into_iter()
            .map(|transactional_id| TxnCommand::Tombstone { transactional_id })
            .collect();
        self.checked(commands)
    }

    /// The tombstone is durable: the id is forgotten. A producer that comes back with it
    /// gets a new producer id.
    pub fn on_tombstone_written(&mut self, transactional_id: &str) -> Vec<TxnCommand> {
        if let Some(m) = self.by_id.get(transactional_id) {
            debug_assert_eq!(m.claim, Some(Claim::Tombstone));
            tracing::info!(
                transactional_id,
                producer_id = m.producer_id,
                epoch = m.epoch,
                expiration_ms = self.id_expiration_ms,
                "transactional id expired"
            );
        }
        self.remove(transactional_id);
        self.checked(Vec::new())
    }

    /// The tombstone was not written: the id stays, the next round tries again.
    pub fn on_tombstone_failed(&mut self, transactional_id: &str) -> Vec<TxnCommand> {
        self.release(transactional_id, Claim::Tombstone);
        self.checked(Vec::new())
    }

    // ---- checks ----------------------------------------------------------------------------

    /// KIP-890 verification, run under the partition's log lock before a transactional
    /// batch is appended: the partition is in the producer's Ongoing transaction, at its
    /// epoch, and no completion has started.
    pub fn verify(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let no_mapping =
            TxnError::InvalidProducerIdMapping("no transactional id has this producer id");
        let Some(id) = self.by_pid.get(&producer_id) else {
            return Err(no_mapping);
        };
        if transactional_id.is_some_and(|t| t != id) {
            return Err(TxnError::InvalidProducerIdMapping(
                "the producer id belongs to another transactional id",
            ));
        }
        let m = self.by_id.get(id).ok_or(no_mapping)?;
        if epoch < m.epoch {
            return Err(TxnError::InvalidProducerEpoch("the producer was fenced"));
        }
        if epoch != m.epoch
            || m.state != TxnState::Ongoing
            || m.claim.is_some()
            || !m.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(TxnError::InvalidTxnState(
                "the partition is not part of the producer's open transaction",
            ));
        }
        Ok(())
    }

    /// For TxnOffsetCommit: the producer's transaction includes the group's offsets
    /// partition.
    pub fn verify_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), TxnError> {
        let m = self.by_id.get(transactional_id).ok_or(UNKNOWN_ID)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping(
                "the transactional id has another producer id",
            ));
        }
        if m.epoch != epoch {
            return Err(TxnError::ProducerFenced(
                "the producer's epoch is not the transactional id's",
            ));
        }
        if m.state != TxnState::Ongoing
            || !m
                .partitions
                .contains(&(OFFSETS_TOPIC.to_string(), offsets_partition))
        {
            return Err(TxnError::InvalidTxnState(
                "the group's offsets partition is not part of the open transaction",
            ));
        }
        Ok(())
    }

    /// The invariants of the module doc; an error names the first one broken.
    pub fn validate(&self) -> Result<(), String> {
        if self.by_pid.len() != self.by_id.len() {
            return Err(format!(
                "{} producer ids map to {} transactional ids",
                self.by_pid.len(),
                self.by_id.len()
            ));
        }
        for (id, m) in &self.by_id {
            if *id != m.transactional_id {
                return Err(format!("{id} holds the state of {}", m.transactional_id));
            }
            if self.by_pid.get(&m.producer_id) != Some(id) {
                return Err(format!(
                    "{id}: producer id {} maps to {:?}",
                    m.producer_id,
                    self.by_pid.get(&m.producer_id)
                ));
            }
            if m.producer_id < 0 || m.epoch < 0 || m.timeout_ms <= 0 {
                return Err(format!(
                    "{id}: producer id {}, epoch {}, timeout {} ms",
                    m.producer_id, m.epoch, m.timeout_ms
                ));
            }
            if m.state == TxnState::Ongoing && m.start_ms < 0 {
                return Err(format!("{id}: Ongoing without a start time"));
            }
            if m.state.idle() && (!m.partitions.is_empty() || m.start_ms != -1) {
                return Err(format!(
                    "{id}: {} with partitions {:?} or start {}",
                    m.state.name(),
                    m.partitions,
                    m.start_ms
                ));
            }
            match m.claim {
                Some(Claim::Markers) if !m.state.preparing() => {
                    return Err(format!("{id}: markers claimed in {}", m.state.name()))
                }
                Some(Claim::Tombstone) if !m.state.idle() => {
                    return Err(format!("{id}: tombstone claimed in {}", m.state.name()))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
