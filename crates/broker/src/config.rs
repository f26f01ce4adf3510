//! Broker settings and per-topic settings, with Kafka's names and meanings.
//!
//! A topic stores only the settings given for it (its overrides); every effective value is
//! the override if present, else the broker default. DescribeConfigs reports which is which.

use std::collections::BTreeMap;
use std::path::PathBuf;

use weir_storage::LogConfig;

/// Settings of the whole broker. Field names mirror Kafka's broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`: this broker's id in metadata responses.
    pub node_id: i32,
    /// Host and port written into metadata responses: where clients connect.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// `log.dirs`: where partitions live.
    pub data_dir: PathBuf,
    /// `num.partitions`: partitions of an auto-created topic, or of CreateTopics with -1.
    pub num_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `socket.request.max.bytes`: the largest request frame accepted (checked before
    /// allocating); larger frames close the connection.
    pub socket_request_max_bytes: usize,
    /// Broker-wide defaults of the topic settings.
    pub topic_defaults: TopicDefaults,
    /// The group coordinator's timings (`group.*`).
    pub group: crate::group::GroupConfig,
    /// Committed offsets (`offsets.*`).
    pub offsets: crate::group::OffsetsConfig,
    /// `producer.id.expiration.ms`: an idempotent producer idle this long is forgotten.
    pub producer_id_expiration_ms: i64,
    /// The transaction coordinator's settings (`transaction.*`).
    pub txn: crate::txn::TxnConfig,
}

/// Broker defaults of topic settings (Kafka's broker-level names in comments).
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    /// `log.segment.bytes`
    pub segment_bytes: u64,
    /// `log.roll.ms`
    pub segment_ms: i64,
    /// `message.max.bytes`
    pub max_message_bytes: i64,
    /// `log.index.interval.bytes`
    pub index_interval_bytes: u64,
    /// `log.flush.interval.messages`. weir's default is 1: every produce is fsync'd before it
    /// is acknowledged. Larger values are an opt-in that acknowledges before the fsync.
    pub flush_messages: i64,
    /// `log.flush.interval.ms`: with a relaxed `flush.messages`, fsync at least this often.
    pub flush_ms: i64,
    /// `log.message.timestamp.type`: CreateTime or LogAppendTime.
    pub message_timestamp_type: String,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1024 * 1024 + 12,
            index_interval_bytes: 4096,
            flush_messages: 1,
            flush_ms: i64::MAX,
            message_timestamp_type: "CreateTime".to_string(),
        }
    }
}

/// Value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    String = 2,
    Int = 3,
    Long = 5,
    List = 7,
}

/// One topic setting weir implements: its topic name, the broker setting that supplies its
/// default, its type and documentation.
pub struct TopicSetting {
    pub name: &'static str,
    pub broker_synonym: &'static str,
    pub config_type: ConfigType,
    pub doc: &'static str,
}

/// Every topic setting weir implements. Anything else is refused with INVALID_CONFIG, so a
/// setting a user gives is never silently ignored.
pub const TOPIC_SETTINGS: &[TopicSetting] = &[
    TopicSetting {
        name: "cleanup.policy",
        broker_synonym: "log.cleanup.policy",
        config_type: ConfigType::List,
        doc: "Only 'delete' is implemented; retention and compaction come later.",
    },
    TopicSetting {
        name: "segment.bytes",
        broker_synonym: "log.segment.bytes",
        config_type: ConfigType::Int,
        doc: "Roll the active segment when it would grow past this size.",
    },
    TopicSetting {
        name: "segment.ms",
        broker_synonym: "log.roll.ms",
        config_type: ConfigType::Long,
        doc: "Roll the active segment when it is older than this.",
    },
    TopicSetting {
        name: "max.message.bytes",
        broker_synonym: "message.max.bytes",
        config_type: ConfigType::Int,
        doc: "Largest record batch accepted.",
    },
    TopicSetting {
        name: "index.interval.bytes",
        broker_synonym: "log.index.interval.bytes",
        config_type: ConfigType::Int,
        doc: "Bytes between two entries of the sparse offset index.",
    },
    TopicSetting {
        name: "flush.messages",
        broker_synonym: "log.flush.interval.messages",
        config_type: ConfigType::Long,
        doc: "1 (weir's default): fsync before acknowledging. Larger: acknowledge before fsync, fsync every N messages.",
    },
    TopicSetting {
        name: "flush.ms",
        broker_synonym: "log.flush.interval.ms",
        config_type: ConfigType::Long,
        doc: "With relaxed flush.messages: fsync at least this often.",
    },
    TopicSetting {
        name: "message.timestamp.type",
        broker_synonym: "log.message.timestamp.type",
        config_type: ConfigType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock.",
    },
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The effective settings of one topic: broker defaults overlaid with its overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub max_message_bytes: i64,
    pub index_interval_bytes: u64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub log_append_time: bool,
}

impl TopicSettings {
    /// Validate `overrides` and compute the effective settings.
    pub fn resolve(
        defaults: &TopicDefaults,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicSettings, ConfigError> {
        let mut s = TopicSettings {
            segment_bytes: defaults.segment_bytes,
            segment_ms: defaults.segment_ms,
            max_message_bytes: defaults.max_message_bytes,
            index_interval_bytes: defaults.index_interval_bytes,
            flush_messages: defaults.flush_messages,
            flush_ms: defaults.flush_ms,
            log_append_time: defaults.message_timestamp_type == "LogAppendTime",
        };
        for (key, value) in overrides {
            match key.as_str() {
                "cleanup.policy" => {
                    if value != "delete" {
                        return Err(ConfigError(format!(
                            "cleanup.policy={value} is not supported yet (only 'delete')"
                        )));
                    }
                }
                "segment.bytes" => {
                    s.segment_bytes = parse_ranged(key, value, 14, i32::MAX as i64)? as u64
                }
                "segment.ms" => s.segment_ms = parse_ranged(key, value, 1, i64::MAX)?,
                "max.message.bytes" => {
                    s.max_message_bytes = parse_ranged(key, value, 0, i32::MAX as i64)?
                }
                "index.interval.bytes" => {
                    s.index_interval_bytes = parse_ranged(key, value, 0, i32::MAX as i64)? as u64
                }
                "flush.messages" => s.flush_messages = parse_ranged(key, value, 1, i64::MAX)?,
                "flush.ms" => s.flush_ms = parse_ranged(key, value, 0, i64::MAX)?,
                "message.timestamp.type" => match value.as_str() {
                    "CreateTime" => s.log_append_time = false,
                    "LogAppendTime" => s.log_append_time = true,
                    _ => {
                        return Err(ConfigError(format!(
                        "message.timestamp.type must be CreateTime or LogAppendTime, not '{value}'"
                    )))
                    }
                },
                _ => {
                    return Err(ConfigError(format!(
                        "unknown or unsupported topic config '{key}'"
                    )))
                }
            }
        }
        Ok(s)
    }

    /// fsync before acknowledging (the default) or acknowledge first (an opt-in).
    pub fn fsync_before_ack(&self) -> bool {
        self.flush_messages <= 1
    }

    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
            max_message_bytes: self.max_message_bytes.max(0) as usize,
            log_append_time: self.log_append_time,
        }
    }

    /// The effective value of a setting, as a string (for DescribeConfigs).
    pub fn value_of(&self, name: &str) -> Option<String> {
        Some(match name {
            "cleanup.policy" => "delete".to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "message.timestamp.type" => if self.log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            }
            .to_string(),
            _ => return None,
        })
    }
}

fn parse_ranged(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| ConfigError(format!("{key} must be an integer, not '{value}'")))?;
    if v < min || v > max {
        return Err(ConfigError(format!(
            "{key}={v} is out of range [{min}, {max}]"
        )));
    }
    Ok(v)
}

/// Kafka's topic name rule: 1..=249 characters of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters, more than 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "topic name '{name}' contains '{c}'; only [a-zA-Z0-9._-] are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_and_unknown_keys_are_refused() {
        let d = TopicDefaults::default();
        let mut o = BTreeMap::new();
        o.insert("segment.bytes".to_string(), "1048576".to_string());
        let s = TopicSettings::resolve(&d, &o).unwrap();
        assert_eq!(s.segment_bytes, 1048576);
        assert!(s.fsync_before_ack());
        o.insert("retention.ms".to_string(), "1".to_string());
        let e = TopicSettings::resolve(&d, &o).unwrap_err();
        assert!(e.0.contains("retention.ms"));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
