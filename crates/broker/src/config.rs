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
    /// `group.consumer.migration.policy`: whether a classic group with members becomes a
    /// consumer group when a consumer-protocol member joins (`upgrade`), and a consumer
    /// group whose last consumer-protocol member left goes back to classic (`downgrade`).
    pub consumer_migration_policy: String,
}

/// The values of `group.consumer.migration.policy`, as Kafka names them.
pub const MIGRATION_POLICIES: &[&str] = &["disabled", "downgrade", "upgrade", "bidirectional"];

impl GroupConfig {
    /// A classic group with members may become a consumer group.
    pub fn upgrade_enabled(&self) -> bool {
        matches!(
            self.consumer_migration_policy.as_str(),
            "upgrade" | "bidirectional"
        )
    }

    /// A consumer group left with only classic members may become a classic group.
    pub fn downgrade_enabled(&self) -> bool {
        matches!(
            self.consumer_migration_policy.as_str(),
            "downgrade" | "bidirectional"
        )
    }
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
            consumer_migration_policy: "bidirectional".to_string(),
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
    /// `log.roll.jitter.ms`
    pub segment_jitter_ms: i64,
    /// `log.index.size.max.bytes`
    pub segment_index_bytes: u64,
    /// `log.message.timestamp.before.max.ms`
    pub message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`
    pub message_timestamp_after_max_ms: i64,
    /// `log.message.timestamp.difference.max.ms` (deprecated)
    pub message_timestamp_difference_max_ms: i64,
    /// `compression.type`: `producer`, `uncompressed` or a codec.
    pub compression_type: String,
    /// `compression.gzip.level`
    pub compression_gzip_level: i32,
    /// `compression.lz4.level`
    pub compression_lz4_level: i32,
    /// `compression.zstd.level`
    pub compression_zstd_level: i32,
    /// `min.insync.replicas`
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`
    pub unclean_leader_election_enable: bool,
    /// `log.segment.delete.delay.ms`
    pub file_delete_delay_ms: i64,
    /// `log.preallocate`
    pub preallocate: bool,
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
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            message_timestamp_difference_max_ms: i64::MAX,
            compression_type: "producer".to_string(),
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            file_delete_delay_ms: 60_000,
            preallocate: false,
        }
    }
}

/// Value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean = 1,
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

/// How a topic setting's value is checked, as Kafka's `ConfigDef` validators do.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A 32-bit integer within `[min, max]`.
    Int(i64, i64),
    /// A 64-bit integer within `[min, max]`.
    Long(i64, i64),
    /// A number within `[min, max]`.
    Double(f64, f64),
    /// `true` or `false` (any case).
    Bool,
    /// One of these words (case sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these words (Kafka's `ValidList`), not empty.
    ListOf(&'static [&'static str]),
    /// `compression.gzip.level`: 1..=9, or -1 for the codec's default.
    GzipLevel,
    /// `message.format.version`: a Kafka version (`2.8`, `3.0-IV1`, `0.10.2`).
    Version,
    /// `*.replication.throttled.replicas`: `*` or `partition:broker,...`.
    ThrottledReplicas,
}

/// One topic setting Kafka defines: its topic name, the broker setting that supplies its
/// default, its type, validation, default and documentation.
pub struct TopicSetting {
    /// The topic-level name (`retention.ms`).
    pub name: &'static str,
    /// The broker setting that supplies the default (`log.retention.ms`); None for the few
    /// Kafka gives no broker default (`LogConfig.CONFIGS_WITH_NO_SERVER_DEFAULTS`).
    pub broker_synonym: Option<&'static str>,
    /// The type DescribeConfigs reports.
    pub config_type: ConfigType,
    /// How a value is checked.
    pub check: Check,
    /// What it does on weir (DescribeConfigs' documentation field).
    pub doc: &'static str,
}

const fn setting(
    name: &'static str,
    broker_synonym: &'static str,
    config_type: ConfigType,
    check: Check,
    doc: &'static str,
) -> TopicSetting {
    TopicSetting {
        name,
        broker_synonym: Some(broker_synonym),
        config_type,
        check,
        doc,
    }
}

const fn no_broker_default(
    name: &'static str,
    config_type: ConfigType,
    check: Check,
    doc: &'static str,
) -> TopicSetting {
    TopicSetting {
        name,
        broker_synonym: None,
        config_type,
        check,
        doc,
    }
}

const I32: i64 = i32::MAX as i64;
const I64: i64 = i64::MAX;

/// Compression codecs a topic may ask for (Kafka's `BrokerCompressionType`).
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Every topic setting of Kafka 3.9 (`LogConfig`), with Kafka's validation. Anything else
/// is refused with INVALID_CONFIG; settings that mean nothing on one weir node are kept and
/// reported (their doc says so), as Kafka keeps those it ignores.
pub const TOPIC_SETTINGS: &[TopicSetting] = &[
    setting("cleanup.policy", "log.cleanup.policy", ConfigType::List, Check::ListOf(&["compact", "delete"]),
        "delete: old segments are deleted by retention.ms and retention.bytes; compact: the latest record of each key is kept; both: compact,delete."),
    setting("compression.type", "compression.type", ConfigType::String, Check::OneOf(COMPRESSION_TYPES),
        "producer keeps each batch as the producer compressed it; a codec (or uncompressed) re-encodes batches in another codec on append."),
    setting("compression.gzip.level", "compression.gzip.level", ConfigType::Int, Check::GzipLevel,
        "gzip level (1-9, -1: the codec's default) when compression.type=gzip."),
    setting("compression.lz4.level", "compression.lz4.level", ConfigType::Int, Check::Int(1, 17),
        "lz4 level when compression.type=lz4: LZ4 HC at that level (liblz4 caps HC at 12)."),
    setting("compression.zstd.level", "compression.zstd.level", ConfigType::Int, Check::Int(-131072, 22),
        "zstd level when compression.type=zstd (libzstd's levels; negative levels are faster)."),
    setting("delete.retention.ms", "log.cleaner.delete.retention.ms", ConfigType::Long, Check::Long(0, I64),
        "How long a tombstone is kept after its segment is compacted."),
    setting("file.delete.delay.ms", "log.segment.delete.delay.ms", ConfigType::Long, Check::Long(0, I64),
        "How long a deleted segment's files wait before they are removed. Kept; weir removes them at once (open readers keep their file)."),
    setting("flush.messages", "log.flush.interval.messages", ConfigType::Long, Check::Long(1, I64),
        "1 (weir's default): fsync before acknowledging. Larger: acknowledge before fsync, fsync every N messages."),
    setting("flush.ms", "log.flush.interval.ms", ConfigType::Long, Check::Long(0, I64),
        "With relaxed flush.messages: fsync at least this often."),
    no_broker_default("follower.replication.throttled.replicas", ConfigType::List, Check::ThrottledReplicas,
        "Replicas whose follower replication is throttled. Kept for the cluster; one node has no followers."),
    setting("index.interval.bytes", "log.index.interval.bytes", ConfigType::Int, Check::Int(0, I32),
        "Bytes between two entries of the sparse offset index."),
    no_broker_default("leader.replication.throttled.replicas", ConfigType::List, Check::ThrottledReplicas,
        "Replicas whose leader replication is throttled. Kept for the cluster; one node has no followers."),
    setting("local.retention.bytes", "log.local.retention.bytes", ConfigType::Long, Check::Long(-2, I64),
        "Tiered storage's local retention. Kept; weir has no tiered storage."),
    setting("local.retention.ms", "log.local.retention.ms", ConfigType::Long, Check::Long(-2, I64),
        "Tiered storage's local retention. Kept; weir has no tiered storage."),
    setting("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", ConfigType::Long, Check::Long(1, I64),
        "Records older than this are compacted whatever the dirty ratio."),
    setting("max.message.bytes", "message.max.bytes", ConfigType::Int, Check::Int(0, I32),
        "Largest record batch accepted (after any recompression)."),
    setting("message.downconversion.enable", "log.message.downconversion.enable", ConfigType::Boolean, Check::Bool,
        "Ignored, as by Kafka 3.x: weir serves only the v2 record format and never down-converts."),
    setting("message.format.version", "log.message.format.version", ConfigType::String, Check::Version,
        "Ignored, as by Kafka 3.x with inter.broker.protocol.version 3.0 or later: batches are always v2."),
    setting("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", ConfigType::Long, Check::Long(0, I64),
        "With CreateTime: records timestamped more than this after the broker's clock are refused (INVALID_TIMESTAMP)."),
    setting("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", ConfigType::Long, Check::Long(0, I64),
        "With CreateTime: records timestamped more than this before the broker's clock are refused (INVALID_TIMESTAMP)."),
    setting("message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms", ConfigType::Long, Check::Long(0, I64),
        "Deprecated: the window on both sides when message.timestamp.before/after.max.ms are not set."),
    setting("message.timestamp.type", "log.message.timestamp.type", ConfigType::String, Check::OneOf(&["CreateTime", "LogAppendTime"]),
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock."),
    setting("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", ConfigType::Double, Check::Double(0.0, 1.0),
        "Compact when this share of the log is not yet compacted."),
    setting("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", ConfigType::Long, Check::Long(0, I64),
        "Records younger than this are not compacted."),
    setting("min.insync.replicas", "min.insync.replicas", ConfigType::Int, Check::Int(1, I32),
        "Replicas that must have an acks=all write. Kept for the cluster; one node is its only replica."),
    setting("preallocate", "log.preallocate", ConfigType::Boolean, Check::Bool,
        "Preallocate segment files. Kept; weir grows segments as it appends."),
    no_broker_default("remote.log.copy.disable", ConfigType::Boolean, Check::Bool,
        "Tiered storage. Kept; weir has no tiered storage."),
    no_broker_default("remote.log.delete.on.disable", ConfigType::Boolean, Check::Bool,
        "Tiered storage. Kept; weir has no tiered storage."),
    no_broker_default("remote.storage.enable", ConfigType::Boolean, Check::Bool,
        "Tiered storage: weir has none, so only false is accepted."),
    setting("retention.bytes", "log.retention.bytes", ConfigType::Long, Check::Long(i64::MIN, I64),
        "Oldest segments are deleted while a partition is larger than this (negative: no limit)."),
    setting("retention.ms", "log.retention.ms", ConfigType::Long, Check::Long(-1, I64),
        "Segments whose newest record is older than this are deleted (-1: never)."),
    setting("segment.bytes", "log.segment.bytes", ConfigType::Int, Check::Int(14, I32),
        "Roll the active segment when it would grow past this size."),
    setting("segment.index.bytes", "log.index.size.max.bytes", ConfigType::Int, Check::Int(4, I32),
        "Roll the active segment when its offset index (8 bytes an entry) or time index (12) would grow past this size."),
    setting("segment.jitter.ms", "log.roll.jitter.ms", ConfigType::Long, Check::Long(0, I64),
        "Roll each segment up to this much before segment.ms (a per-segment amount), so partitions do not all roll at once."),
    setting("segment.ms", "log.roll.ms", ConfigType::Long, Check::Long(1, I64),
        "Roll the active segment when it is older than this."),
    setting("unclean.leader.election.enable", "unclean.leader.election.enable", ConfigType::Boolean, Check::Bool,
        "Whether an out-of-sync replica may become leader. Kept for the cluster; one node is its only replica."),
];

/// The row of topic setting `name`.
pub fn topic_setting(name: &str) -> Option<&'static TopicSetting> {
    TOPIC_SETTINGS.iter().find(|s| s.name == name)
}

/// Kafka versions `message.format.version` may name (`MetadataVersion`), before `-IVn`.
const KAFKA_VERSIONS: &[&str] = &[
    "0.8.0", "0.8.1", "0.8.2", "0.9.0", "0.10.0", "0.10.1", "0.10.2", "0.11.0", "1.0", "1.1",
    "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "3.0", "3.1", "3.2", "3.3",
    "3.4", "3.5", "3.6", "3.7", "3.8", "3.9",
];

/// A setting refused, with why (answered as INVALID_CONFIG).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Kafka's `ConfigDef.Range` check: why `n` is outside `min..=max`, if it is.
fn in_range<T: PartialOrd + std::fmt::Display>(n: T, min: T, max: T) -> Result<(), String> {
    if n < min {
        Err(format!("Value must be at least {min}"))
    } else if n > max {
        Err(format!("Value must be no more than {max}"))
    } else {
        Ok(())
    }
}

fn invalid_value(name: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "Invalid value {value} for configuration {name}: {why}"
    ))
}

/// Check `value` for setting `s` as Kafka's `ConfigDef` does and return it in its canonical
/// form (trimmed; booleans in lower case; list items trimmed, joined by commas).
pub fn check_value(s: &TopicSetting, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let int = |min: i64, max: i64, bits: &str| -> Result<String, ConfigError> {
        let n: i64 = v
            .parse()
            .ok()
            .filter(|n| bits == "64" || i32::try_from(*n).is_ok())
            .ok_or_else(|| {
                invalid_value(
                    s.name,
                    value,
                    format!(
                        "Not a number of type {}",
                        if bits == "64" { "LONG" } else { "INT" }
                    ),
                )
            })?;
        in_range(n, min, max).map_err(|why| invalid_value(s.name, value, why))?;
        Ok(n.to_string())
    };
    match s.check {
        Check::Int(min, max) => int(min, max, "32"),
        Check::Long(min, max) => int(min, max, "64"),
        Check::Double(min, max) => {
            let n: f64 = v
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| invalid_value(s.name, value, "Not a number of type DOUBLE"))?;
            in_range(n, min, max).map_err(|why| invalid_value(s.name, value, why))?;
            Ok(n.to_string())
        }
        Check::Bool => match v.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err(invalid_value(
                s.name,
                value,
                "Expected value to be either true or false",
            )),
        },
        Check::OneOf(words) => {
            if words.contains(&v) {
                Ok(v.to_string())
            } else {
                Err(invalid_value(
                    s.name,
                    value,
                    format!("String must be one of: {}", words.join(", ")),
                ))
            }
        }
        Check::ListOf(words) => {
            let items: Vec<&str> = v.split(',').map(str::trim).collect();
            if items.iter().any(|i| !words.contains(i)) {
                return Err(invalid_value(
                    s.name,
                    value,
                    format!("String must be one of: {}", words.join(", ")),
                ));
            }
            Ok(items.join(","))
        }
        Check::GzipLevel => {
            let n = int(i64::from(i32::MIN), I32, "32")?;
            match n.parse::<i32>() {
                Ok(-1 | 1..=9) => Ok(n),
                _ => Err(invalid_value(
                    s.name,
                    value,
                    "Value must be between 1 and 9 or equal to -1",
                )),
            }
        }
        Check::Version => {
            let (base, iv) = match v.split_once("-IV") {
                Some((b, n))
                    if !n.is_empty() && n.len() <= 2 && n.bytes().all(|c| c.is_ascii_digit()) =>
                {
                    (b, Some(n))
                }
                Some(_) => {
                    return Err(invalid_value(
                        s.name,
                        value,
                        format!("Version {v} is not a valid version"),
                    ))
                }
                None => (v, None),
            };
            // As Kafka's MetadataVersion.fromVersionString: "2.8.1" means "2.8", "0.10.2.1" "0.10.2".
            let parts: Vec<&str> = base.split('.').collect();
            let keep = if base.starts_with("0.") { 3 } else { 2 };
            let key = parts[..parts.len().min(keep)].join(".");
            if KAFKA_VERSIONS.contains(&key.as_str()) && (iv.is_none() || parts.len() <= keep) {
                Ok(v.to_string())
            } else {
                Err(invalid_value(
                    s.name,
                    value,
                    format!("Version {v} is not a valid version"),
                ))
            }
        }
        Check::ThrottledReplicas => {
            if v.is_empty() || v == "*" {
                return Ok(v.to_string());
            }
            let items: Vec<&str> = v.split(',').map(str::trim).collect();
            let ok = items.iter().all(|i| {
                i.split_once(':').is_some_and(|(p, b)| {
                    p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
                })
            });
            if ok {
                Ok(items.join(","))
            } else {
                Err(invalid_value(s.name, value, "must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."))
            }
        }
    }
}

/// The effective settings of one topic: broker defaults overlaid with its overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// `segment.bytes`: a segment rolls once it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: a segment rolls once its first append is this old.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much earlier than `segment.ms`.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: a segment rolls once an index of it would grow past this.
    pub segment_index_bytes: u64,
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
    /// `message.timestamp.before.max.ms` as given (see [`TopicSettings::timestamp_window`]).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` as given.
    pub timestamp_after_max_ms: i64,
    /// `message.timestamp.difference.max.ms` (deprecated) as given.
    pub timestamp_difference_max_ms: i64,
    /// `compression.type`: None for `producer` (batches kept as produced), else the Kafka codec
    /// batches are re-encoded in (0 uncompressed, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub compression: Option<i16>,
    /// `compression.gzip.level` (-1: the codec's default).
    pub compression_gzip_level: i32,
    /// `compression.lz4.level`.
    pub compression_lz4_level: i32,
    /// `compression.zstd.level`.
    pub compression_zstd_level: i32,
    /// `min.insync.replicas` (kept for the cluster).
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable` (kept for the cluster).
    pub unclean_leader_election_enable: bool,
    /// `file.delete.delay.ms` (kept).
    pub file_delete_delay_ms: i64,
    /// `preallocate` (kept).
    pub preallocate: bool,
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
    /// Settings that mean nothing on weir (tiered storage, throttles, the old message format),
    /// given for this topic: checked, kept and reported, in canonical form.
    pub inert: BTreeMap<&'static str, String>,
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

/// Kafka's codec number of a `compression.type` other than `producer`.
fn codec_of(name: &str) -> Option<i16> {
    Some(match name {
        "uncompressed" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        _ => return None,
    })
}

/// The default of an inert setting (one weir keeps but does not act on): Kafka's.
fn inert_default(name: &str) -> &'static str {
    match name {
        "message.downconversion.enable" => "true",
        "message.format.version" => "3.0-IV1",
        "local.retention.bytes" | "local.retention.ms" => "-2",
        "remote.log.copy.disable" | "remote.log.delete.on.disable" | "remote.storage.enable" => {
            "false"
        }
        _ => "",
    }
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
            segment_jitter_ms: defaults.segment_jitter_ms,
            segment_index_bytes: defaults.segment_index_bytes,
            max_message_bytes: defaults.max_message_bytes,
            index_interval_bytes: defaults.index_interval_bytes,
            flush_messages: defaults.flush_messages,
            flush_ms: defaults.flush_ms,
            log_append_time: defaults.message_timestamp_type == "LogAppendTime",
            timestamp_before_max_ms: defaults.message_timestamp_before_max_ms,
            timestamp_after_max_ms: defaults.message_timestamp_after_max_ms,
            timestamp_difference_max_ms: defaults.message_timestamp_difference_max_ms,
            compression: codec_of(&defaults.compression_type),
            compression_gzip_level: defaults.compression_gzip_level,
            compression_lz4_level: defaults.compression_lz4_level,
            compression_zstd_level: defaults.compression_zstd_level,
            min_insync_replicas: defaults.min_insync_replicas,
            unclean_leader_election_enable: defaults.unclean_leader_election_enable,
            file_delete_delay_ms: defaults.file_delete_delay_ms,
            preallocate: defaults.preallocate,
            retention_ms: defaults.retention_ms,
            retention_bytes: defaults.retention_bytes,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: defaults.delete_retention_ms,
            min_compaction_lag_ms: defaults.min_compaction_lag_ms,
            max_compaction_lag_ms: defaults.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: defaults.min_cleanable_dirty_ratio,
            inert: BTreeMap::new(),
        };
        (s.cleanup_delete, s.cleanup_compact) =
            parse_cleanup_policy("log.cleanup.policy", &defaults.cleanup_policy)?;
        for (key, value) in overrides {
            let Some(row) = topic_setting(key) else {
                return Err(ConfigError(format!("Unknown topic config name: {key}")));
            };
            let v = check_value(row, value)?;
            let int = || v.parse::<i64>().expect("checked as an integer");
            let flag = || v == "true";
            match row.name {
                "cleanup.policy" => {
                    (s.cleanup_delete, s.cleanup_compact) = parse_cleanup_policy(key, &v)?
                }
                "compression.type" => s.compression = codec_of(&v),
                "compression.gzip.level" => s.compression_gzip_level = int() as i32,
                "compression.lz4.level" => s.compression_lz4_level = int() as i32,
                "compression.zstd.level" => s.compression_zstd_level = int() as i32,
                "retention.ms" => s.retention_ms = int(),
                "retention.bytes" => s.retention_bytes = int(),
                "delete.retention.ms" => s.delete_retention_ms = int(),
                "min.compaction.lag.ms" => s.min_compaction_lag_ms = int(),
                "max.compaction.lag.ms" => s.max_compaction_lag_ms = int(),
                "min.cleanable.dirty.ratio" => {
                    s.min_cleanable_dirty_ratio = v.parse().expect("checked as a number")
                }
                "segment.bytes" => s.segment_bytes = int() as u64,
                "segment.ms" => s.segment_ms = int(),
                "segment.jitter.ms" => s.segment_jitter_ms = int(),
                "segment.index.bytes" => s.segment_index_bytes = int() as u64,
                "max.message.bytes" => s.max_message_bytes = int(),
                "index.interval.bytes" => s.index_interval_bytes = int() as u64,
                "flush.messages" => s.flush_messages = int(),
                "flush.ms" => s.flush_ms = int(),
                "message.timestamp.type" => s.log_append_time = v == "LogAppendTime",
                "message.timestamp.before.max.ms" => s.timestamp_before_max_ms = int(),
                "message.timestamp.after.max.ms" => s.timestamp_after_max_ms = int(),
                "message.timestamp.difference.max.ms" => s.timestamp_difference_max_ms = int(),
                "min.insync.replicas" => s.min_insync_replicas = int() as i32,
                "unclean.leader.election.enable" => s.unclean_leader_election_enable = flag(),
                "file.delete.delay.ms" => s.file_delete_delay_ms = int(),
                "preallocate" => s.preallocate = flag(),
                name => {
                    s.inert.insert(name, v);
                }
            }
        }
        if s.min_compaction_lag_ms > s.max_compaction_lag_ms {
            return Err(ConfigError(format!(
                "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
                s.min_compaction_lag_ms, s.max_compaction_lag_ms
            )));
        }
        if s.inert
            .get("remote.storage.enable")
            .is_some_and(|v| v == "true")
        {
            return Err(ConfigError(
                "Invalid value true for configuration remote.storage.enable: Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into(),
            ));
        }
        Ok(s)
    }

    /// The window a CreateTime record's timestamp must fall in, as (before, after) the
    /// broker's clock: `message.timestamp.before/after.max.ms`, each falling back to the
    /// deprecated `message.timestamp.difference.max.ms` while left at its default (Kafka's
    /// rule). `(i64::MAX, i64::MAX)`: no limit.
    pub fn timestamp_window(&self) -> (i64, i64) {
        let or_difference = |v: i64| {
            if v != i64::MAX {
                v
            } else {
                self.timestamp_difference_max_ms
            }
        };
        (
            or_difference(self.timestamp_before_max_ms),
            or_difference(self.timestamp_after_max_ms),
        )
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
            segment_jitter_ms: self.segment_jitter_ms,
            segment_index_bytes: self.segment_index_bytes,
            index_interval_bytes: self.index_interval_bytes,
            max_message_bytes: self.max_message_bytes.max(0) as usize,
            log_append_time: self.log_append_time,
            file_delete_delay_ms: self.file_delete_delay_ms.max(0) as u64,
            preallocate: self.preallocate,
        }
    }

    /// The effective value of a setting, as a string (for DescribeConfigs).
    pub fn value_of(&self, name: &str) -> Option<String> {
        let row = topic_setting(name)?;
        Some(match row.name {
            "cleanup.policy" => self.cleanup_policy(),
            "compression.type" => match self.compression {
                None => "producer",
                Some(0) => "uncompressed",
                Some(1) => "gzip",
                Some(2) => "snappy",
                Some(3) => "lz4",
                Some(_) => "zstd",
            }
            .to_string(),
            "compression.gzip.level" => self.compression_gzip_level.to_string(),
            "compression.lz4.level" => self.compression_lz4_level.to_string(),
            "compression.zstd.level" => self.compression_zstd_level.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
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
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "message.timestamp.difference.max.ms" => self.timestamp_difference_max_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "preallocate" => self.preallocate.to_string(),
            name => self
                .inert
                .get(name)
                .cloned()
                .unwrap_or_else(|| inert_default(name).to_string()),
        })
    }
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
    fn every_kafka_topic_config_is_known_and_checked_as_kafka_does() {
        let d = TopicDefaults::default();
        let resolve = |k: &str, v: &str| {
            let o = BTreeMap::from([(k.to_string(), v.to_string())]);
            TopicSettings::resolve(&d, &o)
        };
        // Each config's own default is accepted and read back.
        let builtin = TopicSettings::resolve(&d, &BTreeMap::new()).unwrap();
        for s in TOPIC_SETTINGS {
            let v = builtin.value_of(s.name).unwrap();
            let again = resolve(s.name, &v).unwrap_or_else(|e| panic!("{}={v}: {e}", s.name));
            assert_eq!(again.value_of(s.name).unwrap(), v, "{}", s.name);
        }
        for (k, v) in [
            ("message.format.version", "2.8"),
            ("message.format.version", "0.10.2"),
            ("message.format.version", "2.8.1"),
            ("message.format.version", "3.0-IV1"),
            ("leader.replication.throttled.replicas", "0:1, 1:0"),
            ("compression.gzip.level", "-1"),
            ("retention.bytes", "-5"),
            ("preallocate", "TRUE"),
        ] {
            assert!(resolve(k, v).is_ok(), "{k}={v}");
        }
        assert_eq!(
            resolve("preallocate", "TRUE")
                .unwrap()
                .value_of("preallocate")
                .unwrap(),
            "true"
        );
        for (k, v, why) in [
            ("message.format.version", "2.9", "not a valid version"),
            ("message.format.version", "3.0-IV", "not a valid version"),
            (
                "leader.replication.throttled.replicas",
                "0-1",
                "[partitionId]:[brokerId]",
            ),
            ("compression.gzip.level", "0", "between 1 and 9"),
            ("compression.lz4.level", "18", "no more than 17"),
            ("segment.index.bytes", "3", "at least 4"),
            ("segment.bytes", "4294967296", "Not a number of type INT"),
            ("unclean.leader.election.enable", "yes", "true or false"),
            (
                "message.timestamp.type",
                "createtime",
                "String must be one of",
            ),
            ("remote.storage.enable", "true", "Tiered Storage"),
        ] {
            let e = resolve(k, v).unwrap_err();
            assert!(e.0.contains(k) && e.0.contains(why), "{k}={v}: {e}");
        }
        let s = resolve("compression.type", "zstd").unwrap();
        assert_eq!(
            (
                s.compression,
                s.value_of("compression.type").unwrap().as_str()
            ),
            (Some(4), "zstd")
        );
        assert_eq!(builtin.compression, None);
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
