//! One consumer group's membership state machine (Kafka's classic protocol), without I/O.
//!
//! Events come in as method calls carrying the current time; answers to requests that must
//! wait (JoinGroup until the rebalance completes, SyncGroup until the leader's assignment
//! is durable) are oneshot senders held by the members and fired by the transitions. The
//! async shell (`group::GroupCoordinator`) persists what the machine asks it to persist.
//!
//! States, as in Kafka: Empty -> PreparingRebalance (members join, until all known members
//! have rejoined or the rebalance timeout passes) -> CompletingRebalance (a new generation;
//! the leader computes the assignment) -> Stable (assignment durable and handed out). Any
//! membership change in CompletingRebalance or Stable goes back to PreparingRebalance.
//!
//! Invariants (checked by `validate`): the generation never decreases; the leader is a
//! member; every static instance id maps to exactly one member; Stable and
//! CompletingRebalance have a leader and a protocol.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::config::GroupConfig;
use crate::error_codes as ec;

/// Kafka's classic group states; see the module docs for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Members are (re)joining; JoinGroup answers wait until all have or the rebalance
    /// timeout passes.
    PreparingRebalance,
    /// A new generation is formed; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// The assignment is durable and handed out; members heartbeat.
    Stable,
    /// Being deleted (DeleteGroups is writing its tombstones): joins, syncs, heartbeats and
    /// offset commits get COORDINATOR_NOT_AVAILABLE. Back to Empty if the write fails.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state, as ListGroups and DescribeGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    /// Kafka error code; NONE on success.
    pub error: i16,
    /// The generation id the member joined; -1 on error.
    pub generation: i32,
    /// The group's protocol type (e.g. `consumer`).
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen by the members' vote.
    pub protocol: Option<String>,
    /// Member id of the generation's leader, who computes the assignment.
    pub leader: String,
    /// The member's id: assigned by the coordinator on a first join, also on
    /// MEMBER_ID_REQUIRED (KIP-394) so the client rejoins with it.
    pub member_id: String,
    /// JoinGroup v9+ (KIP-814): a static leader rejoining a Stable group is told not to
    /// compute a new assignment; the current one stands.
    pub skip_assignment: bool,
    /// Filled for the leader only: every member and its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    /// A failed join: `error`, generation -1, echoing `member_id` (which, with
    /// MEMBER_ID_REQUIRED, is the id the member must rejoin with).
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinOutcome {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup is answered with. The assignment is never null, only empty.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// Kafka error code; NONE on success.
    pub error: i16,
    /// The group's protocol type (SyncGroup v5+ answers it).
    pub protocol_type: Option<String>,
    /// The group's chosen protocol (SyncGroup v5+ answers it).
    pub protocol: Option<String>,
    /// This member's share of the leader's assignment, opaque to the coordinator.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// A failed sync: `error` and an empty assignment.
    pub fn error(error: i16) -> Self {
        SyncOutcome {
            error,
            ..Default::default()
        }
    }
}

/// One member of a group.
pub struct Member {
    /// Assigned by the coordinator at the member's first join:
    /// `<group.instance.id or client-id>-<uuid>`. A static member gets a new one each time
    /// it comes back (KIP-345).
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345); None for a dynamic member.
    pub group_instance_id: Option<String>,
    /// The client id from the request header of its last join.
    pub client_id: String,
    /// The address its last join came from, as DescribeGroups shows it.
    pub client_host: String,
    /// How long a rebalance waits for this member to rejoin; the group waits for the
    /// largest of its members'.
    pub rebalance_timeout_ms: i32,
    /// How long the member may go unheard (no heartbeat, join or sync) before it is removed.
    pub session_timeout_ms: i32,
    /// The protocol type it joined with; the same for every member of a group.
    pub protocol_type: String,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Its share of the current generation's assignment (empty until the leader syncs).
    pub assignment: Bytes,
    /// Its JoinGroup answer, while the join waits for the rebalance.
    pub(crate) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// Its SyncGroup answer, while the sync waits for the leader's assignment to be durable.
    pub(crate) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// The member is gone if it has not been heard from by then (unless it is waiting for
    /// a join or sync answer, which keeps it alive).
    pub session_deadline_ms: i64,
    /// Order of joining: the earliest joined member becomes leader when one is needed.
    pub join_seq: u64,
}

impl Member {
    /// This member's metadata for `protocol` (empty if it did not offer it).
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A join request as the machine sees it.
pub struct JoinRequest {
    /// Empty on a member's first join; the coordinator then assigns one.
    pub member_id: String,
    /// `group.instance.id`, for a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The request header's client id.
    pub client_id: String,
    /// The address of the connection the request came on.
    pub client_host: String,
    /// Must be within `group.min.session.timeout.ms..=group.max.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// JoinGroup v1+; for v0 the session timeout, as Kafka does.
    pub rebalance_timeout_ms: i32,
    /// e.g. `consumer`; must match the group's while it has members.
    pub protocol_type: String,
    /// (protocol name, metadata), in the member's order of preference; not empty.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is given one and asked to join again.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: the leader may be told to skip computing an assignment.
    pub supports_skip_assignment: bool,
}

/// A sync request as the machine sees it.
pub struct SyncRequest {
    /// Must be a current member.
    pub member_id: String,
    /// `group.instance.id`; must map to `member_id` if given (else FENCED_INSTANCE_ID).
    pub group_instance_id: Option<String>,
    /// Must be the group's current generation (else ILLEGAL_GENERATION).
    pub generation: i32,
    /// SyncGroup v5+: must match the group's, if given.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+: must match the group's chosen protocol, if given.
    pub protocol: Option<String>,
    /// The leader's assignment, by member id (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// What a join did, for the shell: answer now, or wait on the receiver.
pub enum JoinAction {
    /// Answered at once (an error, MEMBER_ID_REQUIRED, or a member already in the
    /// current generation).
    Now(JoinOutcome),
    /// Answered when the join phase completes (or the member is removed).
    Wait(oneshot::Receiver<JoinOutcome>),
}

/// What a sync did, for the shell: answer now, wait, or persist the assignment first.
pub enum SyncAction {
    /// Answered at once (an error, or the assignment of a Stable group).
    Now(SyncOutcome),
    /// A follower waits for the leader's assignment to be durable.
    Wait(oneshot::Receiver<SyncOutcome>),
    /// The leader's assignment: persist the group (then call `assignment_persisted`),
    /// and wait on the receiver for this member's own answer. The `i32` is the generation
    /// whose assignment it is.
    Persist(oneshot::Receiver<SyncOutcome>, i32),
}

/// A committed offset, with where its record sits in `__consumer_offsets` (so concurrent
/// commits apply in log order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume in the partition.
    pub offset: i64,
    /// The `leader_epoch` of the last consumed record, -1 if the client did not say
    /// (lets it detect log truncation, KIP-320).
    pub leader_epoch: i32,
    /// The client's free-form string, at most `offset.metadata.max.bytes`.
    pub metadata: String,
    /// When the broker accepted the commit (ms since the epoch); offsets outside any group
    /// expire by it.
    pub commit_timestamp: i64,
    /// Offset of the commit's record in its `__consumer_offsets` partition: an older
    /// record never overwrites a newer one.
    pub record_offset: i64,
}

/// One consumer group: its members, its generation, and its committed offsets.
pub struct Group {
    /// The group id.
    pub id: String,
    /// Where the group is in the rebalance protocol.
    pub state: GroupState,
    /// When the group entered its current state (Kafka's current_state_timestamp).
    pub state_since_ms: i64,
    /// Kafka's generation id: 0 for a new group, +1 at every completed join phase; never
    /// decreases.
    pub generation: i32,
    /// Set by the first member to join and kept while Empty. None until then: such a group
    /// only has offsets committed from outside any group, which expire one by one.
    pub protocol_type: Option<String>,
    /// The protocol (assignor) the members voted for at the last join phase.
    pub protocol: Option<String>,
    /// Member id of the generation's leader, who computes the assignment: kept while it
    /// stays a member, else the earliest-joined member.
    pub leader: Option<String>,
    /// Current members, by member id.
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, until they join (deadline).
    pub pending_members: HashMap<String, i64>,
    /// PreparingRebalance: when the join phase ends whoever has rejoined.
    /// CompletingRebalance: when the leader's assignment is overdue.
    pub rebalance_deadline_ms: Option<i64>,
    /// The initial delay of a rebalance from Empty: no completion before this.
    pub initial_delay_until_ms: Option<i64>,
    /// Committed offsets by (topic, partition): durable ones only (a transactional commit
    /// joins once its transaction commits).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// The group became Empty and its metadata record should say so (the shell's timer
    /// writes it and clears the flag).
    pub persist_pending: bool,
    /// Set while the group is a consumer group of the KIP-848 protocol (ConsumerGroup
    /// Heartbeat); the classic fields above are then unused, the offsets shared.
    pub consumer: Option<super::consumer::ConsumerGroup>,
    next_join_seq: u64,
}

impl Group {
    /// A new Empty group at generation 0, as of `now_ms`.
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: None,
            initial_delay_until_ms: None,
            offsets: BTreeMap::new(),
            persist_pending: false,
            consumer: None,
            next_join_seq: 0,
        }
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    /// No members (it may still have committed offsets).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// JoinGroup. `new_member_id` makes a fresh id (the shell owns randomness).
    pub fn join(
        &mut self,
        req: JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> JoinAction {
        let fail = |code| JoinAction::Now(JoinOutcome::error(code, &req.member_id));
        if self.state == GroupState::Dead {
            return fail(ec::COORDINATOR_NOT_AVAILABLE);
        }
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return fail(ec::INVALID_SESSION_TIMEOUT);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req, cfg, now_ms, new_member_id)
        } else {
            self.join_known_member(req, cfg, now_ms)
        }
    }

    /// Kafka's check: a group with members accepts only the same protocol type and a member
    /// offering at least one protocol every member supports.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn join_unknown_member(
        &mut self,
        req: JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
        new_member_id: impl FnOnce() -> String,
    ) -> JoinAction {
        let member_id = new_member_id();
        if let Some(instance) = req.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(req, old_id, member_id, cfg, now_ms);
            }
            // A new static member joins directly (its id is stable through the instance id).
            return self.add_member_and_rebalance(req, member_id, cfg, now_ms);
        }
        if req.require_known_member_id {
            if self.members.len() + self.pending_members.len() >= cfg.max_size {
                return JoinAction::Now(JoinOutcome::error(ec::GROUP_MAX_SIZE_REACHED, ""));
            }
            self.pending_members
                .insert(member_id.clone(), now_ms + req.session_timeout_ms as i64);
            return JoinAction::Now(JoinOutcome::error(ec::MEMBER_ID_REQUIRED, &member_id));
        }
        self.add_member_and_rebalance(req, member_id, cfg, now_ms)
    }

    fn join_known_member(
        &mut self,
        req: JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> JoinAction {
        let member_id = req.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(req, member_id, cfg, now_ms);
        }
        if let Err(code) = self.check_member(&member_id, req.group_instance_id.as_deref()) {
            return JoinAction::Now(JoinOutcome::error(code, &member_id));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let rx = self.update_member_and_wait(&member_id, req, now_ms);
                self.maybe_complete_join(cfg, now_ms);
                JoinAction::Wait(rx)
            }
            GroupState::CompletingRebalance => {
                let member = self.members.get(&member_id).expect("checked");
                if member.same_protocols(&req.protocols) {
                    // A retried join (the answer got lost): the same answer again.
                    JoinAction::Now(self.join_outcome_for(&member_id))
                } else {
                    let rx = self.update_member_and_wait(&member_id, req, now_ms);
                    self.prepare_rebalance(cfg, now_ms);
                    JoinAction::Wait(rx)
                }
            }
            GroupState::Stable => {
                let member = self.members.get(&member_id).expect("checked");
                let is_leader = self.leader.as_deref() == Some(member_id.as_str());
                if is_leader || !member.same_protocols(&req.protocols) {
                    // The leader asks for a new assignment (topics changed), or the member's
                    // subscription changed: everyone rebalances.
                    let rx = self.update_member_and_wait(&member_id, req, now_ms);
                    self.prepare_rebalance(cfg, now_ms);
                    JoinAction::Wait(rx)
                } else {
                    self.touch(&member_id, now_ms);
                    JoinAction::Now(self.join_outcome_for(&member_id))
                }
            }
            GroupState::Empty | GroupState::Dead => {
                JoinAction::Now(JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, &member_id))
            }
        }
    }

    /// KIP-345: a static member coming back under a new member id takes over the old one;
    /// the old id is fenced. In Stable, nobody else rebalances.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> JoinAction {
        let mut member = self
            .members
            .remove(&old_id)
            .expect("static member is a member");
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(ec::FENCED_INSTANCE_ID, &old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ec::FENCED_INSTANCE_ID));
        }
        let protocols_changed = !member.same_protocols(&req.protocols);
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols.clone();
        member.session_deadline_ms = now_ms + req.session_timeout_ms as i64;
        self.members.insert(new_id.clone(), member);
        let instance = req.group_instance_id.clone().expect("static");
        self.static_members.insert(instance, new_id.clone());
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable if !protocols_changed => {
                let mut out = self.join_outcome_for(&new_id);
                if out.leader == new_id {
                    // The leader is back: it gets the member list, and (v9+) is told not to
                    // compute a new assignment. Older leaders resync and get the current one.
                    out.skip_assignment = req.supports_skip_assignment;
                }
                JoinAction::Now(out)
            }
            GroupState::CompletingRebalance if !protocols_changed => {
                JoinAction::Now(self.join_outcome_for(&new_id))
            }
            _ => {
                let rx = self.update_member_and_wait(&new_id, req, now_ms);
                if self.state != GroupState::PreparingRebalance {
                    self.prepare_rebalance(cfg, now_ms);
                } else {
                    self.maybe_complete_join(cfg, now_ms);
                }
                JoinAction::Wait(rx)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> JoinAction {
        if self.members.len() >= cfg.max_size {
            return JoinAction::Now(JoinOutcome::error(ec::GROUP_MAX_SIZE_REACHED, &member_id));
        }
        let (tx, rx) = oneshot::channel();
        let seq = self.next_join_seq;
        self.next_join_seq += 1;
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                session_timeout_ms: req.session_timeout_ms,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                session_deadline_ms: now_ms + req.session_timeout_ms as i64,
                join_seq: seq,
            },
        );
        match self.state {
            GroupState::PreparingRebalance => {
                // Each new member of a first rebalance extends the initial delay.
                if let Some(until) = self.initial_delay_until_ms {
                    let cap = self.rebalance_deadline_ms.unwrap_or(until);
                    self.initial_delay_until_ms = Some(
                        (now_ms + cfg.initial_rebalance_delay_ms)
                            .min(cap)
                            .max(until),
                    );
                }
                self.maybe_complete_join(cfg, now_ms);
            }
            _ => self.prepare_rebalance(cfg, now_ms),
        }
        JoinAction::Wait(rx)
    }

    fn update_member_and_wait(
        &mut self,
        member_id: &str,
        req: JoinRequest,
        now_ms: i64,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let m = self.members.get_mut(member_id).expect("known member");
        if let Some(old) = m.join_waiter.replace(tx) {
            // A second join while one waits: the first is superseded.
            let _ = old.send(JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, member_id));
        }
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_deadline_ms = now_ms + m.session_timeout_ms as i64;
        rx
    }

    /// A consumer group's classic members become this (new) group's members at
    /// `generation`, the first of them leader, and a rebalance starts (Kafka's online
    /// downgrade): they learn of it from their next heartbeat and rejoin.
    pub fn adopt(&mut self, generation: i32, members: Vec<Member>, cfg: &GroupConfig, now_ms: i64) {
        self.generation = generation;
        self.protocol_type = Some("consumer".to_string());
        for mut m in members {
            m.join_seq = self.next_join_seq;
            self.next_join_seq += 1;
            if let Some(i) = &m.group_instance_id {
                self.static_members.insert(i.clone(), m.member_id.clone());
            }
            self.members.insert(m.member_id.clone(), m);
        }
        // The protocol every member supports, in the first member's order of preference.
        self.protocol = self.members.values().next().and_then(|first| {
            first.protocols.iter().map(|(n, _)| n.clone()).find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
        });
        self.leader = self.members.keys().next().cloned();
        self.transition(GroupState::Stable, now_ms);
        self.prepare_rebalance(cfg, now_ms);
    }

    /// Enter PreparingRebalance: members must rejoin before the rebalance timeout.
    pub fn prepare_rebalance(&mut self, cfg: &GroupConfig, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for the old generation's assignment must rejoin.
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(ec::REBALANCE_IN_PROGRESS));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as i64)
            .max()
            .unwrap_or(0);
        let from_empty = self.state == GroupState::Empty;
        self.transition(GroupState::PreparingRebalance, now_ms);
        self.rebalance_deadline_ms = Some(now_ms + timeout);
        self.initial_delay_until_ms = if from_empty && cfg.initial_rebalance_delay_ms > 0 {
            Some(now_ms + cfg.initial_rebalance_delay_ms.min(timeout))
        } else {
            None
        };
        self.maybe_complete_join(cfg, now_ms);
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn maybe_complete_join(&mut self, cfg: &GroupConfig, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = self.initial_delay_until_ms.is_some_and(|t| now_ms < t);
        let timed_out = self.rebalance_deadline_ms.is_some_and(|t| now_ms >= t);
        if (self.all_members_joined() && !delayed) || timed_out {
            self.complete_join(cfg, now_ms);
        }
    }

    /// End the join phase: drop who did not rejoin, start the next generation, answer every
    /// waiting member (the leader with the member list).
    fn complete_join(&mut self, _cfg: &GroupConfig, now_ms: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.initial_delay_until_ms = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.rebalance_deadline_ms = None;
            self.transition(GroupState::Empty, now_ms);
            self.persist_pending = true;
            tracing::info!(group = %self.id, generation = self.generation, members = 0,
                "group rebalanced");
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.join_seq)
                .map(|m| m.member_id.clone());
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as i64)
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = Some(now_ms + timeout);
        self.transition(GroupState::CompletingRebalance, now_ms);
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            leader = self.leader.as_deref().unwrap_or(""),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "group rebalanced"
        );
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let out = self.join_outcome_for(&id);
            let m = self.members.get_mut(&id).expect("member");
            m.session_deadline_ms = now_ms + m.session_timeout_ms as i64;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(out);
            }
        }
    }

    /// Kafka's vote: among the protocols every member supports, each member votes for the
    /// first in its own order; the most votes wins (ties to the leader's preference).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().min_by_key(|m| m.join_seq)?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == name) {
                    v.0 += 1;
                }
            }
        }
        let best = votes.iter().map(|(v, _)| *v).max()?;
        votes
            .into_iter()
            .find(|(v, _)| *v == best)
            .map(|(_, c)| c.clone())
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let members = if leader == member_id {
            let p = protocol.clone().unwrap_or_default();
            self.members
                .values()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.group_instance_id.clone(),
                        m.metadata_for(&p),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: ec::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol,
            leader,
            member_id: member_id.to_string(),
            skip_assignment: false,
            members,
        }
    }

    /// Is `member_id` (with this instance id) a current member? The error says why not.
    pub fn check_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                Some(id) if id == member_id => return Ok(()),
                Some(_) => return Err(ec::FENCED_INSTANCE_ID),
                None => return Err(ec::UNKNOWN_MEMBER_ID),
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ec::UNKNOWN_MEMBER_ID)
        }
    }

    fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms + m.session_timeout_ms as i64;
        }
    }

    /// SyncGroup. The leader's call carries everyone's assignment.
    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> SyncAction {
        let member_id = req.member_id.as_str();
        if self.state == GroupState::Dead {
            return SyncAction::Now(SyncOutcome::error(ec::COORDINATOR_NOT_AVAILABLE));
        }
        if let Err(code) = self.check_member(member_id, req.group_instance_id.as_deref()) {
            return SyncAction::Now(SyncOutcome::error(code));
        }
        if req.generation != self.generation {
            return SyncAction::Now(SyncOutcome::error(ec::ILLEGAL_GENERATION));
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || req
                .protocol
                .as_ref()
                .is_some_and(|p| Some(p) != self.protocol.as_ref())
        {
            return SyncAction::Now(SyncOutcome::error(ec::INCONSISTENT_GROUP_PROTOCOL));
        }
        let assignments = req.assignments;
        self.touch(member_id, now_ms);
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                SyncAction::Now(SyncOutcome::error(ec::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                SyncAction::Now(SyncOutcome::error(ec::REBALANCE_IN_PROGRESS))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let is_leader = self.leader.as_deref() == Some(member_id);
                let m = self.members.get_mut(member_id).expect("checked");
                m.sync_waiter = Some(tx);
                if !is_leader {
                    return SyncAction::Wait(rx);
                }
                let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                for m in self.members.values_mut() {
                    m.assignment = given.remove(&m.member_id).unwrap_or_default();
                }
                SyncAction::Persist(rx, self.generation)
            }
            GroupState::Stable => SyncAction::Now(self.sync_outcome_for(member_id)),
        }
    }

    fn sync_outcome_for(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: ec::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// The leader's assignment of `generation` is durable (or failed with `error`): hand it
    /// out and become Stable, unless the group moved on meanwhile.
    pub fn assignment_persisted(
        &mut self,
        generation: i32,
        error: i16,
        cfg: &GroupConfig,
        now_ms: i64,
    ) {
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return;
        }
        if error != ec::NONE {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(error));
                }
            }
            self.prepare_rebalance(cfg, now_ms);
            return;
        }
        self.rebalance_deadline_ms = None;
        self.transition(GroupState::Stable, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let out = self.sync_outcome_for(&id);
            let m = self.members.get_mut(&id).expect("member");
            m.session_deadline_ms = now_ms + m.session_timeout_ms as i64;
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(out);
            }
        }
    }

    /// Heartbeat: keeps the member alive; tells it to rejoin when a rebalance is on.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ec::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(code) = self.check_member(member_id, instance) {
            return code;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => ec::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                self.touch(member_id, now_ms);
                ec::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                if generation != self.generation {
                    return ec::ILLEGAL_GENERATION;
                }
                self.touch(member_id, now_ms);
                ec::NONE
            }
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id with an empty member id).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        cfg: &GroupConfig,
        now_ms: i64,
    ) -> i16 {
        let id = match instance {
            Some(inst) => match self.static_members.get(inst) {
                Some(id) if member_id.is_empty() || id == member_id => id.clone(),
                Some(_) => return ec::FENCED_INSTANCE_ID,
                None => return ec::UNKNOWN_MEMBER_ID,
            },
            None => {
                if self.pending_members.remove(member_id).is_some() {
                    return ec::NONE;
                }
                if !self.members.contains_key(member_id) {
                    return ec::UNKNOWN_MEMBER_ID;
                }
                member_id.to_string()
            }
        };
        self.remove_member_and_rebalance(&id, cfg, now_ms);
        ec::NONE
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut m = self.members.remove(member_id)?;
        if let Some(inst) = &m.group_instance_id {
            if self.static_members.get(inst).map(String::as_str) == Some(member_id) {
                self.static_members.remove(inst);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, member_id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ec::UNKNOWN_MEMBER_ID));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(m)
    }

    fn remove_member_and_rebalance(&mut self, member_id: &str, cfg: &GroupConfig, now_ms: i64) {
        if self.remove_member(member_id).is_none() {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(cfg, now_ms)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(cfg, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Time passes: expire sessions and pending members, end overdue phases. Returns true if
    /// the group's state changed.
    pub fn tick(&mut self, cfg: &GroupConfig, now_ms: i64) -> bool {
        let before = (self.state, self.generation, self.members.len());
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && m.session_deadline_ms <= now_ms
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member_and_rebalance(&id, cfg, now_ms);
        }
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(cfg, now_ms),
            GroupState::CompletingRebalance
                if self.rebalance_deadline_ms.is_some_and(|t| now_ms >= t) =>
            {
                // The leader never sent the assignment: drop who has not synced, try again.
                let lagging: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in &lagging {
                    self.remove_member(id);
                }
                self.prepare_rebalance(cfg, now_ms);
            }
            _ => {}
        }
        before != (self.state, self.generation, self.members.len())
    }

    /// The next time `tick` has work, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.session_deadline_ms);
        sessions
            .chain(self.pending_members.values().copied())
            .chain(self.rebalance_deadline_ms)
            .chain(self.initial_delay_until_ms)
            .min()
    }

    /// Check the invariants; tests call it after every step.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(l) = &self.leader {
            if !self.members.contains_key(l) {
                return Err(format!("leader {l} is not a member"));
            }
        }
        for (inst, id) in &self.static_members {
            match self.members.get(id) {
                Some(m) if m.group_instance_id.as_deref() == Some(inst) => {}
                _ => {
                    return Err(format!(
                        "instance {inst} maps to {id}, not a member with it"
                    ))
                }
            }
        }
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) && (self.leader.is_none() || self.protocol.is_none())
        {
            return Err(format!("{:?} without leader or protocol", self.state));
        }
        if self.state == GroupState::Empty && !self.members.is_empty() {
            return Err("Empty with members".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delay: i64) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: delay,
            min_session_timeout_ms: 1000,
            ..Default::default()
        }
    }

    fn req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            group_instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn now(action: JoinAction) -> JoinOutcome {
        match action {
            JoinAction::Now(o) => o,
            JoinAction::Wait(_) => panic!("expected an answer now"),
        }
    }

    fn waiting(action: JoinAction) -> oneshot::Receiver<JoinOutcome> {
        match action {
            JoinAction::Wait(rx) => rx,
            JoinAction::Now(o) => panic!("expected to wait, got {o:?}"),
        }
    }

    /// Join a new dynamic member the v4+ way (MEMBER_ID_REQUIRED, then join with the id).
    fn join_new(
        g: &mut Group,
        c: &GroupConfig,
        t: i64,
        id: &str,
    ) -> oneshot::Receiver<JoinOutcome> {
        let first = now(g.join(req("", None, &["range"]), c, t, || id.to_string()));
        assert_eq!(
            (first.error, first.member_id.as_str()),
            (ec::MEMBER_ID_REQUIRED, id)
        );
        let rx = waiting(g.join(req(id, None, &["range"]), c, t, || unreachable!()));
        g.validate().unwrap();
        rx
    }

    fn sync(g: &mut Group, id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncAction {
        let a = g.sync(
            SyncRequest {
                member_id: id.into(),
                group_instance_id: None,
                generation,
                protocol_type: None,
                protocol: None,
                assignments: assignments
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                    .collect(),
            },
            0,
        );
        g.validate().unwrap();
        a
    }

    /// Take a group with members `ids` (all rejoining) through sync to Stable.
    fn stabilize(
        g: &mut Group,
        c: &GroupConfig,
        mut joins: Vec<(String, oneshot::Receiver<JoinOutcome>)>,
    ) {
        let generation = g.generation;
        let leader = g.leader.clone().unwrap();
        let mut syncs = Vec::new();
        for (id, rx) in joins.iter_mut() {
            let out = rx.try_recv().expect("join answered");
            assert_eq!((out.error, out.generation), (ec::NONE, generation));
            assert_eq!(out.leader, leader);
            assert_eq!(
                out.members.is_empty(),
                *id != leader,
                "only the leader gets members"
            );
            if *id != leader {
                match sync(g, id, generation, &[]) {
                    SyncAction::Wait(rx) => syncs.push((id.clone(), rx)),
                    _ => panic!("a follower waits for the leader"),
                }
            }
        }
        let assignments: Vec<(String, String)> = g
            .members
            .keys()
            .map(|m| (m.clone(), format!("for-{m}")))
            .collect();
        let refs: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let SyncAction::Persist(rx, gen) = sync(g, &leader, generation, &refs) else {
            panic!("the leader's sync persists the assignment");
        };
        syncs.push((leader.clone(), rx));
        g.assignment_persisted(gen, ec::NONE, c, 0);
        assert_eq!(g.state, GroupState::Stable);
        for (id, mut rx) in syncs {
            let out = rx.try_recv().expect("sync answered");
            assert_eq!(out.error, ec::NONE);
            assert_eq!(out.assignment, Bytes::from(format!("for-{id}")));
        }
        g.validate().unwrap();
    }

    #[test]
    fn members_join_rebalance_and_get_their_assignment() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let rx = join_new(&mut g, &c, 0, "m1");
        assert_eq!(
            (g.state, g.generation),
            (GroupState::CompletingRebalance, 1)
        );
        stabilize(&mut g, &c, vec![("m1".into(), rx)]);

        // A second member: the first must rejoin (its heartbeat says so).
        let rx2 = join_new(&mut g, &c, 10, "m2");
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat("m1", None, 1, 10), ec::REBALANCE_IN_PROGRESS);
        let rx1 = waiting(g.join(req("m1", None, &["range"]), &c, 20, || unreachable!()));
        assert_eq!(
            (g.state, g.generation),
            (GroupState::CompletingRebalance, 2)
        );
        assert_eq!(
            g.leader.as_deref(),
            Some("m1"),
            "the leader stays the leader"
        );
        stabilize(&mut g, &c, vec![("m1".into(), rx1), ("m2".into(), rx2)]);
        assert_eq!(g.heartbeat("m2", None, 2, 30), ec::NONE);
        assert_eq!(g.heartbeat("m2", None, 1, 30), ec::ILLEGAL_GENERATION);
        assert_eq!(g.heartbeat("nobody", None, 2, 30), ec::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn the_protocol_every_member_supports_wins_the_vote() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        now(g.join(
            req("", None, &["cooperative-sticky", "range"]),
            &c,
            0,
            || "a".into(),
        ));
        let _a = waiting(g.join(
            req("a", None, &["cooperative-sticky", "range"]),
            &c,
            0,
            || unreachable!(),
        ));
        assert_eq!(g.protocol.as_deref(), Some("cooperative-sticky"));
        // A member that knows only "roundrobin" shares nothing with the group.
        let out = now(g.join(req("", None, &["roundrobin"]), &c, 0, || "b".into()));
        assert_eq!(out.error, ec::INCONSISTENT_GROUP_PROTOCOL);
    }

    #[test]
    fn a_silent_member_is_dropped_after_its_session_timeout() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let r1 = join_new(&mut g, &c, 0, "m1");
        stabilize(&mut g, &c, vec![("m1".into(), r1)]);
        let r2 = join_new(&mut g, &c, 0, "m2");
        let r1 = waiting(g.join(req("m1", None, &["range"]), &c, 0, || unreachable!()));
        stabilize(&mut g, &c, vec![("m1".into(), r1), ("m2".into(), r2)]);
        // m1 keeps heartbeating, m2 goes silent.
        for t in (1_000..=9_000).step_by(1_000) {
            assert_eq!(g.heartbeat("m1", None, 2, t), ec::NONE);
            g.tick(&c, t);
        }
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.heartbeat("m1", None, 2, 10_000), ec::NONE);
        assert!(g.tick(&c, 10_001), "m2's session ran out");
        assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["m1"]);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat("m2", None, 2, 10_002), ec::UNKNOWN_MEMBER_ID);
        g.validate().unwrap();
    }

    #[test]
    fn a_member_that_does_not_rejoin_in_time_is_left_behind() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let r1 = join_new(&mut g, &c, 0, "m1");
        stabilize(&mut g, &c, vec![("m1".into(), r1)]);
        let mut r2 = join_new(&mut g, &c, 0, "m2");
        // m1 heartbeats (so its session lives) but never rejoins: the 30 s rebalance
        // timeout ends the join phase without it.
        for t in (1_000..30_000).step_by(1_000) {
            g.heartbeat("m1", None, 1, t);
            g.tick(&c, t);
            assert_eq!(g.state, GroupState::PreparingRebalance);
        }
        g.tick(&c, 30_000);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let out = r2.try_recv().unwrap();
        assert_eq!((out.error, out.leader.as_str()), (ec::NONE, "m2"));
        assert!(!g.members.contains_key("m1"));
        g.validate().unwrap();
    }

    #[test]
    fn the_initial_delay_batches_the_first_members() {
        let c = cfg(3000);
        let mut g = Group::new("g", 0);
        let _r1 = join_new(&mut g, &c, 0, "m1");
        let _r2 = join_new(&mut g, &c, 1000, "m2");
        g.tick(&c, 2000);
        assert_eq!(
            g.state,
            GroupState::PreparingRebalance,
            "still waiting for more"
        );
        g.tick(&c, 4000);
        assert_eq!(
            (g.state, g.generation),
            (GroupState::CompletingRebalance, 1)
        );
        assert_eq!(g.members.len(), 2, "both in the first generation");
    }

    #[test]
    fn a_static_member_returns_without_a_rebalance_and_fences_its_old_id() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let r1 = waiting(g.join(req("", Some("i1"), &["range"]), &c, 0, || "s1".into()));
        stabilize(&mut g, &c, vec![("s1".into(), r1)]);
        let r2 = waiting(g.join(req("", Some("i2"), &["range"]), &c, 0, || "s2".into()));
        let r1 = waiting(g.join(req("s1", Some("i1"), &["range"]), &c, 0, || unreachable!()));
        stabilize(&mut g, &c, vec![("s1".into(), r1), ("s2".into(), r2)]);
        let generation = g.generation;

        // s2's process restarts and joins again under instance i2, with no member id.
        let out = now(g.join(req("", Some("i2"), &["range"]), &c, 5, || "s2b".into()));
        assert_eq!((out.error, out.generation), (ec::NONE, generation));
        assert_eq!(g.state, GroupState::Stable, "nobody else rebalances");
        assert_eq!(g.generation, generation);
        let SyncAction::Now(s) = g.sync(
            SyncRequest {
                member_id: "s2b".into(),
                group_instance_id: Some("i2".into()),
                generation,
                protocol_type: None,
                protocol: None,
                assignments: vec![],
            },
            6,
        ) else {
            panic!("Stable answers at once");
        };
        assert_eq!(s.assignment, Bytes::from("for-s2"), "its partitions back");
        // The old incarnation is fenced.
        assert_eq!(
            g.heartbeat("s2", Some("i2"), generation, 7),
            ec::FENCED_INSTANCE_ID
        );
        assert_eq!(g.heartbeat("s2b", Some("i2"), generation, 7), ec::NONE);
        g.validate().unwrap();
    }

    #[test]
    fn leaving_rebalances_and_the_last_one_out_empties_the_group() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let r1 = join_new(&mut g, &c, 0, "m1");
        stabilize(&mut g, &c, vec![("m1".into(), r1)]);
        let r2 = join_new(&mut g, &c, 0, "m2");
        let r1 = waiting(g.join(req("m1", None, &["range"]), &c, 0, || unreachable!()));
        stabilize(&mut g, &c, vec![("m1".into(), r1), ("m2".into(), r2)]);
        assert_eq!(g.leave("m1", None, &c, 1), ec::NONE);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.leader, None);
        let r2 = waiting(g.join(req("m2", None, &["range"]), &c, 2, || unreachable!()));
        assert_eq!(g.leader.as_deref(), Some("m2"), "a new leader");
        stabilize(&mut g, &c, vec![("m2".into(), r2)]);
        assert_eq!(g.leave("m2", None, &c, 3), ec::NONE);
        assert_eq!((g.state, g.generation), (GroupState::Empty, 4));
        assert!(g.persist_pending, "an Empty group's record must be written");
        assert_eq!(g.leave("m2", None, &c, 4), ec::UNKNOWN_MEMBER_ID);
        g.validate().unwrap();
    }

    #[test]
    fn sync_checks_member_and_generation() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let _r = join_new(&mut g, &c, 0, "m1");
        let SyncAction::Now(o) = sync(&mut g, "m1", 7, &[]) else {
            panic!()
        };
        assert_eq!(o.error, ec::ILLEGAL_GENERATION);
        let SyncAction::Now(o) = sync(&mut g, "x", 1, &[]) else {
            panic!()
        };
        assert_eq!(o.error, ec::UNKNOWN_MEMBER_ID);
        // A failed persist sends everyone back to rejoin, with empty assignments.
        let SyncAction::Persist(mut rx, gen) = sync(&mut g, "m1", 1, &[("m1", "a")]) else {
            panic!()
        };
        g.assignment_persisted(gen, ec::COORDINATOR_NOT_AVAILABLE, &c, 1);
        assert_eq!(rx.try_recv().unwrap().error, ec::COORDINATOR_NOT_AVAILABLE);
        assert_eq!(g.state, GroupState::PreparingRebalance);
    }

    #[test]
    fn session_timeouts_outside_the_broker_bounds_are_refused() {
        let c = cfg(0);
        let mut g = Group::new("g", 0);
        let mut r = req("", None, &["range"]);
        r.session_timeout_ms = 10;
        assert_eq!(
            now(g.join(r, &c, 0, || "m".into())).error,
            ec::INVALID_SESSION_TIMEOUT
        );
    }
}
