//! The records of `__consumer_offsets`, in Kafka's own formats, so Kafka tooling can read
//! the topic and the layout is a known one:
//!
//! - offset commit: key v1 `(version=1, group, topic, partition)`, value v3
//!   `(version=3, offset, leader_epoch, metadata, commit_timestamp)`; v0-v3 values decode.
//! - group metadata: key v2 `(version=2, group)`, value v3 `(version=3, protocol_type,
//!   generation, protocol?, leader?, current_state_timestamp, members[member_id,
//!   group_instance_id?, client_id, client_host, rebalance_timeout, session_timeout,
//!   subscription, assignment])`.
//!
//! - consumer groups (KIP-848), keys v3-v8 `(version, group[, member])` with flexible
//!   (compact, tagged-field) v0 values, as Kafka's group coordinator writes them:
//!   3 ConsumerGroupMetadata `(epoch)`, 4 ConsumerGroupPartitionMetadata `(topics[id, name,
//!   partitions, partition racks])`, 5 ConsumerGroupMemberMetadata `(instance?, rack?,
//!   client_id, client_host, subscribed topics, regex?, rebalance timeout, assignor?)`,
//!   6 ConsumerGroupTargetAssignmentMetadata `(assignment epoch)`, 7 ConsumerGroupTarget
//!   AssignmentMember `(partitions)`, 8 ConsumerGroupCurrentMemberAssignment `(member epoch,
//!   previous member epoch, state, assigned, pending revocation)`.
//!
//! A null value is a tombstone: the offset or the group is gone.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

/// The key of a `__consumer_offsets` record; it names what the value is about, so
/// compaction keeps the latest value of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A committed offset (key v0/v1); the value is an [`OffsetValue`].
    Offset {
        /// The group id.
        group: String,
        /// The committed partition's topic.
        topic: String,
        /// The committed partition's index.
        partition: i32,
    },
    /// A group's metadata (key v2); the value is a [`GroupValue`].
    Group {
        /// The group id.
        group: String,
    },
    /// A consumer group's epoch (key v3); the value is an `i32` epoch.
    ConsumerGroup {
        /// The group id.
        group: String,
    },
    /// A consumer group's subscribed topics (key v4); the value is a [`TopicsMetadata`].
    ConsumerPartitionMetadata {
        /// The group id.
        group: String,
    },
    /// A consumer group member's subscription (key v5); the value is a [`MemberMetadata`].
    ConsumerMember {
        /// The group id.
        group: String,
        /// The member id.
        member: String,
    },
    /// A consumer group's target assignment epoch (key v6); the value is an `i32`.
    ConsumerTargetEpoch {
        /// The group id.
        group: String,
    },
    /// One member's target assignment (key v7); the value is an [`Assignment`].
    ConsumerTargetMember {
        /// The group id.
        group: String,
        /// The member id.
        member: String,
    },
    /// One member's current assignment (key v8); the value is a [`CurrentAssignment`].
    ConsumerCurrentAssignment {
        /// The group id.
        group: String,
        /// The member id.
        member: String,
    },
}

/// Partitions by topic id, as the consumer protocol names them.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The topics a consumer group subscribes to, by name: (topic id, partition count).
pub type TopicsMetadata = BTreeMap<String, (Uuid, i32)>;

/// A consumer group member's subscription and identity (ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The client id of its last heartbeat.
    pub client_id: String,
    /// The address its last heartbeat came from.
    pub client_host: String,
    /// The topics it subscribes to.
    pub subscribed_topic_names: Vec<String>,
    /// The regular expression of topics it subscribes to, too (ConsumerGroupHeartbeat v1).
    pub subscribed_topic_regex: Option<String>,
    /// How long it may take to revoke partitions.
    pub rebalance_timeout_ms: i32,
    /// The server assignor it asked for, if any.
    pub server_assignor: Option<String>,
    /// Set for a member that speaks the classic protocol (JoinGroup, SyncGroup, Heartbeat)
    /// in a consumer group, as after an online upgrade.
    pub classic: Option<ClassicMemberMetadata>,
}

/// What a classic-protocol member of a consumer group joined with (Kafka's
/// ClassicMemberMetadata, tagged field 0 of ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    /// Its JoinGroup session timeout.
    pub session_timeout_ms: i32,
    /// (protocol name, metadata) it supports, in its order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

/// A member's current assignment (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    /// The epoch the member must heartbeat with.
    pub member_epoch: i32,
    /// The epoch before the last bump (a member whose answer was lost may use it).
    pub previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    /// The partitions it owns.
    pub assigned: Assignment,
    /// The partitions it must give up.
    pub pending_revocation: Assignment,
}

impl Key {
    /// The group the record belongs to; it also chooses the `__consumer_offsets`
    /// partition.
    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. }
            | Key::Group { group }
            | Key::ConsumerGroup { group }
            | Key::ConsumerPartitionMetadata { group }
            | Key::ConsumerMember { group, .. }
            | Key::ConsumerTargetEpoch { group }
            | Key::ConsumerTargetMember { group, .. }
            | Key::ConsumerCurrentAssignment { group, .. } => group,
        }
    }
}

/// An offset commit's value (written as v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset: the next one the group will consume.
    pub offset: i64,
    /// The `leader_epoch` of the last consumed record; -1 if unknown, and in v0-v2 values,
    /// which lack it.
    pub leader_epoch: i32,
    /// The client's free-form metadata string.
    pub metadata: String,
    /// When the broker accepted the commit, in ms since the epoch.
    pub commit_timestamp: i64,
}

/// A group's metadata value (written as v3): what a restart restores the group from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    /// The group's protocol type, e.g. `consumer`.
    pub protocol_type: String,
    /// The generation id this record describes.
    pub generation: i32,
    /// The chosen protocol (assignor); None when the group is Empty.
    pub protocol: Option<String>,
    /// Member id of the generation's leader; None when the group is Empty.
    pub leader: Option<String>,
    /// When the record was written, in ms since the epoch (v2+; -1 in older values): an
    /// Empty group's offsets expire counting from it.
    pub current_state_timestamp: i64,
    /// The generation's members with their assignments; empty for an Empty group.
    pub members: Vec<MemberValue>,
}

/// One member in a [`GroupValue`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    /// The coordinator-assigned member id.
    pub member_id: String,
    /// `group.instance.id` of a static member (v3+; None in older values).
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from.
    pub client_host: String,
    /// v1+; -1 in v0 values.
    pub rebalance_timeout_ms: i32,
    /// How long it may go unheard before it is removed.
    pub session_timeout_ms: i32,
    /// Its metadata for the chosen protocol (for `consumer`, the subscription).
    pub subscription: Bytes,
    /// Its share of the leader's assignment.
    pub assignment: Bytes,
}

/// A record of `__consumer_offsets` that does not decode; replay skips it.
#[derive(Debug, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct DecodeError(&'static str);

/// The record key, in the version Kafka writes for it (v1 offset, v2 group).
pub fn encode_key(key: &Key) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        Key::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(1);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        Key::Group { group } => {
            b.put_i16(2);
            put_str(&mut b, group);
        }
        Key::ConsumerGroup { group } => {
            b.put_i16(3);
            put_str(&mut b, group);
        }
        Key::ConsumerPartitionMetadata { group } => {
            b.put_i16(4);
            put_str(&mut b, group);
        }
        Key::ConsumerMember { group, member } => {
            b.put_i16(5);
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
        Key::ConsumerTargetEpoch { group } => {
            b.put_i16(6);
            put_str(&mut b, group);
        }
        Key::ConsumerTargetMember { group, member } => {
            b.put_i16(7);
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
        Key::ConsumerCurrentAssignment { group, member } => {
            b.put_i16(8);
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
    }
    b.freeze()
}

/// A record key of any version Kafka has written (v0/v1 offset, v2 group).
pub fn decode_key(mut b: &[u8]) -> Result<Key, DecodeError> {
    let version = get_i16(&mut b)?;
    match version {
        0 | 1 => Ok(Key::Offset {
            group: get_str(&mut b)?,
            topic: get_str(&mut b)?,
            partition: get_i32(&mut b)?,
        }),
        2 => Ok(Key::Group {
            group: get_str(&mut b)?,
        }),
        3 => Ok(Key::ConsumerGroup {
            group: get_str(&mut b)?,
        }),
        4 => Ok(Key::ConsumerPartitionMetadata {
            group: get_str(&mut b)?,
        }),
        5 => Ok(Key::ConsumerMember {
            group: get_str(&mut b)?,
            member: get_str(&mut b)?,
        }),
        6 => Ok(Key::ConsumerTargetEpoch {
            group: get_str(&mut b)?,
        }),
        7 => Ok(Key::ConsumerTargetMember {
            group: get_str(&mut b)?,
            member: get_str(&mut b)?,
        }),
        8 => Ok(Key::ConsumerCurrentAssignment {
            group: get_str(&mut b)?,
            member: get_str(&mut b)?,
        }),
        _ => Err(DecodeError("unknown key version")),
    }
}

/// An offset commit's value, as v3.
pub fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

/// An offset commit's value of v0-v3 (v1's trailing expire timestamp is ignored); other
/// versions are a [`DecodeError`].
pub fn decode_offset_value(mut b: &[u8]) -> Result<OffsetValue, DecodeError> {
    let version = get_i16(&mut b)?;
    let offset = get_i64(&mut b)?;
    let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
    let metadata = get_str(&mut b)?;
    let commit_timestamp = get_i64(&mut b)?;
    if !(0..=3).contains(&version) {
        return Err(DecodeError("unknown offset value version"));
    }
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// A group's metadata value, as v3.
pub fn encode_group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// A group's metadata value of v0-v3; other versions are a [`DecodeError`].
pub fn decode_group_value(mut b: &[u8]) -> Result<GroupValue, DecodeError> {
    let version = get_i16(&mut b)?;
    if !(0..=3).contains(&version) {
        return Err(DecodeError("unknown group value version"));
    }
    let protocol_type = get_str(&mut b)?;
    let generation = get_i32(&mut b)?;
    let protocol = get_nullable_str(&mut b)?;
    let leader = get_nullable_str(&mut b)?;
    let current_state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
    let count = get_i32(&mut b)?;
    // Each member takes at least 24 bytes: a count larger than that is a lie.
    if count < 0 || count as usize > b.len() / 24 + 1 {
        return Err(DecodeError("member count"));
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = get_str(&mut b)?;
        let group_instance_id = if version >= 3 {
            get_nullable_str(&mut b)?
        } else {
            None
        };
        let client_id = get_str(&mut b)?;
        let client_host = get_str(&mut b)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut b)? } else { -1 };
        let session_timeout_ms = get_i32(&mut b)?;
        let subscription = get_bytes(&mut b)?;
        let assignment = get_bytes(&mut b)?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

// ---- consumer group values (flexible v0: compact strings and arrays, tagged fields) -----

/// An epoch value (ConsumerGroupMetadataValue, ConsumerGroupTargetAssignmentMetadataValue).
pub fn encode_epoch_value(epoch: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(epoch);
    put_no_tags(&mut b);
    b.freeze()
}

/// An epoch value of v0 (later fields, if a newer Kafka wrote them, are ignored).
pub fn decode_epoch_value(mut b: &[u8]) -> Result<i32, DecodeError> {
    get_flexible_version(&mut b)?;
    get_i32(&mut b)
}

/// ConsumerGroupPartitionMetadataValue v0 (no rack information).
pub fn encode_topics_metadata(v: &TopicsMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_uvarint(&mut b, v.len() as u32 + 1);
    for (name, (id, partitions)) in v {
        b.put_slice(id.as_bytes());
        put_compact_str(&mut b, name);
        b.put_i32(*partitions);
        put_uvarint(&mut b, 1); // no partition racks
        put_no_tags(&mut b);
    }
    put_no_tags(&mut b);
    b.freeze()
}

/// ConsumerGroupPartitionMetadataValue v0.
pub fn decode_topics_metadata(mut b: &[u8]) -> Result<TopicsMetadata, DecodeError> {
    get_flexible_version(&mut b)?;
    let n = get_compact_len(&mut b, 21)?;
    let mut out = TopicsMetadata::new();
    for _ in 0..n {
        let id = get_uuid(&mut b)?;
        let name = get_compact_str(&mut b)?;
        let partitions = get_i32(&mut b)?;
        let racks = get_compact_len(&mut b, 6)?;
        for _ in 0..racks {
            get_i32(&mut b)?;
            let names = get_compact_len(&mut b, 1)?;
            for _ in 0..names {
                get_compact_str(&mut b)?;
            }
            skip_tags(&mut b)?;
        }
        skip_tags(&mut b)?;
        out.insert(name, (id, partitions));
    }
    Ok(out)
}

/// ConsumerGroupMemberMetadataValue v0; a classic member's metadata is tagged field 0.
pub fn encode_member_metadata(v: &MemberMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_compact_nullable_str(&mut b, v.instance_id.as_deref());
    put_compact_nullable_str(&mut b, v.rack_id.as_deref());
    put_compact_str(&mut b, &v.client_id);
    put_compact_str(&mut b, &v.client_host);
    put_uvarint(&mut b, v.subscribed_topic_names.len() as u32 + 1);
    for t in &v.subscribed_topic_names {
        put_compact_str(&mut b, t);
    }
    put_compact_nullable_str(&mut b, v.subscribed_topic_regex.as_deref());
    b.put_i32(v.rebalance_timeout_ms);
    put_compact_nullable_str(&mut b, v.server_assignor.as_deref());
    match &v.classic {
        None => put_no_tags(&mut b),
        Some(c) => {
            let mut f = BytesMut::new();
            f.put_i32(c.session_timeout_ms);
            put_uvarint(&mut f, c.protocols.len() as u32 + 1);
            for (name, meta) in &c.protocols {
                put_compact_str(&mut f, name);
                put_uvarint(&mut f, meta.len() as u32 + 1);
                f.put_slice(meta);
                put_no_tags(&mut f);
            }
            put_no_tags(&mut f);
            // One tagged field: tag 0, its size, then a nullable struct's presence byte.
            put_uvarint(&mut b, 1);
            put_uvarint(&mut b, 0);
            put_uvarint(&mut b, f.len() as u32 + 1);
            b.put_u8(1);
            b.put_slice(&f);
        }
    }
    b.freeze()
}

/// ClassicMemberMetadata, the value of tag 0 (a nullable struct: presence byte first).
fn get_classic_member(mut b: &[u8]) -> Result<Option<ClassicMemberMetadata>, DecodeError> {
    need(b, 1)?;
    if (b.get_u8() as i8) < 0 {
        return Ok(None);
    }
    let session_timeout_ms = get_i32(&mut b)?;
    let n = get_compact_len(&mut b, 3)?;
    let mut protocols = Vec::with_capacity(n);
    for _ in 0..n {
        let name = get_compact_str(&mut b)?;
        let len = get_uvarint(&mut b)?;
        let len = len
            .checked_sub(1)
            .ok_or(DecodeError("null protocol metadata"))? as usize;
        need(b, len)?;
        let meta = Bytes::copy_from_slice(&b[..len]);
        b.advance(len);
        skip_tags(&mut b)?;
        protocols.push((name, meta));
    }
    skip_tags(&mut b)?;
    Ok(Some(ClassicMemberMetadata {
        session_timeout_ms,
        protocols,
    }))
}

/// ConsumerGroupMemberMetadataValue v0, with a classic member's tagged metadata.
pub fn decode_member_metadata(mut b: &[u8]) -> Result<MemberMetadata, DecodeError> {
    get_flexible_version(&mut b)?;
    let instance_id = get_compact_nullable_str(&mut b)?;
    let rack_id = get_compact_nullable_str(&mut b)?;
    let client_id = get_compact_str(&mut b)?;
    let client_host = get_compact_str(&mut b)?;
    let n = get_compact_len(&mut b, 1)?;
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(get_compact_str(&mut b)?);
    }
    let subscribed_topic_regex = get_compact_nullable_str(&mut b)?;
    let rebalance_timeout_ms = get_i32(&mut b)?;
    let server_assignor = get_compact_nullable_str(&mut b)?;
    let mut classic = None;
    let tags = get_uvarint(&mut b)?;
    for _ in 0..tags {
        let tag = get_uvarint(&mut b)?;
        let size = get_uvarint(&mut b)? as usize;
        need(b, size)?;
        if tag == 0 {
            classic = get_classic_member(&b[..size])?;
        }
        b.advance(size);
    }
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
        classic,
    })
}

/// ConsumerGroupTargetAssignmentMemberValue v0.
pub fn encode_target_assignment(v: &Assignment) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_assignment(&mut b, v);
    put_no_tags(&mut b);
    b.freeze()
}

/// ConsumerGroupTargetAssignmentMemberValue v0.
pub fn decode_target_assignment(mut b: &[u8]) -> Result<Assignment, DecodeError> {
    get_flexible_version(&mut b)?;
    get_assignment(&mut b)
}

/// ConsumerGroupCurrentMemberAssignmentValue v0.
pub fn encode_current_assignment(v: &CurrentAssignment) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(v.member_epoch);
    b.put_i32(v.previous_member_epoch);
    b.put_i8(v.state);
    put_assignment(&mut b, &v.assigned);
    put_assignment(&mut b, &v.pending_revocation);
    put_no_tags(&mut b);
    b.freeze()
}

/// ConsumerGroupCurrentMemberAssignmentValue v0.
pub fn decode_current_assignment(mut b: &[u8]) -> Result<CurrentAssignment, DecodeError> {
    get_flexible_version(&mut b)?;
    let member_epoch = get_i32(&mut b)?;
    let previous_member_epoch = get_i32(&mut b)?;
    need(b, 1)?;
    let state = b.get_i8();
    let assigned = get_assignment(&mut b)?;
    let pending_revocation = get_assignment(&mut b)?;
    Ok(CurrentAssignment {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

fn put_assignment(b: &mut BytesMut, a: &Assignment) {
    put_uvarint(b, a.len() as u32 + 1);
    for (id, partitions) in a {
        b.put_slice(id.as_bytes());
        put_uvarint(b, partitions.len() as u32 + 1);
        for p in partitions {
            b.put_i32(*p);
        }
        put_no_tags(b);
    }
}

fn get_assignment(b: &mut &[u8]) -> Result<Assignment, DecodeError> {
    let n = get_compact_len(b, 18)?;
    let mut out = Assignment::new();
    for _ in 0..n {
        let id = get_uuid(b)?;
        let count = get_compact_len(b, 4)?;
        let set = out.entry(id).or_default();
        for _ in 0..count {
            set.insert(get_i32(b)?);
        }
        skip_tags(b)?;
    }
    Ok(out)
}

fn get_flexible_version(b: &mut &[u8]) -> Result<i16, DecodeError> {
    let v = get_i16(b)?;
    if v < 0 {
        return Err(DecodeError("negative value version"));
    }
    Ok(v)
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_uvarint(b: &mut &[u8]) -> Result<u32, DecodeError> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        need(b, 1)?;
        let byte = b.get_u8();
        v |= ((byte & 0x7f) as u32) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint too long"))
}

fn put_no_tags(b: &mut BytesMut) {
    put_uvarint(b, 0);
}

fn skip_tags(b: &mut &[u8]) -> Result<(), DecodeError> {
    let n = get_uvarint(b)?;
    for _ in 0..n {
        get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        need(b, size)?;
        b.advance(size);
    }
    Ok(())
}

/// A compact array length (N+1 on the wire; 0 is null, read as empty), checked against the
/// bytes left at `min_item_bytes` each so a lying count cannot allocate.
fn get_compact_len(b: &mut &[u8], min_item_bytes: usize) -> Result<usize, DecodeError> {
    let n = get_uvarint(b)?;
    if n == 0 {
        return Ok(0);
    }
    let n = (n - 1) as usize;
    if n > b.len() / min_item_bytes.max(1) {
        return Err(DecodeError("array count"));
    }
    Ok(n)
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    put_uvarint(b, s.len() as u32 + 1);
    b.put_slice(s.as_bytes());
}

fn put_compact_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(b, s),
        None => put_uvarint(b, 0),
    }
}

fn get_compact_nullable_str(b: &mut &[u8]) -> Result<Option<String>, DecodeError> {
    let n = get_uvarint(b)?;
    if n == 0 {
        return Ok(None);
    }
    let len = (n - 1) as usize;
    need(b, len)?;
    let s = std::str::from_utf8(&b[..len]).map_err(|_| DecodeError("not UTF-8"))?;
    let s = s.to_string();
    b.advance(len);
    Ok(Some(s))
}

fn get_compact_str(b: &mut &[u8]) -> Result<String, DecodeError> {
    get_compact_nullable_str(b)?.ok_or(DecodeError("null string"))
}

fn get_uuid(b: &mut &[u8]) -> Result<Uuid, DecodeError> {
    need(b, 16)?;
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&b[..16]);
    b.advance(16);
    Ok(Uuid::from_bytes(raw))
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn need(b: &[u8], n: usize) -> Result<(), DecodeError> {
    if b.len() < n {
        Err(DecodeError("truncated"))
    } else {
        Ok(())
    }
}

fn get_i16(b: &mut &[u8]) -> Result<i16, DecodeError> {
    need(b, 2)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut &[u8]) -> Result<i32, DecodeError> {
    need(b, 4)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut &[u8]) -> Result<i64, DecodeError> {
    need(b, 8)?;
    Ok(b.get_i64())
}

fn get_nullable_str(b: &mut &[u8]) -> Result<Option<String>, DecodeError> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    need(b, len as usize)?;
    let s = std::str::from_utf8(&b[..len as usize]).map_err(|_| DecodeError("not UTF-8"))?;
    let s = s.to_string();
    b.advance(len as usize);
    Ok(Some(s))
}

fn get_str(b: &mut &[u8]) -> Result<String, DecodeError> {
    get_nullable_str(b)?.ok_or(DecodeError("null string"))
}

fn get_bytes(b: &mut &[u8]) -> Result<Bytes, DecodeError> {
    let len = get_i32(b)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(b, len as usize)?;
    let v = Bytes::copy_from_slice(&b[..len as usize]);
    b.advance(len as usize);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        for key in [
            Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
            },
            Key::Group { group: "g2".into() },
        ] {
            assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        }
        let o = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        assert_eq!(decode_offset_value(&encode_offset_value(&o)).unwrap(), o);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_value(&encode_group_value(&g)).unwrap(), g);
    }

    #[test]
    fn consumer_group_records_round_trip() {
        for key in [
            Key::ConsumerGroup { group: "g".into() },
            Key::ConsumerPartitionMetadata { group: "g".into() },
            Key::ConsumerMember {
                group: "g".into(),
                member: "m".into(),
            },
            Key::ConsumerTargetEpoch { group: "g".into() },
            Key::ConsumerTargetMember {
                group: "g".into(),
                member: "m".into(),
            },
            Key::ConsumerCurrentAssignment {
                group: "g".into(),
                member: "m".into(),
            },
        ] {
            assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        }
        assert_eq!(decode_epoch_value(&encode_epoch_value(7)).unwrap(), 7);
        let id = Uuid::from_u128(0x1234);
        let topics = TopicsMetadata::from([("t".to_string(), (id, 3))]);
        assert_eq!(
            decode_topics_metadata(&encode_topics_metadata(&topics)).unwrap(),
            topics
        );
        let m = MemberMetadata {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["t".into(), "u".into()],
            subscribed_topic_regex: Some("o.*".into()),
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
            classic: None,
        };
        assert_eq!(
            decode_member_metadata(&encode_member_metadata(&m)).unwrap(),
            m
        );
        // A classic member: tagged field 0 holds the nullable struct, as Kafka's generated
        // code writes it (tag, size + 1, presence byte 1, the struct).
        let classic = MemberMetadata {
            classic: Some(ClassicMemberMetadata {
                session_timeout_ms: 45_000,
                protocols: vec![("range".into(), Bytes::from_static(b"\x00\x01"))],
            }),
            server_assignor: None,
            ..m.clone()
        };
        let encoded = encode_member_metadata(&classic);
        let mut tail = vec![1u8, 0, 17, 1];
        tail.extend_from_slice(&45_000i32.to_be_bytes());
        tail.extend_from_slice(&[2, 6, b'r', b'a', b'n', b'g', b'e', 3, 0, 1, 0, 0]);
        assert!(encoded.ends_with(&tail), "{encoded:?}");
        assert_eq!(decode_member_metadata(&encoded).unwrap(), classic);
        let a = Assignment::from([(id, BTreeSet::from([0, 2]))]);
        assert_eq!(
            decode_target_assignment(&encode_target_assignment(&a)).unwrap(),
            a
        );
        let c = CurrentAssignment {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: 1,
            assigned: a.clone(),
            pending_revocation: Assignment::from([(id, BTreeSet::from([1]))]),
        };
        assert_eq!(
            decode_current_assignment(&encode_current_assignment(&c)).unwrap(),
            c
        );
    }

    /// The bytes Kafka's generated serializer writes for ConsumerGroupMetadataValue v0
    /// `{epoch: 10}` and for the key `ConsumerGroupMetadataKey` v3 `{group: "g"}`.
    #[test]
    fn consumer_group_epoch_record_is_kafkas_bytes() {
        assert_eq!(
            &encode_key(&Key::ConsumerGroup { group: "g".into() })[..],
            &[0, 3, 0, 1, b'g']
        );
        assert_eq!(&encode_epoch_value(10)[..], &[0, 0, 0, 0, 0, 10, 0]);
    }

    #[test]
    fn garbage_is_an_error() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let _ = decode_key(&junk);
            let _ = decode_offset_value(&junk);
            let _ = decode_group_value(&junk);
            let _ = decode_topics_metadata(&junk);
            let _ = decode_member_metadata(&junk);
            let _ = decode_target_assignment(&junk);
            let _ = decode_current_assignment(&junk);
        }
        assert!(decode_group_value(&[
            0, 3, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff,
            0xff
        ])
        .is_err());
    }
}
