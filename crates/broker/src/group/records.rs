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
//! A null value is a tombstone: the offset or the group is gone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

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
}

impl Key {
    /// The group the record belongs to; it also chooses the `__consumer_offsets`
    /// partition.
    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. } | Key::Group { group } => group,
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
    fn garbage_is_an_error() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let _ = decode_key(&junk);
            let _ = decode_offset_value(&junk);
            let _ = decode_group_value(&junk);
        }
        assert!(decode_group_value(&[
            0, 3, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff,
            0xff
        ])
        .is_err());
    }
}
