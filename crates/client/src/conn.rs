//! One TCP connection to one broker: ApiVersions negotiation on connect, then requests
//! answered one at a time, each checked against its correlation id.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Largest response frame accepted. Fetch responses are bounded by the request's
/// `max_bytes` (plus one oversized batch, KIP-74), so this only stops a broken peer.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The newest version of each API this client was written against. Newer versions change
/// the shape of requests (topic ids instead of names, batched groups) in ways the callers
/// here do not fill in, so they are never sent even if the broker offers them.
pub const CLIENT_MAX_VERSIONS: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 12),
    (ApiKey::Fetch, 12),
    (ApiKey::ListOffsets, 9),
    (ApiKey::Metadata, 12),
    (ApiKey::OffsetCommit, 8),
    (ApiKey::OffsetFetch, 7),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::JoinGroup, 9),
    (ApiKey::Heartbeat, 4),
    (ApiKey::LeaveGroup, 5),
    (ApiKey::SyncGroup, 5),
    (ApiKey::DescribeGroups, 5),
    (ApiKey::ListGroups, 5),
    (ApiKey::ApiVersions, 3),
    (ApiKey::CreateTopics, 7),
    (ApiKey::DeleteTopics, 6),
    (ApiKey::DescribeConfigs, 4),
    (ApiKey::DeleteGroups, 2),
    (ApiKey::IncrementalAlterConfigs, 1),
    (ApiKey::DescribeCluster, 1),
    (ApiKey::ConsumerGroupDescribe, 1),
];

/// The Kafka name of an API key ("Metadata") for messages.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("api key {key}"))
}

/// One socket to one broker, with the API versions negotiated on it; one request in flight
/// at a time.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    next_correlation_id: i32,
    client_id: StrBytes,
    request_timeout: Duration,
    /// api key -> (min, max) the broker advertised.
    broker_versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connect and negotiate API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        request_timeout: Duration,
    ) -> Result<Connection> {
        let stream = tokio::time::timeout(request_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout(format!("connecting to {addr}")))?
            .map_err(|cause| Error::Connect {
                addr: addr.to_string(),
                cause,
            })?;
        stream.set_nodelay(true).map_err(|cause| Error::Io {
            addr: addr.to_string(),
            cause,
        })?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            next_correlation_id: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            request_timeout,
            broker_versions: HashMap::new(),
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// The broker's HOST:PORT, for error messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// ApiVersions v3 first (what librdkafka sends); a broker that does not know v3 answers
    /// UNSUPPORTED_VERSION in the v0 format, and then v0 is asked.
    async fn negotiate(&mut self) -> Result<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let cid = self.send_at(&req, 3).await?;
        let mut frame = self.read_frame(self.request_timeout).await?;
        let header = ResponseHeader::decode(&mut frame, 0).map_err(|e| self.protocol(e))?;
        self.check_correlation(header.correlation_id, cid)?;
        let error_code = frame.clone().get_i16();
        let resp = if error_code == 35 {
            self.call_at(&ApiVersionsRequest::default(), 0).await?
        } else {
            ApiVersionsResponse::decode(&mut frame, 3).map_err(|e| self.protocol(e))?
        };
        crate::error::check(
            resp.error_code,
            || format!("ApiVersions to {}", self.addr),
            None,
        )?;
        self.broker_versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// Whether the broker offers `key` at a version this client can send.
    pub fn supports(&self, key: ApiKey, codec: kafka_protocol::protocol::VersionRange) -> bool {
        self.pick_version(key as i16, codec).is_ok()
    }

    fn pick_version(&self, key: i16, codec: kafka_protocol::protocol::VersionRange) -> Result<i16> {
        let unsupported = || Error::UnsupportedApi { api: api_name(key) };
        let &(broker_min, broker_max) = self.broker_versions.get(&key).ok_or_else(unsupported)?;
        let client_max = CLIENT_MAX_VERSIONS
            .iter()
            .find(|(k, _)| *k as i16 == key)
            .map(|&(_, v)| v)
            .unwrap_or(codec.max);
        let max = broker_max.min(client_max).min(codec.max);
        if max < broker_min.max(codec.min) {
            return Err(unsupported());
        }
        Ok(max)
    }

    /// The version `R` will be sent at on this connection.
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        self.pick_version(R::KEY, R::VERSIONS)
    }

    /// Send `req` at the best common version and wait for its response.
    pub async fn call<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        self.call_at(req, version).await
    }

    /// Like [`Connection::call`] with a longer wait, for requests the broker holds on
    /// purpose (a Fetch long poll, a JoinGroup waiting for the rebalance).
    pub async fn call_with_timeout<R: Request>(
        &mut self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = self.version_of::<R>()?;
        let cid = self.send_at(req, version).await?;
        self.receive::<R>(cid, version, timeout).await
    }

    /// Send `req` at exactly `version` (for a request whose body the caller built for one
    /// version) and wait for its response.
    pub async fn call_at<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        let cid = self.send_at(req, version).await?;
        self.receive::<R>(cid, version, self.request_timeout).await
    }

    /// Send a request the broker will not answer (Produce with acks=0).
    pub async fn send_only<R: Request>(&mut self, req: &R) -> Result<()> {
        let version = self.version_of::<R>()?;
        self.send_at(req, version).await.map(|_| ())
    }

    async fn receive<R: Request>(
        &mut self,
        cid: i32,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let mut frame = self.read_frame(timeout).await?;
        let header = ResponseHeader::decode(
            &mut frame,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| self.protocol(e))?;
        self.check_correlation(header.correlation_id, cid)?;
        let resp = R::Response::decode(&mut frame, version)
            .map_err(|e| self.protocol(format!("{} v{version} response: {e}", api_name(R::KEY))))?;
        Ok(resp)
    }

    async fn send_at<R: Request>(&mut self, req: &R, version: i16) -> Result<i32> {
        let cid = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(cid)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| Error::Invalid(format!("encoding a request header: {e}")))?;
        req.encode(&mut buf, version).map_err(|e| {
            Error::Invalid(format!("encoding {} v{version}: {e}", api_name(R::KEY)))
        })?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let write = self.stream.write_all(&buf);
        tokio::time::timeout(self.request_timeout, write)
            .await
            .map_err(|_| Error::Timeout(format!("sending to {}", self.addr)))?
            .map_err(|cause| Error::Io {
                addr: self.addr.clone(),
                cause,
            })?;
        Ok(cid)
    }

    async fn read_frame(&mut self, timeout: Duration) -> Result<bytes::Bytes> {
        let read = weir_protocol::frame::read_frame(&mut self.stream, MAX_RESPONSE_BYTES);
        match tokio::time::timeout(timeout, read).await {
            Err(_) => Err(Error::Timeout(format!("waiting for {}", self.addr))),
            Ok(Ok(Some(frame))) => Ok(frame.freeze()),
            Ok(Ok(None)) => Err(Error::Io {
                addr: self.addr.clone(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection",
                ),
            }),
            // A lost connection (reset, or closed mid-frame) is transient, not a bad peer.
            Ok(Err(weir_protocol::frame::FrameError::Io(cause))) => Err(Error::Io {
                addr: self.addr.clone(),
                cause,
            }),
            Ok(Err(weir_protocol::frame::FrameError::Truncated)) => Err(Error::Io {
                addr: self.addr.clone(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection closed in the middle of a response",
                ),
            }),
            Ok(Err(e)) => Err(self.protocol(e)),
        }
    }

    fn check_correlation(&self, got: i32, want: i32) -> Result<()> {
        if got != want {
            return Err(self.protocol(format!("response correlation id {got}, expected {want}")));
        }
        Ok(())
    }

    fn protocol(&self, detail: impl std::fmt::Display) -> Error {
        Error::Protocol {
            addr: self.addr.clone(),
            detail: detail.to_string(),
        }
    }
}
