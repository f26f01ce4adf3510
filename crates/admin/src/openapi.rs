//! `GET /openapi.json`: the OpenAPI 3.0 description of every route, written by hand next to
//! the handlers. The e2e suite runs schemathesis against the live server with it, so a
//! handler that drifts from this document fails a test.

use axum::Json;
use serde_json::{json, Value};

use weir_broker::broker::MAX_PARTITIONS_PER_TOPIC;

use crate::MAX_BODY_BYTES;

pub(crate) async fn document() -> Json<Value> {
    Json(spec())
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn topic_name_param() -> Value {
    json!({
        "name": "name", "in": "path", "required": true,
        "description": "Topic name.",
        "schema": {"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"}
    })
}

pub(crate) fn spec() -> Value {
    let not_ready = error_response("The broker is still opening and recovering its logs.");
    let bad = error_response("Invalid input (INVALID_REQUEST, INVALID_CONFIG, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR).");
    let unknown_topic = error_response("No such topic (UNKNOWN_TOPIC_OR_PARTITION).");
    let too_large = error_response(&format!(
        "Body larger than {MAX_BODY_BYTES} bytes (REQUEST_TOO_LARGE)."
    ));
    let storage = error_response("A storage failure (KAFKA_STORAGE_ERROR).");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "weir admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Health, readiness, Prometheus metrics and a JSON API for topics, configs and consumer groups. Writes go through the same broker operations as the Kafka protocol handlers."
        },
        "paths": {
            "/health": {"get": {
                "operationId": "health",
                "summary": "Liveness: 200 as soon as the process is up, even during recovery.",
                "responses": {"200": json_response("The process is up.", "Health")}
            }},
            "/ready": {"get": {
                "operationId": "ready",
                "summary": "Readiness: 200 once the logs are recovered and Kafka clients are served.",
                "responses": {
                    "200": json_response("Ready.", "Readiness"),
                    "503": json_response("Still starting.", "Readiness")
                }
            }},
            "/metrics": {"get": {
                "operationId": "metrics",
                "summary": "Prometheus text format 0.0.4.",
                "responses": {"200": {
                    "description": "Metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}
                }}
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {
                    "description": "OpenAPI 3 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}}
                }}
            }},
            "/v1/broker": {"get": {
                "operationId": "getBroker",
                "summary": "Broker identity, listeners, data directory, uptime and settings (the DescribeConfigs path).",
                "responses": {
                    "200": json_response("Broker info.", "BrokerInfo"),
                    "503": not_ready
                }
            }},
            "/v1/topics": {
                "get": {
                    "operationId": "listTopics",
                    "summary": "Every topic, internal ones included.",
                    "responses": {
                        "200": json_response("Topics.", "TopicList"),
                        "503": not_ready
                    }
                },
                "post": {
                    "operationId": "createTopic",
                    "summary": "Create a topic (the CreateTopics path: same validation).",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewTopic"}}}
                    },
                    "responses": {
                        "201": json_response("Created.", "TopicDetail"),
                        "400": bad,
                        "409": error_response("The topic exists (TOPIC_ALREADY_EXISTS)."),
                        "413": too_large,
                        "500": storage,
                        "503": not_ready
                    }
                }
            },
            "/v1/topics/{name}": {
                "parameters": [topic_name_param()],
                "get": {
                    "operationId": "describeTopic",
                    "summary": "A topic with its partitions and their offsets.",
                    "responses": {
                        "200": json_response("The topic.", "TopicDetail"),
                        "400": bad,
                        "404": unknown_topic,
                        "503": not_ready
                    }
                },
                "delete": {
                    "operationId": "deleteTopic",
                    "summary": "Delete a topic and its data (the DeleteTopics path). Internal topics are refused.",
                    "responses": {
                        "204": {"description": "Deleted."},
                        "400": bad,
                        "404": unknown_topic,
                        "500": storage,
                        "503": not_ready
                    }
                }
            },
            "/v1/topics/{name}/configs": {
                "parameters": [topic_name_param()],
                "get": {
                    "operationId": "getTopicConfigs",
                    "summary": "Every setting of a topic, effective value and source (the DescribeConfigs path).",
                    "responses": {
                        "200": json_response("Configs.", "TopicConfigs"),
                        "400": bad,
                        "404": unknown_topic,
                        "503": not_ready
                    }
                },
                "patch": {
                    "operationId": "alterTopicConfigs",
                    "summary": "Change a topic's settings incrementally, live (the IncrementalAlterConfigs path).",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AlterConfigs"}}}
                    },
                    "responses": {
                        "200": json_response("The configs after the change.", "TopicConfigs"),
                        "400": bad,
                        "404": unknown_topic,
                        "413": too_large,
                        "500": storage,
                        "503": not_ready
                    }
                }
            },
            "/v1/groups": {"get": {
                "operationId": "listGroups",
                "summary": "Consumer groups known to the coordinator.",
                "responses": {
                    "200": json_response("Groups.", "GroupList"),
                    "503": not_ready
                }
            }},
            "/v1/groups/{group_id}": {"get": {
                "operationId": "describeGroup",
                "summary": "A group's members and, per partition, committed offset, log end offset and lag.",
                "parameters": [{
                    "name": "group_id", "in": "path", "required": true,
                    "schema": {"type": "string"}
                }],
                "responses": {
                    "200": json_response("The group.", "GroupDetail"),
                    "400": bad,
                    "404": error_response("No such group (GROUP_ID_NOT_FOUND)."),
                    "503": not_ready
                }
            }}
        },
        "components": {"schemas": schemas()}
    })
}

fn schemas() -> Value {
    let int = json!({"type": "integer", "format": "int64"});
    let string = json!({"type": "string"});
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "Kafka error name, e.g. UNKNOWN_TOPIC_OR_PARTITION."},
                "message": string
            }
        },
        "Health": {
            "type": "object",
            "required": ["status", "uptime_seconds"],
            "properties": {"status": {"type": "string", "enum": ["ok"]}, "uptime_seconds": {"type": "number"}}
        },
        "Readiness": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "starting"]},
                "reason": string
            }
        },
        "BrokerInfo": {
            "type": "object",
            "required": ["node_id", "cluster_id", "version", "listeners", "data_dir", "uptime_seconds", "topics", "configs"],
            "properties": {
                "node_id": int,
                "cluster_id": string,
                "version": string,
                "listeners": {
                    "type": "object",
                    "required": ["kafka", "advertised", "admin"],
                    "properties": {"kafka": string, "advertised": string, "admin": string}
                },
                "data_dir": string,
                "uptime_seconds": {"type": "number"},
                "topics": int,
                "configs": {"type": "array", "items": {"$ref": "#/components/schemas/ConfigEntry"}, "description": "The broker's settings, as DescribeConfigs on the broker reports them."}
            }
        },
        "TopicSummary": {
            "type": "object",
            "required": ["name", "id", "partitions", "internal"],
            "properties": {"name": string, "id": string, "partitions": int, "internal": {"type": "boolean"}}
        },
        "TopicList": {
            "type": "object",
            "required": ["topics"],
            "properties": {"topics": {"type": "array", "items": {"$ref": "#/components/schemas/TopicSummary"}}}
        },
        "NewTopic": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$", "description": "Kafka topic name rules: [a-zA-Z0-9._-], at most 249 characters, not . or .."},
                "partitions": {"type": "integer", "format": "int32", "minimum": -1, "maximum": MAX_PARTITIONS_PER_TOPIC, "not": {"enum": [0]}, "default": -1, "description": "-1: the broker's num.partitions."},
                "replication_factor": {"type": "integer", "enum": [-1, 1], "default": -1, "description": "-1 (the default) or 1: a single node holds one replica."},
                "configs": string_map
            }
        },
        "PartitionInfo": {
            "type": "object",
            "required": ["partition", "leader", "leader_epoch", "log_start_offset", "log_end_offset", "high_watermark", "last_stable_offset", "size_bytes", "offline"],
            "properties": {
                "partition": int, "leader": int, "leader_epoch": int,
                "log_start_offset": int, "log_end_offset": int, "high_watermark": int,
                "last_stable_offset": int, "size_bytes": int, "offline": {"type": "boolean"}
            }
        },
        "TopicDetail": {
            "type": "object",
            "required": ["name", "id", "internal", "configs", "partitions"],
            "properties": {
                "name": string, "id": string, "internal": {"type": "boolean"},
                "configs": string_map,
                "partitions": {"type": "array", "items": {"$ref": "#/components/schemas/PartitionInfo"}}
            }
        },
        "ConfigSynonym": {
            "type": "object",
            "required": ["name", "value", "source"],
            "properties": {"name": string, "value": string, "source": string}
        },
        "ConfigEntry": {
            "type": "object",
            "required": ["name", "value", "source", "read_only", "sensitive", "type", "synonyms"],
            "properties": {
                "name": string,
                "value": string,
                "source": {"type": "string", "enum": ["DYNAMIC_TOPIC_CONFIG", "STATIC_BROKER_CONFIG", "DEFAULT_CONFIG", "UNKNOWN"]},
                "read_only": {"type": "boolean"},
                "sensitive": {"type": "boolean"},
                "type": {"type": "string", "enum": ["BOOLEAN", "STRING", "INT", "LONG", "DOUBLE", "LIST"]},
                "synonyms": {"type": "array", "items": {"$ref": "#/components/schemas/ConfigSynonym"}}
            }
        },
        "TopicConfigs": {
            "type": "object",
            "required": ["topic", "configs"],
            "properties": {
                "topic": string,
                "configs": {"type": "array", "items": {"$ref": "#/components/schemas/ConfigEntry"}}
            }
        },
        "AlterConfigs": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "set": string_map,
                "delete": {"type": "array", "items": {"type": "string"}},
                "append": string_map,
                "subtract": string_map,
                "validate_only": {"type": "boolean", "default": false}
            }
        },
        "GroupSummary": {
            "type": "object",
            "required": ["group_id", "state", "protocol_type", "protocol", "members"],
            "properties": {"group_id": string, "state": string, "protocol_type": string, "protocol": string, "members": int}
        },
        "GroupList": {
            "type": "object",
            "required": ["groups"],
            "properties": {"groups": {"type": "array", "items": {"$ref": "#/components/schemas/GroupSummary"}}}
        },
        "AssignedPartitions": {
            "type": "object",
            "required": ["topic", "partitions"],
            "properties": {"topic": string, "partitions": {"type": "array", "items": int}}
        },
        "GroupMember": {
            "type": "object",
            "required": ["member_id", "group_instance_id", "client_id", "client_host", "assignment"],
            "properties": {
                "member_id": string,
                "group_instance_id": {"type": "string", "nullable": true},
                "client_id": string,
                "client_host": string,
                "assignment": {"type": "array", "items": {"$ref": "#/components/schemas/AssignedPartitions"}}
            }
        },
        "PartitionLag": {
            "type": "object",
            "required": ["topic", "partition", "committed_offset", "log_end_offset", "lag"],
            "properties": {"topic": string, "partition": int, "committed_offset": int, "log_end_offset": int, "lag": int}
        },
        "GroupDetail": {
            "type": "object",
            "required": ["group_id", "state", "protocol_type", "protocol", "members", "offsets", "total_lag"],
            "properties": {
                "group_id": string, "state": string, "protocol_type": string, "protocol": string,
                "members": {"type": "array", "items": {"$ref": "#/components/schemas/GroupMember"}},
                "offsets": {"type": "array", "items": {"$ref": "#/components/schemas/PartitionLag"}},
                "total_lag": int
            }
        }
    })
}
