//! Reading a topic: a fetcher over a set of partitions (by explicit assignment), and a
//! classic consumer-group member (JoinGroup with protocol type "consumer" and the "range"
//! assignor, SyncGroup, Heartbeat, OffsetFetch, OffsetCommit, LeaveGroup) that drives it.
//!
//! Positions are "the next offset to read". What is committed is what the caller
//! acknowledged as delivered ([`Consumer::ack`], [`Consumer::ack_all`]), never merely
//! fetched, so a crash between fetch and print cannot skip records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::client::Client;
use crate::error::{check, Error, Result};
use crate::groups::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, range_assign,
};
use crate::records::{decode_fetched, ConsumedRecord};

/// The largest per-partition fetch size the consumer grows to (for a batch that does not
/// fit the configured one on a broker that does not return oversized batches, KIP-74).
pub const MAX_PARTITION_FETCH_BYTES: i32 = 64 * 1024 * 1024;

/// Where reading starts when there is no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The log start offset (Kafka's `earliest`).
    Beginning,
    /// The log end offset (`latest`): only records produced from now on.
    End,
    /// This offset; clamped by the broker's answer if out of range.
    Offset(i64),
    /// The first offset whose timestamp is at or after this (ms); the end if none.
    Timestamp(i64),
}

/// What to read and how much to hold at once.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The one topic read.
    pub topic: String,
    /// Where to start in partitions without a committed offset.
    pub start: StartFrom,
    /// `isolation.level=read_committed`: stop at the last stable offset and skip aborted
    /// transactions.
    pub read_committed: bool,
    /// How long one Fetch may wait for data.
    pub max_wait_ms: i32,
    /// `fetch.max.bytes`: the most one Fetch response may carry over all partitions.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`: the most one Fetch asks of each partition (grown up to
    /// [`MAX_PARTITION_FETCH_BYTES`] for a batch that does not fit).
    pub partition_max_bytes: i32,
    /// Heap bytes of records one poll may decode, shared evenly by the partitions fetched
    /// (each reads at least one batch). Compressed data expands, so this, not the fetch
    /// sizes, is what bounds the consumer's memory.
    pub decode_budget: usize,
    /// Stop once every partition reaches the end it had when reading started.
    pub stop_at_end: bool,
}

impl ConsumerConfig {
    /// Read `topic` from the beginning to its current end, with Kafka's default sizes.
    pub fn new(topic: &str) -> ConsumerConfig {
        ConsumerConfig {
            topic: topic.to_string(),
            start: StartFrom::Beginning,
            read_committed: false,
            max_wait_ms: 500,
            fetch_max_bytes: 16 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            decode_budget: 8 * 1024 * 1024,
            stop_at_end: true,
        }
    }
}

/// Membership of a classic consumer group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The `group.id` to join.
    pub group: String,
    /// `session.timeout.ms`: without a heartbeat for this long the coordinator evicts us.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` as JoinGroup's rebalance timeout: how long the coordinator
    /// waits for us to rejoin during a rebalance.
    pub rebalance_timeout_ms: i32,
    /// How often `poll` sends a Heartbeat.
    pub heartbeat_interval: Duration,
    /// How often `poll` commits the acknowledged offsets.
    pub auto_commit_interval: Duration,
}

impl GroupConfig {
    /// Join `group` with the Java consumer's default timeouts.
    pub fn new(group: &str) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            heartbeat_interval: Duration::from_secs(3),
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

struct Member {
    config: GroupConfig,
    coordinator: i32,
    member_id: String,
    generation_id: i32,
    last_heartbeat: Instant,
    last_commit: Instant,
    /// Committed positions as of the last commit (only changes are committed again).
    committed: BTreeMap<i32, i64>,
}

/// Reads one topic, either from partitions it was given or as a group member; tracks what
/// the caller acknowledged so only that is committed.
pub struct Consumer<'a> {
    client: &'a mut Client,
    config: ConsumerConfig,
    member: Option<Member>,
    /// partition -> next offset to fetch.
    positions: BTreeMap<i32, i64>,
    /// partition -> next offset the caller has not yet acknowledged.
    acked: BTreeMap<i32, i64>,
    /// partition -> end offset when reading started (stop_at_end).
    ends: BTreeMap<i32, i64>,
    leaders: BTreeMap<i32, i32>,
}

fn gid(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl<'a> Consumer<'a> {
    /// Read `partitions` (all of the topic's if None) without a group.
    pub async fn assign(
        client: &'a mut Client,
        config: ConsumerConfig,
        partitions: Option<&[i32]>,
    ) -> Result<Consumer<'a>> {
        let parts = client.partitions_of(&config.topic, partitions).await?;
        let mut c = Consumer {
            client,
            config,
            member: None,
            positions: BTreeMap::new(),
            acked: BTreeMap::new(),
            ends: BTreeMap::new(),
            leaders: BTreeMap::new(),
        };
        c.start(&parts, &BTreeMap::new()).await?;
        Ok(c)
    }

    /// Join `group` and read the partitions it assigns; committed offsets win over `start`.
    pub async fn join(
        client: &'a mut Client,
        config: ConsumerConfig,
        group: GroupConfig,
    ) -> Result<Consumer<'a>> {
        // The topic must exist: joining for a missing topic would just sit idle.
        client.topic_info(&config.topic).await?;
        let coordinator = client.group_coordinator(&group.group).await?;
        let mut c = Consumer {
            client,
            config,
            member: Some(Member {
                config: group,
                coordinator,
                member_id: String::new(),
                generation_id: -1,
                last_heartbeat: Instant::now(),
                last_commit: Instant::now(),
                committed: BTreeMap::new(),
            }),
            positions: BTreeMap::new(),
            acked: BTreeMap::new(),
            ends: BTreeMap::new(),
            leaders: BTreeMap::new(),
        };
        c.rejoin().await?;
        Ok(c)
    }

    /// The id the coordinator gave us; None without a group.
    pub fn member_id(&self) -> Option<&str> {
        self.member.as_ref().map(|m| m.member_id.as_str())
    }

    /// The group generation our assignment belongs to; None without a group.
    pub fn generation_id(&self) -> Option<i32> {
        self.member.as_ref().map(|m| m.generation_id)
    }

    /// The partitions being read now, in order.
    pub fn assignment(&self) -> Vec<i32> {
        self.positions.keys().copied().collect()
    }

    /// Resolve start positions of `parts` (committed offsets first) and the end offsets.
    async fn start(&mut self, parts: &[i32], committed: &BTreeMap<i32, i64>) -> Result<()> {
        let topic = self.config.topic.clone();
        let info = self.client.topic_info(&topic).await?;
        self.leaders = info.leaders();
        self.positions.clear();
        self.acked.clear();
        self.ends.clear();
        if parts.is_empty() {
            return Ok(());
        }
        let rc = self.config.read_committed;
        let starts = self
            .client
            .list_offsets(&topic, parts, EARLIEST_TIMESTAMP, rc)
            .await?;
        let ends = self
            .client
            .list_offsets(&topic, parts, LATEST_TIMESTAMP, rc)
            .await?;
        let by_time = match self.config.start {
            StartFrom::Timestamp(ms) => {
                Some(self.client.list_offsets(&topic, parts, ms, rc).await?)
            }
            _ => None,
        };
        for &p in parts {
            let (start, end) = (starts[&p].0, ends[&p].0);
            let pos = match committed.get(&p) {
                Some(&c) => c,
                None => match self.config.start {
                    StartFrom::Beginning => start,
                    StartFrom::End => end,
                    // Clamped into the log, as a Kafka consumer's offset reset would.
                    StartFrom::Offset(o) if o < 0 => (end + o).max(start),
                    StartFrom::Offset(o) => o.clamp(start, end),
                    StartFrom::Timestamp(_) => match by_time.as_ref().expect("listed")[&p].0 {
                        -1 => end,
                        o => o,
                    },
                },
            };
            self.positions.insert(p, pos);
            self.acked.insert(p, pos);
            self.ends.insert(p, end);
        }
        Ok(())
    }

    /// True once every partition was read up to the end it had when reading started.
    pub fn at_end(&self) -> bool {
        self.positions
            .iter()
            .all(|(p, pos)| *pos >= *self.ends.get(p).unwrap_or(&0))
    }

    /// The caller delivered `record`: commit up to it.
    pub fn ack(&mut self, record: &ConsumedRecord) {
        let e = self.acked.entry(record.partition).or_insert(0);
        *e = (*e).max(record.offset + 1);
    }

    /// The caller delivered everything fetched so far.
    pub fn ack_all(&mut self) {
        for (p, pos) in &self.positions {
            self.acked.insert(*p, *pos);
        }
    }

    /// One round of fetching (each leader once). May return nothing when no data arrived
    /// within max_wait_ms. In a group, also heartbeats, auto-commits and follows rebalances.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        self.group_upkeep().await?;
        let wanted: Vec<(i32, i64)> = self
            .positions
            .iter()
            .filter(|(p, pos)| !self.config.stop_at_end || **pos < *self.ends.get(p).unwrap_or(&0))
            .map(|(p, pos)| (*p, *pos))
            .collect();
        if wanted.is_empty() {
            if !self.config.stop_at_end || self.member.is_some() {
                // Nothing assigned (or all done in follow mode): wait, still heartbeating.
                tokio::time::sleep(Duration::from_millis(self.config.max_wait_ms as u64)).await;
            }
            return Ok(Vec::new());
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, pos) in wanted {
            by_leader
                .entry(*self.leaders.get(&p).unwrap_or(&-1))
                .or_default()
                .push((p, pos));
        }
        let mut out = Vec::new();
        // Positions move only when the whole poll succeeds: a failure at a later leader
        // must not skip the records already fetched from an earlier one.
        let mut advanced = Vec::new();
        let mut refresh = false;
        for (leader, parts) in by_leader {
            if leader < 0 {
                refresh = true;
                continue;
            }
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.config.max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_isolation_level(i8::from(self.config.read_committed))
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(sb(&self.config.topic)))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(p, pos)| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_fetch_offset(*pos)
                                    .with_partition_max_bytes(self.config.partition_max_bytes)
                            })
                            .collect(),
                    )]);
            let timeout = self.client.config().request_timeout
                + Duration::from_millis(self.config.max_wait_ms as u64);
            let conn = self.client.node(leader).await?;
            let resp = match conn.call_with_timeout(&req, timeout).await {
                Ok(r) => r,
                Err(e) => {
                    self.client.drop_node(leader);
                    return Err(e);
                }
            };
            check(resp.error_code, || "Fetch".into(), None)?;
            let fetched_parts: usize = resp.responses.iter().map(|t| t.partitions.len()).sum();
            let budget_each = (self.config.decode_budget / fetched_parts.max(1)).max(1);
            for t in &resp.responses {
                for pd in &t.partitions {
                    let p = pd.partition_index;
                    let Some(&pos) = self.positions.get(&p) else {
                        continue;
                    };
                    match pd.error_code {
                        0 => {}
                        // Leadership moved or metadata is stale: look again next round.
                        3 | 5 | 6 | 74 | 75 => {
                            refresh = true;
                            continue;
                        }
                        // Records deleted under us (retention, DeleteRecords) or a log
                        // truncated: go on from its start or end, like auto.offset.reset.
                        1 if pd.log_start_offset >= 0 => {
                            let to = if pos < pd.log_start_offset {
                                pd.log_start_offset
                            } else {
                                pd.high_watermark.max(pd.log_start_offset)
                            };
                            tracing::warn!(
                                "{}-{p}: offset {pos} is out of range (log {}..{}); going on from {to}",
                                self.config.topic,
                                pd.log_start_offset,
                                pd.high_watermark
                            );
                            advanced.push((p, to));
                            continue;
                        }
                        code => {
                            return Err(Error::kafka(
                                format!(
                                    "fetching {}-{p} at offset {pos} (log start {}, end {})",
                                    self.config.topic, pd.log_start_offset, pd.high_watermark
                                ),
                                code,
                                None,
                            ))
                        }
                    }
                    let aborted: Vec<(i64, i64)> = pd
                        .aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| (a.producer_id.0, a.first_offset))
                        .collect();
                    let data = pd.records.as_deref().unwrap_or(&[]);
                    let mut budget = budget_each;
                    let fetched =
                        decode_fetched(&self.config.topic, p, pos, data, &aborted, &mut budget)?;
                    if !data.is_empty() && fetched.next_offset == pos && !fetched.out_of_budget {
                        // Not one whole batch fit: a broker without KIP-74 cut the first
                        // batch at partition_max_bytes. Ask for more next time, up to a cap.
                        if self.config.partition_max_bytes >= MAX_PARTITION_FETCH_BYTES {
                            return Err(Error::Invalid(format!(
                                "{}-{p}: the batch at offset {pos} is larger than {MAX_PARTITION_FETCH_BYTES} bytes",
                                self.config.topic
                            )));
                        }
                        self.config.partition_max_bytes =
                            (self.config.partition_max_bytes.saturating_mul(2))
                                .min(MAX_PARTITION_FETCH_BYTES);
                        self.config.fetch_max_bytes = self
                            .config
                            .fetch_max_bytes
                            .max(self.config.partition_max_bytes);
                    }
                    let mut next = fetched.next_offset;
                    // A read_committed fetch stops at the last stable offset: aborted or
                    // control batches right before it still move the position.
                    if fetched.records.is_empty() && data.is_empty() && self.config.stop_at_end {
                        let limit = if self.config.read_committed {
                            pd.last_stable_offset
                        } else {
                            pd.high_watermark
                        };
                        // The partition's end moved below our target (records deleted):
                        // there is nothing more to wait for.
                        if limit >= 0 && limit <= pos {
                            self.ends.insert(p, pos);
                        }
                    }
                    if next < pos {
                        next = pos;
                    }
                    advanced.push((p, next));
                    out.extend(fetched.records);
                }
            }
        }
        for (p, next) in advanced {
            self.positions.insert(p, next);
        }
        if refresh {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Best effort: the records in hand are returned either way, and the next poll
            // looks again.
            match self.client.topic_info(&self.config.topic).await {
                Ok(info) => self.leaders = info.leaders(),
                Err(e) => tracing::debug!("metadata refresh failed: {e}"),
            }
        }
        Ok(out)
    }

    /// Commit the acknowledged positions now (group mode; a no-op otherwise).
    pub async fn commit(&mut self) -> Result<()> {
        let Some(m) = self.member.as_ref() else {
            return Ok(());
        };
        let changed: Vec<(i32, i64)> = self
            .acked
            .iter()
            .filter(|(p, off)| m.committed.get(p) != Some(off))
            .map(|(p, off)| (*p, *off))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(gid(&m.config.group))
            .with_generation_id_or_member_epoch(m.generation_id)
            .with_member_id(sb(&m.member_id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb(&self.config.topic)))
                .with_partitions(
                    changed
                        .iter()
                        .map(|(p, off)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*off)
                        })
                        .collect(),
                )]);
        let coordinator = m.coordinator;
        let resp = self.client.call_node(coordinator, &req).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    || {
                        format!(
                            "committing the offset of {}-{}",
                            self.config.topic, p.partition_index
                        )
                    },
                    None,
                )?;
            }
        }
        let m = self.member.as_mut().expect("checked above");
        for (p, off) in changed {
            m.committed.insert(p, off);
        }
        m.last_commit = Instant::now();
        Ok(())
    }

    /// Drop every connection (after an abandoned poll); later calls reconnect.
    pub fn reset_connections(&mut self) {
        self.client.reset();
    }

    /// Commit what was delivered and leave the group (group mode).
    pub async fn close(mut self) -> Result<()> {
        if self.member.is_none() {
            return Ok(());
        }
        let commit = self.commit().await;
        let m = self.member.as_ref().expect("group mode");
        let coordinator = m.coordinator;
        let conn = self.client.node(coordinator).await?;
        // v3 moved the member id into a list (batch leave, KIP-345).
        let req = if conn.version_of::<LeaveGroupRequest>()? >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid(&m.config.group))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(sb(&m.member_id))
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid(&m.config.group))
                .with_member_id(sb(&m.member_id))
        };
        let resp = conn.call(&req).await?;
        commit?;
        check(resp.error_code, || "LeaveGroup".into(), None)
    }

    async fn group_upkeep(&mut self) -> Result<()> {
        let Some(m) = self.member.as_ref() else {
            return Ok(());
        };
        if m.last_commit.elapsed() >= m.config.auto_commit_interval {
            match self.commit().await {
                Ok(()) => {}
                Err(e) if matches!(e.code(), Some(22 | 25 | 27)) => {}
                Err(e) => return Err(e),
            }
        }
        let m = self.member.as_ref().expect("group mode");
        if m.last_heartbeat.elapsed() < m.config.heartbeat_interval {
            return Ok(());
        }
        let req = HeartbeatRequest::default()
            .with_group_id(gid(&m.config.group))
            .with_generation_id(m.generation_id)
            .with_member_id(sb(&m.member_id));
        let coordinator = m.coordinator;
        let resp = self.client.call_node(coordinator, &req).await?;
        self.member.as_mut().expect("group mode").last_heartbeat = Instant::now();
        match resp.error_code {
            0 => Ok(()),
            // A rebalance: hand over what was delivered, then join the new generation.
            27 => {
                let _ = self.commit().await;
                self.rejoin().await
            }
            // Fenced out (session expired or generation moved on): join as new.
            22 | 25 => {
                let m = self.member.as_mut().expect("group mode");
                if resp.error_code == 25 {
                    m.member_id.clear();
                }
                self.rejoin().await
            }
            code => Err(Error::kafka("Heartbeat", code, None)),
        }
    }

    /// JoinGroup + SyncGroup until a generation is reached; then start the assigned partitions.
    async fn rejoin(&mut self) -> Result<()> {
        let topic = self.config.topic.clone();
        let mut attempts = 0;
        let assignment = loop {
            attempts += 1;
            if attempts > 20 {
                return Err(Error::Invalid(format!(
                    "could not join group {:?} after {} attempts",
                    self.member.as_ref().expect("group mode").config.group,
                    attempts - 1
                )));
            }
            let m = self.member.as_ref().expect("group mode");
            let group = m.config.group.clone();
            let join = JoinGroupRequest::default()
                .with_group_id(gid(&group))
                .with_session_timeout_ms(m.config.session_timeout_ms)
                .with_rebalance_timeout_ms(m.config.rebalance_timeout_ms)
                .with_member_id(sb(&m.member_id))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(encode_subscription(std::slice::from_ref(&topic)))]);
            let coordinator = m.coordinator;
            let wait = Duration::from_millis(m.config.rebalance_timeout_ms as u64)
                + self.client.config().request_timeout;
            let resp = self
                .client
                .node(coordinator)
                .await?
                .call_with_timeout(&join, wait)
                .await?;
            match resp.error_code {
                0 => {}
                // KIP-394: the first join only gets a member id; join again with it.
                79 => {
                    self.member.as_mut().expect("group mode").member_id =
                        resp.member_id.to_string();
                    continue;
                }
                25 => {
                    self.member.as_mut().expect("group mode").member_id.clear();
                    continue;
                }
                27 => continue,
                14..=16 => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let c = self.client.group_coordinator(&group).await?;
                    self.member.as_mut().expect("group mode").coordinator = c;
                    continue;
                }
                code => return Err(Error::kafka(format!("joining group {group:?}"), code, None)),
            }
            let member_id = resp.member_id.to_string();
            let generation_id = resp.generation_id;
            let mut assignments = Vec::new();
            if resp.leader == resp.member_id {
                let mut subs: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for mem in &resp.members {
                    subs.insert(
                        mem.member_id.to_string(),
                        decode_subscription(&mem.metadata)?,
                    );
                }
                let mut counts = BTreeMap::new();
                let mut topics: Vec<String> = subs.values().flatten().cloned().collect();
                topics.sort();
                topics.dedup();
                for t in topics {
                    if let Ok(info) = self.client.topic_info(&t).await {
                        counts.insert(t, info.partitions.len() as i32);
                    }
                }
                for (mem, a) in range_assign(&subs, &counts) {
                    assignments.push(
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(&mem))
                            .with_assignment(encode_assignment(&a)),
                    );
                }
            }
            let sync = SyncGroupRequest::default()
                .with_group_id(gid(&group))
                .with_generation_id(generation_id)
                .with_member_id(sb(&member_id))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(resp.protocol_name.clone())
                .with_assignments(assignments);
            let wait = Duration::from_millis(
                self.member
                    .as_ref()
                    .expect("group mode")
                    .config
                    .rebalance_timeout_ms as u64,
            ) + self.client.config().request_timeout;
            let sresp = self
                .client
                .node(coordinator)
                .await?
                .call_with_timeout(&sync, wait)
                .await?;
            {
                let m = self.member.as_mut().expect("group mode");
                m.member_id = member_id;
                m.generation_id = generation_id;
                m.last_heartbeat = Instant::now();
            }
            match sresp.error_code {
                0 => break decode_assignment(&sresp.assignment)?,
                27 | 22 => continue,
                25 => {
                    self.member.as_mut().expect("group mode").member_id.clear();
                    continue;
                }
                code => return Err(Error::kafka(format!("syncing group {group:?}"), code, None)),
            }
        };
        let parts: Vec<i32> = assignment.get(&topic).cloned().unwrap_or_default();
        let committed = self.fetch_committed(&parts).await?;
        self.start(&parts, &committed).await?;
        let m = self.member.as_mut().expect("group mode");
        m.committed = committed;
        m.last_commit = Instant::now();
        Ok(())
    }

    async fn fetch_committed(&mut self, parts: &[i32]) -> Result<BTreeMap<i32, i64>> {
        if parts.is_empty() {
            return Ok(BTreeMap::new());
        }
        let m = self.member.as_ref().expect("group mode");
        let req = OffsetFetchRequest::default()
            .with_group_id(gid(&m.config.group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(&self.config.topic)))
                .with_partition_indexes(parts.to_vec())]));
        let coordinator = m.coordinator;
        let resp = self.client.call_node(coordinator, &req).await?;
        check(resp.error_code, || "OffsetFetch".into(), None)?;
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                check(p.error_code, || "OffsetFetch".into(), None)?;
                if p.committed_offset >= 0 {
                    out.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        Ok(out)
    }
}
