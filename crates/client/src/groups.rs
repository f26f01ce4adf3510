//! Consumer groups from the outside: list, describe with lag, reset offsets, delete; and
//! the "consumer" protocol type's embedded Subscription/Assignment encoding, which the
//! group member (crate::consumer) and `describe` both use.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use serde::Serialize;

use crate::admin::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::client::Client;
use crate::error::{check, only, Error, Result};

/// The version of the Subscription/Assignment this client writes. v0 carries everything
/// the range assignor needs and every Kafka client reads it.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// A JoinGroup protocol metadata for the "consumer" protocol: the topics subscribed to.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.clone()))
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    s.encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .expect("a subscription always encodes");
    buf.freeze()
}

/// The topics in a member's JoinGroup metadata (any Kafka client's, any version).
pub fn decode_subscription(data: &[u8]) -> Result<Vec<String>> {
    let mut buf = Bytes::copy_from_slice(data);
    let version = read_version(&mut buf)?;
    let s = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| Error::Invalid(format!("consumer subscription: {e}")))?;
    Ok(s.topics.iter().map(|t| t.to_string()).collect())
}

/// A member's SyncGroup assignment (topic -> partitions), as the group leader sends it.
pub fn encode_assignment(assigned: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assigned
            .iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.clone())))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    a.encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .expect("an assignment always encodes");
    buf.freeze()
}

/// topic -> partitions. Empty bytes (a member the leader gave nothing) is an empty map.
pub fn decode_assignment(data: &[u8]) -> Result<BTreeMap<String, Vec<i32>>> {
    if data.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut buf = Bytes::copy_from_slice(data);
    let version = read_version(&mut buf)?;
    let a = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| Error::Invalid(format!("consumer assignment: {e}")))?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for t in a.assigned_partitions {
        out.entry(t.topic.0.to_string())
            .or_default()
            .extend(t.partitions);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
    }
    Ok(out)
}

/// Newer versions than this client knows are read as the newest it knows: Kafka's rule,
/// fields are only ever appended.
fn read_version(buf: &mut Bytes) -> Result<i16> {
    if buf.remaining() < 2 {
        return Err(Error::Invalid(
            "consumer protocol data shorter than its version".into(),
        ));
    }
    let v = buf.get_i16();
    if v < 0 {
        return Err(Error::Invalid(format!("consumer protocol version {v}")));
    }
    Ok(v.min(3))
}

/// Kafka's RangeAssignor: per topic, the sorted members subscribed to it share its
/// partitions in contiguous ranges, the first `partitions % members` getting one more.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = members.len() as i32;
        let per = count / n;
        let extra = count % n;
        for (i, m) in members.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                out.get_mut(*m)
                    .expect("every member has an entry")
                    .insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

/// One line of `weir group list`.
#[derive(Debug, Clone, Serialize)]
pub struct GroupListing {
    /// The `group.id`.
    pub group: String,
    /// "consumer" for consumer groups, "connect" etc. for others, empty for groups that
    /// only commit offsets.
    pub protocol_type: String,
    /// Stable, PreparingRebalance, Empty, ...; None from brokers before ListGroups v4.
    pub state: Option<String>,
    /// "classic" or "consumer" (KIP-848); None from brokers before ListGroups v5.
    pub group_type: Option<String>,
}

/// A group member as DescribeGroups reports it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberDescription {
    /// The id the coordinator gave the member.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345), None for a dynamic one.
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The address the member connected from ("/127.0.0.1").
    pub client_host: String,
    /// topic -> partitions, decoded when the group's protocol type is "consumer".
    pub assignment: BTreeMap<String, Vec<i32>>,
    /// The member epoch, in a consumer group of the KIP-848 protocol.
    pub member_epoch: Option<i32>,
    /// In a consumer group: `consumer`, or `classic` for a member that speaks the classic
    /// protocol in it (ConsumerGroupDescribe v1's member type).
    pub member_type: Option<&'static str>,
}

/// A partition of a group: committed offset, end and lag, and who reads it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// None when the group has no committed offset for the partition.
    pub committed_offset: Option<i64>,
    /// The partition's end (ListOffsets latest) when described.
    pub log_end_offset: i64,
    /// log_end_offset - committed_offset; None without a committed offset.
    pub lag: Option<i64>,
    /// The member assigned the partition, if any.
    pub member_id: Option<String>,
    /// That member's `client.id`.
    pub client_id: Option<String>,
    /// The metadata string committed with the offset, if any.
    pub metadata: Option<String>,
}

/// What `weir group describe` shows.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDescription {
    /// The `group.id`.
    pub group: String,
    /// Stable, PreparingRebalance, CompletingRebalance or Empty.
    pub state: String,
    /// "consumer" for consumer groups; empty for groups that only commit offsets.
    pub protocol_type: String,
    /// "classic", or "consumer" for a group of the KIP-848 consumer protocol.
    pub group_type: String,
    /// The chosen assignor ("range", "cooperative-sticky", ...; the server assignor,
    /// "uniform" or "range", of a consumer-protocol group).
    pub protocol: String,
    /// The group epoch of a consumer-protocol group.
    pub group_epoch: Option<i32>,
    /// The target assignment epoch of a consumer-protocol group.
    pub assignment_epoch: Option<i32>,
    /// Node id of the group's coordinator.
    pub coordinator: i32,
    /// Every member of the current generation.
    pub members: Vec<MemberDescription>,
    /// Every partition with a commit or an owner, by topic and partition.
    pub offsets: Vec<PartitionLag>,
    /// Sum of the known lags.
    pub total_lag: i64,
}

/// Where `group reset-offsets` moves the committed offsets.
#[derive(Debug, Clone, Copy)]
pub enum ResetTo {
    /// Each partition's log start offset.
    Earliest,
    /// Each partition's end: the group skips what is there now.
    Latest,
    /// The first offset with a timestamp at or after this (ms); the end if none.
    Timestamp(i64),
    /// This offset, clamped to each partition's range.
    Offset(i64),
}

/// One partition's move in a [`ResetPlan`].
#[derive(Debug, Clone, Serialize)]
pub struct ResetPlanEntry {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The group's committed offset before, None without one.
    pub current_offset: Option<i64>,
    /// The offset committed (or to be committed, in a dry run).
    pub new_offset: i64,
}

/// What `weir group reset-offsets` did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct ResetPlan {
    /// The `group.id`.
    pub group: String,
    /// False for a dry run: nothing was committed.
    pub executed: bool,
    /// Each partition's move.
    pub partitions: Vec<ResetPlanEntry>,
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

impl Client {
    /// ListGroups on every broker (each lists the groups it coordinates).
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let meta = self.metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for b in &meta.brokers {
            let resp = self
                .call_node(b.node_id.0, &ListGroupsRequest::default())
                .await?;
            check(resp.error_code, || "ListGroups".into(), None)?;
            out.extend(resp.groups.iter().map(|g| GroupListing {
                group: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: (!g.group_state.is_empty()).then(|| g.group_state.to_string()),
                group_type: (!g.group_type.is_empty()).then(|| g.group_type.to_string()),
            }));
        }
        out.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(out)
    }

    /// Committed offsets of `group` (all topics): (topic, partition) -> (offset, metadata).
    pub async fn committed_offsets(
        &mut self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), (i64, Option<String>)>> {
        let coordinator = self.group_coordinator(group).await?;
        let req = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(None);
        let resp = self.call_node(coordinator, &req).await?;
        check(
            resp.error_code,
            || format!("fetching the offsets of group {group:?}"),
            None,
        )?;
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    || format!("offset of {}-{}", t.name.0.as_str(), p.partition_index),
                    None,
                )?;
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        (
                            p.committed_offset,
                            p.metadata.as_ref().map(|m| m.to_string()),
                        ),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Members, committed offsets and lag of `group` (DescribeGroups, OffsetFetch and
    /// ListOffsets); GROUP_ID_NOT_FOUND for a group the coordinator does not know.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let coordinator = self.group_coordinator(group).await?;
        // A KIP-848 consumer group first (ConsumerGroupDescribe); GROUP_ID_NOT_FOUND there,
        // or a broker without the API, means a classic group (DescribeGroups).
        let modern = self
            .call_node(
                coordinator,
                &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]),
            )
            .await
            .ok()
            .and_then(|r| r.groups.into_iter().next())
            .filter(|g| g.error_code != 69);
        let (state, protocol_type, group_type, protocol, epochs, members) = match modern {
            Some(g) => {
                check(
                    g.error_code,
                    || format!("describing group {group:?}"),
                    g.error_message.as_ref().map(|m| m.to_string()),
                )?;
                let members: Vec<MemberDescription> = g
                    .members
                    .iter()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.instance_id.as_ref().map(|s| s.to_string()),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        assignment: m
                            .assignment
                            .topic_partitions
                            .iter()
                            .map(|tp| (tp.topic_name.0.to_string(), tp.partitions.clone()))
                            .collect(),
                        member_epoch: Some(m.member_epoch),
                        member_type: Some(if m.member_type == 0 {
                            "classic"
                        } else {
                            "consumer"
                        }),
                    })
                    .collect();
                (
                    g.group_state.to_string(),
                    "consumer".to_string(),
                    "consumer".to_string(),
                    g.assignor_name.to_string(),
                    Some((g.group_epoch, g.assignment_epoch)),
                    members,
                )
            }
            None => {
                let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
                let resp = self.call_node(coordinator, &req).await?;
                let g = only(&resp.groups, "DescribeGroups")?;
                check(
                    g.error_code,
                    || format!("describing group {group:?}"),
                    g.error_message.as_ref().map(|m| m.to_string()),
                )?;
                let consumer = g.protocol_type.as_str() == "consumer";
                let members: Vec<MemberDescription> = g
                    .members
                    .iter()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        assignment: if consumer {
                            decode_assignment(&m.member_assignment).unwrap_or_default()
                        } else {
                            BTreeMap::new()
                        },
                        member_epoch: None,
                        member_type: None,
                    })
                    .collect();
                if g.group_state.as_str() == "Dead" {
                    return Err(Error::kafka(format!("group {group:?}"), 69, None));
                }
                (
                    g.group_state.to_string(),
                    g.protocol_type.to_string(),
                    "classic".to_string(),
                    g.protocol_data.to_string(),
                    None,
                    members,
                )
            }
        };
        let committed = self.committed_offsets(group).await?;
        // Every partition with a commit, plus every assigned one (lag unknown without a commit).
        let mut rows: BTreeMap<(String, i32), PartitionLag> = BTreeMap::new();
        for ((t, p), (offset, metadata)) in &committed {
            rows.insert(
                (t.clone(), *p),
                PartitionLag {
                    topic: t.clone(),
                    partition: *p,
                    committed_offset: Some(*offset),
                    log_end_offset: -1,
                    lag: None,
                    member_id: None,
                    client_id: None,
                    metadata: metadata.clone(),
                },
            );
        }
        for m in &members {
            for (t, ps) in &m.assignment {
                for p in ps {
                    let row = rows.entry((t.clone(), *p)).or_insert_with(|| PartitionLag {
                        topic: t.clone(),
                        partition: *p,
                        committed_offset: None,
                        log_end_offset: -1,
                        lag: None,
                        member_id: None,
                        client_id: None,
                        metadata: None,
                    });
                    row.member_id = Some(m.member_id.clone());
                    row.client_id = Some(m.client_id.clone());
                }
            }
        }
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in rows.keys() {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        for (topic, parts) in by_topic {
            // A committed offset of a since-deleted topic has no log end: leave it unknown.
            let Ok(ends) = self
                .list_offsets(&topic, &parts, LATEST_TIMESTAMP, false)
                .await
            else {
                continue;
            };
            for (p, (end, _)) in ends {
                if let Some(row) = rows.get_mut(&(topic.clone(), p)) {
                    row.log_end_offset = end;
                    row.lag = row.committed_offset.map(|c| (end - c).max(0));
                }
            }
        }
        let offsets: Vec<PartitionLag> = rows.into_values().collect();
        let total_lag = offsets.iter().filter_map(|r| r.lag).sum();
        Ok(GroupDescription {
            group: group.to_string(),
            state,
            protocol_type,
            group_type,
            protocol,
            group_epoch: epochs.map(|e| e.0),
            assignment_epoch: epochs.map(|e| e.1),
            coordinator,
            members,
            offsets,
            total_lag,
        })
    }

    /// Plan (and with `execute`, commit) new offsets for `group` on `partitions` of `topic`.
    /// Refused while the group has members: their commits would race the reset, which is
    /// why Kafka's tool refuses too.
    pub async fn reset_offsets(
        &mut self,
        group: &str,
        topic: &str,
        partitions: Option<&[i32]>,
        to: ResetTo,
        execute: bool,
    ) -> Result<ResetPlan> {
        let coordinator = self.group_coordinator(group).await?;
        let req = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let resp = self.call_node(coordinator, &req).await?;
        let g = only(&resp.groups, "DescribeGroups")?;
        check(g.error_code, || format!("describing group {group:?}"), None)?;
        let state = g.group_state.to_string();
        if !(state == "Empty" || state == "Dead") || !g.members.is_empty() {
            return Err(Error::Invalid(format!(
                "group {group:?} is {state} with {} active member(s); offsets can only be reset while the group is inactive (stop its consumers first)",
                g.members.len()
            )));
        }
        let parts = self.partitions_of(topic, partitions).await?;
        let committed = self.committed_offsets(group).await?;
        let starts = self
            .list_offsets(topic, &parts, EARLIEST_TIMESTAMP, false)
            .await?;
        let ends = self
            .list_offsets(topic, &parts, LATEST_TIMESTAMP, false)
            .await?;
        let targets = match to {
            ResetTo::Timestamp(ms) => Some(self.list_offsets(topic, &parts, ms, false).await?),
            _ => None,
        };
        let mut entries = Vec::new();
        for &p in &parts {
            let (start, end) = (starts[&p].0, ends[&p].0);
            let new_offset = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                // No record at or after the timestamp: the end, as Kafka's tool does.
                ResetTo::Timestamp(_) => match targets.as_ref().expect("listed")[&p].0 {
                    -1 => end,
                    o => o,
                },
                // Out-of-range offsets are clamped into the log, as Kafka's tool does.
                ResetTo::Offset(o) => o.clamp(start, end),
            };
            entries.push(ResetPlanEntry {
                topic: topic.to_string(),
                partition: p,
                current_offset: committed.get(&(topic.to_string(), p)).map(|c| c.0),
                new_offset,
            });
        }
        if execute {
            // Generation -1 and no member id: a commit from outside the group, which the
            // coordinator accepts only while the group is empty (AdminClient's
            // alterConsumerGroupOffsets does the same).
            let req = OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::from_static_str(""))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        entries
                            .iter()
                            .map(|e| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(e.partition)
                                    .with_committed_offset(e.new_offset)
                            })
                            .collect(),
                    )]);
            let resp = self.call_node(coordinator, &req).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    check(
                        p.error_code,
                        || format!("committing the offset of {topic}-{}", p.partition_index),
                        None,
                    )?;
                }
            }
        }
        Ok(ResetPlan {
            group: group.to_string(),
            executed: execute,
            partitions: entries,
        })
    }

    /// DeleteGroups for one group: its committed offsets go; it must have no members.
    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let coordinator = self.group_coordinator(group).await?;
        let req = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let resp = self.call_node(coordinator, &req).await?;
        let r = only(&resp.results, "DeleteGroups")?;
        check(r.error_code, || format!("deleting group {group:?}"), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_matches_kafkas_split() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("m1".to_string(), vec!["t".to_string()]),
            ("m2".to_string(), vec!["t".to_string()]),
            ("m3".to_string(), vec!["t".to_string()]),
        ]
        .into();
        let counts: BTreeMap<String, i32> = [("t".to_string(), 7)].into();
        let a = range_assign(&subs, &counts);
        assert_eq!(a["m1"]["t"], vec![0, 1, 2]);
        assert_eq!(a["m2"]["t"], vec![3, 4]);
        assert_eq!(a["m3"]["t"], vec![5, 6]);
    }

    #[test]
    fn assignment_round_trips() {
        let mut m = BTreeMap::new();
        m.insert("orders".to_string(), vec![0, 2]);
        let bytes = encode_assignment(&m);
        assert_eq!(decode_assignment(&bytes).unwrap(), m);
        let s = encode_subscription(&["a".into(), "b".into()]);
        assert_eq!(decode_subscription(&s).unwrap(), vec!["a", "b"]);
    }
}
