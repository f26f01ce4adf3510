//! ApiVersions (key 18): the table in weir-protocol, nothing more and nothing less.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use weir_protocol::{encode_response, SUPPORTED_APIS};

use crate::error_codes as ec;

pub fn handle(_version: i16, _req: ApiVersionsRequest) -> ApiVersionsResponse {
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
    let (min, max) =
        weir_protocol::supported_range(SUPPORTED_APIS, ApiKey::ApiVersions).unwrap_or((0, 0));
    let body = ApiVersionsResponse::default()
        .with_error_code(ec::UNSUPPORTED_VERSION)
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(min)
            .with_max_version(max)]);
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
        .expect("a v0 ApiVersions response always encodes")
}
