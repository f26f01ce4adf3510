//! The machine driven by events, asserting the exact commands it returns (as openraft's
//! engine tests do), and random event sequences checked against its invariants.

use super::*;
use crate::error_codes as ec;
use crate::internal_topic::InternalTopicError;
use proptest::prelude::*;
use AfterPersist::{Completed, Reply};

/// The first producer id the tests allocate, and the time they start at.
const P: i64 = 1000;
const T: i64 = 1_700_000_000_000;
const EXPIRATION_MS: i64 = 10_000;
const MAX: i16 = i16::MAX;

/// The machine, checked after every event it is given.
struct Harness {
    m: TxnMachine,
    next_pid: i64,
}

impl Harness {
    fn new() -> Self {
        let config = TxnConfig {
            id_expiration_ms: EXPIRATION_MS,
            ..TxnConfig::default()
        };
        Harness {
            m: TxnMachine::new(&config),
            next_pid: P,
        }
    }

    fn ev(&mut self, f: impl FnOnce(&mut TxnMachine) -> Vec<TxnCommand>) -> Vec<TxnCommand> {
        let commands = f(&mut self.m);
        assert_eq!(self.m.validate(), Ok(()));
        commands
    }

    /// Execute every command successfully, as the shell would, chain by chain; the
    /// last answer.
    fn run_ok(&mut self, commands: Vec<TxnCommand>, now: i64) -> Option<Result<TxnReply, i16>> {
        let mut queue: std::collections::VecDeque<_> = commands.into();
        let mut answer = None;
        while let Some(c) = queue.pop_front() {
            let next = match c {
                TxnCommand::Respond(r) => {
                    answer = Some(r.map_err(|e| e.code()));
                    Vec::new()
                }
                TxnCommand::Persist {
                    transactional_id,
                    then,
                    ..
                } => self.ev(|m| m.on_persisted(&transactional_id, then, now)),
                TxnCommand::WriteMarkers {
                    transactional_id,
                    waiter,
                    ..
                } => self.ev(|m| m.on_markers_written(&transactional_id, waiter, now)),
                TxnCommand::AllocateProducerId { then } => {
                    let pid = self.next_pid;
                    self.next_pid += 1;
                    self.ev(|m| m.on_producer_id_allocated(then, pid, now))
                }
                TxnCommand::Tombstone { transactional_id } => {
                    self.ev(|m| m.on_tombstone_written(&transactional_id))
                }
            };
            for c in next.into_iter().rev() {
                queue.push_front(c);
            }
        }
        answer
    }

    /// InitProducerId run to its answer.
    fn init(&mut self, id: &str, now: i64) -> (i64, i16) {
        let commands = self.ev(|m| m.on_init_producer_id(&init_req(id), None, now));
        match self.run_ok(commands, now) {
            Some(Ok(TxnReply::ProducerId { producer_id, epoch })) => (producer_id, epoch),
            other => panic!("init answered {other:?}"),
        }
    }

    /// A transaction open on `partitions` for a fresh producer (P, 0).
    fn open(&mut self, id: &str, partitions: &[(String, i32)], now: i64) -> (i64, i16) {
        let (pid, epoch) = self.init(id, now);
        let commands = self.ev(|m| m.on_add_partitions(id, pid, epoch, partitions, true, now));
        assert_eq!(self.run_ok(commands, now), Some(Ok(TxnReply::Done)));
        (pid, epoch)
    }

    fn replay(&mut self, id: &str, v: TxnValue) {
        self.m.replay(id.to_string(), Some(v));
        assert_eq!(self.m.validate(), Ok(()));
    }

    fn state(&self, id: &str) -> TxnState {
        self.m.get(id).expect("known id").state
    }
}

fn init_req(id: &str) -> InitProducerId {
    InitProducerId {
        transactional_id: id.to_string(),
        timeout_ms: 60_000,
        expected: None,
        version: 4,
    }
}

fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

fn value(
    producer_id: i64,
    epoch: i16,
    state: TxnState,
    partitions: &[(String, i32)],
    start_ms: i64,
    last_update_ms: i64,
) -> TxnValue {
    TxnValue {
        producer_id,
        epoch,
        timeout_ms: 60_000,
        state,
        partitions: partitions.iter().cloned().collect(),
        last_update_ms,
        start_ms,
    }
}

fn persist(id: &str, value: TxnValue, fsync: bool, then: AfterPersist) -> TxnCommand {
    TxnCommand::Persist {
        transactional_id: id.to_string(),
        value,
        fsync,
        then,
    }
}

fn markers(
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
    partitions: &[(String, i32)],
    waiter: Waiter,
) -> TxnCommand {
    TxnCommand::WriteMarkers {
        transactional_id: id.to_string(),
        producer_id: pid,
        epoch,
        commit,
        partitions: partitions.to_vec(),
        waiter,
    }
}

fn producer_id(producer_id: i64, epoch: i16) -> TxnReply {
    TxnReply::ProducerId { producer_id, epoch }
}

/// The commands are exactly one answer; Kafka's code for an error.
fn answer(commands: Vec<TxnCommand>) -> Result<TxnReply, i16> {
    match <[TxnCommand; 1]>::try_from(commands) {
        Ok([TxnCommand::Respond(r)]) => r.map_err(|e| e.code()),
        other => panic!("expected one answer, got {other:?}"),
    }
}

fn unavailable() -> TxnError {
    TxnError::StateTopic(InternalTopicError::NotAvailable {
        topic: "__transaction_state",
        reason: "offline".into(),
    })
}

#[test]
fn a_fresh_init_allocates_a_producer_id_and_persists_epoch_0_then_a_re_init_bumps_it() {
    let mut h = Harness::new();
    let req = init_req("t");
    assert_eq!(
        h.ev(|m| m.on_init_producer_id(&req, None, T)),
        vec![TxnCommand::AllocateProducerId {
            then: AfterAllocate::Init(req.clone())
        }]
    );
    assert_eq!(
        h.ev(|m| m.on_producer_id_allocated(AfterAllocate::Init(req.clone()), P, T)),
        vec![persist(
            "t",
            value(P, 0, TxnState::Empty, &[], -1, T),
            true,
            Reply(producer_id(P, 0))
        )]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("t", Reply(producer_id(P, 0)), T)),
        vec![TxnCommand::Respond(Ok(producer_id(P, 0)))]
    );
    // Known id, nothing open: the epoch is bumped, no producer id allocated.
    assert_eq!(
        h.ev(|m| m.on_init_producer_id(&req, None, T + 1)),
        vec![persist(
            "t",
            value(P, 1, TxnState::Empty, &[], -1, T + 1),
            true,
            Reply(producer_id(P, 1))
        )]
    );
    // A KIP-360 bump names the current producer id and epoch.
    let kip360 = InitProducerId {
        expected: Some((P, 1)),
        ..init_req("t")
    };
    let commands = h.ev(|m| m.on_init_producer_id(&kip360, None, T + 2));
    assert_eq!(h.run_ok(commands, T + 2), Some(Ok(producer_id(P, 2))));
}

#[test]
fn a_producer_id_allocation_failure_answers_coordinator_not_available() {
    let mut h = Harness::new();
    let req = init_req("t");
    h.ev(|m| m.on_init_producer_id(&req, None, T));
    let error = TxnError::ProducerIdsUnavailable("disk full".into());
    let commands = h.ev(|m| m.on_producer_id_failed(AfterAllocate::Init(req.clone()), error));
    assert_eq!(answer(commands), Err(ec::COORDINATOR_NOT_AVAILABLE));
    assert!(h.m.get("t").is_none());
}

#[test]
fn a_re_init_fences_an_open_transaction_by_aborting_it_at_the_bumped_epoch() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0), ("b", 1)]);
    h.open("t", &ps, T);
    let req = InitProducerId {
        timeout_ms: 30_000,
        ..init_req("t")
    };
    let prepare = TxnValue {
        timeout_ms: 30_000,
        ..value(P, 1, TxnState::PrepareAbort, &ps, T, T + 5)
    };
    assert_eq!(
        h.ev(|m| m.on_init_producer_id(&req, None, T + 5)),
        vec![persist(
            "t",
            prepare,
            true,
            AfterPersist::WriteMarkers(Waiter::InitProducerId)
        )]
    );
    // While the abort runs: the old producer is fenced, everything else waits.
    assert_eq!(
        answer(h.ev(|m| m.on_add_partitions("t", P, 0, &ps, true, T + 5))),
        Err(ec::PRODUCER_FENCED)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", P, 1, false, true, T + 5))),
        Err(ec::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_init_producer_id(&req, None, T + 5))),
        Err(ec::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        h.ev(|m| m.on_tick(T + 5)),
        vec![],
        "claimed: not the timer's"
    );
    assert_eq!(
        h.ev(|m| m.on_persisted(
            "t",
            AfterPersist::WriteMarkers(Waiter::InitProducerId),
            T + 6
        )),
        vec![markers("t", P, 1, false, &ps, Waiter::InitProducerId)]
    );
    let complete = TxnValue {
        timeout_ms: 30_000,
        ..value(P, 1, TxnState::CompleteAbort, &[], -1, T + 7)
    };
    assert_eq!(
        h.ev(|m| m.on_markers_written("t", Waiter::InitProducerId, T + 7)),
        vec![persist(
            "t",
            complete.clone(),
            false,
            Completed(Waiter::InitProducerId)
        )]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("t", Completed(Waiter::InitProducerId), T + 8)),
        vec![persist("t", complete, true, Reply(producer_id(P, 1)))]
    );
    assert_eq!(
        answer(h.ev(|m| m.on_persisted("t", Reply(producer_id(P, 1)), T + 9))),
        Ok(producer_id(P, 1))
    );
    // The old producer's EndTxn: the code depends on the request version.
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", P, 0, true, false, T + 9))),
        Err(ec::INVALID_PRODUCER_EPOCH)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", P, 0, true, true, T + 9))),
        Err(ec::PRODUCER_FENCED)
    );
}

#[test]
fn a_fencing_abort_that_fails_answers_the_error_and_leaves_prepare_abort_for_the_timer() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0)]);
    h.open("t", &ps, T);
    h.ev(|m| m.on_init_producer_id(&init_req("t"), None, T + 1));
    h.ev(|m| {
        m.on_persisted(
            "t",
            AfterPersist::WriteMarkers(Waiter::InitProducerId),
            T + 1,
        )
    });
    let error = TxnError::MarkersNotWritten("a-0: offline".into());
    assert_eq!(
        answer(h.ev(|m| m.on_markers_failed("t", Waiter::InitProducerId, error))),
        Err(ec::COORDINATOR_NOT_AVAILABLE)
    );
    assert_eq!(h.state("t"), TxnState::PrepareAbort);
    assert_eq!(
        h.ev(|m| m.on_tick(T + 2)),
        vec![persist(
            "t",
            value(P, 1, TxnState::PrepareAbort, &ps, T, T + 1),
            true,
            AfterPersist::WriteMarkers(Waiter::Timer)
        )]
    );
}

#[test]
fn an_exhausted_epoch_moves_the_id_to_a_new_producer_id() {
    let mut h = Harness::new();
    h.replay("t", value(P, MAX - 1, TxnState::CompleteCommit, &[], -1, T));
    let req = init_req("t");
    assert_eq!(
        h.ev(|m| m.on_init_producer_id(&req, None, T + 1)),
        vec![TxnCommand::AllocateProducerId {
            then: AfterAllocate::Init(req.clone())
        }]
    );
    assert_eq!(
        h.ev(|m| m.on_producer_id_allocated(AfterAllocate::Init(req.clone()), 2000, T + 2)),
        vec![persist(
            "t",
            value(2000, 0, TxnState::Empty, &[], -1, T + 2),
            true,
            Reply(producer_id(2000, 0))
        )]
    );
    // The old producer id means nothing any more.
    assert_eq!(
        h.m.verify(None, P, MAX - 1, "a", 0).map_err(|e| e.code()),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
}

#[test]
fn fencing_at_the_last_epoch_aborts_then_moves_to_a_new_producer_id() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0)]);
    h.replay("t", value(P, MAX - 2, TxnState::Ongoing, &ps, T, T));
    let commands = h.ev(|m| m.on_init_producer_id(&init_req("t"), None, T + 1));
    assert_eq!(
        commands,
        vec![persist(
            "t",
            value(P, MAX - 1, TxnState::PrepareAbort, &ps, T, T + 1),
            true,
            AfterPersist::WriteMarkers(Waiter::InitProducerId)
        )]
    );
    h.ev(|m| {
        m.on_persisted(
            "t",
            AfterPersist::WriteMarkers(Waiter::InitProducerId),
            T + 1,
        )
    });
    h.ev(|m| m.on_markers_written("t", Waiter::InitProducerId, T + 2));
    let finish = AfterAllocate::FinishFence {
        transactional_id: "t".into(),
    };
    assert_eq!(
        h.ev(|m| m.on_persisted("t", Completed(Waiter::InitProducerId), T + 3)),
        vec![TxnCommand::AllocateProducerId {
            then: finish.clone()
        }]
    );
    assert_eq!(
        h.ev(|m| m.on_producer_id_allocated(finish, 2000, T + 4)),
        vec![persist(
            "t",
            value(2000, 0, TxnState::CompleteAbort, &[], -1, T + 4),
            true,
            Reply(producer_id(2000, 0))
        )]
    );
}

#[test]
fn add_partitions_retried_is_answered_without_a_write_and_new_ones_are_added() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", T);
    let a0 = parts(&[("a", 0)]);
    assert_eq!(
        h.ev(|m| m.on_add_partitions("t", pid, epoch, &a0, true, T + 1)),
        vec![persist(
            "t",
            value(pid, epoch, TxnState::Ongoing, &a0, T + 1, T + 1),
            true,
            Reply(TxnReply::Done)
        )]
    );
    assert_eq!(
        answer(h.ev(|m| m.on_persisted("t", Reply(TxnReply::Done), T + 1))),
        Ok(TxnReply::Done)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_add_partitions("t", pid, epoch, &a0, true, T + 2))),
        Ok(TxnReply::Done)
    );
    let both = parts(&[("a", 0), ("b", 1)]);
    assert_eq!(
        h.ev(|m| m.on_add_partitions("t", pid, epoch, &parts(&[("b", 1)]), true, T + 3)),
        vec![persist(
            "t",
            value(pid, epoch, TxnState::Ongoing, &both, T + 1, T + 3),
            true,
            Reply(TxnReply::Done)
        )]
    );
    // A failed write is answered with its code; the partitions stay added in memory.
    assert_eq!(
        answer(h.ev(|m| m.on_persist_failed("t", Reply(TxnReply::Done), unavailable()))),
        Err(ec::COORDINATOR_NOT_AVAILABLE)
    );
}

#[test]
fn end_txn_commit_prepares_writes_markers_then_completes() {
    let mut h = Harness::new();
    let ps = parts(&[("__consumer_offsets", 3), ("a", 0)]);
    let (pid, epoch) = h.open("t", &ps, T);
    assert_eq!(
        h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 1)),
        vec![persist(
            "t",
            value(pid, epoch, TxnState::PrepareCommit, &ps, T, T + 1),
            true,
            AfterPersist::WriteMarkers(Waiter::EndTxn)
        )]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::EndTxn), T + 2)),
        vec![markers("t", pid, epoch, true, &ps, Waiter::EndTxn)]
    );
    assert_eq!(
        h.ev(|m| m.on_markers_written("t", Waiter::EndTxn, T + 3)),
        vec![persist(
            "t",
            value(pid, epoch, TxnState::CompleteCommit, &[], -1, T + 3),
            false,
            Completed(Waiter::EndTxn)
        )]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("t", Completed(Waiter::EndTxn), T + 4)),
        vec![TxnCommand::Respond(Ok(TxnReply::Done))]
    );
    // A retry of the commit is answered Ok; an abort of it is refused.
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 5))),
        Ok(TxnReply::Done)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, false, true, T + 5))),
        Err(ec::INVALID_TXN_STATE)
    );
    // The next transaction starts afresh at the same epoch.
    let b = parts(&[("b", 0)]);
    assert_eq!(
        h.ev(|m| m.on_add_partitions("t", pid, epoch, &b, true, T + 6)),
        vec![persist(
            "t",
            value(pid, epoch, TxnState::Ongoing, &b, T + 6, T + 6),
            true,
            Reply(TxnReply::Done)
        )]
    );
}

#[test]
fn end_txn_during_prepare_is_concurrent_and_a_failed_complete_record_is_answered() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0)]);
    let (pid, epoch) = h.open("t", &ps, T);
    h.ev(|m| m.on_end_txn("t", pid, epoch, false, true, T + 1));
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, false, true, T + 1))),
        Err(ec::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 1))),
        Err(ec::INVALID_TXN_STATE)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_add_partitions("t", pid, epoch, &ps, true, T + 1))),
        Err(ec::CONCURRENT_TRANSACTIONS)
    );
    h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::EndTxn), T + 2));
    h.ev(|m| m.on_markers_written("t", Waiter::EndTxn, T + 3));
    // The outcome is decided and the markers durable: only the answer is an error.
    assert_eq!(
        answer(h.ev(|m| m.on_persist_failed("t", Completed(Waiter::EndTxn), unavailable()))),
        Err(ec::COORDINATOR_NOT_AVAILABLE)
    );
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, false, true, T + 4))),
        Ok(TxnReply::Done)
    );
}

#[test]
fn a_wrong_producer_id_or_epoch_is_refused_with_the_code_of_the_request_version() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0)]);
    assert_eq!(
        answer(h.ev(|m| m.on_add_partitions("t", P, 0, &ps, true, T))),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", P, 0, true, true, T))),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    let (pid, epoch) = h.init("t", T);
    for fenced_code in [true, false] {
        let epoch_code = if fenced_code {
            ec::PRODUCER_FENCED
        } else {
            ec::INVALID_PRODUCER_EPOCH
        };
        assert_eq!(
            answer(h.ev(|m| m.on_add_partitions("t", pid + 1, epoch, &ps, fenced_code, T))),
            Err(ec::INVALID_PRODUCER_ID_MAPPING)
        );
        assert_eq!(
            answer(h.ev(|m| m.on_add_partitions("t", pid, epoch + 1, &ps, fenced_code, T))),
            Err(epoch_code)
        );
        assert_eq!(
            answer(h.ev(|m| m.on_end_txn("t", pid, epoch + 1, true, fenced_code, T))),
            Err(epoch_code)
        );
    }
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T))),
        Err(ec::INVALID_TXN_STATE),
        "nothing open to commit"
    );
    for (version, code) in [(4, ec::PRODUCER_FENCED), (3, ec::INVALID_PRODUCER_EPOCH)] {
        let stale = InitProducerId {
            expected: Some((pid, epoch + 7)),
            version,
            ..init_req("t")
        };
        assert_eq!(
            answer(h.ev(|m| m.on_init_producer_id(&stale, None, T))),
            Err(code)
        );
        let unknown = InitProducerId {
            expected: Some((pid, 0)),
            version,
            ..init_req("u")
        };
        assert_eq!(
            answer(h.ev(|m| m.on_init_producer_id(&unknown, None, T))),
            Err(code)
        );
    }
    for timeout_ms in [0, -1, 900_001] {
        let req = InitProducerId {
            timeout_ms,
            ..init_req("t")
        };
        assert_eq!(
            answer(h.ev(|m| m.on_init_producer_id(&req, None, T))),
            Err(ec::INVALID_TRANSACTION_TIMEOUT)
        );
    }
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_tick_with_a_bumped_epoch() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0)]);
    let (pid, _) = h.open("t", &ps, T);
    assert_eq!(
        h.ev(|m| m.on_tick(T + 60_000)),
        vec![],
        "not past the timeout yet"
    );
    assert_eq!(
        h.ev(|m| m.on_tick(T + 60_001)),
        vec![persist(
            "t",
            value(pid, 1, TxnState::PrepareAbort, &ps, T, T + 60_001),
            true,
            AfterPersist::WriteMarkers(Waiter::Timer)
        )]
    );
    assert_eq!(h.ev(|m| m.on_tick(T + 60_002)), vec![], "claimed");
    assert_eq!(
        h.m.verify(Some("t"), pid, 0, "a", 0).map_err(|e| e.code()),
        Err(ec::INVALID_PRODUCER_EPOCH)
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::Timer), T + 60_002)),
        vec![markers("t", pid, 1, false, &ps, Waiter::Timer)]
    );
    assert_eq!(
        h.ev(|m| m.on_markers_written("t", Waiter::Timer, T + 60_003)),
        vec![persist(
            "t",
            value(pid, 1, TxnState::CompleteAbort, &[], -1, T + 60_003),
            false,
            Completed(Waiter::Timer)
        )]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("t", Completed(Waiter::Timer), T + 60_004)),
        vec![]
    );
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, 0, true, true, T + 60_005))),
        Err(ec::PRODUCER_FENCED)
    );
}

#[test]
fn prepare_states_left_by_a_restart_are_finished_by_the_first_tick() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0), ("b", 2)]);
    let commit = value(P, 3, TxnState::PrepareCommit, &ps, T, T);
    let abort = value(P + 1, 0, TxnState::PrepareAbort, &ps, T, T);
    let open = value(P + 2, 0, TxnState::Ongoing, &ps, T, T);
    h.replay("c", commit.clone());
    h.replay("a", abort.clone());
    h.replay("o", open);
    assert_eq!(
        h.ev(|m| m.on_tick(T + 1)),
        vec![
            persist("a", abort, true, AfterPersist::WriteMarkers(Waiter::Timer)),
            persist("c", commit, true, AfterPersist::WriteMarkers(Waiter::Timer)),
        ]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("c", AfterPersist::WriteMarkers(Waiter::Timer), T + 2)),
        vec![markers("c", P, 3, true, &ps, Waiter::Timer)]
    );
    assert_eq!(
        h.ev(|m| m.on_persisted("a", AfterPersist::WriteMarkers(Waiter::Timer), T + 2)),
        vec![markers("a", P + 1, 0, false, &ps, Waiter::Timer)]
    );
    h.ev(|m| m.on_markers_written("c", Waiter::Timer, T + 3));
    assert_eq!(h.state("c"), TxnState::CompleteCommit);
    assert_eq!(
        h.state("o"),
        TxnState::Ongoing,
        "an open transaction continues"
    );
}

#[test]
fn a_marker_failure_keeps_the_prepare_state_and_the_next_tick_retries() {
    let mut h = Harness::new();
    let ps = parts(&[("a", 0)]);
    let (pid, epoch) = h.open("t", &ps, T);
    h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 1));
    h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::EndTxn), T + 1));
    let error = TxnError::MarkersNotWritten("a-0: storage error".into());
    assert_eq!(
        answer(h.ev(|m| m.on_markers_failed("t", Waiter::EndTxn, error.clone()))),
        Err(ec::COORDINATOR_NOT_AVAILABLE)
    );
    assert_eq!(h.state("t"), TxnState::PrepareCommit);
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 2))),
        Err(ec::CONCURRENT_TRANSACTIONS),
        "the client retries until the timer finishes it"
    );
    let prepare = value(pid, epoch, TxnState::PrepareCommit, &ps, T, T + 1);
    let retry = persist(
        "t",
        prepare,
        true,
        AfterPersist::WriteMarkers(Waiter::Timer),
    );
    assert_eq!(h.ev(|m| m.on_tick(T + 3)), vec![retry.clone()]);
    h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::Timer), T + 3));
    assert_eq!(
        h.ev(|m| m.on_markers_failed("t", Waiter::Timer, error)),
        vec![]
    );
    assert_eq!(h.state("t"), TxnState::PrepareCommit);
    // A failed Prepare record is retried the same way.
    assert_eq!(h.ev(|m| m.on_tick(T + 4)), vec![retry.clone()]);
    h.ev(|m| {
        m.on_persist_failed(
            "t",
            AfterPersist::WriteMarkers(Waiter::Timer),
            unavailable(),
        )
    });
    assert_eq!(h.ev(|m| m.on_tick(T + 5)), vec![retry]);
    let commands = h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::Timer), T + 5));
    assert_eq!(h.run_ok(commands, T + 6), None, "the timer answers nobody");
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    assert_eq!(
        answer(h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 7))),
        Ok(TxnReply::Done)
    );
}

#[test]
fn an_idle_id_expires_once_its_tombstone_is_durable_and_comes_back_with_a_new_producer_id() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", T);
    h.open("busy", &parts(&[("a", 0)]), T);
    assert_eq!(h.ev(|m| m.on_expire(T + EXPIRATION_MS - 1)), vec![]);
    let tombstone = TxnCommand::Tombstone {
        transactional_id: "t".into(),
    };
    assert_eq!(
        h.ev(|m| m.on_expire(T + EXPIRATION_MS)),
        vec![tombstone.clone()],
        "an id with a transaction open never expires"
    );
    assert_eq!(
        answer(h.ev(|m| m.on_init_producer_id(&init_req("t"), None, T + EXPIRATION_MS))),
        Err(ec::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        answer(h.ev(|m| m.on_add_partitions("t", pid, epoch, &parts(&[("a", 0)]), true, T))),
        Err(ec::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        h.ev(|m| m.on_expire(T + EXPIRATION_MS + 1)),
        vec![],
        "claimed"
    );
    // Not written: the id stays and the next round tries again.
    assert_eq!(h.ev(|m| m.on_tombstone_failed("t")), vec![]);
    assert_eq!(h.state("t"), TxnState::Empty);
    assert_eq!(
        h.ev(|m| m.on_expire(T + EXPIRATION_MS + 2)),
        vec![tombstone]
    );
    assert_eq!(h.ev(|m| m.on_tombstone_written("t")), vec![]);
    assert!(h.m.get("t").is_none());
    assert_eq!(
        h.m.verify(Some("t"), pid, epoch, "a", 0)
            .map_err(|e| e.code()),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    let (new_pid, new_epoch) = h.init("t", T + EXPIRATION_MS + 3);
    assert!(new_pid > pid);
    assert_eq!(new_epoch, 0);
}

#[test]
fn kip_890_verification_admits_only_partitions_of_the_open_transaction_at_its_epoch() {
    let mut h = Harness::new();
    let code = |r: Result<(), TxnError>| r.map_err(|e| e.code());
    let (pid, epoch) = h.init("t", T);
    assert_eq!(
        code(h.m.verify(Some("t"), pid, epoch, "a", 0)),
        Err(ec::INVALID_TXN_STATE)
    );
    let ps = parts(&[("a", 0), ("__consumer_offsets", 7)]);
    let commands = h.ev(|m| m.on_add_partitions("t", pid, epoch, &ps, true, T));
    h.run_ok(commands, T);
    assert_eq!(code(h.m.verify(Some("t"), pid, epoch, "a", 0)), Ok(()));
    assert_eq!(code(h.m.verify(None, pid, epoch, "a", 0)), Ok(()));
    assert_eq!(
        code(h.m.verify(Some("t"), pid, epoch, "a", 1)),
        Err(ec::INVALID_TXN_STATE)
    );
    assert_eq!(
        code(h.m.verify(Some("t"), pid, epoch + 1, "a", 0)),
        Err(ec::INVALID_TXN_STATE)
    );
    assert_eq!(
        code(h.m.verify(Some("other"), pid, epoch, "a", 0)),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        code(h.m.verify(Some("t"), pid + 1, epoch, "a", 0)),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(code(h.m.verify_offsets("t", pid, epoch, 7)), Ok(()));
    assert_eq!(
        code(h.m.verify_offsets("t", pid, epoch, 8)),
        Err(ec::INVALID_TXN_STATE)
    );
    assert_eq!(
        code(h.m.verify_offsets("t", pid, epoch + 1, 7)),
        Err(ec::PRODUCER_FENCED)
    );
    assert_eq!(
        code(h.m.verify_offsets("t", pid + 1, epoch, 7)),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        code(h.m.verify_offsets("u", pid, epoch, 7)),
        Err(ec::INVALID_PRODUCER_ID_MAPPING)
    );
    // Once EndTxn started, a delayed batch of the transaction is refused everywhere.
    h.ev(|m| m.on_end_txn("t", pid, epoch, true, true, T + 1));
    assert_eq!(
        code(h.m.verify(Some("t"), pid, epoch, "a", 0)),
        Err(ec::INVALID_TXN_STATE)
    );
    assert_eq!(
        code(h.m.verify_offsets("t", pid, epoch, 7)),
        Err(ec::INVALID_TXN_STATE)
    );
    // After a fencing re-init, the old epoch is told it was fenced.
    let commands = h.ev(|m| m.on_persisted("t", AfterPersist::WriteMarkers(Waiter::EndTxn), T + 2));
    h.run_ok(commands, T + 2);
    h.init("t", T + 3);
    assert_eq!(
        code(h.m.verify(Some("t"), pid, epoch, "a", 0)),
        Err(ec::INVALID_PRODUCER_EPOCH)
    );
}

#[test]
fn validate_names_each_broken_invariant() {
    let ps = parts(&[("a", 0)]);
    type Breaking = fn(&mut TxnMachine);
    let broken: [(&str, Breaking); 6] = [
        ("a second producer id", |m| {
            m.by_pid.insert(P + 9, "t".into());
        }),
        ("a stale producer id", |m| {
            m.by_id.get_mut("t").unwrap().producer_id = P + 9;
        }),
        ("a negative epoch", |m| {
            m.by_id.get_mut("t").unwrap().epoch = -1
        }),
        ("Ongoing without a start", |m| {
            m.by_id.get_mut("t").unwrap().start_ms = -1;
        }),
        ("markers claimed while Ongoing", |m| {
            m.by_id.get_mut("t").unwrap().claim = Some(Claim::Markers);
        }),
        ("CompleteCommit with partitions", |m| {
            m.by_id.get_mut("t").unwrap().state = TxnState::CompleteCommit;
        }),
    ];
    for (what, breaking) in broken {
        let mut h = Harness::new();
        h.replay("t", value(P, 0, TxnState::Ongoing, &ps, T, T));
        breaking(&mut h.m);
        assert!(h.m.validate().is_err(), "{what} went unnoticed");
    }
}

// ---- random event sequences ------------------------------------------------------------

const IDS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Event {
    Init {
        id: usize,
        timeout_ms: i32,
        expected: Option<bool>,
        version: i16,
    },
    Add {
        id: usize,
        who: usize,
        partitions: Vec<i32>,
    },
    End {
        id: usize,
        who: usize,
        commit: bool,
    },
    Tick {
        advance_ms: i64,
    },
    Expire {
        advance_ms: i64,
    },
    /// One of the commands in flight finishes (or fails).
    Finish {
        pick: usize,
        ok: bool,
    },
}

fn event() -> impl Strategy<Value = Event> {
    let id = 0..IDS.len();
    prop_oneof![
        (
            id.clone(),
            prop_oneof![Just(0), Just(50), Just(100_000), Just(900_001)],
            proptest::option::of(any::<bool>()),
            0i16..5
        )
            .prop_map(|(id, timeout_ms, expected, version)| Event::Init {
                id,
                timeout_ms,
                expected,
                version
            }),
        (
            id.clone(),
            0usize..4,
            proptest::collection::vec(0i32..3, 0..3)
        )
            .prop_map(|(id, who, partitions)| Event::Add {
                id,
                who,
                partitions
            }),
        (id, 0usize..4, any::<bool>()).prop_map(|(id, who, commit)| Event::End { id, who, commit }),
        (0i64..100).prop_map(|advance_ms| Event::Tick { advance_ms }),
        (0i64..2_000).prop_map(|advance_ms| Event::Expire { advance_ms }),
        (any::<usize>(), proptest::bool::weighted(0.8))
            .prop_map(|(pick, ok)| Event::Finish { pick, ok }),
        (any::<usize>(), proptest::bool::weighted(0.8))
            .prop_map(|(pick, ok)| Event::Finish { pick, ok }),
    ]
}

/// The producer id and epoch a request names: the current ones, a stale epoch, a
/// future epoch, or another producer id.
fn producer(m: &TxnMachine, id: &str, who: usize) -> (i64, i16) {
    let (pid, epoch) = m
        .get(id)
        .map(|m| (m.producer_id, m.epoch))
        .unwrap_or((P, 0));
    match who {
        0 | 1 => (pid, epoch),
        2 => (pid, epoch.saturating_sub(1)),
        _ => (pid + 1, epoch),
    }
}

/// How many completions are in flight for each id (a claim allows one).
fn completions_in_flight(pending: &[TxnCommand], id: &str) -> usize {
    pending
        .iter()
        .filter(|c| match c {
            TxnCommand::Persist {
                transactional_id,
                then: AfterPersist::WriteMarkers(_),
                ..
            }
            | TxnCommand::WriteMarkers {
                transactional_id, ..
            } => transactional_id == id,
            _ => false,
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the order of requests, timer events and I/O results: the invariants
    /// hold after every step, at most one completion per id is in flight, and no
    /// (producer id, epoch) of a transactional id ever goes backwards.
    #[test]
    fn random_event_sequences_keep_the_invariants_and_never_move_an_epoch_back(
        events in proptest::collection::vec(event(), 1..150)
    ) {
        let config = TxnConfig { id_expiration_ms: 1_000, ..TxnConfig::default() };
        let mut m = TxnMachine::new(&config);
        // One id starts near the end of its epochs, so exhaustion happens.
        m.replay("c".into(), Some(value(P - 1, MAX - 3, TxnState::Empty, &[], -1, T)));
        let mut now = T;
        let mut next_pid = P;
        let mut pending: Vec<TxnCommand> = Vec::new();
        let mut highest: HashMap<String, (i64, i16)> = HashMap::new();
        for event in events {
            let commands = match event {
                Event::Init { id, timeout_ms, expected, version } => {
                    let (pid, epoch) = producer(&m, IDS[id], 0);
                    let req = InitProducerId {
                        transactional_id: IDS[id].into(),
                        timeout_ms,
                        expected: expected.map(|current| {
                            if current { (pid, epoch) } else { (pid, epoch.saturating_sub(1)) }
                        }),
                        version,
                    };
                    m.on_init_producer_id(&req, None, now)
                }
                Event::Add { id, who, partitions } => {
                    let (pid, epoch) = producer(&m, IDS[id], who);
                    let ps: Vec<(String, i32)> =
                        partitions.iter().map(|&p| ("t".to_string(), p)).collect();
                    m.on_add_partitions(IDS[id], pid, epoch, &ps, who == 1, now)
                }
                Event::End { id, who, commit } => {
                    let (pid, epoch) = producer(&m, IDS[id], who);
                    m.on_end_txn(IDS[id], pid, epoch, commit, who == 1, now)
                }
                Event::Tick { advance_ms } => {
                    now += advance_ms;
                    m.on_tick(now)
                }
                Event::Expire { advance_ms } => {
                    now += advance_ms;
                    m.on_expire(now)
                }
                Event::Finish { pick, ok } => {
                    if pending.is_empty() {
                        Vec::new()
                    } else {
                        let failure = || TxnError::MarkersNotWritten("injected".into());
                        match pending.remove(pick % pending.len()) {
                            TxnCommand::Persist { transactional_id, then, .. } => if ok {
                                m.on_persisted(&transactional_id, then, now)
                            } else {
                                m.on_persist_failed(&transactional_id, then, failure())
                            },
                            TxnCommand::WriteMarkers { transactional_id, waiter, .. } => if ok {
                                m.on_markers_written(&transactional_id, waiter, now)
                            } else {
                                m.on_markers_failed(&transactional_id, waiter, failure())
                            },
                            TxnCommand::AllocateProducerId { then } => if ok {
                                next_pid += 1;
                                m.on_producer_id_allocated(then, next_pid, now)
                            } else {
                                m.on_producer_id_failed(then, failure())
                            },
                            TxnCommand::Tombstone { transactional_id } => if ok {
                                m.on_tombstone_written(&transactional_id)
                            } else {
                                m.on_tombstone_failed(&transactional_id)
                            },
                            TxnCommand::Respond(_) => unreachable!("answers are not kept"),
                        }
                    }
                }
            };
            prop_assert_eq!(m.validate(), Ok(()));
            let answers = commands.iter().filter(|c| matches!(c, TxnCommand::Respond(_))).count();
            prop_assert!(answers <= 1, "{:?}", commands);
            pending.extend(commands.into_iter().filter(|c| !matches!(c, TxnCommand::Respond(_))));
            for meta in m.iter() {
                let now_at = (meta.producer_id, meta.epoch);
                let before = highest.entry(meta.transactional_id.clone()).or_insert(now_at);
                prop_assert!(now_at >= *before, "{}: {:?} after {:?}", meta.transactional_id, now_at, before);
                *before = now_at;
                prop_assert!(completions_in_flight(&pending, &meta.transactional_id) <= 1);
            }
        }
    }
}
