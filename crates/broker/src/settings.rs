//! Every broker setting, declared once: [`BROKER_SETTINGS`].
//!
//! A row names a setting as Kafka does (`log.retention.ms`) and as weir's command line does
//! (its key `log_retention_ms` is the TOML key of `weir serve --config`; the flag
//! `--log-retention-ms` and the variable `WEIR_LOG_RETENTION_MS` derive from it), and gives
//! its types, its default, its documentation and how its value is written into the
//! configuration and read back. `weir serve` makes its flags, variables and file keys from the
//! table; DescribeConfigs and the admin API report the broker's settings from it.
//!
//! Values travel as text, as on a command line: a row's `set` parses one value and checks its
//! range, then [`ServeConfig::resolve`] checks what spans several settings. Nothing here reads
//! the environment or a file: the caller says which values were given and where from, having
//! already chosen the winner of each (flag, then variable, then file).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::config::{
    BrokerConfig, ConfigError, ConfigType, LogManagerConfig, ServerLimits, TopicDefaults,
    TopicSettings,
};

/// Everything `weir serve` is configured with: the broker's settings and the process's own.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// What the broker itself holds.
    pub broker: BrokerConfig,
    /// What the process around it holds (listeners, logging, limits).
    pub process: ProcessConfig,
}

/// What the process around the broker uses and the broker does not hold: where it listens,
/// how it logs, and the limits the network edge enforces.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Where Kafka clients connect (Kafka's `listeners`, without the protocol).
    pub listen: SocketAddr,
    /// The admin HTTP server's address; None when it is switched off.
    pub admin_listen: Option<SocketAddr>,
    /// `text` or `json`.
    pub log_format: String,
    /// Connection and request limits the Kafka listener enforces.
    pub limits: ServerLimits,
}

/// How a value is typed on the command line and in the TOML file (DescribeConfigs has its
/// own, coarser [`ConfigType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// A 32-bit signed integer.
    I32,
    /// A 64-bit signed integer.
    I64,
    /// A 64-bit unsigned integer.
    U64,
    /// An unsigned integer sized for counts and bytes in memory.
    Usize,
    /// A floating-point number.
    F64,
    /// Any text.
    Text,
    /// A file-system path.
    Path,
    /// Text that must be one of these.
    OneOf(&'static [&'static str]),
}

/// One broker setting.
pub struct BrokerSetting {
    /// Kafka's name; None for weir's own settings (the admin listener, the log format).
    pub name: Option<&'static str>,
    /// weir's name, the TOML key, from which [`flag`](Self::flag) and [`env`](Self::env)
    /// derive; None for a value weir fixes (reported, not settable).
    pub key: Option<&'static str>,
    /// The type DescribeConfigs reports.
    pub config_type: ConfigType,
    /// The default as text, parsed like a given value; None when it is derived from other
    /// settings (the doc says how).
    pub default: Option<&'static str>,
    /// One line for `--help` and DescribeConfigs.
    pub doc: &'static str,
    /// Kafka's `read_only`: the value cannot change while the broker runs. Every broker
    /// setting of weir is static; AlterConfigs on the broker is refused.
    pub read_only: bool,
    /// Reported by DescribeConfigs on the broker resource and by the admin API.
    pub described: bool,
    /// How the value is typed, written and read back.
    pub access: Access,
}

/// How a setting's value is typed, written into the configuration and read back.
pub struct Access {
    /// How the value is typed on the command line and in the file.
    pub kind: Kind,
    /// The value in the broker's config, as text; None for settings the broker does not hold.
    pub get: Option<fn(&BrokerConfig) -> String>,
    /// Parse and check a value and write it; the error says why it is refused
    /// ("must be at least 1").
    pub set: fn(&mut ServeConfig, &str) -> Result<(), String>,
}

impl BrokerSetting {
    /// `--log-retention-ms`, without the dashes.
    pub fn flag(&self) -> Option<String> {
        self.key.map(|k| k.replace('_', "-"))
    }

    /// `WEIR_LOG_RETENTION_MS`.
    pub fn env(&self) -> Option<String> {
        self.key.map(|k| format!("WEIR_{}", k.to_ascii_uppercase()))
    }
}

/// The setting whose key is `key`.
pub fn by_key(key: &str) -> Option<&'static BrokerSetting> {
    BROKER_SETTINGS.iter().find(|s| s.key == Some(key))
}

/// Where a given value came from, to name it in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// A `WEIR_` environment variable.
    Env,
    /// The TOML file given with `--config`.
    File(PathBuf),
}

/// A value given for a setting, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The value as written.
    pub text: String,
    /// Where it was written.
    pub source: Source,
}

impl ServeConfig {
    /// The built-in defaults overlaid with `given` (by key: the value that won for each
    /// setting), then checked as a whole. The Kafka names of the given settings are recorded in
    /// `broker.explicit`, for DescribeConfigs' sources.
    pub fn resolve(given: &BTreeMap<String, Given>) -> Result<ServeConfig, ConfigError> {
        let mut c = defaults();
        for (key, g) in given {
            let Some(s) = by_key(key) else {
                return Err(ConfigError(format!("unknown setting '{key}'")));
            };
            (s.access.set)(&mut c, &g.text).map_err(|reason| refused(s, g, &reason))?;
            if let Some(name) = s.name {
                c.broker.explicit.insert(name.to_string());
            }
        }
        c.derive_and_check()?;
        Ok(c)
    }

    /// What spans several settings: the advertised address defaults to the listen address, and
    /// some settings bound others.
    fn derive_and_check(&mut self) -> Result<(), ConfigError> {
        let (b, p) = (&mut self.broker, &self.process);
        if !b.explicit.contains("advertised.listeners") {
            if p.listen.ip().is_unspecified() {
                return Err(ConfigError(format!("listening on {} needs --advertised-listener: clients cannot connect to an unspecified address", p.listen)));
            }
            b.advertised_host = p.listen.ip().to_string();
            b.advertised_port = p.listen.port();
        }
        if b.group.min_session_timeout_ms > b.group.max_session_timeout_ms {
            return Err(ConfigError(
                "group.min.session.timeout.ms must be at most group.max.session.timeout.ms".into(),
            ));
        }
        if b.group.consumer_heartbeat_interval_ms >= b.group.consumer_session_timeout_ms {
            return Err(ConfigError(
                "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms".into(),
            ));
        }
        if p.limits.queued_max_request_bytes < b.socket_request_max_bytes {
            return Err(ConfigError(format!(
                "queued.max.request.bytes ({}) must be at least socket.request.max.bytes ({}): a largest request must fit in the budget",
                p.limits.queued_max_request_bytes, b.socket_request_max_bytes
            )));
        }
        // The defaults are validated the same way a topic's settings are.
        TopicSettings::resolve(&b.topic_defaults, &Default::default())
            .map_err(|e| ConfigError(format!("invalid broker default: {e}")))?;
        Ok(())
    }
}

/// weir's built-in configuration: every setting at its default.
pub fn builtin() -> &'static ServeConfig {
    static BUILTIN: OnceLock<ServeConfig> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        ServeConfig::resolve(&BTreeMap::new()).expect("the built-in defaults are valid")
    })
}

/// Every row's default written over a configuration whose other fields (those no row sets)
/// come from the parts' `Default`s.
fn defaults() -> ServeConfig {
    let mut c = ServeConfig {
        broker: BrokerConfig {
            node_id: 0,
            advertised_host: String::new(),
            advertised_port: 0,
            data_dir: PathBuf::new(),
            num_partitions: 0,
            auto_create_topics_enable: false,
            socket_request_max_bytes: 0,
            topic_defaults: TopicDefaults::default(),
            group: Default::default(),
            offsets: Default::default(),
            producer_id_expiration_ms: 0,
            txn: Default::default(),
            log_manager: LogManagerConfig::default(),
            explicit: Default::default(),
        },
        process: ProcessConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: None,
            log_format: String::new(),
            limits: ServerLimits::default(),
        },
    };
    for s in BROKER_SETTINGS {
        if let Some(d) = s.default {
            (s.access.set)(&mut c, d)
                .unwrap_or_else(|e| panic!("default of {:?} is invalid: {e}", s.key));
        }
    }
    c
}

fn refused(s: &BrokerSetting, g: &Given, reason: &str) -> ConfigError {
    let (key, text) = (s.key.unwrap_or_default(), &g.text);
    let place = match &g.source {
        Source::Flag => format!("--{} {text}", s.flag().unwrap_or_default()),
        Source::Env => format!("{}={text}", s.env().unwrap_or_default()),
        Source::File(path) => format!("{key} = {text} in {}", path.display()),
    };
    match s.name {
        Some(name) => ConfigError(format!("{place}: {name} {reason}")),
        None => ConfigError(format!("{place}: {reason}")),
    }
}

/// A Rust type a setting is stored as, with how it is written as text.
trait SettingValue: Sized {
    const KIND: Kind;
    fn parse(text: &str) -> Result<Self, String>;
    fn show(&self) -> String;
}

macro_rules! number_setting {
    ($($t:ty => $kind:ident),*) => {$(
        impl SettingValue for $t {
            const KIND: Kind = Kind::$kind;
            fn parse(text: &str) -> Result<Self, String> {
                text.parse().map_err(|e| format!("must be a number ({e})"))
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
number_setting!(i32 => I32, i64 => I64, u64 => U64, usize => Usize, f64 => F64);

impl SettingValue for bool {
    const KIND: Kind = Kind::Bool;
    fn parse(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "must be true or false".to_string())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl SettingValue for String {
    const KIND: Kind = Kind::Text;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl SettingValue for PathBuf {
    const KIND: Kind = Kind::Path;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

fn at_least<T: PartialOrd + Display>(v: T, min: T) -> Result<T, String> {
    if v < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(v)
}

fn one_of(v: String, words: &[&str]) -> Result<String, String> {
    if words.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(format!("must be one of {}", words.join(", ")))
    }
}

fn between<T: PartialOrd + Display>(v: T, min: T, max: T) -> Result<T, String> {
    if v < min || v > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(v)
}

/// Values below `min` are taken as `min` (as weir always has, for counts where 0 means
/// nothing useful).
fn raised_to<T: Ord>(v: T, min: T) -> Result<T, String> {
    Ok(v.max(min))
}

fn socket_address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("must be HOST:PORT with an IP address ({e})"))
}

/// A field of the broker's config (read back for DescribeConfigs) or of the process's, of
/// type `$t`, optionally checked by `$check` (value -> Result<value, reason>).
macro_rules! field {
    (broker $(. $f:ident)+ : $t:ty $(, $check:expr)?) => {
        Access {
            kind: <$t as SettingValue>::KIND,
            get: Some(|b: &BrokerConfig| SettingValue::show(&b $(. $f)+)),
            set: |c: &mut ServeConfig, text: &str| {
                let v = <$t as SettingValue>::parse(text)?;
                $(let v = ($check)(v)?;)?
                c.broker $(. $f)+ = v;
                Ok(())
            },
        }
    };
    (process $(. $f:ident)+ : $t:ty $(, $check:expr)?) => {
        Access {
            kind: <$t as SettingValue>::KIND,
            get: None,
            set: |c: &mut ServeConfig, text: &str| {
                let v = <$t as SettingValue>::parse(text)?;
                $(let v = ($check)(v)?;)?
                c.process $(. $f)+ = v;
                Ok(())
            },
        }
    };
}

/// Every broker setting weir implements, in the order `--help` lists them.
pub const BROKER_SETTINGS: &[BrokerSetting] = &[
    BrokerSetting {
        name: Some("listeners"),
        key: Some("listen"),
        config_type: ConfigType::String,
        default: Some("127.0.0.1:9092"),
        doc: "Address to listen on for Kafka clients",
        read_only: true,
        described: false,
        access: Access {
            kind: Kind::Text,
            get: None,
            set: |c, text| {
                c.process.listen = socket_address(text)?;
                Ok(())
            },
        },
    },
    BrokerSetting {
        name: None,
        key: Some("admin_listen"),
        config_type: ConfigType::String,
        default: Some("127.0.0.1:9644"),
        doc: "HOST:PORT of the admin HTTP server (health, readiness, metrics, JSON API), or `off`",
        read_only: true,
        described: false,
        access: Access {
            kind: Kind::Text,
            get: None,
            set: |c, text| {
                c.process.admin_listen = match text.trim() {
                    "off" | "none" | "disabled" | "" => None,
                    addr => Some(addr.parse().map_err(|e| {
                        format!("must be HOST:PORT with an IP address, or off ({e})")
                    })?),
                };
                Ok(())
            },
        },
    },
    BrokerSetting {
        name: None,
        key: Some("log_format"),
        config_type: ConfigType::String,
        default: Some("text"),
        doc: "Log lines as `text` (for people) or `json` (one object per line, for log pipelines)",
        read_only: true,
        described: false,
        access: Access {
            kind: Kind::OneOf(&["text", "json"]),
            get: None,
            set: |c, text| match text {
                "text" | "json" => {
                    c.process.log_format = text.to_string();
                    Ok(())
                }
                _ => Err("must be text or json".to_string()),
            },
        },
    },
    BrokerSetting {
        name: Some("log.dirs"),
        key: Some("data_dir"),
        config_type: ConfigType::String,
        default: Some("weir-data"),
        doc: "Directory for the data",
        read_only: true,
        described: true,
        access: field!(broker.data_dir: PathBuf),
    },
    BrokerSetting {
        name: Some("advertised.listeners"),
        key: Some("advertised_listener"),
        config_type: ConfigType::String,
        default: None,
        doc: "HOST:PORT written into metadata for clients; the listen address if not given",
        read_only: true,
        described: true,
        access: Access {
            kind: Kind::Text,
            get: Some(|b| format!("PLAINTEXT://{}:{}", b.advertised_host, b.advertised_port)),
            set: |c, text| {
                let (host, port) = text.rsplit_once(':').ok_or("must be HOST:PORT")?;
                c.broker.advertised_port = port
                    .parse()
                    .map_err(|e| format!("must be HOST:PORT with a port number ({e})"))?;
                c.broker.advertised_host = host.to_string();
                Ok(())
            },
        },
    },
    BrokerSetting {
        name: Some("node.id"),
        key: Some("node_id"),
        config_type: ConfigType::Int,
        default: Some("0"),
        doc: "This broker's node id",
        read_only: true,
        described: true,
        access: field!(broker.node_id: i32),
    },
    BrokerSetting {
        name: Some("num.partitions"),
        key: Some("num_partitions"),
        config_type: ConfigType::Int,
        default: Some("1"),
        doc: "Partitions of auto-created topics, and of CreateTopics asking for -1",
        read_only: true,
        described: true,
        access: field!(broker.num_partitions: i32, |v| raised_to(v, 1)),
    },
    BrokerSetting {
        name: Some("auto.create.topics.enable"),
        key: Some("auto_create_topics_enable"),
        config_type: ConfigType::String,
        default: Some("true"),
        doc: "Create unknown topics named in Metadata requests",
        read_only: true,
        described: true,
        access: field!(broker.auto_create_topics_enable: bool),
    },
    BrokerSetting {
        name: Some("log.segment.bytes"),
        key: Some("log_segment_bytes"),
        config_type: ConfigType::Int,
        default: Some("1073741824"),
        doc: "Default `segment.bytes`: the segment size",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.segment_bytes: u64),
    },
    BrokerSetting {
        name: Some("log.roll.ms"),
        key: Some("log_roll_ms"),
        config_type: ConfigType::Long,
        default: Some("604800000"),
        doc: "Default `segment.ms`: the segment age before rolling",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.segment_ms: i64),
    },
    BrokerSetting {
        name: Some("message.max.bytes"),
        key: Some("message_max_bytes"),
        config_type: ConfigType::Int,
        default: Some("1048588"),
        doc: "Default `max.message.bytes`: the largest record batch",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.max_message_bytes: i64),
    },
    BrokerSetting {
        name: Some("log.index.interval.bytes"),
        key: None,
        config_type: ConfigType::Int,
        default: Some("4096"),
        doc: "Default `index.interval.bytes`: bytes between two entries of the sparse offset index",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.index_interval_bytes: u64),
    },
    BrokerSetting {
        name: Some("log.flush.interval.messages"),
        key: Some("log_flush_interval_messages"),
        config_type: ConfigType::Long,
        default: Some("1"),
        doc: "Default `flush.messages`; 1 = fsync before acknowledging",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.flush_messages: i64),
    },
    BrokerSetting {
        name: Some("log.flush.interval.ms"),
        key: Some("log_flush_interval_ms"),
        config_type: ConfigType::Long,
        default: Some("9223372036854775807"),
        doc: "Default `flush.ms`: with a relaxed flush.messages, fsync at least this often",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.flush_ms: i64),
    },
    BrokerSetting {
        name: Some("log.message.timestamp.type"),
        key: Some("log_message_timestamp_type"),
        config_type: ConfigType::String,
        default: Some("CreateTime"),
        doc: "Default `message.timestamp.type`: CreateTime or LogAppendTime",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.message_timestamp_type: String),
    },
    BrokerSetting {
        name: Some("log.message.timestamp.before.max.ms"),
        key: Some("log_message_timestamp_before_max_ms"),
        config_type: ConfigType::Long,
        default: Some("9223372036854775807"),
        doc: "Default `message.timestamp.before.max.ms`: with CreateTime, records older than the broker's clock by more than this are refused",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.message_timestamp_before_max_ms: i64, |v| at_least(v, 0)),
    },
    BrokerSetting {
        name: Some("log.message.timestamp.after.max.ms"),
        key: Some("log_message_timestamp_after_max_ms"),
        config_type: ConfigType::Long,
        default: Some("9223372036854775807"),
        doc: "Default `message.timestamp.after.max.ms`: with CreateTime, records newer than the broker's clock by more than this are refused",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.message_timestamp_after_max_ms: i64, |v| at_least(v, 0)),
    },
    BrokerSetting {
        name: Some("log.message.timestamp.difference.max.ms"),
        key: Some("log_message_timestamp_difference_max_ms"),
        config_type: ConfigType::Long,
        default: Some("9223372036854775807"),
        doc: "Default `message.timestamp.difference.max.ms` (deprecated): both bounds while the two above are unset",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.message_timestamp_difference_max_ms: i64, |v| at_least(v, 0)),
    },
    BrokerSetting {
        name: Some("compression.type"),
        key: Some("compression_type"),
        config_type: ConfigType::String,
        default: Some("producer"),
        doc: "Default `compression.type`: producer keeps batches as produced; uncompressed, gzip, snappy, lz4 or zstd re-encodes them on append",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.compression_type: String, |v: String| one_of(v, crate::config::COMPRESSION_TYPES)),
    },
    BrokerSetting {
        name: Some("compression.gzip.level"),
        key: Some("compression_gzip_level"),
        config_type: ConfigType::Int,
        default: Some("-1"),
        doc: "Default `compression.gzip.level`: 1-9, or -1 for the codec's default",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.compression_gzip_level: i32, |v| if v == -1 { Ok(v) } else { between(v, 1, 9) }),
    },
    BrokerSetting {
        name: Some("compression.lz4.level"),
        key: Some("compression_lz4_level"),
        config_type: ConfigType::Int,
        default: Some("9"),
        doc: "Default `compression.lz4.level` (1-17; weir's lz4 encoder has one level)",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.compression_lz4_level: i32, |v| between(v, 1, 17)),
    },
    BrokerSetting {
        name: Some("compression.zstd.level"),
        key: Some("compression_zstd_level"),
        config_type: ConfigType::Int,
        default: Some("3"),
        doc: "Default `compression.zstd.level` (-131072 to 22; weir's zstd encoder has one level)",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.compression_zstd_level: i32, |v| between(v, -131072, 22)),
    },
    BrokerSetting {
        name: Some("min.insync.replicas"),
        key: Some("min_insync_replicas"),
        config_type: ConfigType::Int,
        default: Some("1"),
        doc: "Default `min.insync.replicas` (kept for the cluster; one node is its only replica)",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.min_insync_replicas: i32, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("unclean.leader.election.enable"),
        key: Some("unclean_leader_election_enable"),
        config_type: ConfigType::Boolean,
        default: Some("false"),
        doc: "Default `unclean.leader.election.enable` (kept for the cluster)",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.unclean_leader_election_enable: bool),
    },
    BrokerSetting {
        name: Some("log.roll.jitter.ms"),
        key: Some("log_roll_jitter_ms"),
        config_type: ConfigType::Long,
        default: Some("0"),
        doc: "Default `segment.jitter.ms`: each segment rolls up to this much before its segment.ms",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.segment_jitter_ms: i64, |v| at_least(v, 0)),
    },
    BrokerSetting {
        name: Some("log.index.size.max.bytes"),
        key: Some("log_index_size_max_bytes"),
        config_type: ConfigType::Int,
        default: Some("10485760"),
        doc: "Default `segment.index.bytes`: a segment rolls when an index of it would grow past this",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.segment_index_bytes: u64, |v| between(v, 4, i32::MAX as u64)),
    },
    BrokerSetting {
        name: Some("log.segment.delete.delay.ms"),
        key: Some("log_segment_delete_delay_ms"),
        config_type: ConfigType::Long,
        default: Some("60000"),
        doc: "Default `file.delete.delay.ms` (kept; weir removes deleted segments at once)",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.file_delete_delay_ms: i64, |v| at_least(v, 0)),
    },
    BrokerSetting {
        name: Some("log.preallocate"),
        key: Some("log_preallocate"),
        config_type: ConfigType::Boolean,
        default: Some("false"),
        doc: "Default `preallocate` (kept; weir grows segments as it appends)",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.preallocate: bool),
    },
    BrokerSetting {
        name: Some("socket.request.max.bytes"),
        key: Some("socket_request_max_bytes"),
        config_type: ConfigType::Int,
        default: Some("104857600"),
        doc: "Largest request frame; larger ones close the connection",
        read_only: true,
        described: true,
        access: field!(broker.socket_request_max_bytes: usize),
    },
    BrokerSetting {
        name: Some("max.connections"),
        key: Some("max_connections"),
        config_type: ConfigType::Int,
        default: Some("10000"),
        doc: "Most client connections at once",
        read_only: true,
        described: false,
        access: field!(process.limits.max_connections: usize, |v| raised_to(v, 1)),
    },
    BrokerSetting {
        name: Some("group.initial.rebalance.delay.ms"),
        key: Some("group_initial_rebalance_delay_ms"),
        config_type: ConfigType::Int,
        default: Some("3000"),
        doc: "How long the first rebalance of an empty group waits for more members",
        read_only: true,
        described: true,
        access: field!(broker.group.initial_rebalance_delay_ms: i64, |v| at_least(v, 0)),
    },
    BrokerSetting {
        name: Some("group.min.session.timeout.ms"),
        key: Some("group_min_session_timeout_ms"),
        config_type: ConfigType::Int,
        default: Some("6000"),
        doc: "Smallest session timeout a group member may ask for",
        read_only: true,
        described: true,
        access: field!(broker.group.min_session_timeout_ms: i32, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("group.max.session.timeout.ms"),
        key: Some("group_max_session_timeout_ms"),
        config_type: ConfigType::Int,
        default: Some("1800000"),
        doc: "Largest session timeout a group member may ask for",
        read_only: true,
        described: true,
        access: field!(broker.group.max_session_timeout_ms: i32),
    },
    BrokerSetting {
        name: Some("group.max.size"),
        key: Some("group_max_size"),
        config_type: ConfigType::Int,
        default: Some("10000"),
        doc: "Most members in one group",
        read_only: true,
        described: true,
        access: field!(broker.group.max_size: usize, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("group.consumer.session.timeout.ms"),
        key: Some("group_consumer_session_timeout_ms"),
        config_type: ConfigType::Int,
        default: Some("45000"),
        doc: "How long a consumer-protocol group member may go without a heartbeat",
        read_only: true,
        described: true,
        access: field!(broker.group.consumer_session_timeout_ms: i32, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("group.consumer.heartbeat.interval.ms"),
        key: Some("group_consumer_heartbeat_interval_ms"),
        config_type: ConfigType::Int,
        default: Some("5000"),
        doc: "How often consumer-protocol group members heartbeat",
        read_only: true,
        described: true,
        access: field!(broker.group.consumer_heartbeat_interval_ms: i32, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("group.consumer.migration.policy"),
        key: Some("group_consumer_migration_policy"),
        config_type: ConfigType::String,
        default: Some("bidirectional"),
        doc: "Online conversion of groups with members between the classic and consumer \
              protocols: disabled, downgrade, upgrade or bidirectional",
        read_only: true,
        described: true,
        access: field!(broker.group.consumer_migration_policy: String, |v: String| one_of(v, crate::config::MIGRATION_POLICIES)),
    },
    BrokerSetting {
        name: Some("offsets.retention.minutes"),
        key: Some("offsets_retention_minutes"),
        config_type: ConfigType::Int,
        default: Some("10080"),
        doc: "Committed offsets of a group empty this long are deleted",
        read_only: true,
        described: true,
        access: Access {
            kind: Kind::I64,
            get: Some(|b| (b.offsets.retention_ms / 60_000).to_string()),
            set: |c, text| {
                let minutes = at_least(<i64 as SettingValue>::parse(text)?, 1)?;
                c.broker.offsets.retention_ms = minutes.saturating_mul(60_000);
                Ok(())
            },
        },
    },
    BrokerSetting {
        name: Some("offsets.retention.check.interval.ms"),
        key: Some("offsets_retention_check_interval_ms"),
        config_type: ConfigType::Long,
        default: Some("600000"),
        doc: "How often expired offsets are looked for",
        read_only: true,
        described: true,
        access: field!(broker.offsets.retention_check_interval_ms: i64, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("offsets.topic.num.partitions"),
        key: Some("offsets_topic_num_partitions"),
        config_type: ConfigType::Int,
        default: Some("50"),
        doc: "Partitions of `__consumer_offsets` when it is created",
        read_only: true,
        described: true,
        access: field!(broker.offsets.topic_num_partitions: i32, |v| between(v, 1, 1000)),
    },
    BrokerSetting {
        name: Some("offset.metadata.max.bytes"),
        key: None,
        config_type: ConfigType::Int,
        default: Some("4096"),
        doc: "Largest metadata string of a committed offset",
        read_only: true,
        described: true,
        access: field!(broker.offsets.metadata_max_bytes: usize),
    },
    BrokerSetting {
        name: Some("max.connections.per.ip"),
        key: Some("max_connections_per_ip"),
        config_type: ConfigType::Int,
        default: Some("18446744073709551615"),
        doc: "Connections from one address beyond this are closed at once",
        read_only: true,
        described: false,
        access: field!(process.limits.max_connections_per_ip: usize, |v| raised_to(v, 1)),
    },
    BrokerSetting {
        name: Some("connections.max.idle.ms"),
        key: Some("connections_max_idle_ms"),
        config_type: ConfigType::Long,
        default: Some("600000"),
        doc: "A connection that sends nothing for this long is closed",
        read_only: true,
        described: false,
        access: field!(process.limits.connections_max_idle_ms: u64, |v| raised_to(v, 1)),
    },
    BrokerSetting {
        name: Some("queued.max.requests"),
        key: Some("queued_max_requests"),
        config_type: ConfigType::Int,
        default: Some("500"),
        doc: "Requests read but not yet answered, over all connections; then reading pauses",
        read_only: true,
        described: false,
        access: field!(process.limits.queued_max_requests: usize, |v| raised_to(v, 1)),
    },
    BrokerSetting {
        name: Some("queued.max.request.bytes"),
        key: Some("queued_max_request_bytes"),
        config_type: ConfigType::Long,
        default: Some("536870912"),
        doc: "Memory for requests being read or in flight, over all connections; then reading pauses",
        read_only: true,
        described: false,
        access: field!(process.limits.queued_max_request_bytes: usize),
    },
    BrokerSetting {
        name: Some("producer.id.expiration.ms"),
        key: Some("producer_id_expiration_ms"),
        config_type: ConfigType::Int,
        default: Some("86400000"),
        doc: "An idempotent producer idle this long is forgotten",
        read_only: true,
        described: false,
        access: field!(broker.producer_id_expiration_ms: i64, |v| raised_to(v, 1)),
    },
    BrokerSetting {
        name: Some("transaction.max.timeout.ms"),
        key: Some("transaction_max_timeout_ms"),
        config_type: ConfigType::Int,
        default: Some("900000"),
        doc: "The longest transaction.timeout.ms a producer may ask for",
        read_only: true,
        described: true,
        access: field!(broker.txn.max_timeout_ms: i32, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
        key: Some("transaction_abort_timed_out_transaction_cleanup_interval_ms"),
        config_type: ConfigType::Int,
        default: Some("10000"),
        doc: "How often transactions open past their timeout are looked for and aborted",
        read_only: true,
        described: false,
        access: field!(broker.txn.abort_check_interval_ms: i64, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("transaction.state.log.num.partitions"),
        key: Some("transaction_state_log_num_partitions"),
        config_type: ConfigType::Int,
        default: Some("50"),
        doc: "Partitions of `__transaction_state` when it is created",
        read_only: true,
        described: false,
        access: field!(broker.txn.topic_num_partitions: i32, |v| between(v, 1, 1000)),
    },
    BrokerSetting {
        name: Some("transactional.id.expiration.ms"),
        key: Some("transactional_id_expiration_ms"),
        config_type: ConfigType::Int,
        default: Some("604800000"),
        doc: "A transactional id with no transaction open and unused this long is forgotten",
        read_only: true,
        described: true,
        access: field!(broker.txn.id_expiration_ms: i64, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("transaction.remove.expired.transaction.cleanup.interval.ms"),
        key: Some("transaction_remove_expired_transaction_cleanup_interval_ms"),
        config_type: ConfigType::Int,
        default: Some("3600000"),
        doc: "How often expired transactional ids are looked for",
        read_only: true,
        described: false,
        access: field!(broker.txn.remove_expired_interval_ms: i64, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("log.retention.ms"),
        key: Some("log_retention_ms"),
        config_type: ConfigType::Long,
        default: Some("604800000"),
        doc: "Default `retention.ms`: segments whose newest record is older are deleted; -1 keeps data forever",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.retention_ms: i64),
    },
    BrokerSetting {
        name: Some("log.retention.bytes"),
        key: Some("log_retention_bytes"),
        config_type: ConfigType::Long,
        default: Some("-1"),
        doc: "Default `retention.bytes` per partition; -1 for no limit",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.retention_bytes: i64),
    },
    BrokerSetting {
        name: Some("log.cleanup.policy"),
        key: Some("log_cleanup_policy"),
        config_type: ConfigType::List,
        default: Some("delete"),
        doc: "Default `cleanup.policy`: delete, compact or compact,delete",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.cleanup_policy: String),
    },
    BrokerSetting {
        name: Some("log.cleaner.delete.retention.ms"),
        key: Some("log_cleaner_delete_retention_ms"),
        config_type: ConfigType::Long,
        default: Some("86400000"),
        doc: "Default `delete.retention.ms`: how long a tombstone outlives cleaning",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.delete_retention_ms: i64),
    },
    BrokerSetting {
        name: Some("log.cleaner.min.compaction.lag.ms"),
        key: Some("log_cleaner_min_compaction_lag_ms"),
        config_type: ConfigType::Long,
        default: Some("0"),
        doc: "Default `min.compaction.lag.ms`: records younger are not compacted",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.min_compaction_lag_ms: i64),
    },
    BrokerSetting {
        name: Some("log.cleaner.max.compaction.lag.ms"),
        key: Some("log_cleaner_max_compaction_lag_ms"),
        config_type: ConfigType::Long,
        default: Some("9223372036854775807"),
        doc: "Default `max.compaction.lag.ms`: records older are compacted whatever the dirty ratio",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.max_compaction_lag_ms: i64),
    },
    BrokerSetting {
        name: Some("log.cleaner.min.cleanable.ratio"),
        key: Some("log_cleaner_min_cleanable_ratio"),
        config_type: ConfigType::Double,
        default: Some("0.5"),
        doc: "Default `min.cleanable.dirty.ratio`: compact when this share of the log is not yet compacted",
        read_only: true,
        described: true,
        access: field!(broker.topic_defaults.min_cleanable_dirty_ratio: f64),
    },
    BrokerSetting {
        name: Some("log.retention.check.interval.ms"),
        key: Some("log_retention_check_interval_ms"),
        config_type: ConfigType::Long,
        default: Some("300000"),
        doc: "How often segments past retention are deleted",
        read_only: true,
        described: true,
        access: field!(broker.log_manager.retention_check_interval_ms: i64, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("log.cleaner.enable"),
        key: Some("log_cleaner_enable"),
        config_type: ConfigType::String,
        default: Some("true"),
        doc: "Run the log cleaner for compacted topics",
        read_only: true,
        described: true,
        access: field!(broker.log_manager.cleaner_enable: bool),
    },
    BrokerSetting {
        name: Some("log.cleaner.backoff.ms"),
        key: Some("log_cleaner_backoff_ms"),
        config_type: ConfigType::Long,
        default: Some("15000"),
        doc: "The cleaner's sleep when nothing needs cleaning",
        read_only: true,
        described: true,
        access: field!(broker.log_manager.cleaner_backoff_ms: i64, |v| at_least(v, 1)),
    },
    BrokerSetting {
        name: Some("log.cleaner.dedupe.buffer.size"),
        key: Some("log_cleaner_dedupe_buffer_size"),
        config_type: ConfigType::Long,
        default: Some("134217728"),
        doc: "Memory for the cleaner's key map, bytes",
        read_only: true,
        described: true,
        access: field!(broker.log_manager.cleaner_dedupe_buffer_size: usize, |v| at_least(v, 1024 * 1024)),
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::group::{GroupConfig, OffsetsConfig};
    use crate::txn::TxnConfig;

    fn given(pairs: &[(&str, &str, Source)]) -> BTreeMap<String, Given> {
        pairs
            .iter()
            .map(|(k, v, source)| {
                let g = Given {
                    text: v.to_string(),
                    source: source.clone(),
                };
                (k.to_string(), g)
            })
            .collect()
    }

    fn resolve_err(pairs: &[(&str, &str, Source)]) -> String {
        ServeConfig::resolve(&given(pairs)).unwrap_err().0
    }

    #[test]
    fn names_keys_flags_and_variables_are_unique() {
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for s in BROKER_SETTINGS {
            if let Some(n) = s.name {
                assert!(names.insert(n), "Kafka name {n} twice");
            }
            if let Some(k) = s.key {
                assert!(keys.insert(k), "key {k} twice");
                assert!(
                    k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "key {k} is not snake_case"
                );
            }
            assert!(s.name.is_some() || s.key.is_some());
            assert!(!s.doc.is_empty() && !s.doc.ends_with('.'), "{:?}", s.key);
        }
        // Flags and variables derive from the keys, so they are unique too.
        assert_eq!(
            by_key("log_retention_ms").unwrap().flag().unwrap(),
            "log-retention-ms"
        );
        assert_eq!(
            by_key("log_retention_ms").unwrap().env().unwrap(),
            "WEIR_LOG_RETENTION_MS"
        );
    }

    #[test]
    fn every_default_parses_and_reads_back_as_written() {
        let builtin = builtin();
        for s in BROKER_SETTINGS {
            match s.default {
                Some(d) => {
                    let mut c = builtin.clone();
                    (s.access.set)(&mut c, d).unwrap_or_else(|e| panic!("{:?}: {e}", s.key));
                    if let Some(get) = s.access.get {
                        assert_eq!(get(&builtin.broker), d, "{:?}", s.name);
                    }
                }
                // A derived default says how it is derived.
                None => assert!(s.doc.contains("if not given"), "{:?}", s.key),
            }
            if s.key.is_none() {
                assert!(
                    s.default.is_some() && s.described,
                    "a fixed value is reported"
                );
            }
            if s.described {
                assert!(s.name.is_some() && s.access.get.is_some(), "{:?}", s.key);
            }
            assert!(s.read_only, "weir has no dynamic broker settings");
        }
    }

    #[test]
    fn table_defaults_agree_with_the_defaults_of_the_parts() {
        // Other code (tests, topic DescribeConfigs' built-in synonyms) uses these `Default`s.
        let b = builtin();
        let same = |a: String, b: String| assert_eq!(a, b);
        same(
            format!("{:?}", b.broker.topic_defaults),
            format!("{:?}", TopicDefaults::default()),
        );
        same(
            format!("{:?}", b.broker.group),
            format!("{:?}", GroupConfig::default()),
        );
        same(
            format!("{:?}", b.broker.offsets),
            format!("{:?}", OffsetsConfig::default()),
        );
        same(
            format!("{:?}", b.broker.txn),
            format!("{:?}", TxnConfig::default()),
        );
        same(
            format!("{:?}", b.broker.log_manager),
            format!("{:?}", LogManagerConfig::default()),
        );
        same(
            format!("{:?}", b.process.limits),
            format!("{:?}", ServerLimits::default()),
        );
        assert_eq!(b.process.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(
            (b.broker.advertised_host.as_str(), b.broker.advertised_port),
            ("127.0.0.1", 9092)
        );
        assert_eq!(
            b.process.admin_listen.unwrap().to_string(),
            "127.0.0.1:9644"
        );
        assert_eq!(b.broker.data_dir, PathBuf::from("weir-data"));
        assert!(b.broker.explicit.is_empty());
    }

    #[test]
    fn given_values_win_over_defaults_and_are_recorded_as_explicit() {
        let c = ServeConfig::resolve(&given(&[
            ("log_retention_ms", "3600000", Source::Flag),
            ("offsets_retention_minutes", "60", Source::Env),
            ("admin_listen", "off", Source::File("w.toml".into())),
            ("max_connections", "0", Source::Flag),
        ]))
        .unwrap();
        assert_eq!(c.broker.topic_defaults.retention_ms, 3_600_000);
        assert_eq!(c.broker.offsets.retention_ms, 3_600_000);
        assert_eq!(c.process.admin_listen, None);
        assert_eq!(c.process.limits.max_connections, 1, "raised to 1");
        let explicit: Vec<&str> = c.broker.explicit.iter().map(String::as_str).collect();
        assert_eq!(
            explicit,
            [
                "log.retention.ms",
                "max.connections",
                "offsets.retention.minutes"
            ]
        );
    }

    #[test]
    fn a_refused_value_names_where_it_came_from_and_the_setting() {
        assert_eq!(
            resolve_err(&[("group_max_size", "0", Source::Flag)]),
            "--group-max-size 0: group.max.size must be at least 1"
        );
        assert_eq!(
            resolve_err(&[("offsets_topic_num_partitions", "1001", Source::Env)]),
            "WEIR_OFFSETS_TOPIC_NUM_PARTITIONS=1001: offsets.topic.num.partitions must be between 1 and 1000"
        );
        let e = resolve_err(&[("log_format", "xml", Source::File("/etc/weir.toml".into()))]);
        assert_eq!(
            e,
            "log_format = xml in /etc/weir.toml: must be text or json"
        );
        let e = resolve_err(&[("listen", "localhost", Source::Flag)]);
        assert!(
            e.starts_with("--listen localhost: listeners must be HOST:PORT"),
            "{e}"
        );
        let e = resolve_err(&[("node_id", "x", Source::Flag)]);
        assert!(e.contains("node.id must be a number"), "{e}");
    }

    #[test]
    fn the_advertised_address_defaults_to_the_listen_address_unless_unspecified() {
        let c =
            ServeConfig::resolve(&given(&[("listen", "127.0.0.2:9999", Source::Flag)])).unwrap();
        assert_eq!(
            (c.broker.advertised_host.as_str(), c.broker.advertised_port),
            ("127.0.0.2", 9999)
        );
        let e = resolve_err(&[("listen", "0.0.0.0:9092", Source::Flag)]);
        assert!(e.contains("needs --advertised-listener"), "{e}");
        let c = ServeConfig::resolve(&given(&[
            ("listen", "0.0.0.0:9092", Source::Flag),
            ("advertised_listener", "broker.example:19092", Source::Flag),
        ]))
        .unwrap();
        assert_eq!(
            (c.broker.advertised_host.as_str(), c.broker.advertised_port),
            ("broker.example", 19092)
        );
    }

    #[test]
    fn checks_that_span_settings_refuse_what_cannot_work() {
        let e = resolve_err(&[("group_min_session_timeout_ms", "1900000", Source::Flag)]);
        assert!(e.contains("at most group.max.session.timeout.ms"), "{e}");
        let e = resolve_err(&[("queued_max_request_bytes", "1000", Source::Flag)]);
        assert!(
            e.contains("must be at least socket.request.max.bytes"),
            "{e}"
        );
        let e = resolve_err(&[("log_cleanup_policy", "shred", Source::Flag)]);
        assert!(
            e.starts_with("invalid broker default: log.cleanup.policy"),
            "{e}"
        );
        let e = resolve_err(&[
            ("log_cleaner_min_compaction_lag_ms", "10", Source::Flag),
            ("log_cleaner_max_compaction_lag_ms", "5", Source::Flag),
        ]);
        assert!(e.contains("min.compaction.lag.ms (10)"), "{e}");
    }
}
