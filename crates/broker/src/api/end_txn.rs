//! EndTxn (key 26, v0-3): commit or abort the producer's transaction. Answered once the
//! outcome is durable and its markers are fsync'd in every partition of the transaction, so
//! a read_committed consumer sees a committed transaction as soon as the commit returns.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::prelude::*;
use super::BoxFuture;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: EndTxnRequest,
) -> BoxFuture<EndTxnResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let code = match broker
            .txns
            .end_txn(
                req.transactional_id.as_str(),
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
                version >= 2,
            )
            .await
        {
            Ok(()) => ec::NONE,
            Err(e) => e.code(),
        };
        EndTxnResponse::default().with_error_code(code)
    })
}

/// EndTxn in the API registry (`super::registry!`).
pub struct EndTxn;

impl KafkaApi for EndTxn {
    const KEY: ApiKey = ApiKey::EndTxn;
    const VERSIONS: RangeInclusive<i16> = 0..=3;
    type Request = EndTxnRequest;
    type Response = EndTxnResponse;

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
