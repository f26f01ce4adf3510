//! Helpers shared by the broker's integration tests: a config on a temp dir, record batches,
//! and `call`, which drives one request through `api::dispatch` like a connection would.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use weir_broker::api::{dispatch, Response, SUPPORTED_APIS};
use weir_broker::{Broker, BrokerConfig, TopicDefaults};
use weir_protocol::parse_request_header;

pub fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        node_id: 0,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        data_dir: dir.to_path_buf(),
        num_partitions: 2,
        auto_create_topics_enable: true,
        socket_request_max_bytes: 100 * 1024 * 1024,
        topic_defaults: TopicDefaults::default(),
        group: weir_broker::group::GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        },
        offsets: weir_broker::group::OffsetsConfig {
            topic_num_partitions: 3,
            ..Default::default()
        },
        producer_id_expiration_ms: 86_400_000,
        txn: Default::default(),
        log_manager: Default::default(),
        explicit: Default::default(),
    }
}

pub fn batch(values: &[&str]) -> Bytes {
    idempotent_batch(values, -1, -1, -1)
}

/// A batch of `values`, stamped with a producer id, epoch and first sequence (-1: none).
pub fn idempotent_batch(
    values: &[&str],
    producer_id: i64,
    producer_epoch: i16,
    first_seq: i32,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if first_seq < 0 {
                -1
            } else {
                first_seq + i as i32
            },
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Encode `req` as a full request frame body (header + body) at `version`, dispatch it, and
/// return the response frame without its size prefix and header.
pub async fn call<Req: Encodable, Resp: Decodable>(
    broker: &Arc<Broker>,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Option<Resp> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
    let mut frame = buf.freeze();
    let meta = parse_request_header(&mut frame, SUPPORTED_APIS).unwrap();
    let resp = dispatch(broker, &meta, frame)
        .await
        .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
    let frame = match resp {
        Response::Now(b) => b,
        Response::Later(f) => f
            .await
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}")),
        Response::Nothing => return None,
    };
    let bytes = frame.into_bytes().unwrap();
    let mut body = bytes.slice(4..);
    let hv = key.response_header_version(version);
    let rh = ResponseHeader::decode(&mut body, hv).unwrap();
    assert_eq!(rh.correlation_id, 7);
    let resp = Resp::decode(&mut body, version)
        .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response: {e}"));
    assert!(body.is_empty(), "{key:?} v{version}: trailing bytes");
    Some(resp)
}

pub fn range(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (_, min, max) = *SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).unwrap();
    min.max(key.valid_versions().min)..=max
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}
