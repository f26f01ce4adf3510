//! Request headers in, framed responses out.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::versions::{accepted_range, ApiVersionRange};

/// The parts of a request header the broker acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// Which API the body is for; only keys weir implements get this far.
    pub api_key: ApiKey,
    /// Within the range weir advertises for `api_key`: picks the body and response schema.
    pub api_version: i16,
    /// Echoed in the response so the client can match it to this request.
    pub correlation_id: i32,
    /// The client's self-chosen name (`client.id`), None if it sent a null; for logs and
    /// group member ids.
    pub client_id: Option<String>,
    /// The client's address as groups report it (Kafka's "/127.0.0.1"); set by the server.
    pub client_host: String,
}

/// Why a request header could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than the 8 bytes of api key, version and correlation id.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key weir does not implement, or a version outside its advertised range.
    /// ApiVersions is answered anyway (KIP-511 fallback); anything else closes the connection.
    #[error("unsupported api key {api_key} version {api_version}")]
    Unsupported {
        /// The key as sent, which may name no API at all.
        api_key: i16,
        /// The version as sent.
        api_version: i16,
        /// Needed to answer ApiVersions anyway.
        correlation_id: i32,
    },
    /// The header's variable part (client id, tagged fields) did not decode.
    #[error("malformed request header: {0}")]
    Malformed(String),
}

/// Parse the request header at the front of `frame`, leaving `frame` at the body. An API
/// missing from `supported` (the broker's advertised table), or a version outside its
/// accepted range, is refused before the header's own version-dependent fields are read.
pub fn parse_request_header(
    frame: &mut Bytes,
    supported: &[ApiVersionRange],
) -> Result<RequestMeta, HeaderError> {
    if frame.len() < 8 {
        return Err(HeaderError::TooShort(frame.len()));
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let unsupported = HeaderError::Unsupported {
        api_key: api_key_raw,
        api_version,
        correlation_id,
    };
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(unsupported);
    };
    let Some(range) = accepted_range(supported, api_key) else {
        return Err(unsupported);
    };
    if api_version < range.0 || api_version > range.1 {
        return Err(unsupported);
    }
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(frame, header_version)
        .map_err(|e| HeaderError::Malformed(e.to_string()))?;
    Ok(RequestMeta {
        api_key,
        api_version,
        correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
        client_host: String::new(),
    })
}

/// Encode a whole response frame: size prefix, response header, body.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::with_capacity(64);
    encode_response_header(&mut buf, api_key, api_version, correlation_id)?;
    body.encode(&mut buf, api_version)
        .map_err(|e| EncodeError(format!("{api_key:?} v{api_version}: {e}")))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Start a response frame in `buf`: a size placeholder (4 zero bytes, to be overwritten with
/// the size of everything after it) and the response header for `api_key` at `api_version`.
/// For responses assembled in parts (a fetch whose records go out by sendfile).
pub fn encode_response_header(
    buf: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
) -> Result<(), EncodeError> {
    let header_version = api_key.response_header_version(api_version);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, header_version)
        .map_err(|e| EncodeError(e.to_string()))
}

/// A response the codec refused to encode: a broker bug (a field set that the client's
/// version cannot carry). The connection is closed and the bug logged.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode response: {0}")]
pub struct EncodeError(pub String);
