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
    /// The advertised port (see `advertised_host`).
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
    pub group: GroupConfig,
    /// Committed offsets (`offsets.*`).
    pub offsets: OffsetsConfig,
    /// `producer.id.expiration.ms`: an idempotent producer idle this long is forgotten.
    pub producer_id_expiration_ms: i64,
    /// The transaction coordinator's settings (`transaction.*`).
    pub txn: TxnConfig,
    /// Retention and the log cleaner (`log.retention.check.interval.ms`, `log.cleaner.*`).
    pub log_manager: LogManagerConfig,
    /// Broker settings given explicitly (flag, environment or file), by Kafka name: their
    /// DescribeConfigs source is STATIC_BROKER_CONFIG rather than DEFAULT_CONFIG.
    pub explicit: std::collections::BTreeSet<String>,
}

/// Timing settings of the group coordinator (Kafka's broker settings).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members (extended by each join, up to the rebalance timeout).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: the longest session a member may ask for.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub max_size: usize,
    /// `group.consumer.session.timeout.ms`: how long a consumer-protocol member may go
    /// without a heartbeat (the broker decides it, not the client).
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often consumer-protocol members
    /// heartbeat; they learn of assignment changes at that pace.
    pub consumer_heartbeat_interval_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: 10_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

/// Settings of committed offsets (Kafka's names).
#[derive(Debug, Clone)]
pub struct OffsetsConfig {
    /// `offsets.retention.minutes`, in ms: offsets of a group that has been empty this long
    /// (or, for commits made outside any group, committed this long ago) are deleted.
    pub retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub retention_check_interval_ms: i64,
    /// `offsets.topic.num.partitions`, used when `__consumer_offsets` is created.
    pub topic_num_partitions: i32,
    /// `offset.metadata.max.bytes`.
    pub metadata_max_bytes: usize,
}

impl Default for OffsetsConfig {
    fn default() -> Self {
        OffsetsConfig {
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_check_interval_ms: 600_000,
            topic_num_partitions: 50,
            metadata_max_bytes: 4096,
        }
    }
}

/// Settings of the transaction coordinator (Kafka's names).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the largest transaction.timeout.ms a producer may ask.
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_check_interval_ms: i64,
    /// `transaction.state.log.num.partitions`, used when `__transaction_state` is created.
    pub topic_num_partitions: i32,
    /// `transactional.id.expiration.ms`: a transactional id with no transaction open and no
    /// update for this long is forgotten (a tombstone in `__transaction_state`), so ids used
    /// once (one per task, per test run) do not pile up in memory forever.
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often to look.
    pub remove_expired_interval_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            abort_check_interval_ms: 10_000,
            topic_num_partitions: 50,
            id_expiration_ms: 604_800_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

/// The background work on logs: retention checks and the cleaner (Kafka's names).
#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `log.retention.check.interval.ms`: how often segments past retention are deleted.
    pub retention_check_interval_ms: i64,
    /// `log.cleaner.enable`.
    pub cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the cleaner's sleep when there is nothing to clean.
    pub cleaner_backoff_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the cleaner's key -> offset map.
    pub cleaner_dedupe_buffer_size: usize,
}

impl Default for LogManagerConfig {
    fn default() -> Self {
        LogManagerConfig {
            retention_check_interval_ms: 300_000,
            cleaner_enable: true,
            cleaner_backoff_ms: 15_000,
            cleaner_dedupe_buffer_size: 128 * 1024 * 1024,
        }
    }
}

/// Limits of the network edge (Kafka's names), which weir-server enforces.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// `max.connections`: connections beyond this wait in the accept queue.
    pub max_connections: usize,
    /// `max.connections.per.ip`: a further connection from the same address is closed at
    /// once.
    pub max_connections_per_ip: usize,
    /// `connections.max.idle.ms`: a connection that sends nothing for this long is closed.
    pub connections_max_idle_ms: u64,
    /// `queued.max.requests`: requests read (complete) but not yet answered, over all
    /// connections. When reached, connections stop reading: backpressure, not memory.
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes`: bytes of requests being read or in flight, over all
    /// connections. Body bytes are only read after their share of this budget is taken, so
    /// request memory never exceeds it however many clients send at once.
    pub queued_max_request_bytes: usize,
    /// Requests read but not yet answered on one connection.
    pub max_in_flight_per_connection: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            max_connections_per_ip: usize::MAX,
            connections_max_idle_ms: 600_000,
            queued_max_requests: 500,
            queued_max_request_bytes: 512 * 1024 * 1024,
            max_in_flight_per_connection: 32,
        }
    }
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
    /// `log.retention.ms`: -1 keeps data forever.
    pub retention_ms: i64,
    /// `log.retention.bytes`: per partition; -1 for no limit.
    pub retention_bytes: i64,
    /// `log.cleanup.policy`: "delete", "compact" or "compact,delete".
    pub cleanup_policy: String,
    /// `log.cleaner.delete.retention.ms`: how long tombstones outlive cleaning.
    pub delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `log.cleaner.min.cleanable.ratio`.
    pub min_cleanable_dirty_ratio: f64,
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
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: "delete".to_string(),
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// Value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// Free text.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 64-bit integer.
    Long = 5,
    /// A floating-point number.
    Double = 6,
    /// A comma-separated list.
    List = 7,
}

/// One topic setting weir implements: its topic name, the broker setting that supplies its
/// default, its type and documentation.
pub struct TopicSetting {
    /// The topic-level name (`retention.ms`).
    pub name: &'static str,
    /// The broker setting that supplies the default (`log.retention.ms`).
    pub broker_synonym: &'static str,
    /// The type DescribeConfigs reports.
    pub config_type: ConfigType,
    /// One line for DescribeConfigs' documentation field.
    pub doc: &'static str,
}

/// Every topic setting weir implements. Anything else is refused with INVALID_CONFIG, so a
/// setting a user gives is never silently ignored.
pub const TOPIC_SETTINGS: &[TopicSetting] = &[
    TopicSetting {
        name: "cleanup.policy",
        broker_synonym: "log.cleanup.policy",
        config_type: ConfigType::List,
        doc: "delete: old segments are deleted by retention.ms and retention.bytes; compact: the latest record of each key is kept; both: compact,delete.",
    },
    TopicSetting {
        name: "retention.ms",
        broker_synonym: "log.retention.ms",
        config_type: ConfigType::Long,
        doc: "Segments whose newest record is older than this are deleted (-1: never).",
    },
    TopicSetting {
        name: "retention.bytes",
        broker_synonym: "log.retention.bytes",
        config_type: ConfigType::Long,
        doc: "Oldest segments are deleted while a partition is larger than this (-1: no limit).",
    },
    TopicSetting {
        name: "delete.retention.ms",
        broker_synonym: "log.cleaner.delete.retention.ms",
        config_type: ConfigType::Long,
        doc: "How long a tombstone is kept after its segment is compacted.",
    },
    TopicSetting {
        name: "min.compaction.lag.ms",
        broker_synonym: "log.cleaner.min.compaction.lag.ms",
        config_type: ConfigType::Long,
        doc: "Records younger than this are not compacted.",
    },
    TopicSetting {
        name: "max.compaction.lag.ms",
        broker_synonym: "log.cleaner.max.compaction.lag.ms",
        config_type: ConfigType::Long,
        doc: "Records older than this are compacted whatever the dirty ratio.",
    },
    TopicSetting {
        name: "min.cleanable.dirty.ratio",
        broker_synonym: "log.cleaner.min.cleanable.ratio",
        config_type: ConfigType::Double,
        doc: "Compact when this share of the log is not yet compacted.",
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

/// A setting refused, with why (answered as INVALID_CONFIG).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The effective settings of one topic: broker defaults overlaid with its overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// `segment.bytes`: a segment rolls once it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: a segment rolls once its first append is this old.
    pub segment_ms: i64,
    /// `max.message.bytes`: the largest record set one produce may append to a partition.
    pub max_message_bytes: i64,
    /// `index.interval.bytes`: bytes between two entries of the sparse offset index.
    pub index_interval_bytes: u64,
    /// `flush.messages`: 1 (the default) fsyncs before every acknowledgement; more acknowledges first.
    pub flush_messages: i64,
    /// `flush.ms`: with a relaxed `flush.messages`, the longest an append waits for its fsync.
    pub flush_ms: i64,
    /// `message.timestamp.type` is LogAppendTime: the broker stamps batches with its clock.
    pub log_append_time: bool,
    /// `retention.ms`: segments whose newest record is older go (-1: never).
    pub retention_ms: i64,
    /// `retention.bytes`: the oldest segments go while the partition is larger (-1: no limit).
    pub retention_bytes: i64,
    /// cleanup.policy includes delete.
    pub cleanup_delete: bool,
    /// cleanup.policy includes compact.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a tombstone outlives the clean that reached it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the partition due for cleaning.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the dirty share of the log that makes it due for cleaning.
    pub min_cleanable_dirty_ratio: f64,
}

/// cleanup.policy: (delete, compact).
fn parse_cleanup_policy(key: &str, value: &str) -> Result<(bool, bool), ConfigError> {
    let (mut delete, mut compact) = (false, false);
    for item in value.split(',').map(str::trim) {
        match item {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => {
                return Err(ConfigError(format!(
                    "{key} must be a list of 'delete' and 'compact', not '{value}'"
                )))
            }
        }
    }
    Ok((delete, compact))
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
            retention_ms: defaults.retention_ms,
            retention_bytes: defaults.retention_bytes,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: defaults.delete_retention_ms,
            min_compaction_lag_ms: defaults.min_compaction_lag_ms,
            max_compaction_lag_ms: defaults.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: defaults.min_cleanable_dirty_ratio,
        };
        (s.cleanup_delete, s.cleanup_compact) =
            parse_cleanup_policy("log.cleanup.policy", &defaults.cleanup_policy)?;
        for (key, value) in overrides {
            match key.as_str() {
                "cleanup.policy" => {
                    (s.cleanup_delete, s.cleanup_compact) = parse_cleanup_policy(key, value)?
                }
                "retention.ms" => s.retention_ms = parse_ranged(key, value, -1, i64::MAX)?,
                "retention.bytes" => s.retention_bytes = parse_ranged(key, value, -1, i64::MAX)?,
                "delete.retention.ms" => {
                    s.delete_retention_ms = parse_ranged(key, value, 0, i64::MAX)?
                }
                "min.compaction.lag.ms" => {
                    s.min_compaction_lag_ms = parse_ranged(key, value, 0, i64::MAX)?
                }
                "max.compaction.lag.ms" => {
                    s.max_compaction_lag_ms = parse_ranged(key, value, 1, i64::MAX)?
                }
                "min.cleanable.dirty.ratio" => {
                    let v: f64 = value.trim().parse().map_err(|_| {
                        ConfigError(format!("{key} must be a number, not '{value}'"))
                    })?;
                    if !(0.0..=1.0).contains(&v) {
                        return Err(ConfigError(format!("{key}={v} is out of range [0, 1]")));
                    }
                    s.min_cleanable_dirty_ratio = v;
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
        if s.min_compaction_lag_ms > s.max_compaction_lag_ms {
            return Err(ConfigError(format!(
                "min.compaction.lag.ms ({}) must not be greater than max.compaction.lag.ms ({})",
                s.min_compaction_lag_ms, s.max_compaction_lag_ms
            )));
        }
        Ok(s)
    }

    /// The cleanup.policy value as Kafka writes it.
    pub fn cleanup_policy(&self) -> String {
        match (self.cleanup_compact, self.cleanup_delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            _ => "delete",
        }
        .to_string()
    }

    /// fsync before acknowledging (the default) or acknowledge first (an opt-in).
    pub fn fsync_before_ack(&self) -> bool {
        self.flush_messages <= 1
    }

    /// The storage settings of a partition log with these topic settings.
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            // A record can only be compacted once its segment is closed: max.compaction.lag.ms
            // bounds the active segment's age (as in Kafka).
            segment_ms: if self.cleanup_compact {
                self.segment_ms.min(self.max_compaction_lag_ms)
            } else {
                self.segment_ms
            },
            index_interval_bytes: self.index_interval_bytes,
            max_message_bytes: self.max_message_bytes.max(0) as usize,
            log_append_time: self.log_append_time,
        }
    }

    /// The effective value of a setting, as a string (for DescribeConfigs).
    pub fn value_of(&self, name: &str) -> Option<String> {
        Some(match name {
            "cleanup.policy" => self.cleanup_policy(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
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
        assert_eq!(TopicSettings::resolve(&d, &o).unwrap().retention_ms, 1);
        o.insert("retention.msx".to_string(), "1".to_string());
        let e = TopicSettings::resolve(&d, &o).unwrap_err();
        assert!(e.0.contains("retention.msx"));
    }

    #[test]
    fn cleanup_and_compaction_settings_are_validated() {
        let d = TopicDefaults::default();
        let resolve = |pairs: &[(&str, &str)]| {
            let o: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TopicSettings::resolve(&d, &o)
        };
        let s = resolve(&[("cleanup.policy", "compact,delete")]).unwrap();
        assert!(s.cleanup_compact && s.cleanup_delete);
        assert_eq!(s.value_of("cleanup.policy").unwrap(), "compact,delete");
        let s = resolve(&[("cleanup.policy", "compact")]).unwrap();
        assert!(s.cleanup_compact && !s.cleanup_delete);
        for bad in [
            ("cleanup.policy", "shred"),
            ("retention.ms", "-2"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("delete.retention.ms", "x"),
        ] {
            let e = resolve(&[bad]).unwrap_err();
            assert!(e.0.contains(bad.0), "{e}");
        }
        let e = resolve(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ])
        .unwrap_err();
        assert!(e.0.contains("min.compaction.lag.ms"), "{e}");
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
