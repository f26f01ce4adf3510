//! ApiVersions (key 18): the registry's table (`super::SUPPORTED_APIS`), nothing more and
//! nothing less.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use weir_protocol::encode_response;

use super::prelude::*;
use super::SUPPORTED_APIS;
use crate::error_codes as ec;

pub(crate) fn handle(_version: i16, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ec::NONE)
        .with_api_keys(api_keys())
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The answer to an ApiVersions request at a version weir does not know (KIP-511): v0
/// format, UNSUPPORTED_VERSION, and ApiVersions' own range so the client retries lower.
pub fn unsupported_version_response(correlation_id: i32) -> bytes::Bytes {
    let versions = <ApiVersions as KafkaApi>::VERSIONS;
    let (min, max) = (*versions.start(), *versions.end());
    let body = ApiVersionsResponse::default()
        .with_error_code(ec::UNSUPPORTED_VERSION)
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(min)
            .with_max_version(max)]);
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
        .expect("a v0 ApiVersions response always encodes")
}

/// ApiVersions in the API registry (`super::registry!`).
pub struct ApiVersions;

impl KafkaApi for ApiVersions {
    const KEY: ApiKey = ApiKey::ApiVersions;
    const VERSIONS: RangeInclusive<i16> = 0..=4;
    type Request = ApiVersionsRequest;
    type Response = ApiVersionsResponse;

    async fn handle(
        _broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
    }
}
