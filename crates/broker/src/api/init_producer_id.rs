//! InitProducerId (key 22): a producer id and epoch for an idempotent producer.
//!
//! Every call without a transactional id gets a fresh producer id (epoch 0), as Kafka does
//! for idempotent producers, including the KIP-360 calls (v3+) that name the old id after
//! UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER: a new id starts a new sequence.
//! Transactional ids need the transaction coordinator, which weir does not have yet: they
//! are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED and a message saying so.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;
use crate::error_codes as ec;

pub fn handle(
    broker: &Broker,
    _version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        return fail(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    match broker.producer_ids.next_id() {
        Ok(id) => InitProducerIdResponse::default()
            .with_error_code(ec::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id block failed");
            fail(ec::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
