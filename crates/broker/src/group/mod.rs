//! The group coordinator: consumer groups (Kafka's classic protocol and the KIP-848
//! consumer protocol) and committed offsets.
//!
//! Membership logic lives in `state` (classic) and `consumer` (KIP-848), without I/O. This shell owns the groups map, persists to
//! the internal topic `__consumer_offsets` (offset commits and group metadata, in Kafka's
//! record formats, see `records`), replays that topic at start, and runs the timer that
//! expires sessions, ends rebalances and expires old offsets.
//!
//! Durability: an OffsetCommit is answered after its record is fsync'd, like a produce with
//! acks=all, and only then is the offset visible to OffsetFetch. A group's assignment is
//! handed out after the group's metadata record is fsync'd. A ConsumerGroupHeartbeat is
//! answered after the records of what it changed are fsync'd; those records are appended in
//! the order the changes were made (one `consumer_order` lock around change and append).

pub mod consumer;
pub mod records;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;
use weir_storage::control::{marker_type_of_key, MARKER_COMMIT};

use crate::catalog::Catalog;
use crate::clock::Clock;
pub use crate::config::{GroupConfig, OffsetsConfig};
use crate::error::MetadataError;
use crate::error_codes as ec;
use crate::internal_topic::{
    DurableTicket, InternalRecord, InternalTopic, InternalTopicError, ReplayedRecord,
};
use crate::partition::TxnCheck;
use crate::reply::BoxFuture;
use records::{GroupValue, Key, MemberValue, OffsetValue};
pub use state::{
    CommittedOffset, Group, GroupState, JoinAction, JoinOutcome, JoinRequest, SyncAction,
    SyncOutcome, SyncRequest,
};

pub use crate::catalog::OFFSETS_TOPIC;
/// Kafka places a group on partition `abs(java_hash(group_id)) % partitions` of
/// `__consumer_offsets`; doing the same keeps the layout Kafka's.
pub use crate::internal_topic::partition_for_key as offsets_partition_for;

/// Why a group-level request failed: answered as the response's top-level error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// No such group (OffsetDelete).
    #[error("group {0} does not exist")]
    NotFound(String),
    /// `__consumer_offsets` could not take or keep the write.
    #[error(transparent)]
    Store(#[from] InternalTopicError),
}

impl GroupError {
    /// The Kafka error code of the response.
    pub fn code(&self) -> i16 {
        match self {
            GroupError::NotFound(_) => ec::GROUP_ID_NOT_FOUND,
            GroupError::Store(e) => e.code(),
        }
    }
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    /// Must exist (else UNKNOWN_TOPIC_OR_PARTITION).
    pub topic: String,
    /// The partition index within `topic`.
    pub partition: i32,
    /// The next offset the group will consume.
    pub offset: i64,
    /// The `leader_epoch` of the last consumed record, -1 if unknown (KIP-320).
    pub leader_epoch: i32,
    /// Free-form client string, at most `offset.metadata.max.bytes` (else
    /// OFFSET_METADATA_TOO_LARGE).
    pub metadata: String,
}

/// A group as ListGroups and DescribeGroups show it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    /// The group id.
    pub group_id: String,
    /// Its state now, Kafka's name: a classic group's (`Stable`, `PreparingRebalance`..)
    /// or a consumer group's (`Empty`, `Assigning`, `Reconciling`, `Stable`).
    pub state: &'static str,
    /// `classic` or `consumer` (ListGroups v5 group types).
    pub group_type: &'static str,
    /// For a consumer group: its epochs, assignor and members.
    pub consumer: Option<ConsumerSummary>,
    /// e.g. `consumer`; empty for a group with only offsets committed outside a group.
    pub protocol_type: String,
    /// The chosen protocol (assignor); empty outside a generation.
    pub protocol: String,
    /// The current members, by member id.
    pub members: Vec<MemberSummary>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    /// The coordinator-assigned member id.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from.
    pub client_host: String,
    /// Its metadata for the chosen protocol (for `consumer`, the subscription).
    pub metadata: Bytes,
    /// Its share of the current assignment (for `consumer`, its partitions).
    pub assignment: Bytes,
}

/// A consumer group (KIP-848) as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerSummary {
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the target assignment.
    pub assignment_epoch: i32,
    /// The server assignor in use.
    pub assignor: &'static str,
    /// The members, by member id.
    pub members: Vec<ConsumerMemberSummary>,
}

/// A consumer group member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerMemberSummary {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// Its epoch.
    pub member_epoch: i32,
    /// Its reconciliation state (`STABLE`, `UNREVOKED_PARTITIONS`..).
    pub state: &'static str,
    /// The client id of its last heartbeat.
    pub client_id: String,
    /// The address of its last heartbeat.
    pub client_host: String,
    /// Its subscription.
    pub subscribed_topic_names: Vec<String>,
    /// What it holds: (topic id, topic name, partitions).
    pub assignment: Vec<(Uuid, String, Vec<i32>)>,
    /// What it is to hold once reconciled.
    pub target_assignment: Vec<(Uuid, String, Vec<i32>)>,
    /// It speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat).
    pub classic: bool,
}

/// Lag of one partition: the log end (high watermark) minus the committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The committed partition's topic.
    pub topic: String,
    /// The committed partition's index.
    pub partition: i32,
    /// The group's committed offset.
    pub committed_offset: i64,
    /// The partition's high watermark, as Kafka's tools report it under this name: lag
    /// counts only what a consumer can read.
    pub log_end_offset: i64,
    /// `log_end_offset - committed_offset`, at least 0.
    pub lag: i64,
}

/// Consumer groups and their committed offsets.
pub struct GroupCoordinator {
    /// Group membership timings.
    pub config: GroupConfig,
    /// Committed-offset settings.
    pub offsets_config: OffsetsConfig,
    /// Where groups and offsets are persisted: `__consumer_offsets`.
    offsets_topic: InternalTopic,
    /// To check that committed partitions exist, and for lag.
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    groups: Mutex<HashMap<String, Group>>,
    /// Held from a consumer-protocol change to the append of its records, so records land
    /// in `__consumer_offsets` in the order of the changes they describe.
    consumer_order: tokio::sync::Mutex<()>,
    /// Transactional offset commits (TxnOffsetCommit) by producer id, durable in
    /// `__consumer_offsets` but applied only when their transaction commits.
    pending_txn: Mutex<HashMap<i64, Vec<PendingTxnOffset>>>,
}

/// A transactional offset commit waiting for its transaction's marker.
#[derive(Debug, Clone)]
struct PendingTxnOffset {
    group: String,
    topic: String,
    partition: i32,
    value: OffsetValue,
    record_offset: i64,
    /// The `__consumer_offsets` partition it was written to (its marker lands there).
    offsets_partition: i32,
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl GroupCoordinator {
    /// A coordinator with no groups yet (see [`GroupCoordinator::load`]).
    pub fn new(
        config: GroupConfig,
        offsets_config: OffsetsConfig,
        offsets_topic: InternalTopic,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        GroupCoordinator {
            config,
            offsets_config,
            offsets_topic,
            catalog,
            clock,
            groups: Mutex::new(HashMap::new()),
            consumer_order: tokio::sync::Mutex::new(()),
            pending_txn: Mutex::new(HashMap::new()),
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<PendingTxnOffset>>> {
        self.pending_txn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The `__consumer_offsets` partition that holds `group_id` (AddOffsetsToTxn adds it
    /// to the producer's transaction).
    pub async fn offsets_partition(&self, group_id: &str) -> Result<i32, GroupError> {
        Ok(self.offsets_topic.partition_for(group_id).await?)
    }

    /// TxnOffsetCommit: offsets written into the producer's transaction. Durable when
    /// answered, visible to OffsetFetch only once the transaction commits. `in_txn` is the
    /// transaction coordinator's check that the group's offsets partition is in the
    /// producer's open transaction (an error code when it is not); it runs before and,
    /// KIP-890 style, under the partition's log lock just before the append.
    #[allow(clippy::too_many_arguments)]
    pub async fn txn_offset_commit(
        self: &Arc<Self>,
        in_txn: &(dyn Fn(i32) -> Result<(), i16> + Sync),
        group_id: &str,
        producer_id: i64,
        epoch: i16,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        entries: Vec<OffsetCommitEntry>,
    ) -> Vec<i16> {
        let now = self.now_ms();
        // Producers older than KIP-447 know no generation: their commits are not checked
        // against the group's membership.
        if generation >= 0 || !member_id.is_empty() {
            let group_error = {
                let mut groups = self.lock();
                let group = groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id, now));
                // A transactional commit is not held to OffsetCommit's version rule.
                check_offset_commit(group, generation, member_id, instance, None)
            };
            if group_error != ec::NONE {
                return vec![group_error; entries.len()];
            }
        }
        let offsets_partition = match self.offsets_partition(group_id).await {
            Ok(p) => p,
            Err(e) => return vec![e.code(); entries.len()],
        };
        if let Err(code) = in_txn(offsets_partition) {
            return vec![code; entries.len()];
        }
        let mut codes = vec![ec::NONE; entries.len()];
        let mut batch = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if self.catalog.partition(&e.topic, e.partition).is_none() {
                codes[i] = ec::UNKNOWN_TOPIC_OR_PARTITION;
            } else if e.metadata.len() > self.offsets_config.metadata_max_bytes {
                codes[i] = ec::OFFSET_METADATA_TOO_LARGE;
            } else {
                let value = OffsetValue {
                    offset: e.offset,
                    leader_epoch: e.leader_epoch,
                    metadata: e.metadata.clone(),
                    commit_timestamp: now,
                };
                batch.push((i, e.topic.clone(), e.partition, value));
            }
        }
        if batch.is_empty() {
            return codes;
        }
        let records: Vec<InternalRecord> = batch
            .iter()
            .map(|(_, topic, p, value)| InternalRecord {
                key: records::encode_key(&Key::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *p,
                }),
                value: Some(records::encode_offset_value(value)),
            })
            .collect();
        let check: &TxnCheck<'_> = &|| {
            in_txn(offsets_partition)
                .map_err(|code| (code, "the group's offsets are not part of the transaction"))
        };
        let ticket = match self
            .offsets_topic
            .append_transactional(group_id, &records, producer_id, epoch, check)
            .await
        {
            Ok(t) => t,
            Err(e) => return vec![e.code(); entries.len()],
        };
        if let Err(e) = ticket.wait().await {
            return vec![e.code(); entries.len()];
        }
        let mut pending = self.lock_pending();
        let list = pending.entry(producer_id).or_default();
        for (n, (_, topic, p, value)) in batch.into_iter().enumerate() {
            list.push(PendingTxnOffset {
                group: group_id.to_string(),
                topic,
                partition: p,
                value,
                record_offset: ticket.base_offset + n as i64,
                offsets_partition: ticket.partition_index,
            });
        }
        codes
    }

    /// The transaction of `producer_id` ended in `__consumer_offsets` partition
    /// `offsets_partition`: apply (commit) or drop (abort) its offset commits there.
    pub fn complete_txn_offsets(&self, producer_id: i64, offsets_partition: i32, commit: bool) {
        let done: Vec<PendingTxnOffset> = {
            let mut pending = self.lock_pending();
            let Some(list) = pending.get_mut(&producer_id) else {
                return;
            };
            let (done, keep) = std::mem::take(list)
                .into_iter()
                .partition(|p| p.offsets_partition == offsets_partition);
            *list = keep;
            if list.is_empty() {
                pending.remove(&producer_id);
            }
            done
        };
        if !commit || done.is_empty() {
            return;
        }
        let now = self.now_ms();
        let mut groups = self.lock();
        for p in done {
            let group = groups
                .entry(p.group.clone())
                .or_insert_with(|| Group::new(&p.group, now));
            apply_offset(group, p.topic, p.partition, p.value, p.record_offset);
        }
    }

    /// A transactional commit of this group's partition is waiting for its transaction
    /// (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.lock_pending().values().any(|list| {
            list.iter()
                .any(|p| p.group == group_id && p.topic == topic && p.partition == partition)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- membership ----------------------------------------------------------------------

    /// JoinGroup. A join without a member id creates the group if needed; one with a member
    /// id for an unknown group is UNKNOWN_MEMBER_ID. An empty consumer group (KIP-848)
    /// becomes a classic group again, keeping its offsets; one with members takes the
    /// classic member in (Kafka 4.x's classic members of a consumer group).
    pub async fn join(self: &Arc<Self>, group_id: &str, req: JoinRequest) -> JoinAction {
        if self
            .lock()
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
        {
            match self.consumer_to_classic(group_id).await {
                Ok(()) => {}
                Err(ec::INCONSISTENT_GROUP_PROTOCOL) => {
                    return JoinAction::Now(self.classic_join_consumer(group_id, req).await)
                }
                Err(code) => return JoinAction::Now(JoinOutcome::error(code, &req.member_id)),
            }
        }
        let now = self.now_ms();
        let became_consumer = self
            .lock()
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some());
        if became_consumer {
            // A consumer-protocol member joined meanwhile.
            return JoinAction::Now(self.classic_join_consumer(group_id, req).await);
        }
        let mut groups = self.lock();
        if groups.get(group_id).is_some_and(|g| g.consumer.is_some()) {
            // Between the two looks: the member joins again.
            return JoinAction::Now(JoinOutcome::error(
                ec::REBALANCE_IN_PROGRESS,
                &req.member_id,
            ));
        }
        if !req.member_id.is_empty() && !groups.contains_key(group_id) {
            return JoinAction::Now(JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, &req.member_id));
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now));
        let prefix = req
            .group_instance_id
            .clone()
            .unwrap_or_else(|| req.client_id.clone());
        let action = group.join(req, &self.config, now, || new_member_id(&prefix));
        debug_assert_eq!(group.validate(), Ok(()));
        action
    }

    /// Turn an empty consumer group back into a classic one (its offsets stay): the
    /// tombstones of its consumer-protocol records are appended in order with the consumer
    /// groups' other records. A consumer group with members: INCONSISTENT_GROUP_PROTOCOL.
    async fn consumer_to_classic(&self, group_id: &str) -> Result<(), i16> {
        let order = self.consumer_order.lock().await;
        let now = self.now_ms();
        let tombstones = {
            let mut groups = self.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return Ok(());
            };
            let Some(c) = &group.consumer else {
                return Ok(());
            };
            if !c.members.is_empty() {
                return Err(ec::INCONSISTENT_GROUP_PROTOCOL);
            }
            let tombstones = c.tombstones(group_id);
            let offsets = std::mem::take(&mut group.offsets);
            *group = Group::new(group_id, now);
            group.offsets = offsets;
            tombstones
        };
        tracing::info!(
            group = group_id,
            "empty consumer group becomes a classic group"
        );
        self.append_in_order(order, group_id, tombstones)
            .await
            .await
    }

    /// A classic member's JoinGroup to a consumer group with members: applied and answered
    /// once its records are durable.
    async fn classic_join_consumer(&self, group_id: &str, req: JoinRequest) -> JoinOutcome {
        let order = self.consumer_order.lock().await;
        let now = self.now_ms();
        let timings = self.consumer_timings();
        let mut recs = Vec::new();
        let outcome = {
            let mut groups = self.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, &req.member_id);
            };
            if group.state == GroupState::Dead {
                return JoinOutcome::error(ec::COORDINATOR_NOT_AVAILABLE, &req.member_id);
            }
            if req.session_timeout_ms < self.config.min_session_timeout_ms
                || req.session_timeout_ms > self.config.max_session_timeout_ms
            {
                return JoinOutcome::error(ec::INVALID_SESSION_TIMEOUT, &req.member_id);
            }
            let Some(c) = group.consumer.as_mut() else {
                // It became a classic group meanwhile: the member joins again.
                return JoinOutcome::error(ec::REBALANCE_IN_PROGRESS, &req.member_id);
            };
            let lookup = CatalogTopics(&self.catalog);
            let prefix = req
                .group_instance_id
                .clone()
                .unwrap_or_else(|| req.client_id.clone());
            let outcome = c.classic_join(
                group_id,
                &req,
                &lookup,
                &timings,
                now,
                || new_member_id(&prefix),
                &mut recs,
            );
            debug_assert_eq!(c.validate(), Ok(()));
            outcome
        };
        if recs.is_empty() {
            return outcome;
        }
        match self.append_in_order(order, group_id, recs).await.await {
            Ok(()) => outcome,
            Err(code) => JoinOutcome::error(code, &outcome.member_id),
        }
    }

    /// SyncGroup; resolves when the member has its assignment (or an error).
    pub async fn sync(self: &Arc<Self>, group_id: &str, req: SyncRequest) -> SyncOutcome {
        let now = self.now_ms();
        let (action, snapshot) = {
            let mut groups = self.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return SyncOutcome::error(ec::UNKNOWN_MEMBER_ID);
            };
            if let Some(c) = group.consumer.as_mut() {
                // A classic member of a consumer group: its assigned partitions.
                return c.classic_sync(&req, now);
            }
            let action = group.sync(req, now);
            let snapshot =
                matches!(action, SyncAction::Persist(..)).then(|| group_value(group, now));
            (action, snapshot)
        };
        let rx = match action {
            SyncAction::Now(out) => return out,
            SyncAction::Wait(rx) => rx,
            SyncAction::Persist(rx, generation) => {
                let value = snapshot.expect("persist has a snapshot");
                let key = Key::Group {
                    group: group_id.to_string(),
                };
                let written = self
                    .write(
                        group_id,
                        vec![(key, Some(records::encode_group_value(&value)))],
                    )
                    .await;
                let error = match written {
                    Ok(_) => ec::NONE,
                    Err(e) => e.code(),
                };
                let mut groups = self.lock();
                if let Some(group) = groups.get_mut(group_id) {
                    group.assignment_persisted(generation, error, &self.config, self.now_ms());
                }
                rx
            }
        };
        rx.await
            .unwrap_or_else(|_| SyncOutcome::error(ec::REBALANCE_IN_PROGRESS))
    }

    /// Heartbeat: an error code; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut groups = self.lock();
        match groups.get_mut(group_id) {
            Some(Group {
                consumer: Some(c), ..
            }) => c.classic_heartbeat(member_id, instance, generation, self.now_ms()),
            Some(g) => g.heartbeat(member_id, instance, generation, self.now_ms()),
            None => ec::UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup for several members; one error per member.
    pub async fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        if self
            .lock()
            .get(group_id)
            .is_some_and(|g| g.consumer.is_some())
        {
            return self.classic_leave_consumer(group_id, members).await;
        }
        let now = self.now_ms();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return vec![ec::UNKNOWN_MEMBER_ID; members.len()];
        };
        if group.consumer.is_some() {
            // It became a consumer group meanwhile: its classic members are gone.
            return vec![ec::UNKNOWN_MEMBER_ID; members.len()];
        }
        let out = members
            .iter()
            .map(|(id, inst)| {
                let code = group.leave(id, inst.as_deref(), &self.config, now);
                if code == ec::NONE {
                    tracing::debug!(group = group_id, member = %id, "member left");
                }
                code
            })
            .collect();
        debug_assert_eq!(group.validate(), Ok(()));
        out
    }

    /// LeaveGroup of classic members of a consumer group: removed, answered once durable.
    async fn classic_leave_consumer(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<i16> {
        let order = self.consumer_order.lock().await;
        let mut recs = Vec::new();
        let mut codes = {
            let mut groups = self.lock();
            let Some(c) = groups.get_mut(group_id).and_then(|g| g.consumer.as_mut()) else {
                return vec![ec::UNKNOWN_MEMBER_ID; members.len()];
            };
            let lookup = CatalogTopics(&self.catalog);
            let codes: Vec<i16> = members
                .iter()
                .map(|(id, inst)| {
                    c.classic_leave(group_id, id, inst.as_deref(), &lookup, &mut recs)
                })
                .collect();
            debug_assert_eq!(c.validate(), Ok(()));
            codes
        };
        if recs.is_empty() {
            return codes;
        }
        if let Err(code) = self.append_in_order(order, group_id, recs).await.await {
            for c in codes.iter_mut().filter(|c| **c == ec::NONE) {
                *c = code;
            }
        }
        codes
    }

    /// Kafka's online downgrade: a consumer group left with classic members only (its last
    /// consumer-protocol member left or was fenced) becomes a classic group with them, and
    /// a rebalance starts. Returns the records of the conversion (none if it stays).
    fn maybe_downgrade(&self, group: &mut Group, now: i64) -> Vec<consumer::Record> {
        let Some(c) = group.consumer.as_ref() else {
            return Vec::new();
        };
        if !self.config.downgrade_enabled() || !c.all_classic() {
            return Vec::new();
        }
        let mut recs = c.tombstones(&group.id);
        let members = c.classic_members(now);
        let generation = c.group_epoch;
        let offsets = std::mem::take(&mut group.offsets);
        let id = group.id.clone();
        *group = Group::new(&id, now);
        group.offsets = offsets;
        group.adopt(generation, members, &self.config, now);
        recs.push((
            Key::Group { group: id.clone() },
            Some(records::encode_group_value(&group_value(group, now))),
        ));
        tracing::info!(group = %id, members = group.members.len(), "consumer group with only classic members becomes a classic group");
        recs
    }

    // ---- the consumer protocol (KIP-848) ----------------------------------------------------

    /// The consumer protocol's timings, from the broker's settings.
    pub fn consumer_timings(&self) -> consumer::ConsumerTimings {
        consumer::ConsumerTimings {
            session_timeout_ms: self.config.consumer_session_timeout_ms,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
            max_size: self.config.max_size,
        }
    }

    /// The name of a topic id, for describing assignments.
    fn topic_name(&self, id: Uuid) -> String {
        self.catalog
            .topic_by_id(id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    }

    /// ConsumerGroupHeartbeat: applies the heartbeat and appends its records now; the
    /// returned future waits until they are durable and yields the answer.
    pub async fn consumer_heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        hb: consumer::Heartbeat,
    ) -> BoxFuture<consumer::HeartbeatAnswer> {
        let ready = |a: consumer::HeartbeatAnswer| -> BoxFuture<consumer::HeartbeatAnswer> {
            Box::pin(std::future::ready(a))
        };
        let fail = |code: i16, message: String| consumer::HeartbeatAnswer {
            error: code,
            message: Some(message),
            member_epoch: -1,
            ..Default::default()
        };
        let order = self.consumer_order.lock().await;
        let now = self.now_ms();
        let timings = self.consumer_timings();
        let mut recs = Vec::new();
        let answer = {
            let mut groups = self.lock();
            let joining = hb.member_epoch == 0;
            if !groups.contains_key(group_id) {
                if !joining {
                    return ready(fail(
                        ec::UNKNOWN_MEMBER_ID,
                        format!("group {group_id} has no member {}", hb.member_id),
                    ));
                }
                groups.insert(group_id.to_string(), Group::new(group_id, now));
            }
            let group = groups.get_mut(group_id).expect("inserted");
            if group.state == GroupState::Dead {
                return ready(fail(
                    ec::COORDINATOR_NOT_AVAILABLE,
                    format!("group {group_id} is being deleted"),
                ));
            }
            if group.consumer.is_none() && !group.members.is_empty() {
                // Kafka's online upgrade: a classic group whose members use the consumer
                // embedded protocol becomes a consumer group when a consumer-protocol
                // member joins.
                let why = if !joining {
                    Some("is not a consumer group".to_string())
                } else if !self.config.upgrade_enabled() {
                    Some("is a classic group and group.consumer.migration.policy does not allow upgrades".to_string())
                } else if group.protocol_type.as_deref() != Some("consumer") {
                    Some("is a classic group of another protocol type".to_string())
                } else if group.members.len() >= timings.max_size {
                    Some("is a classic group at group.max.size".to_string())
                } else {
                    None
                };
                if let Some(why) = why {
                    return ready(fail(
                        ec::GROUP_ID_NOT_FOUND,
                        format!("group {group_id} {why}"),
                    ));
                }
                let lookup = CatalogTopics(&self.catalog);
                let (c, conversion) =
                    match consumer::ConsumerGroup::from_classic(group, &lookup, now) {
                        Ok(v) => v,
                        Err(e) => {
                            return ready(fail(
                                ec::GROUP_ID_NOT_FOUND,
                                format!("group {group_id} cannot become a consumer group: {e}"),
                            ))
                        }
                    };
                // Joins and syncs waiting on the classic rebalance start over.
                for m in group.members.values_mut() {
                    if let Some(w) = m.join_waiter.take() {
                        let _ = w.send(JoinOutcome::error(ec::REBALANCE_IN_PROGRESS, &m.member_id));
                    }
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncOutcome::error(ec::REBALANCE_IN_PROGRESS));
                    }
                }
                tracing::info!(
                    group = group_id,
                    members = group.members.len(),
                    "classic group with members becomes a consumer group"
                );
                recs.extend(conversion);
                let offsets = std::mem::take(&mut group.offsets);
                *group = Group::new(group_id, now);
                group.offsets = offsets;
                group.consumer = Some(c);
            }
            if group.consumer.is_none() {
                if !joining {
                    return ready(fail(
                        ec::UNKNOWN_MEMBER_ID,
                        format!("group {group_id} has no member {}", hb.member_id),
                    ));
                }
                // An empty classic group (or one with offsets only) becomes a consumer
                // group; its classic metadata record goes.
                if group.protocol_type.is_some() {
                    recs.push((
                        Key::Group {
                            group: group_id.to_string(),
                        },
                        None,
                    ));
                }
                let offsets = std::mem::take(&mut group.offsets);
                *group = Group::new(group_id, now);
                group.offsets = offsets;
                group.consumer = Some(consumer::ConsumerGroup::default());
            }
            group.protocol_type = Some("consumer".to_string());
            let was_empty = group.is_empty();
            let lookup = CatalogTopics(&self.catalog);
            let c = group.consumer.as_mut().expect("a consumer group");
            let answer = c.heartbeat(
                group_id,
                hb,
                &lookup,
                &timings,
                now,
                || uuid::Uuid::new_v4().to_string(),
                &mut recs,
            );
            debug_assert_eq!(c.validate(), Ok(()));
            recs.extend(self.maybe_downgrade(group, now));
            if was_empty != group.is_empty() {
                group.state_since_ms = now;
            }
            answer
        };
        if recs.is_empty() {
            return ready(answer);
        }
        let durable = self.append_in_order(order, group_id, recs).await;
        Box::pin(async move {
            match durable.await {
                Ok(()) => answer,
                Err(code) => consumer::HeartbeatAnswer {
                    error: code,
                    message: Some("the group's state could not be written".into()),
                    member_epoch: -1,
                    ..Default::default()
                },
            }
        })
    }

    /// The consumer groups' timer: session and revocation timeouts, and subscribed topics
    /// that appeared or grew. Writes what changed, in order.
    async fn consumer_tick(&self, now: i64) {
        let order = self.consumer_order.lock().await;
        let mut writes: Vec<(String, Vec<consumer::Record>)> = Vec::new();
        {
            let mut groups = self.lock();
            for g in groups.values_mut() {
                let was_empty = g.is_empty();
                let Some(c) = g.consumer.as_mut() else {
                    continue;
                };
                let mut recs = Vec::new();
                let lookup = CatalogTopics(&self.catalog);
                for m in c.tick(&g.id, &lookup, now, &mut recs) {
                    tracing::info!(group = %g.id, member = %m, "consumer group member fenced by timeout");
                }
                if c.topics_changed(&lookup) {
                    c.refresh_topics(&g.id, &lookup, &mut recs);
                }
                debug_assert_eq!(c.validate(), Ok(()));
                recs.extend(self.maybe_downgrade(g, now));
                if !recs.is_empty() {
                    writes.push((g.id.clone(), recs));
                }
                if was_empty != g.is_empty() {
                    g.state_since_ms = now;
                }
            }
        }
        let mut tickets = Vec::new();
        for (group, recs) in writes {
            match self.append(&group, recs).await {
                Ok(t) => tickets.push((group, t)),
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "writing the consumer group's state failed")
                }
            }
        }
        drop(order);
        for (group, t) in tickets {
            if let Err(e) = t.wait().await {
                tracing::warn!(group = %group, error = %e, "writing the consumer group's state failed");
            }
        }
    }

    // ---- offsets -------------------------------------------------------------------------

    /// OffsetCommit: checks the member and appends the offsets now (so commits pipelined on
    /// one connection share fsyncs, like produces); the returned future waits until they are
    /// durable, makes them visible, and yields one error code per entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn offset_commit(
        self: &Arc<Self>,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        api_version: i16,
        entries: Vec<OffsetCommitEntry>,
    ) -> BoxFuture<Vec<i16>> {
        let ready =
            |codes: Vec<i16>| -> BoxFuture<Vec<i16>> { Box::pin(std::future::ready(codes)) };
        let now = self.now_ms();
        let group_error = {
            let mut groups = self.lock();
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, now));
            check_offset_commit(group, generation, member_id, instance, Some(api_version))
        };
        if group_error != ec::NONE {
            return ready(vec![group_error; entries.len()]);
        }
        let mut codes = vec![ec::NONE; entries.len()];
        let mut batch = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if self.catalog.partition(&e.topic, e.partition).is_none() {
                codes[i] = ec::UNKNOWN_TOPIC_OR_PARTITION;
            } else if e.metadata.len() > self.offsets_config.metadata_max_bytes {
                codes[i] = ec::OFFSET_METADATA_TOO_LARGE;
            } else {
                let key = Key::Offset {
                    group: group_id.to_string(),
                    topic: e.topic.clone(),
                    partition: e.partition,
                };
                let value = OffsetValue {
                    offset: e.offset,
                    leader_epoch: e.leader_epoch,
                    metadata: e.metadata.clone(),
                    commit_timestamp: now,
                };
                batch.push((i, key, value));
            }
        }
        if batch.is_empty() {
            return ready(codes);
        }
        let recs = batch
            .iter()
            .map(|(_, k, v)| (k.clone(), Some(records::encode_offset_value(v))))
            .collect();
        let appended = self.append(group_id, recs).await;
        let this = self.clone();
        let group_id = group_id.to_string();
        Box::pin(async move {
            let durable = match appended {
                Ok(ticket) => ticket
                    .wait()
                    .await
                    .map(|()| ticket.base_offset)
                    .map_err(|e| e.code()),
                Err(e) => Err(e.code()),
            };
            match durable {
                Ok(base_offset) => {
                    let mut groups = this.lock();
                    let group = groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now));
                    for (n, (_, key, value)) in batch.into_iter().enumerate() {
                        if let Key::Offset {
                            topic, partition, ..
                        } = key
                        {
                            apply_offset(group, topic, partition, value, base_offset + n as i64);
                        }
                    }
                }
                Err(code) => {
                    for (i, _, _) in batch {
                        codes[i] = code;
                    }
                }
            }
            codes
        })
    }

    /// OffsetFetch v9+ of a consumer group's member: its id and epoch must be current (no
    /// id and a negative epoch: a fetch from outside the group, always allowed).
    pub fn check_offset_fetch(&self, group_id: &str, member_id: &str, member_epoch: i32) -> i16 {
        let groups = self.lock();
        match groups.get(group_id).and_then(|g| g.consumer.as_ref()) {
            Some(c) => c.check_member_epoch(member_id, member_epoch, true),
            None => ec::NONE,
        }
    }

    /// OffsetFetch: the committed offsets of `topics` (None: every committed partition).
    pub fn offset_fetch(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let groups = self.lock();
        let group = groups.get(group_id);
        match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(t, parts)| {
                    parts.iter().map(move |p| {
                        let c = group.and_then(|g| g.offsets.get(&(t.clone(), *p)).cloned());
                        (t.clone(), *p, c)
                    })
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete: removes committed offsets of partitions the group does not consume.
    /// Err is a group-level error; Ok has one code per partition.
    pub async fn offset_delete(
        self: &Arc<Self>,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, GroupError> {
        let (codes, tombstones) = {
            let groups = self.lock();
            let Some(group) = groups.get(group_id) else {
                return Err(GroupError::NotFound(group_id.to_string()));
            };
            let subscribed = subscribed_topics(group);
            let mut codes = Vec::new();
            let mut tombstones = Vec::new();
            for (t, p) in partitions {
                if subscribed.iter().any(|s| s == t) {
                    codes.push(ec::GROUP_SUBSCRIBED_TO_TOPIC);
                } else {
                    codes.push(ec::NONE);
                    if group.offsets.contains_key(&(t.clone(), *p)) {
                        tombstones.push((
                            Key::Offset {
                                group: group_id.to_string(),
                                topic: t.clone(),
                                partition: *p,
                            },
                            None,
                        ));
                    }
                }
            }
            (codes, tombstones)
        };
        if !tombstones.is_empty() {
            let keys: Vec<Key> = tombstones.iter().map(|(k, _)| k.clone()).collect();
            self.write(group_id, tombstones).await?;
            let mut groups = self.lock();
            if let Some(group) = groups.get_mut(group_id) {
                for k in keys {
                    if let Key::Offset {
                        topic, partition, ..
                    } = k
                    {
                        group.offsets.remove(&(topic, partition));
                    }
                }
            }
        }
        Ok(codes)
    }

    /// Lag per committed partition of a group (log end = high watermark).
    pub fn lag(&self, group_id: &str) -> Vec<PartitionLag> {
        self.offset_fetch(group_id, None)
            .into_iter()
            .filter_map(|(topic, partition, c)| {
                let c = c?;
                let log_end_offset = self
                    .catalog
                    .partition(&topic, partition)?
                    .state()
                    .high_watermark;
                Some(PartitionLag {
                    lag: (log_end_offset - c.offset).max(0),
                    topic,
                    partition,
                    committed_offset: c.offset,
                    log_end_offset,
                })
            })
            .collect()
    }

    // ---- admin -----------------------------------------------------------------------------

    /// Every group this coordinator knows, sorted by group id (ListGroups, admin API).
    pub fn list(&self) -> Vec<GroupSummary> {
        let groups = self.lock();
        let name = |id| self.topic_name(id);
        let mut out: Vec<GroupSummary> = groups.values().map(|g| summary(g, &name)).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// One group (DescribeGroups, admin API); None if unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let name = |id| self.topic_name(id);
        self.lock().get(group_id).map(|g| summary(g, &name))
    }

    /// DeleteGroups for one group: only an empty group can go; its offsets go with it.
    pub async fn delete_group(self: &Arc<Self>, group_id: &str) -> i16 {
        let tombstones = {
            let mut groups = self.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return ec::GROUP_ID_NOT_FOUND;
            };
            if !group.is_empty() {
                return ec::NON_EMPTY_GROUP;
            }
            group.state = GroupState::Dead;
            let mut t: Vec<(Key, Option<Bytes>)> = group
                .offsets
                .keys()
                .map(|(topic, partition)| {
                    (
                        Key::Offset {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        None,
                    )
                })
                .collect();
            t.push((
                Key::Group {
                    group: group_id.to_string(),
                },
                None,
            ));
            if let Some(c) = &group.consumer {
                t.extend(c.tombstones(group_id));
            }
            t
        };
        let result = self.write(group_id, tombstones).await;
        let mut groups = self.lock();
        match result {
            Ok(_) => {
                if groups
                    .get(group_id)
                    .is_some_and(|g| g.state == GroupState::Dead)
                {
                    groups.remove(group_id);
                }
                tracing::info!(group = group_id, "group deleted");
                ec::NONE
            }
            Err(e) => {
                if let Some(g) = groups.get_mut(group_id) {
                    g.state = GroupState::Empty;
                }
                e.code()
            }
        }
    }

    // ---- persistence -----------------------------------------------------------------------

    /// Append records for `group_id` to its `__consumer_offsets` partition and wait until
    /// they are durable. Returns the offset of the first record.
    async fn write(
        &self,
        group_id: &str,
        recs: Vec<(Key, Option<Bytes>)>,
    ) -> Result<i64, GroupError> {
        let ticket = self.append(group_id, recs).await?;
        ticket.wait().await?;
        Ok(ticket.base_offset)
    }

    /// Append records for `group_id` to its `__consumer_offsets` partition, without waiting
    /// for the fsync (awaits only the creation of the topic, the first time).
    /// Appends a consumer group's records while `order` (the `consumer_order` guard taken
    /// before the change was made) is held, so records reach the log in the order of their
    /// changes, then releases it: the returned future waits for durability without holding
    /// up the next change. Errors are the codes to answer.
    async fn append_in_order(
        &self,
        order: tokio::sync::MutexGuard<'_, ()>,
        group_id: &str,
        recs: Vec<(Key, Option<Bytes>)>,
    ) -> impl std::future::Future<Output = Result<(), i16>> + Send + 'static {
        let appended = self.append(group_id, recs).await;
        drop(order);
        async move {
            match appended {
                Ok(ticket) => ticket.wait().await.map_err(|e| e.code()),
                Err(e) => Err(e.code()),
            }
        }
    }

    async fn append(
        &self,
        group_id: &str,
        recs: Vec<(Key, Option<Bytes>)>,
    ) -> Result<DurableTicket, GroupError> {
        let records: Vec<InternalRecord> = recs
            .into_iter()
            .map(|(key, value)| InternalRecord {
                key: records::encode_key(&key),
                value,
            })
            .collect();
        Ok(self.offsets_topic.append(group_id, &records).await?)
    }

    /// Rebuild groups and offsets from `__consumer_offsets` (at start, before serving).
    pub fn load(&self) -> Result<(), MetadataError> {
        let now = self.now_ms();
        let records_read = self.offsets_topic.replay(|offsets_partition, r| {
            if r.control {
                let commit = r
                    .key
                    .as_deref()
                    .and_then(marker_type_of_key)
                    .is_some_and(|kind| kind == MARKER_COMMIT);
                self.complete_txn_offsets(r.producer_id, offsets_partition, commit);
            } else if r.transactional {
                self.replay_txn_offset(&r, offsets_partition);
            } else {
                replay(&mut self.lock(), &r, now, &self.config);
            }
        })?;
        let mut groups = self.lock();
        groups.retain(|_, g| !(g.is_empty() && g.offsets.is_empty() && g.protocol_type.is_none()));
        let timings = self.consumer_timings();
        for g in groups.values_mut() {
            if let Some(c) = g.consumer.as_mut() {
                c.restart_timers(now, &timings);
                if let Err(e) = c.validate() {
                    tracing::warn!(group = %g.id, error = %e, "consumer group replayed inconsistent");
                }
            }
        }
        tracing::info!(
            groups = groups.len(),
            records = records_read,
            "consumer groups loaded from {OFFSETS_TOPIC}"
        );
        Ok(())
    }

    /// A transactional offset commit read back at start: pending until its marker.
    fn replay_txn_offset(&self, r: &ReplayedRecord, offsets_partition: i32) {
        let (Some(k), Some(v)) = (&r.key, &r.value) else {
            return;
        };
        match (records::decode_key(k), records::decode_offset_value(v)) {
            (
                Ok(Key::Offset {
                    group,
                    topic,
                    partition,
                }),
                Ok(value),
            ) => self
                .lock_pending()
                .entry(r.producer_id)
                .or_default()
                .push(PendingTxnOffset {
                    group,
                    topic,
                    partition,
                    value,
                    record_offset: r.offset,
                    offsets_partition,
                }),
            _ => {
                tracing::warn!(
                    offset = r.offset,
                    "skipping a transactional {OFFSETS_TOPIC} record"
                )
            }
        }
    }

    /// Expire sessions and rebalances (every tick) and old offsets (every retention check).
    /// Returns the metadata records of groups that became Empty, for the timer to write.
    fn tick(&self, now: i64) -> Vec<(String, GroupValue)> {
        let mut groups = self.lock();
        let mut to_persist = Vec::new();
        for g in groups.values_mut() {
            g.tick(&self.config, now);
            debug_assert_eq!(g.validate(), Ok(()));
            if g.persist_pending {
                g.persist_pending = false;
                to_persist.push((g.id.clone(), group_value(g, now)));
            }
        }
        to_persist
    }

    fn expire_offsets(&self, now: i64) -> Vec<(String, Vec<Key>)> {
        let retention = self.offsets_config.retention_ms;
        let mut groups = self.lock();
        let mut out = Vec::new();
        for g in groups.values_mut() {
            if !g.is_empty() {
                continue;
            }
            let expired: Vec<(String, i32)> = if g.protocol_type.is_some() {
                // A consumer group's offsets expire together, once it has been empty long
                // enough (Kafka 2.1+, KIP-211).
                if now - g.state_since_ms >= retention {
                    g.offsets.keys().cloned().collect()
                } else {
                    Vec::new()
                }
            } else {
                // Offsets committed outside any group expire one by one.
                g.offsets
                    .iter()
                    .filter(|(_, c)| now - c.commit_timestamp >= retention)
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            if expired.is_empty() {
                continue;
            }
            let mut keys = Vec::new();
            for (topic, partition) in expired {
                g.offsets.remove(&(topic.clone(), partition));
                keys.push(Key::Offset {
                    group: g.id.clone(),
                    topic,
                    partition,
                });
            }
            if g.offsets.is_empty() && g.protocol_type.is_some() {
                match &g.consumer {
                    Some(c) => keys.extend(c.tombstones(&g.id).into_iter().map(|(k, _)| k)),
                    None => keys.push(Key::Group {
                        group: g.id.clone(),
                    }),
                }
            }
            out.push((g.id.clone(), keys));
        }
        groups.retain(|_, g| !(g.is_empty() && g.offsets.is_empty()));
        out
    }

    /// The coordinator's timer: a cheap scan every 50 ms (sessions, rebalance deadlines) and
    /// the offsets retention check at its interval. Stops when the coordinator is dropped.
    pub fn spawn_timer(self: &Arc<Self>) {
        let weak: Weak<GroupCoordinator> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(50));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next_expiry = i64::MIN;
            loop {
                interval.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                let now = coordinator.now_ms();
                if next_expiry == i64::MIN {
                    next_expiry = now;
                }
                coordinator.consumer_tick(now).await;
                for (group, value) in coordinator.tick(now) {
                    let key = Key::Group {
                        group: group.clone(),
                    };
                    let recs = vec![(key, Some(records::encode_group_value(&value)))];
                    if let Err(e) = coordinator.write(&group, recs).await {
                        tracing::warn!(group = %group, error = %e, "writing the group's metadata failed");
                    }
                }
                if now >= next_expiry {
                    next_expiry = now + coordinator.offsets_config.retention_check_interval_ms;
                    for (group, keys) in coordinator.expire_offsets(now) {
                        let n = keys.len();
                        let recs = keys.into_iter().map(|k| (k, None)).collect();
                        match coordinator.write(&group, recs).await {
                            Ok(_) => {
                                tracing::info!(group = %group, records = n, "expired committed offsets")
                            }
                            Err(e) => {
                                tracing::warn!(group = %group, error = %e, "writing offset expiry failed")
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The catalog as the consumer protocol sees it: the topics clients may subscribe to.
struct CatalogTopics<'a>(&'a Catalog);

impl consumer::Topics for CatalogTopics<'_> {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        let t = self.0.topic(name)?;
        (!t.is_internal()).then(|| (t.id, t.partitions.len() as i32))
    }

    fn names(&self) -> Vec<String> {
        self.0
            .topics()
            .into_iter()
            .filter(|t| !t.is_internal())
            .map(|t| t.name.clone())
            .collect()
    }
}

/// Kafka's OffsetCommit checks: a commit from outside any group (generation -1, no member)
/// is allowed only while the group has no members; a member's commit needs its generation.
fn check_offset_commit(
    group: &Group,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
    api_version: Option<i16>,
) -> i16 {
    if group.state == GroupState::Dead {
        return ec::COORDINATOR_NOT_AVAILABLE;
    }
    if let Some(c) = &group.consumer {
        // A consumer group: the generation field carries the member epoch (v9+).
        return match api_version {
            Some(v) => c.check_commit(member_id, generation, v),
            None => c.check_member_epoch(member_id, generation, false),
        };
    }
    if generation < 0 && member_id.is_empty() && instance.is_none() {
        return if group.is_empty() {
            ec::NONE
        } else {
            ec::UNKNOWN_MEMBER_ID
        };
    }
    if let Err(code) = group.check_member(member_id, instance) {
        return code;
    }
    if generation != group.generation {
        return ec::ILLEGAL_GENERATION;
    }
    if group.state == GroupState::CompletingRebalance {
        return ec::REBALANCE_IN_PROGRESS;
    }
    ec::NONE
}

fn apply_offset(
    group: &mut Group,
    topic: String,
    partition: i32,
    v: OffsetValue,
    record_offset: i64,
) {
    let key = (topic, partition);
    if group
        .offsets
        .get(&key)
        .is_some_and(|c| c.record_offset > record_offset)
    {
        return; // a later commit already applied
    }
    group.offsets.insert(
        key,
        CommittedOffset {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
            record_offset,
        },
    );
}

fn replay(groups: &mut HashMap<String, Group>, r: &ReplayedRecord, now: i64, cfg: &GroupConfig) {
    let Some(key_bytes) = &r.key else { return };
    let key = match records::decode_key(key_bytes) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(offset = r.offset, error = %e, "skipping a {OFFSETS_TOPIC} record");
            return;
        }
    };
    let group = groups
        .entry(key.group().to_string())
        .or_insert_with(|| Group::new(key.group(), now));
    match (key, &r.value) {
        (
            Key::Offset {
                topic, partition, ..
            },
            Some(v),
        ) => match records::decode_offset_value(v) {
            Ok(v) => apply_offset(group, topic, partition, v, r.offset),
            Err(e) => tracing::warn!(offset = r.offset, error = %e, "skipping an offset record"),
        },
        (
            Key::Offset {
                topic, partition, ..
            },
            None,
        ) => {
            group.offsets.remove(&(topic, partition));
        }
        (Key::Group { .. }, Some(_)) if group.consumer.is_some() => {
            // A classic record left behind when the group became a consumer group.
        }
        (Key::Group { .. }, Some(v)) => match records::decode_group_value(v) {
            // Records of one group are written in generation order, except that an Empty
            // record is written by the timer and may land after a newer generation's.
            Ok(v) if v.generation < group.generation => {}
            Ok(v) => restore_group(group, v, now, cfg),
            Err(e) => tracing::warn!(offset = r.offset, error = %e, "skipping a group record"),
        },
        (Key::Group { .. }, None) if group.consumer.is_some() => {
            // The classic record of a group that became a consumer group.
        }
        (Key::Group { .. }, None) => {
            let offsets = std::mem::take(&mut group.offsets);
            let id = group.id.clone();
            *group = Group::new(&id, now);
            group.offsets = offsets;
        }
        (key, v) => replay_consumer(group, key, v.as_deref(), r.offset, now, cfg),
    }
}

/// A consumer group record read back (key v3-v8).
fn replay_consumer(
    group: &mut Group,
    key: Key,
    v: Option<&[u8]>,
    offset: i64,
    now: i64,
    cfg: &GroupConfig,
) {
    let t = consumer::ConsumerTimings {
        session_timeout_ms: cfg.consumer_session_timeout_ms,
        heartbeat_interval_ms: cfg.consumer_heartbeat_interval_ms,
        max_size: cfg.max_size,
    };
    let warn = |e: records::DecodeError| {
        tracing::warn!(offset, error = %e, "skipping a consumer group record");
    };
    if matches!(key, Key::ConsumerGroup { .. }) && v.is_none() {
        // The group's consumer-protocol state is gone (deleted, or turned classic).
        group.consumer = None;
        return;
    }
    if v.is_none() && group.consumer.is_none() {
        return;
    }
    if group.consumer.is_none() {
        // A consumer group replaces whatever classic state came before it.
        let offsets = std::mem::take(&mut group.offsets);
        *group = Group::new(&group.id.clone(), now);
        group.offsets = offsets;
        group.consumer = Some(consumer::ConsumerGroup::default());
    }
    group.protocol_type = Some("consumer".to_string());
    let c = group.consumer.as_mut().expect("a consumer group");
    match key {
        Key::ConsumerGroup { .. } => match records::decode_epoch_value(v.unwrap_or_default()) {
            Ok(e) => c.group_epoch = e,
            Err(e) => warn(e),
        },
        Key::ConsumerPartitionMetadata { .. } => match v.map(records::decode_topics_metadata) {
            Some(Ok(m)) => c.topics = m,
            Some(Err(e)) => warn(e),
            None => c.topics.clear(),
        },
        Key::ConsumerTargetEpoch { .. } => match v.map(records::decode_epoch_value) {
            Some(Ok(e)) => c.assignment_epoch = e,
            Some(Err(e)) => warn(e),
            None => c.assignment_epoch = 0,
        },
        Key::ConsumerMember { member, .. } => match v.map(records::decode_member_metadata) {
            Some(Ok(m)) => c.replay_member(&member, Some(m), now, &t),
            Some(Err(e)) => warn(e),
            None => c.replay_member(&member, None, now, &t),
        },
        Key::ConsumerTargetMember { member, .. } => {
            match v.map(records::decode_target_assignment) {
                Some(Ok(a)) => {
                    c.target.insert(member, a);
                }
                Some(Err(e)) => warn(e),
                None => {
                    c.target.remove(&member);
                }
            }
        }
        Key::ConsumerCurrentAssignment { member, .. } => {
            match v.map(records::decode_current_assignment) {
                Some(Ok(a)) => c.replay_current(&member, Some(a), now, &t),
                Some(Err(e)) => warn(e),
                None => c.replay_current(&member, None, now, &t),
            }
        }
        Key::Offset { .. } | Key::Group { .. } => {}
    }
    if group.is_empty() {
        group.state_since_ms = now;
    }
}

/// A group as its last metadata record left it: Stable with its members (who get a fresh
/// session to come back and heartbeat), or Empty.
fn restore_group(group: &mut Group, v: GroupValue, now: i64, _cfg: &GroupConfig) {
    let offsets = std::mem::take(&mut group.offsets);
    let id = group.id.clone();
    *group = Group::new(&id, now);
    group.offsets = offsets;
    group.generation = v.generation;
    group.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
    group.protocol = v.protocol;
    group.state_since_ms = if v.current_state_timestamp > 0 {
        v.current_state_timestamp
    } else {
        now
    };
    if v.members.is_empty() || group.protocol.is_none() {
        group.leader = None;
        return;
    }
    let protocol = group.protocol.clone().unwrap_or_default();
    for (seq, m) in v.members.into_iter().enumerate() {
        if let Some(inst) = &m.group_instance_id {
            group
                .static_members
                .insert(inst.clone(), m.member_id.clone());
        }
        group.members.insert(
            m.member_id.clone(),
            state::Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                join_waiter: None,
                sync_waiter: None,
                session_deadline_ms: now + m.session_timeout_ms as i64,
                join_seq: seq as u64,
            },
        );
    }
    group.leader = v.leader.filter(|l| group.members.contains_key(l));
    if group.leader.is_none() {
        group.leader = group.members.keys().next().cloned();
    }
    group.state = GroupState::Stable;
}

/// The metadata record of a group, stamped `now_ms`.
fn group_value(g: &Group, now_ms: i64) -> GroupValue {
    let protocol = g.protocol.clone().unwrap_or_default();
    GroupValue {
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        generation: g.generation,
        protocol: g.protocol.clone(),
        leader: g.leader.clone(),
        current_state_timestamp: now_ms,
        members: g
            .members
            .values()
            .map(|m| MemberValue {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

fn summary(g: &Group, topic_name: &dyn Fn(Uuid) -> String) -> GroupSummary {
    if let Some(c) = &g.consumer {
        let named = |a: &records::Assignment| -> Vec<(Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(id, parts)| (*id, topic_name(*id), parts.iter().copied().collect()))
                .collect()
        };
        return GroupSummary {
            group_id: g.id.clone(),
            state: c.state_name(),
            group_type: "consumer",
            protocol_type: "consumer".into(),
            protocol: c.assignor().to_string(),
            members: Vec::new(),
            consumer: Some(ConsumerSummary {
                group_epoch: c.group_epoch,
                assignment_epoch: c.assignment_epoch,
                assignor: c.assignor(),
                members: c
                    .members
                    .values()
                    .map(|m| ConsumerMemberSummary {
                        member_id: m.member_id.clone(),
                        instance_id: m.meta.instance_id.clone(),
                        rack_id: m.meta.rack_id.clone(),
                        member_epoch: m.member_epoch,
                        state: m.state.name(),
                        client_id: m.meta.client_id.clone(),
                        client_host: m.meta.client_host.clone(),
                        subscribed_topic_names: m.meta.subscribed_topic_names.clone(),
                        assignment: named(&m.assigned),
                        target_assignment: named(
                            c.target.get(&m.member_id).unwrap_or(&Default::default()),
                        ),
                        classic: m.is_classic(),
                    })
                    .collect(),
            }),
        };
    }
    let protocol = g.protocol.clone().unwrap_or_default();
    GroupSummary {
        group_id: g.id.clone(),
        state: g.state.name(),
        group_type: "classic",
        consumer: None,
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol: protocol.clone(),
        members: g
            .members
            .values()
            .map(|m| MemberSummary {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

/// Topics the members of a consumer group subscribe to (from their "consumer" protocol
/// metadata), for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC.
fn subscribed_topics(g: &Group) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if let Some(c) = &g.consumer {
        // A consumer group (KIP-848): its members' subscriptions, by name and by the
        // topics their regular expressions matched at the last assignment.
        let mut topics: Vec<String> = c
            .members
            .values()
            .flat_map(|m| m.meta.subscribed_topic_names.iter().cloned())
            .collect();
        topics.extend(c.topics.keys().cloned());
        return topics;
    }
    if g.protocol_type.as_deref() != Some("consumer") {
        return Vec::new();
    }
    let protocol = g.protocol.clone().unwrap_or_default();
    let mut topics = Vec::new();
    for m in g.members.values() {
        let mut buf = m.metadata_for(&protocol);
        if buf.len() < 2 {
            continue;
        }
        let version = bytes::Buf::get_i16(&mut buf);
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)) {
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
    }
    topics
}

/// For the shell's join handler: the outcome of a join, now or when the rebalance ends.
pub async fn join_outcome(action: JoinAction, member_id: &str) -> JoinOutcome {
    match action {
        JoinAction::Now(out) => out,
        JoinAction::Wait(rx) => rx
            .await
            .unwrap_or_else(|_| JoinOutcome::error(ec::UNKNOWN_MEMBER_ID, member_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64, commit_timestamp: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp,
            record_offset: 0,
        }
    }

    #[test]
    fn partition_of_a_group_is_kafkas() {
        // Math.abs(id.hashCode()) % 50, computed with Java 17.
        assert_eq!(offsets_partition_for("my-group", 50), 12);
        assert_eq!(offsets_partition_for("weir", 50), 9);
        assert_eq!(offsets_partition_for("ünï", 50), 21);
        assert_eq!(offsets_partition_for("", 50), 0);
    }

    /// A coordinator over an empty catalog on a simulated disk.
    async fn coordinator(offsets_config: OffsetsConfig) -> GroupCoordinator {
        use crate::catalog::CatalogConfig;
        use crate::clock::SystemClock;
        let fs: Arc<dyn weir_storage::Fs> = Arc::new(weir_storage::SimFs::new(1));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = CatalogConfig {
            data_dir: "/data".into(),
            topic_defaults: Default::default(),
            num_partitions: 1,
            producer_id_expiration_ms: 1,
        };
        let catalog = Arc::new(
            Catalog::open(config, fs, Arc::clone(&clock), true)
                .await
                .unwrap(),
        );
        let offsets = InternalTopic::new(
            Arc::clone(&catalog),
            OFFSETS_TOPIC,
            offsets_config.topic_num_partitions,
            Arc::clone(&clock),
        );
        GroupCoordinator::new(
            GroupConfig::default(),
            offsets_config,
            offsets,
            catalog,
            clock,
        )
    }

    /// The records a consumer group writes rebuild it: epochs, members, assignments, target.
    #[test]
    fn a_consumer_group_replays_from_its_records() {
        struct One;
        impl consumer::Topics for One {
            fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
                (name == "t").then_some((Uuid::from_u128(9), 6))
            }
            fn names(&self) -> Vec<String> {
                vec!["t".into()]
            }
        }
        let cfg = GroupConfig::default();
        let t = consumer::ConsumerTimings {
            session_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            max_size: 10,
        };
        let mut live = consumer::ConsumerGroup::default();
        let mut recs = Vec::new();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            live.heartbeat(
                "g",
                consumer::Heartbeat {
                    member_id: id.to_string(),
                    member_epoch: 0,
                    instance_id: (i == 2).then(|| "static".to_string()),
                    rebalance_timeout_ms: 1000,
                    subscribed_topic_names: Some(vec!["t".into()]),
                    owned: Some(Default::default()),
                    ..Default::default()
                },
                &One,
                &t,
                i as i64,
                || unreachable!(),
                &mut recs,
            );
        }
        live.fence("g", "b", &One, &mut recs);
        let mut group = Group::new("g", 0);
        for (n, (key, value)) in recs.into_iter().enumerate() {
            let bytes = value.map(|v| v.to_vec());
            // Through the real key encoding, as replay reads it.
            let key = records::decode_key(&records::encode_key(&key)).unwrap();
            replay_consumer(&mut group, key, bytes.as_deref(), n as i64, 10, &cfg);
        }
        let replayed = group.consumer.expect("a consumer group");
        replayed.validate().unwrap();
        assert_eq!(replayed.group_epoch, live.group_epoch);
        assert_eq!(replayed.assignment_epoch, live.assignment_epoch);
        assert_eq!(replayed.target, live.target);
        assert_eq!(replayed.topics, live.topics);
        assert_eq!(replayed.static_members, live.static_members);
        let view = |c: &consumer::ConsumerGroup| -> Vec<_> {
            c.members
                .values()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.member_epoch,
                        m.assigned.clone(),
                        m.meta.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(view(&replayed), view(&live));
    }

    #[tokio::test]
    async fn offsets_expire_by_emptiness_for_groups_and_by_age_for_standalone_commits() {
        let retention = 1_000;
        let c = coordinator(OffsetsConfig {
            retention_ms: retention,
            ..Default::default()
        })
        .await;
        {
            let mut groups = c.lock();
            // A consumer group that became empty at t=100.
            let mut g = Group::new("cg", 100);
            g.protocol_type = Some("consumer".into());
            g.offsets.insert(("t".into(), 0), committed(5, 0));
            g.offsets.insert(("t".into(), 1), committed(6, 900));
            groups.insert("cg".into(), g);
            // Commits from outside any group, at t=0 and t=500.
            let mut s = Group::new("standalone", 0);
            s.offsets.insert(("t".into(), 0), committed(1, 0));
            s.offsets.insert(("t".into(), 1), committed(2, 500));
            groups.insert("standalone".into(), s);
        }
        let mut first = c.expire_offsets(1_000);
        first.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            first.len(),
            1,
            "only the standalone commit at t=0 is old enough"
        );
        assert_eq!(first[0].0, "standalone");
        assert_eq!(first[0].1.len(), 1);

        let mut second = c.expire_offsets(1_100);
        second.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(second[0].0, "cg");
        // Both offsets together (the group was empty long enough), then the group record.
        assert_eq!(second[0].1.len(), 3);
        assert!(matches!(second[0].1[2], Key::Group { .. }));
        assert!(
            c.describe("cg").is_none(),
            "an empty group with no offsets is gone"
        );
        assert!(c.describe("standalone").is_some());
        assert_eq!(c.expire_offsets(1_500).len(), 1);
        assert!(c.describe("standalone").is_none());
    }
}
