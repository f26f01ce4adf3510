//! InitProducerId (key 22): a producer id and epoch.
//!
//! Without a transactional id every call gets a fresh producer id (epoch 0), as Kafka does
//! for idempotent producers, including the KIP-360 calls (v3+) that name the old id after
//! UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER: a new id starts a new sequence.
//! With a transactional id the transaction coordinator answers: the id's producer id with a
//! bumped epoch, fencing the previous incarnation and aborting its open transaction.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::prelude::*;
use super::BoxFuture;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: InitProducerIdRequest,
) -> BoxFuture<InitProducerIdResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let fail = |code| {
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        let ok = |id, epoch| {
            InitProducerIdResponse::default()
                .with_error_code(ec::NONE)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch)
        };
        if let Some(txn_id) = req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
            let expected = (version >= 3).then_some((req.producer_id.0, req.producer_epoch));
            return match broker
                .txns
                .init_producer_id(
                    txn_id.as_str(),
                    req.transaction_timeout_ms,
                    expected,
                    version,
                )
                .await
            {
                Ok((id, epoch)) => ok(id, epoch),
                Err(e) => fail(e.code()),
            };
        }
        match broker.producer_ids.next_id() {
            Ok(id) => ok(id, 0),
            Err(e) => {
                tracing::error!(error = %e, "allocating a producer id block failed");
                fail(ec::COORDINATOR_NOT_AVAILABLE)
            }
        }
    })
}

/// InitProducerId in the API registry (`super::registry!`).
pub struct InitProducerId;

impl KafkaApi for InitProducerId {
    const KEY: ApiKey = ApiKey::InitProducerId;
    const VERSIONS: RangeInclusive<i16> = 0..=5;
    type Request = InitProducerIdRequest;
    type Response = InitProducerIdResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Later(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
    }
}
