//! DeleteTopics (key 20): by name (v1-5) or by name or id (v6). Removes the data.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::prelude::*;
use super::{some_str, str_bytes};
use crate::error_codes as ec;

pub(crate) async fn handle(
    broker: &Arc<Broker>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::new();
    for (name, id) in targets {
        let resolved = match (&name, id.is_nil()) {
            (Some(n), _) => broker
                .topic(n)
                .map(|t| (t.name.clone(), t.id))
                .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION),
            (None, false) => broker
                .topic_by_id(id)
                .map(|t| (t.name.clone(), t.id))
                .ok_or(ec::UNKNOWN_TOPIC_ID),
            (None, true) => Err(ec::INVALID_REQUEST),
        };
        let r = DeletableTopicResult::default()
            .with_name(name.as_deref().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(if version >= 6 { id } else { uuid::Uuid::nil() });
        let r = match resolved {
            Ok((n, tid)) => match broker.delete_topic(&n).await {
                Ok(()) => {
                    let r = r
                        .with_error_code(ec::NONE)
                        .with_name(Some(TopicName(str_bytes(&n))));
                    if version >= 6 {
                        r.with_topic_id(tid)
                    } else {
                        r
                    }
                }
                Err(e) => with_message(r.with_error_code(e.code), version, &e.message),
            },
            Err(code) => r.with_error_code(code),
        };
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

fn with_message(r: DeletableTopicResult, version: i16, message: &str) -> DeletableTopicResult {
    if version >= 5 {
        r.with_error_message(some_str(message))
    } else {
        r
    }
}

/// DeleteTopics in the API registry (`super::registry!`).
pub struct DeleteTopics;

impl KafkaApi for DeleteTopics {
    const KEY: ApiKey = ApiKey::DeleteTopics;
    const VERSIONS: RangeInclusive<i16> = 1..=6;
    type Request = DeleteTopicsRequest;
    type Response = DeleteTopicsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req).await)
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        resp.responses.iter().for_each(|t| f(t.error_code));
    }
}
