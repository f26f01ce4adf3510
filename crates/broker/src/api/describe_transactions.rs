//! DescribeTransactions (key 65, v0): the coordinator's view of transactional ids.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Broker,
    _version: i16,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let r = TransactionState::default().with_producer_id(ProducerId(-1));
            match broker.txns.describe(id.as_str()) {
                None => r
                    .with_transactional_id(id)
                    .with_error_code(ec::TRANSACTIONAL_ID_NOT_FOUND)
                    .with_transaction_state(str_bytes(""))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
                Some(m) => {
                    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (t, p) in &m.partitions {
                        by_topic.entry(t).or_default().push(*p);
                    }
                    r.with_transactional_id(id)
                        .with_error_code(ec::NONE)
                        .with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.epoch)
                        .with_topics(
                            by_topic
                                .into_iter()
                                .map(|(t, parts)| {
                                    TopicData::default()
                                        .with_topic(TopicName(str_bytes(t)))
                                        .with_partitions(parts)
                                })
                                .collect(),
                        )
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// DescribeTransactions in the API registry (`super::registry!`).
pub struct DescribeTransactions;

impl KafkaApi for DescribeTransactions {
    const KEY: ApiKey = ApiKey::DescribeTransactions;
    const VERSIONS: RangeInclusive<i16> = 0..=0;
    type Request = DescribeTransactionsRequest;
    type Response = DescribeTransactionsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.transaction_states.iter().for_each(|s| f(s.error_code));
    }
}
