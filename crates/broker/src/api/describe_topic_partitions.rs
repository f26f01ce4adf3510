//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions, a page at a time.
//!
//! Kafka's rules (`DescribeTopicPartitionsRequestHandler` and the metadata cache's
//! `getTopicMetadataForDescribeTopicResponse`), followed exactly:
//! - an empty topic list means every topic; topics are answered once each, sorted by name,
//!   starting at the cursor's topic (names before it are skipped);
//! - a page holds at most `response_partition_limit` partitions, clamped to 1..=2000 (Kafka's
//!   `max.request.partition.size.limit` default); a topic cut short sets `next_cursor` to
//!   its next partition; a page that is full when the next topic comes sets `next_cursor`
//!   to that topic's partition 0; the last page has no cursor;
//! - a cursor whose topic is not in a non-empty topic list, or whose partition is negative,
//!   fails the whole request with INVALID_REQUEST for every topic asked;
//! - a requested topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION
//!   if the name is not a legal one) with a zero topic id and no partitions, and costs no
//!   room in the page; when every topic is asked, only existing ones are listed.
//!
//! This single node leads every partition, alone in its replica set and ISR; eligible leader
//! replicas (KIP-966's ELR) are empty as there are no other replicas. A partition whose
//! storage failed answers as in Metadata: KAFKA_STORAGE_ERROR, with this node offline. weir
//! has no authorizer, so a topic's authorized operations are all that apply to topics (what
//! Kafka answers without one).

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use uuid::Uuid;

use super::prelude::*;
use super::str_bytes;
use crate::broker::{is_internal_topic, Topic};
use crate::error_codes as ec;

/// Kafka's `max.request.partition.size.limit` default: the most partitions in one page.
pub const PARTITIONS_PER_PAGE_MAX: i32 = 2000;

/// The operations a topic can be authorized for (Kafka's `AclEntry.supportedOperations`
/// for TOPIC: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10,
/// ALTER_CONFIGS 11), as the bit field Kafka answers when no authorizer restricts them.
pub const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

pub(crate) fn handle(
    broker: &Broker,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let fetch_all = req.topics.is_empty();
    let cursor_topic = req
        .cursor
        .as_ref()
        .map_or(String::new(), |c| c.topic_name.to_string());
    // A sorted set: each topic once, from the cursor's topic on.
    let names: std::collections::BTreeSet<String> = if fetch_all {
        broker
            .topics()
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| *n >= cursor_topic)
            .collect()
    } else {
        req.topics
            .iter()
            .map(|t| t.name.to_string())
            .filter(|n| *n >= cursor_topic)
            .collect()
    };
    if let Some(c) = &req.cursor {
        if !fetch_all && !names.contains(&cursor_topic) {
            return invalid(&req, "the topic list must contain the cursor's topic");
        }
        if c.partition_index < 0 {
            return invalid(&req, "the cursor's partition index is negative");
        }
    }
    let limit = req
        .response_partition_limit
        .clamp(1, PARTITIONS_PER_PAGE_MAX) as usize;
    let start = |name: &str| match &req.cursor {
        Some(c) if name == cursor_topic => c.partition_index as usize,
        _ => 0,
    };
    let node = BrokerId(broker.config.node_id);
    let mut remaining = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining == 0 {
            // Full: the next page starts at this topic (which may not exist; Kafka says so).
            next_cursor = Some(cursor(&name, 0));
            break;
        }
        let Some(topic) = broker.topic(&name) else {
            if !fetch_all {
                topics.push(unknown_topic(&name));
            }
            continue;
        };
        let from = start(&name).min(topic.partitions.len());
        let upto = topic.partitions.len().min(from.saturating_add(remaining));
        let partitions: Vec<_> = topic.partitions[from..upto]
            .iter()
            .map(|p| describe_partition(node, p))
            .collect();
        remaining -= partitions.len();
        topics.push(describe_topic(&topic, partitions));
        if upto < topic.partitions.len() {
            next_cursor = Some(cursor(&name, upto as i32));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

/// Kafka's error response: every topic asked, with the error and nothing else.
fn invalid(req: &DescribeTopicPartitionsRequest, why: &str) -> DescribeTopicPartitionsResponse {
    tracing::debug!(reason = why, "DescribeTopicPartitions rejected");
    let topics = req
        .topics
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(ec::INVALID_REQUEST)
                .with_name(Some(t.name.clone()))
                .with_topic_id(Uuid::nil())
                .with_is_internal(false)
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

fn cursor(topic: &str, partition_index: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(str_bytes(topic)))
        .with_partition_index(partition_index)
}

fn unknown_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let code = if crate::config::validate_topic_name(name).is_ok() {
        ec::UNKNOWN_TOPIC_OR_PARTITION
    } else {
        ec::INVALID_TOPIC_EXCEPTION
    };
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code)
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_id(Uuid::nil())
        .with_is_internal(is_internal_topic(name))
        // Kafka fills in the operations of every topic the metadata answered, missing ones too.
        .with_topic_authorized_operations(TOPIC_OPERATIONS_ALL)
}

fn describe_topic(
    topic: &Topic,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(ec::NONE)
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_OPERATIONS_ALL)
}

fn describe_partition(
    node: BrokerId,
    p: &crate::partition::Partition,
) -> DescribeTopicPartitionsResponsePartition {
    let offline = p.state().offline;
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(if offline {
            ec::KAFKA_STORAGE_ERROR
        } else {
            ec::NONE
        })
        .with_partition_index(p.index)
        .with_leader_id(node)
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(vec![node])
        .with_isr_nodes(vec![node])
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(if offline { vec![node] } else { Vec::new() })
}

/// DescribeTopicPartitions in the API registry (`super::registry!`).
pub struct DescribeTopicPartitions;

impl KafkaApi for DescribeTopicPartitions {
    const KEY: ApiKey = ApiKey::DescribeTopicPartitions;
    const VERSIONS: RangeInclusive<i16> = 0..=0;
    type Request = DescribeTopicPartitionsRequest;
    type Response = DescribeTopicPartitionsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        _meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for t in &resp.topics {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
