//! ListTransactions (key 66, v0-1): transactional ids, filtered by state, producer id and
//! (v1) by having been open at least `duration_filter` ms.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;
use crate::txn::TxnState;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let now = broker.clock().now_ms();
    let min_duration = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let states = broker
        .txns
        .list()
        .into_iter()
        .filter(|m| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name())
        })
        .filter(|m| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        })
        .filter(|m| min_duration < 0 || (m.start_ms >= 0 && now - m.start_ms >= min_duration))
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(&m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_error_code(ec::NONE)
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// ListTransactions in the API registry (`super::registry!`).
pub struct ListTransactions;

impl KafkaApi for ListTransactions {
    const KEY: ApiKey = ApiKey::ListTransactions;
    const VERSIONS: RangeInclusive<i16> = 0..=1;
    type Request = ListTransactionsRequest;
    type Response = ListTransactionsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
    }
}
