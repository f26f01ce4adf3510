//! The JSON API under `/v1/`: broker info, topics and groups.
//!
//! Each handler is a thin shell over the broker operation the Kafka handler for the same
//! action calls, so validation and effects are shared (see the crate docs). Kafka error
//! codes become JSON errors with the Kafka name and an HTTP status.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weir_broker::api::describe_configs::{broker_entries, source_name, topic_entries, Entry};
use weir_broker::api::incremental_alter_configs::{
    alter_topic_incrementally, ConfigOp, APPEND, DELETE, SET, SUBTRACT,
};
use weir_broker::broker::{Topic, TopicError};
use weir_broker::config::ConfigType;
use weir_broker::error_codes as ec;
use weir_broker::Broker;

use crate::Shared;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/broker", get(broker_info))
        .route("/v1/topics", get(list_topics).post(create_topic))
        .route(
            "/v1/topics/{name}",
            get(describe_topic).delete(delete_topic),
        )
        .route(
            "/v1/topics/{name}/configs",
            get(topic_configs).patch(alter_configs),
        )
        .route("/v1/groups", get(list_groups))
        .route("/v1/groups/{group_id}", get(describe_group))
}

/// A JSON error: `{"error": KAFKA_ERROR_NAME, "message": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    error: String,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.to_string(),
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "message": self.message})),
        )
            .into_response()
    }
}

impl From<TopicError> for ApiError {
    fn from(e: TopicError) -> Self {
        ApiError {
            status: status_of(e.code),
            error: error_name(e.code),
            message: e.message,
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        let status = e.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "REQUEST_TOO_LARGE"
        } else {
            "INVALID_REQUEST"
        };
        ApiError::new(status, error, e.body_text())
    }
}

fn status_of(code: i16) -> StatusCode {
    match code {
        ec::UNKNOWN_TOPIC_OR_PARTITION | ec::GROUP_ID_NOT_FOUND => StatusCode::NOT_FOUND,
        ec::TOPIC_ALREADY_EXISTS => StatusCode::CONFLICT,
        ec::KAFKA_STORAGE_ERROR | ec::UNKNOWN_SERVER_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
        ec::COORDINATOR_NOT_AVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), from the protocol crate's
/// table so it never drifts from the codes.
pub(crate) fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_{c}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Parse a JSON body ourselves, so malformed input gets our JSON error, not a text one.
fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn ready_broker(s: &Shared) -> Result<&Arc<Broker>, ApiError> {
    s.broker().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "BROKER_NOT_AVAILABLE",
            "the broker is still opening and recovering its logs",
        )
    })
}

fn unknown_topic(name: &str) -> ApiError {
    TopicError::new(
        ec::UNKNOWN_TOPIC_OR_PARTITION,
        format!("topic '{name}' does not exist"),
    )
    .into()
}

// ---- broker ---------------------------------------------------------------------------------

async fn broker_info(State(s): State<Shared>) -> Result<Json<Value>, ApiError> {
    let b = ready_broker(&s)?;
    Ok(Json(json!({
        "node_id": b.config.node_id,
        "cluster_id": b.cluster_id,
        "version": env!("CARGO_PKG_VERSION"),
        "listeners": {
            "kafka": s.listeners.kafka,
            "advertised": s.listeners.advertised,
            "admin": s.listeners.admin,
        },
        "data_dir": b.config.data_dir.display().to_string(),
        "uptime_seconds": s.uptime_seconds(),
        "topics": b.topics().len(),
        "configs": broker_entries(b).iter().map(entry_json).collect::<Vec<_>>(),
    })))
}

// ---- topics ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct TopicSummary {
    name: String,
    id: String,
    partitions: usize,
    internal: bool,
}

#[derive(Serialize)]
struct PartitionInfo {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
    size_bytes: u64,
    offline: bool,
}

#[derive(Serialize)]
struct TopicDetail {
    name: String,
    id: String,
    internal: bool,
    /// The topic's own overrides; `/configs` has every effective value.
    configs: BTreeMap<String, String>,
    partitions: Vec<PartitionInfo>,
}

fn detail(b: &Broker, t: &Topic) -> TopicDetail {
    TopicDetail {
        name: t.name.clone(),
        id: t.id.to_string(),
        internal: t.is_internal(),
        configs: t.overrides.clone(),
        partitions: t
            .partitions
            .iter()
            .map(|p| {
                let s = p.state();
                let (log_end_offset, size_bytes) = p
                    .with_log(|l| (l.log_end_offset(), l.size_bytes()))
                    .unwrap_or((s.high_watermark, 0));
                PartitionInfo {
                    partition: p.index,
                    leader: b.config.node_id,
                    leader_epoch: p.leader_epoch,
                    log_start_offset: s.log_start_offset,
                    log_end_offset,
                    high_watermark: s.high_watermark,
                    last_stable_offset: s.last_stable_offset,
                    size_bytes,
                    offline: s.offline,
                }
            })
            .collect(),
    }
}

async fn list_topics(State(s): State<Shared>) -> Result<Json<Value>, ApiError> {
    let b = ready_broker(&s)?;
    let topics: Vec<TopicSummary> = b
        .topics()
        .iter()
        .map(|t| TopicSummary {
            name: t.name.clone(),
            id: t.id.to_string(),
            partitions: t.partitions.len(),
            internal: t.is_internal(),
        })
        .collect();
    Ok(Json(json!({ "topics": topics })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTopic {
    name: String,
    /// -1: the broker's `num.partitions`.
    #[serde(default = "minus_one")]
    partitions: i32,
    #[serde(default = "minus_one_i16")]
    replication_factor: i16,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

fn minus_one() -> i32 {
    -1
}
fn minus_one_i16() -> i16 {
    -1
}

async fn create_topic(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b = ready_broker(&s)?;
    let req: CreateTopic = parse_body(body)?;
    let topic = b
        .create_topic(
            &req.name,
            req.partitions,
            req.replication_factor,
            req.configs,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(detail(b, &topic))).into_response())
}

async fn describe_topic(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<TopicDetail>, ApiError> {
    let b = ready_broker(&s)?;
    let Path(name) = name?;
    let t = b.topic(&name).ok_or_else(|| unknown_topic(&name))?;
    Ok(Json(detail(b, &t)))
}

async fn delete_topic(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let b = ready_broker(&s)?;
    let Path(name) = name?;
    b.delete_topic(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn type_name(t: ConfigType) -> &'static str {
    match t {
        ConfigType::Boolean => "BOOLEAN",
        ConfigType::String => "STRING",
        ConfigType::Int => "INT",
        ConfigType::Long => "LONG",
        ConfigType::Double => "DOUBLE",
        ConfigType::List => "LIST",
    }
}

/// One setting as DescribeConfigs reports it, for topics and the broker alike.
fn entry_json(e: &Entry) -> Value {
    json!({
        "name": e.name,
        "value": e.value,
        "source": source_name(e.source),
        "read_only": e.read_only,
        "sensitive": false,
        "type": type_name(e.config_type),
        "synonyms": e.synonyms.iter().map(|(n, v, src)| json!({
            "name": n, "value": v, "source": source_name(*src),
        })).collect::<Vec<_>>(),
    })
}

fn configs_json(b: &Broker, name: &str) -> Result<Value, ApiError> {
    let entries =
        topic_entries(b, name).map_err(|(code, message)| TopicError::new(code, message))?;
    let configs: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(json!({ "topic": name, "configs": configs }))
}

async fn topic_configs(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = ready_broker(&s)?;
    let Path(name) = name?;
    Ok(Json(configs_json(b, &name)?))
}

/// Kafka's IncrementalAlterConfigs, shaped for humans: names to set, delete, append to or
/// subtract from.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlterConfigs {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
    #[serde(default)]
    append: BTreeMap<String, String>,
    #[serde(default)]
    subtract: BTreeMap<String, String>,
    #[serde(default)]
    validate_only: bool,
}

async fn alter_configs(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = ready_broker(&s)?;
    let Path(name) = name?;
    let req: AlterConfigs = parse_body(body)?;
    let op = |operation, (name, value): (String, Option<String>)| ConfigOp {
        name,
        operation,
        value,
    };
    let ops: Vec<ConfigOp> = req
        .set
        .into_iter()
        .map(|(k, v)| op(SET, (k, Some(v))))
        .chain(req.delete.into_iter().map(|k| op(DELETE, (k, None))))
        .chain(
            req.append
                .into_iter()
                .map(|(k, v)| op(APPEND, (k, Some(v)))),
        )
        .chain(
            req.subtract
                .into_iter()
                .map(|(k, v)| op(SUBTRACT, (k, Some(v)))),
        )
        .collect();
    alter_topic_incrementally(b, &name, &ops, req.validate_only).await?;
    Ok(Json(configs_json(b, &name)?))
}

// ---- groups ---------------------------------------------------------------------------------

async fn list_groups(State(s): State<Shared>) -> Result<Json<Value>, ApiError> {
    let b = ready_broker(&s)?;
    let groups: Vec<Value> = b
        .groups
        .list()
        .iter()
        .map(|g| {
            json!({
                "group_id": g.group_id,
                "state": g.state,
                "type": g.group_type,
                "protocol_type": g.protocol_type,
                "protocol": g.protocol,
                "members": g.consumer.as_ref().map_or(g.members.len(), |c| c.members.len()),
            })
        })
        .collect();
    Ok(Json(json!({ "groups": groups })))
}

/// The partitions in a consumer-protocol assignment (empty if it is another protocol's).
fn assigned_partitions(assignment: &[u8]) -> Vec<Value> {
    let mut buf = Bytes::copy_from_slice(assignment);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes_advance(&mut buf, 2);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .map(|tp| json!({"topic": tp.topic.as_str(), "partitions": tp.partitions}))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn bytes_advance(b: &mut Bytes, n: usize) -> Option<()> {
    if b.len() < n {
        return None;
    }
    let _ = b.split_to(n);
    Some(())
}

async fn describe_group(
    State(s): State<Shared>,
    group_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = ready_broker(&s)?;
    let Path(group_id) = group_id?;
    let summary = b.groups.describe(&group_id);
    let lag = b.groups.lag(&group_id);
    let Some(g) = summary else {
        return Err(ApiError::from(TopicError::new(
            ec::GROUP_ID_NOT_FOUND,
            format!("group '{group_id}' does not exist"),
        )));
    };
    let consumer_members = g.consumer.iter().flat_map(|c| c.members.iter()).map(|m| {
        let assignment: Vec<Value> = m
            .assignment
            .iter()
            .map(|(_, topic, parts)| json!({"topic": topic, "partitions": parts}))
            .collect();
        json!({
            "member_id": m.member_id,
            "group_instance_id": m.instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "member_epoch": m.member_epoch,
            "assignment": assignment,
        })
    });
    let members: Vec<Value> = consumer_members
        .chain(g.members.iter().map(|m| {
            let assignment = if g.protocol_type == "consumer" {
                assigned_partitions(&m.assignment)
            } else {
                Vec::new()
            };
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": assignment,
            })
        }))
        .collect();
    let total_lag: i64 = lag.iter().map(|l| l.lag).sum();
    let offsets: Vec<Value> = lag
        .iter()
        .map(|l| {
            json!({
                "topic": l.topic,
                "partition": l.partition,
                "committed_offset": l.committed_offset,
                "log_end_offset": l.log_end_offset,
                "lag": l.lag,
            })
        })
        .collect();
    Ok(Json(json!({
        "group_id": g.group_id,
        "state": g.state,
        "type": g.group_type,
        "protocol_type": g.protocol_type,
        "protocol": g.protocol,
        "members": members,
        "offsets": offsets,
        "total_lag": total_lag,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(
            error_name(ec::UNKNOWN_TOPIC_OR_PARTITION),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(error_name(ec::TOPIC_ALREADY_EXISTS), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(ec::INVALID_CONFIG), "INVALID_CONFIG");
        assert_eq!(
            error_name(ec::INVALID_TOPIC_EXCEPTION),
            "INVALID_TOPIC_EXCEPTION"
        );
    }

    #[test]
    fn statuses_follow_the_error() {
        assert_eq!(
            status_of(ec::UNKNOWN_TOPIC_OR_PARTITION),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status_of(ec::TOPIC_ALREADY_EXISTS), StatusCode::CONFLICT);
        assert_eq!(status_of(ec::INVALID_CONFIG), StatusCode::BAD_REQUEST);
    }
}
