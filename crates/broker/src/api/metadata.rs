//! Metadata (key 3): brokers (just this one), topics, partitions and their leader.
//! Auto-creates requested topics when the request and the broker both allow it. v13
//! (KIP-1102) adds a top-level error code, for REBOOTSTRAP_REQUIRED; one node never asks
//! its clients to rebootstrap, so it is always NONE.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::prelude::*;
use super::{some_str, str_bytes};
use crate::broker::{Broker, Topic};
use crate::error_codes as ec;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    // v0: an empty list means all topics. v1+: null means all, empty means none.
    let requested: Option<Vec<_>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;
    let mut topics = Vec::new();
    match requested {
        None => {
            for t in broker.topics() {
                topics.push(describe_topic(broker, version, &t));
            }
        }
        Some(list) => {
            for rt in list {
                let found = match &rt.name {
                    Some(name) => lookup_or_create(broker, name.as_str(), allow_auto_create).await,
                    None if !rt.topic_id.is_nil() => broker
                        .topic_by_id(rt.topic_id)
                        .ok_or((ec::UNKNOWN_TOPIC_ID, String::new())),
                    None => Err((ec::INVALID_REQUEST, String::new())),
                };
                match found {
                    Ok(t) => topics.push(describe_topic(broker, version, &t)),
                    Err((code, _)) => topics.push(
                        MetadataResponseTopic::default()
                            .with_error_code(code)
                            .with_name(rt.name.clone())
                            .with_topic_id(rt.topic_id),
                    ),
                }
            }
        }
    }
    let node = BrokerId(broker.config.node_id);
    MetadataResponse::default()
        .with_error_code(ec::NONE)
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(&broker.config.advertised_host))
            .with_port(broker.config.advertised_port as i32)])
        .with_cluster_id(some_str(&broker.cluster_id))
        .with_controller_id(node)
        .with_topics(topics)
}

async fn lookup_or_create(
    broker: &Arc<Broker>,
    name: &str,
    allow_auto_create: bool,
) -> Result<Arc<Topic>, (i16, String)> {
    if let Some(t) = broker.topic(name) {
        return Ok(t);
    }
    if let Err(m) = crate::config::validate_topic_name(name) {
        return Err((ec::INVALID_TOPIC_EXCEPTION, m));
    }
    if !(allow_auto_create && broker.config.auto_create_topics_enable) {
        return Err((ec::UNKNOWN_TOPIC_OR_PARTITION, String::new()));
    }
    match broker.create_topic(name, -1, -1, BTreeMap::new()).await {
        Ok(t) => Ok(t),
        // Another request created it meanwhile.
        Err(e) if e.code == ec::TOPIC_ALREADY_EXISTS => broker
            .topic(name)
            .ok_or((ec::LEADER_NOT_AVAILABLE, String::new())),
        Err(e) => Err((e.code, e.message)),
    }
}

fn describe_topic(broker: &Broker, version: i16, t: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let offline = p.state().offline;
            let mut mp = MetadataResponsePartition::default()
                .with_error_code(if offline {
                    ec::KAFKA_STORAGE_ERROR
                } else {
                    ec::NONE
                })
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            if version >= 7 {
                mp = mp.with_leader_epoch(p.leader_epoch);
            }
            if offline && version >= 5 {
                mp = mp.with_offline_replicas(vec![node]);
            }
            mp
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_error_code(ec::NONE)
        .with_name(Some(TopicName(str_bytes(&t.name))))
        .with_is_internal(t.is_internal())
        .with_partitions(partitions);
    if version >= 10 {
        topic = topic.with_topic_id(t.id);
    } else {
        topic = topic.with_topic_id(Uuid::nil());
    }
    topic
}

/// Metadata in the API registry (`super::registry!`).
pub struct Metadata;

impl KafkaApi for Metadata {
    const KEY: ApiKey = ApiKey::Metadata;
    const VERSIONS: RangeInclusive<i16> = 0..=13;
    type Request = MetadataRequest;
    type Response = MetadataResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req).await)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
        for t in &resp.topics {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
