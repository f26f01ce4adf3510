//! DescribeProducers (key 61, v0): the producers a partition knows (idempotent and
//! transactional), with their epoch, last sequence and the start of their open transaction;
//! what `kafka-transactions.sh --find-hanging` reads.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::prelude::*;
use super::some_str;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Broker,
    _version: i16,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let r = PartitionResponse::default().with_partition_index(i);
                    let Some(p) = broker.partition(t.name.as_str(), i) else {
                        return r
                            .with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(some_str("no such partition"));
                    };
                    let producers = p
                        .producers()
                        .into_iter()
                        .map(|d| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(d.producer_id))
                                .with_producer_epoch(d.epoch as i32)
                                .with_last_sequence(d.last_sequence)
                                .with_last_timestamp(d.last_timestamp)
                                .with_coordinator_epoch(if d.txn_first_offset.is_some() {
                                    0
                                } else {
                                    -1
                                })
                                .with_current_txn_start_offset(d.txn_first_offset.unwrap_or(-1))
                        })
                        .collect();
                    r.with_error_code(ec::NONE).with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// DescribeProducers in the API registry (`super::registry!`).
pub struct DescribeProducers;

impl KafkaApi for DescribeProducers {
    const KEY: ApiKey = ApiKey::DescribeProducers;
    const VERSIONS: RangeInclusive<i16> = 0..=0;
    type Request = DescribeProducersRequest;
    type Response = DescribeProducersResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        for t in &resp.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}
