//! OffsetFetch (key 9): committed offsets of one group (v1-7) or of several (v8+).
//! Unknown partitions answer offset -1 with no error, as Kafka does. With require_stable
//! (v7+, sent by read_committed consumers), a partition with a transactional commit still
//! waiting for its transaction answers UNSTABLE_OFFSET_COMMIT, and the client retries.
//! v9+: a member of a KIP-848 consumer group sends its member id and epoch, checked as
//! Kafka does (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH); an admin fetch sends neither.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;
use crate::group::CommittedOffset;

type Fetched = Vec<(String, Vec<(i32, Option<CommittedOffset>, i16)>)>;

fn fetch(
    broker: &Broker,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Fetched {
    let flat = broker.groups.offset_fetch(group_id, topics.as_deref());
    let mut out: Fetched = Vec::new();
    for (t, p, c) in flat {
        let (c, code) = if require_stable && broker.groups.has_pending_txn_offset(group_id, &t, p) {
            (None, ec::UNSTABLE_OFFSET_COMMIT)
        } else {
            (c, ec::NONE)
        };
        match out.last_mut() {
            Some((name, parts)) if *name == t => parts.push((p, c, code)),
            _ => out.push((t, vec![(p, c, code)])),
        }
    }
    out
}

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let require_stable = version >= 7 && req.require_stable;
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let member = if version >= 9 {
                    (
                        g.member_id
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        g.member_epoch,
                    )
                } else {
                    (String::new(), -1)
                };
                let code =
                    broker
                        .groups
                        .check_offset_fetch(g.group_id.as_str(), &member.0, member.1);
                if code != ec::NONE {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code);
                }
                let fetched = fetch(broker, g.group_id.as_str(), topics, require_stable);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(ec::NONE)
                    .with_topics(
                        fetched
                            .into_iter()
                            .map(|(t, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(&t)))
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(p, c, code)| {
                                                let c = c.unwrap_or(NO_OFFSET);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(c.offset)
                                                    .with_committed_leader_epoch(c.leader_epoch)
                                                    .with_metadata(Some(str_bytes(&c.metadata)))
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let GroupId(group_id) = req.group_id;
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let fetched = fetch(broker, group_id.as_str(), topics, require_stable);
    let topics = fetched
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&t)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, c, code)| {
                            let c = c.unwrap_or(NO_OFFSET);
                            let r = OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(c.offset)
                                .with_metadata(Some(str_bytes(&c.metadata)))
                                .with_error_code(code);
                            if version >= 5 {
                                r.with_committed_leader_epoch(c.leader_epoch)
                            } else {
                                r
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    let r = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        r.with_error_code(ec::NONE)
    } else {
        r
    }
}

const NO_OFFSET: CommittedOffset = CommittedOffset {
    offset: -1,
    leader_epoch: -1,
    metadata: String::new(),
    commit_timestamp: -1,
    record_offset: -1,
};

/// OffsetFetch in the API registry (`super::registry!`).
pub struct OffsetFetch;

impl KafkaApi for OffsetFetch {
    const KEY: ApiKey = ApiKey::OffsetFetch;
    const VERSIONS: RangeInclusive<i16> = 1..=9;
    type Request = OffsetFetchRequest;
    type Response = OffsetFetchResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        // v0-7 answer one group at the top level, v8 a list of groups.
        if resp.groups.is_empty() {
            f(resp.error_code);
        }
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
        for g in &resp.groups {
            f(g.error_code);
            for t in &g.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(r: &OffsetFetchResponse) -> Vec<i16> {
        let mut v = Vec::new();
        OffsetFetch::each_error(r, &mut |c| v.push(c));
        v
    }

    #[test]
    fn error_walk_finds_v8_group_and_partition_codes() {
        let r =
            OffsetFetchResponse::default().with_groups(vec![OffsetFetchResponseGroup::default()
                .with_error_code(16)
                .with_topics(vec![OffsetFetchResponseTopics::default().with_partitions(
                    vec![OffsetFetchResponsePartitions::default().with_error_code(3)],
                )])]);
        assert_eq!(codes(&r), vec![16, 3]);
    }

    #[test]
    fn error_walk_finds_the_top_level_code_before_v8() {
        let r = OffsetFetchResponse::default().with_error_code(15);
        assert_eq!(codes(&r), vec![15]);
    }
}
