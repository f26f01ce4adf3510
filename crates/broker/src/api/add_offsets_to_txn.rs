//! AddOffsetsToTxn (key 25, v0-3): a group's offsets will be committed in the producer's
//! transaction; the group's `__consumer_offsets` partition joins the transaction so its
//! markers reach the pending offset commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::prelude::*;
use super::BoxFuture;
use crate::error_codes as ec;
use crate::group::OFFSETS_TOPIC;

pub(crate) fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> BoxFuture<AddOffsetsToTxnResponse> {
    let broker = broker.clone();
    Box::pin(async move {
        let code = match broker.groups.offsets_partition(req.group_id.as_str()).await {
            Err(e) => e.code(),
            Ok(p) => match broker
                .txns
                .add_partitions(
                    req.transactional_id.as_str(),
                    req.producer_id.0,
                    req.producer_epoch,
                    &[(OFFSETS_TOPIC.to_string(), p)],
                    version >= 2,
                )
                .await
            {
                Ok(()) => ec::NONE,
                Err(e) => e.code(),
            },
        };
        AddOffsetsToTxnResponse::default().with_error_code(code)
    })
}

/// AddOffsetsToTxn in the API registry (`super::registry!`).
pub struct AddOffsetsToTxn;

impl KafkaApi for AddOffsetsToTxn {
    const KEY: ApiKey = ApiKey::AddOffsetsToTxn;
    const VERSIONS: RangeInclusive<i16> = 0..=3;
    type Request = AddOffsetsToTxnRequest;
    type Response = AddOffsetsToTxnResponse;

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
