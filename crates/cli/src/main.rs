//! The `weir` binary.
//!
//! `weir serve` resolves its settings in this order, first found wins: command-line flag,
//! environment variable `WEIR_<NAME>`, the TOML file given with `--config`, built-in default.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weir_broker::config::LogManagerConfig;
use weir_broker::group::{GroupConfig, OffsetsConfig};
use weir_broker::txn::TxnConfig;
use weir_broker::{Broker, BrokerConfig, TopicDefaults};
use weir_server::{serve, ServerLimits};

mod cmd;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A Kafka-compatible message broker that does not lose acknowledged data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up, so the size of `Serve`'s many settings does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Start a broker (default 127.0.0.1:9092, data in ./weir-data).
    ///
    /// Example: weir serve --listen 127.0.0.1:9092 --data-dir /var/lib/weir
    Serve(ServeArgs),
    /// Create, list, describe, delete topics and change their configs.
    Topic(cmd::topic::TopicArgs),
    // `produce` and `consume` take their help, examples included, from their Args docs.
    Produce(cmd::produce::ProduceArgs),
    Consume(cmd::consume::ConsumeArgs),
    /// List, describe (with lag), reset the offsets of, and delete consumer groups.
    Group(cmd::group::GroupArgs),
    /// Cluster id, controller and brokers.
    Cluster(cmd::cluster::ClusterArgs),
    /// Print a shell completion script.
    ///
    /// Example: weir completions bash > /etc/bash_completion.d/weir
    Completions(cmd::completions::CompletionsArgs),
}

/// Every setting is also read from `WEIR_<NAME>` and from the `--config` TOML file, where
/// its key is the flag name with underscores (e.g. `log_segment_bytes = 1048576`).
#[derive(Args, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeArgs {
    /// TOML file with settings (keys are the flag names with underscores).
    #[arg(long, env = "WEIR_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on for Kafka clients [default: 127.0.0.1:9092].
    #[arg(long, env = "WEIR_LISTEN")]
    listen: Option<String>,
    /// HOST:PORT of the admin HTTP server (health, readiness, metrics, JSON API), or `off`
    /// [default: 127.0.0.1:9644].
    #[arg(long, env = "WEIR_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Log lines as `text` (for people) or `json` (one object per line, for log pipelines)
    /// [default: text].
    #[arg(long, env = "WEIR_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Directory for the data [default: ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// HOST:PORT written into metadata for clients [default: the listen address].
    #[arg(long, env = "WEIR_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// This broker's node id (`node.id`) [default: 0].
    #[arg(long, env = "WEIR_NODE_ID")]
    node_id: Option<i32>,
    /// Partitions of auto-created topics (`num.partitions`) [default: 1].
    #[arg(long, env = "WEIR_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// Create unknown topics named in Metadata requests (`auto.create.topics.enable`) [default: true].
    #[arg(long, env = "WEIR_AUTO_CREATE_TOPICS_ENABLE")]
    auto_create_topics_enable: Option<bool>,
    /// Default segment size (`log.segment.bytes`) [default: 1073741824].
    #[arg(long, env = "WEIR_LOG_SEGMENT_BYTES")]
    log_segment_bytes: Option<u64>,
    /// Default segment age before rolling (`log.roll.ms`) [default: 604800000].
    #[arg(long, env = "WEIR_LOG_ROLL_MS")]
    log_roll_ms: Option<i64>,
    /// Largest record batch (`message.max.bytes`) [default: 1048588].
    #[arg(long, env = "WEIR_MESSAGE_MAX_BYTES")]
    message_max_bytes: Option<i64>,
    /// Default `flush.messages`; 1 = fsync before acknowledging (`log.flush.interval.messages`) [default: 1].
    #[arg(long, env = "WEIR_LOG_FLUSH_INTERVAL_MESSAGES")]
    log_flush_interval_messages: Option<i64>,
    /// Default `flush.ms` with a relaxed flush.messages (`log.flush.interval.ms`).
    #[arg(long, env = "WEIR_LOG_FLUSH_INTERVAL_MS")]
    log_flush_interval_ms: Option<i64>,
    /// CreateTime or LogAppendTime (`log.message.timestamp.type`) [default: CreateTime].
    #[arg(long, env = "WEIR_LOG_MESSAGE_TIMESTAMP_TYPE")]
    log_message_timestamp_type: Option<String>,
    /// Largest request frame; larger ones close the connection (`socket.request.max.bytes`) [default: 104857600].
    #[arg(long, env = "WEIR_SOCKET_REQUEST_MAX_BYTES")]
    socket_request_max_bytes: Option<usize>,
    /// Most client connections at once (`max.connections`) [default: 10000].
    #[arg(long, env = "WEIR_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// How long the first rebalance of an empty group waits for more members (`group.initial.rebalance.delay.ms`) [default: 3000].
    #[arg(long, env = "WEIR_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<i64>,
    /// Smallest session timeout a group member may ask for (`group.min.session.timeout.ms`) [default: 6000].
    #[arg(long, env = "WEIR_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<i32>,
    /// Largest session timeout a group member may ask for (`group.max.session.timeout.ms`) [default: 1800000].
    #[arg(long, env = "WEIR_GROUP_MAX_SESSION_TIMEOUT_MS")]
    group_max_session_timeout_ms: Option<i32>,
    /// Most members in one group (`group.max.size`) [default: 10000].
    #[arg(long, env = "WEIR_GROUP_MAX_SIZE")]
    group_max_size: Option<usize>,
    /// Committed offsets of a group empty this long are deleted (`offsets.retention.minutes`) [default: 10080].
    #[arg(long, env = "WEIR_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<i64>,
    /// How often expired offsets are looked for (`offsets.retention.check.interval.ms`) [default: 600000].
    #[arg(long, env = "WEIR_OFFSETS_RETENTION_CHECK_INTERVAL_MS")]
    offsets_retention_check_interval_ms: Option<i64>,
    /// Partitions of `__consumer_offsets` when it is created (`offsets.topic.num.partitions`) [default: 50].
    #[arg(long, env = "WEIR_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// Connections from one address beyond this are closed at once (`max.connections.per.ip`) [default: unlimited].
    #[arg(long, env = "WEIR_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// A connection that sends nothing for this long is closed (`connections.max.idle.ms`) [default: 600000].
    #[arg(long, env = "WEIR_CONNECTIONS_MAX_IDLE_MS")]
    connections_max_idle_ms: Option<u64>,
    /// Requests read but not yet answered, over all connections; then reading pauses (`queued.max.requests`) [default: 500].
    #[arg(long, env = "WEIR_QUEUED_MAX_REQUESTS")]
    queued_max_requests: Option<usize>,
    /// Memory for requests being read or in flight, over all connections; then reading pauses (`queued.max.request.bytes`) [default: 536870912].
    #[arg(long, env = "WEIR_QUEUED_MAX_REQUEST_BYTES")]
    queued_max_request_bytes: Option<usize>,
    /// An idempotent producer idle this long is forgotten (`producer.id.expiration.ms`) [default: 86400000].
    #[arg(long, env = "WEIR_PRODUCER_ID_EXPIRATION_MS")]
    producer_id_expiration_ms: Option<i64>,
    /// The longest transaction.timeout.ms a producer may ask for (`transaction.max.timeout.ms`) [default: 900000].
    #[arg(long, env = "WEIR_TRANSACTION_MAX_TIMEOUT_MS")]
    transaction_max_timeout_ms: Option<i32>,
    /// How often transactions open past their timeout are looked for and aborted (`transaction.abort.timed.out.transaction.cleanup.interval.ms`) [default: 10000].
    #[arg(
        long,
        env = "WEIR_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS"
    )]
    transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<i64>,
    /// Partitions of `__transaction_state` when it is created (`transaction.state.log.num.partitions`) [default: 50].
    #[arg(long, env = "WEIR_TRANSACTION_STATE_LOG_NUM_PARTITIONS")]
    transaction_state_log_num_partitions: Option<i32>,
    /// A transactional id with no transaction open and unused this long is forgotten (`transactional.id.expiration.ms`) [default: 604800000].
    #[arg(long, env = "WEIR_TRANSACTIONAL_ID_EXPIRATION_MS")]
    transactional_id_expiration_ms: Option<i64>,
    /// How often expired transactional ids are looked for (`transaction.remove.expired.transaction.cleanup.interval.ms`) [default: 3600000].
    #[arg(
        long,
        env = "WEIR_TRANSACTION_REMOVE_EXPIRED_TRANSACTION_CLEANUP_INTERVAL_MS"
    )]
    transaction_remove_expired_transaction_cleanup_interval_ms: Option<i64>,
    /// Default `retention.ms`: segments whose newest record is older are deleted; -1 keeps data forever (`log.retention.ms`) [default: 604800000].
    #[arg(long, env = "WEIR_LOG_RETENTION_MS")]
    log_retention_ms: Option<i64>,
    /// Default `retention.bytes` per partition; -1 for no limit (`log.retention.bytes`) [default: -1].
    #[arg(long, env = "WEIR_LOG_RETENTION_BYTES")]
    log_retention_bytes: Option<i64>,
    /// Default `cleanup.policy`: delete, compact or compact,delete (`log.cleanup.policy`) [default: delete].
    #[arg(long, env = "WEIR_LOG_CLEANUP_POLICY")]
    log_cleanup_policy: Option<String>,
    /// Default `delete.retention.ms` (`log.cleaner.delete.retention.ms`) [default: 86400000].
    #[arg(long, env = "WEIR_LOG_CLEANER_DELETE_RETENTION_MS")]
    log_cleaner_delete_retention_ms: Option<i64>,
    /// Default `min.compaction.lag.ms` (`log.cleaner.min.compaction.lag.ms`) [default: 0].
    #[arg(long, env = "WEIR_LOG_CLEANER_MIN_COMPACTION_LAG_MS")]
    log_cleaner_min_compaction_lag_ms: Option<i64>,
    /// Default `max.compaction.lag.ms` (`log.cleaner.max.compaction.lag.ms`) [default: 9223372036854775807].
    #[arg(long, env = "WEIR_LOG_CLEANER_MAX_COMPACTION_LAG_MS")]
    log_cleaner_max_compaction_lag_ms: Option<i64>,
    /// Default `min.cleanable.dirty.ratio` (`log.cleaner.min.cleanable.ratio`) [default: 0.5].
    #[arg(long, env = "WEIR_LOG_CLEANER_MIN_CLEANABLE_RATIO")]
    log_cleaner_min_cleanable_ratio: Option<f64>,
    /// How often segments past retention are deleted (`log.retention.check.interval.ms`) [default: 300000].
    #[arg(long, env = "WEIR_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<i64>,
    /// Run the log cleaner for compacted topics (`log.cleaner.enable`) [default: true].
    #[arg(long, env = "WEIR_LOG_CLEANER_ENABLE")]
    log_cleaner_enable: Option<bool>,
    /// The cleaner's sleep when nothing needs cleaning (`log.cleaner.backoff.ms`) [default: 15000].
    #[arg(long, env = "WEIR_LOG_CLEANER_BACKOFF_MS")]
    log_cleaner_backoff_ms: Option<i64>,
    /// Memory for the cleaner's key map, bytes (`log.cleaner.dedupe.buffer.size`) [default: 134217728].
    #[arg(long, env = "WEIR_LOG_CLEANER_DEDUPE_BUFFER_SIZE")]
    log_cleaner_dedupe_buffer_size: Option<usize>,
}

impl ServeArgs {
    /// Fill every unset field from `file`.
    fn or(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            listen: self.listen.or(file.listen),
            admin_listen: self.admin_listen.or(file.admin_listen),
            log_format: self.log_format.or(file.log_format),
            data_dir: self.data_dir.or(file.data_dir),
            advertised_listener: self.advertised_listener.or(file.advertised_listener),
            node_id: self.node_id.or(file.node_id),
            num_partitions: self.num_partitions.or(file.num_partitions),
            auto_create_topics_enable: self
                .auto_create_topics_enable
                .or(file.auto_create_topics_enable),
            log_segment_bytes: self.log_segment_bytes.or(file.log_segment_bytes),
            log_roll_ms: self.log_roll_ms.or(file.log_roll_ms),
            message_max_bytes: self.message_max_bytes.or(file.message_max_bytes),
            log_flush_interval_messages: self
                .log_flush_interval_messages
                .or(file.log_flush_interval_messages),
            log_flush_interval_ms: self.log_flush_interval_ms.or(file.log_flush_interval_ms),
            log_message_timestamp_type: self
                .log_message_timestamp_type
                .or(file.log_message_timestamp_type),
            socket_request_max_bytes: self
                .socket_request_max_bytes
                .or(file.socket_request_max_bytes),
            max_connections: self.max_connections.or(file.max_connections),
            group_initial_rebalance_delay_ms: self
                .group_initial_rebalance_delay_ms
                .or(file.group_initial_rebalance_delay_ms),
            group_min_session_timeout_ms: self
                .group_min_session_timeout_ms
                .or(file.group_min_session_timeout_ms),
            group_max_session_timeout_ms: self
                .group_max_session_timeout_ms
                .or(file.group_max_session_timeout_ms),
            group_max_size: self.group_max_size.or(file.group_max_size),
            offsets_retention_minutes: self
                .offsets_retention_minutes
                .or(file.offsets_retention_minutes),
            offsets_retention_check_interval_ms: self
                .offsets_retention_check_interval_ms
                .or(file.offsets_retention_check_interval_ms),
            offsets_topic_num_partitions: self
                .offsets_topic_num_partitions
                .or(file.offsets_topic_num_partitions),
            producer_id_expiration_ms: self
                .producer_id_expiration_ms
                .or(file.producer_id_expiration_ms),
            transaction_max_timeout_ms: self
                .transaction_max_timeout_ms
                .or(file.transaction_max_timeout_ms),
            transaction_abort_timed_out_transaction_cleanup_interval_ms: self
                .transaction_abort_timed_out_transaction_cleanup_interval_ms
                .or(file.transaction_abort_timed_out_transaction_cleanup_interval_ms),
            transaction_state_log_num_partitions: self
                .transaction_state_log_num_partitions
                .or(file.transaction_state_log_num_partitions),
            transactional_id_expiration_ms: self
                .transactional_id_expiration_ms
                .or(file.transactional_id_expiration_ms),
            transaction_remove_expired_transaction_cleanup_interval_ms: self
                .transaction_remove_expired_transaction_cleanup_interval_ms
                .or(file.transaction_remove_expired_transaction_cleanup_interval_ms),
            log_retention_ms: self.log_retention_ms.or(file.log_retention_ms),
            log_retention_bytes: self.log_retention_bytes.or(file.log_retention_bytes),
            log_cleanup_policy: self.log_cleanup_policy.or(file.log_cleanup_policy),
            log_cleaner_delete_retention_ms: self
                .log_cleaner_delete_retention_ms
                .or(file.log_cleaner_delete_retention_ms),
            log_cleaner_min_compaction_lag_ms: self
                .log_cleaner_min_compaction_lag_ms
                .or(file.log_cleaner_min_compaction_lag_ms),
            log_cleaner_max_compaction_lag_ms: self
                .log_cleaner_max_compaction_lag_ms
                .or(file.log_cleaner_max_compaction_lag_ms),
            log_cleaner_min_cleanable_ratio: self
                .log_cleaner_min_cleanable_ratio
                .or(file.log_cleaner_min_cleanable_ratio),
            log_retention_check_interval_ms: self
                .log_retention_check_interval_ms
                .or(file.log_retention_check_interval_ms),
            log_cleaner_enable: self.log_cleaner_enable.or(file.log_cleaner_enable),
            log_cleaner_backoff_ms: self.log_cleaner_backoff_ms.or(file.log_cleaner_backoff_ms),
            log_cleaner_dedupe_buffer_size: self
                .log_cleaner_dedupe_buffer_size
                .or(file.log_cleaner_dedupe_buffer_size),
            max_connections_per_ip: self.max_connections_per_ip.or(file.max_connections_per_ip),
            connections_max_idle_ms: self
                .connections_max_idle_ms
                .or(file.connections_max_idle_ms),
            queued_max_requests: self.queued_max_requests.or(file.queued_max_requests),
            queued_max_request_bytes: self
                .queued_max_request_bytes
                .or(file.queued_max_request_bytes),
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse_from(cmd::hoist_client_flags(std::env::args_os().collect()));
    if !matches!(cli.command, Command::Serve(_)) {
        // The client commands report resets and retries as warnings on stderr.
        init_tracing("text")?;
    }
    match cli.command {
        Command::Serve(args) => {
            // The config file may choose the log format, so it is read before logging starts.
            let args = with_config_file(args)?;
            init_tracing(args.log_format.as_deref().unwrap_or("text"))?;
            run_serve(args)
        }
        Command::Topic(args) => cmd::run(cmd::topic::run(args)),
        Command::Produce(args) => cmd::run(cmd::produce::run(args)),
        Command::Consume(args) => cmd::run(cmd::consume::run(args)),
        Command::Group(args) => cmd::run(cmd::group::run(args)),
        Command::Cluster(args) => cmd::run(cmd::cluster::run(args)),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()),
    }
}

/// Logs go to stderr: `text` for people, `json` for pipelines (one object per line, the
/// event's fields at the top level next to `timestamp`, `level`, `target` and `message`,
/// and the spans it happened in, outermost first, under `spans`: a connection's `peer` and
/// `conn_id`, a request's `api`, `api_version`, `correlation_id` and `client_id`).
/// `RUST_LOG` filters both [default: info].
fn init_tracing(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        "text" => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        other => bail!("--log-format must be text or json, not {other:?}"),
    }
    Ok(())
}

fn with_config_file(args: ServeArgs) -> Result<ServeArgs> {
    Ok(match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let file: ServeArgs = toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?;
            args.or(file)
        }
        None => args,
    })
}

/// `--admin-listen`: None when switched off.
fn admin_address(args: &ServeArgs) -> Result<Option<SocketAddr>> {
    match args.admin_listen.as_deref().map(str::trim) {
        Some("off" | "none" | "disabled" | "") => Ok(None),
        other => other
            .unwrap_or("127.0.0.1:9644")
            .parse()
            .map(Some)
            .context("--admin-listen must be HOST:PORT with an IP address, or off"),
    }
}

fn run_serve(args: ServeArgs) -> Result<()> {
    let admin_addr = admin_address(&args)?;
    let listen: SocketAddr = args
        .listen
        .as_deref()
        .unwrap_or("127.0.0.1:9092")
        .parse()
        .context("--listen must be HOST:PORT with an IP address")?;
    let (advertised_host, advertised_port) = match &args.advertised_listener {
        Some(a) => {
            let (h, p) = a
                .rsplit_once(':')
                .context("--advertised-listener must be HOST:PORT")?;
            (h.to_string(), p.parse::<u16>().context("advertised port")?)
        }
        None => (listen.ip().to_string(), listen.port()),
    };
    if listen.ip().is_unspecified() && args.advertised_listener.is_none() {
        bail!("listening on {listen} needs --advertised-listener: clients cannot connect to an unspecified address");
    }
    let d = TopicDefaults::default();
    let topic_defaults = TopicDefaults {
        segment_bytes: args.log_segment_bytes.unwrap_or(d.segment_bytes),
        segment_ms: args.log_roll_ms.unwrap_or(d.segment_ms),
        max_message_bytes: args.message_max_bytes.unwrap_or(d.max_message_bytes),
        index_interval_bytes: d.index_interval_bytes,
        flush_messages: args.log_flush_interval_messages.unwrap_or(d.flush_messages),
        flush_ms: args.log_flush_interval_ms.unwrap_or(d.flush_ms),
        message_timestamp_type: args
            .log_message_timestamp_type
            .clone()
            .unwrap_or(d.message_timestamp_type),
        retention_ms: args.log_retention_ms.unwrap_or(d.retention_ms),
        retention_bytes: args.log_retention_bytes.unwrap_or(d.retention_bytes),
        cleanup_policy: args.log_cleanup_policy.clone().unwrap_or(d.cleanup_policy),
        delete_retention_ms: args
            .log_cleaner_delete_retention_ms
            .unwrap_or(d.delete_retention_ms),
        min_compaction_lag_ms: args
            .log_cleaner_min_compaction_lag_ms
            .unwrap_or(d.min_compaction_lag_ms),
        max_compaction_lag_ms: args
            .log_cleaner_max_compaction_lag_ms
            .unwrap_or(d.max_compaction_lag_ms),
        min_cleanable_dirty_ratio: args
            .log_cleaner_min_cleanable_ratio
            .unwrap_or(d.min_cleanable_dirty_ratio),
    };
    // The defaults are validated the same way a topic's settings are.
    weir_broker::config::TopicSettings::resolve(&topic_defaults, &Default::default())
        .map_err(|e| anyhow::anyhow!("invalid broker default: {e}"))?;
    let config = BrokerConfig {
        node_id: args.node_id.unwrap_or(0),
        advertised_host,
        advertised_port,
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("weir-data")),
        num_partitions: args.num_partitions.unwrap_or(1).max(1),
        auto_create_topics_enable: args.auto_create_topics_enable.unwrap_or(true),
        socket_request_max_bytes: args.socket_request_max_bytes.unwrap_or(100 * 1024 * 1024),
        topic_defaults,
        group: group_config(&args)?,
        offsets: offsets_config(&args)?,
        producer_id_expiration_ms: args
            .producer_id_expiration_ms
            .unwrap_or(24 * 60 * 60 * 1000)
            .max(1),
        txn: txn_config(&args)?,
        log_manager: log_manager_config(&args)?,
        explicit: explicit_settings(&args),
    };
    let d = ServerLimits::default();
    let limits = ServerLimits {
        max_connections: args.max_connections.unwrap_or(d.max_connections).max(1),
        max_connections_per_ip: args
            .max_connections_per_ip
            .unwrap_or(d.max_connections_per_ip)
            .max(1),
        connections_max_idle_ms: args
            .connections_max_idle_ms
            .unwrap_or(d.connections_max_idle_ms)
            .max(1),
        queued_max_requests: args
            .queued_max_requests
            .unwrap_or(d.queued_max_requests)
            .max(1),
        queued_max_request_bytes: args
            .queued_max_request_bytes
            .unwrap_or(d.queued_max_request_bytes),
        ..d
    };
    if limits.queued_max_request_bytes < config.socket_request_max_bytes {
        bail!(
            "queued.max.request.bytes ({}) must be at least socket.request.max.bytes ({}): a largest request must fit in the budget",
            limits.queued_max_request_bytes,
            config.socket_request_max_bytes
        );
    }
    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let advertised = format!("{}:{}", config.advertised_host, config.advertised_port);
    runtime.block_on(async move {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        // The admin server comes up first: live (and not ready) while the logs recover.
        let admin = match admin_addr {
            Some(addr) => {
                let l = weir_admin::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin listener {addr}"))?;
                let admin_listen = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                let state = weir_admin::AdminState::new(weir_admin::Listeners {
                    kafka: listen.to_string(),
                    advertised: advertised.clone(),
                    admin: admin_listen.clone(),
                });
                let rx = shutdown_rx.clone();
                let s = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = weir_admin::serve(l, s, rx).await {
                        tracing::error!(error = %e, "admin server failed");
                    }
                });
                tracing::info!(admin = %admin_listen, "admin server listening");
                Some(state)
            }
            None => None,
        };
        let broker = Broker::open(config)
            .await
            .map_err(|e| anyhow::anyhow!("opening the data directory: {e}"))?;
        if let Some(a) = &admin {
            a.set_broker(broker.clone());
        }
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        tracing::info!(%listen, %advertised, data_dir = %broker.config.data_dir.display(), "weir is listening");
        if let Some(a) = &admin {
            a.set_serving();
        }
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            let _ = shutdown_tx.send(true);
        });
        serve(broker.clone(), listener, limits, shutdown_rx).await;
        tokio::task::spawn_blocking(move || broker.shutdown())
            .await?
            .map_err(|e| anyhow::anyhow!("shutdown: {e}"))?;
        Ok(())
    })
}

/// Connections and segment files need descriptors: lift the soft limit to the hard one, as
/// servers usually do, so `max.connections` is reachable.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY: a soft limit already unlimited needs nothing.
    let Some(current) = lim.current else { return };
    if lim.maximum.is_some_and(|max| current >= max) {
        return;
    }
    let wanted = Rlimit {
        current: lim.maximum,
        maximum: lim.maximum,
    };
    if setrlimit(Resource::Nofile, wanted).is_err() {
        tracing::warn!("could not raise the open files limit");
    }
}

fn group_config(args: &ServeArgs) -> Result<GroupConfig> {
    let d = GroupConfig::default();
    let c = GroupConfig {
        initial_rebalance_delay_ms: args
            .group_initial_rebalance_delay_ms
            .unwrap_or(d.initial_rebalance_delay_ms),
        min_session_timeout_ms: args
            .group_min_session_timeout_ms
            .unwrap_or(d.min_session_timeout_ms),
        max_session_timeout_ms: args
            .group_max_session_timeout_ms
            .unwrap_or(d.max_session_timeout_ms),
        max_size: args.group_max_size.unwrap_or(d.max_size),
    };
    if c.initial_rebalance_delay_ms < 0 {
        bail!("group.initial.rebalance.delay.ms must not be negative");
    }
    if c.min_session_timeout_ms < 1 || c.min_session_timeout_ms > c.max_session_timeout_ms {
        bail!("group.min.session.timeout.ms must be at least 1 and at most group.max.session.timeout.ms");
    }
    if c.max_size < 1 {
        bail!("group.max.size must be at least 1");
    }
    Ok(c)
}

fn offsets_config(args: &ServeArgs) -> Result<OffsetsConfig> {
    let d = OffsetsConfig::default();
    let minutes = args
        .offsets_retention_minutes
        .unwrap_or(d.retention_ms / 60_000);
    let c = OffsetsConfig {
        retention_ms: minutes.saturating_mul(60_000),
        retention_check_interval_ms: args
            .offsets_retention_check_interval_ms
            .unwrap_or(d.retention_check_interval_ms),
        topic_num_partitions: args
            .offsets_topic_num_partitions
            .unwrap_or(d.topic_num_partitions),
        metadata_max_bytes: d.metadata_max_bytes,
    };
    if minutes < 1 || c.retention_check_interval_ms < 1 {
        bail!(
            "offsets.retention.minutes and offsets.retention.check.interval.ms must be at least 1"
        );
    }
    if !(1..=1000).contains(&c.topic_num_partitions) {
        bail!("offsets.topic.num.partitions must be between 1 and 1000");
    }
    Ok(c)
}

fn log_manager_config(args: &ServeArgs) -> Result<LogManagerConfig> {
    let d = LogManagerConfig::default();
    let c = LogManagerConfig {
        retention_check_interval_ms: args
            .log_retention_check_interval_ms
            .unwrap_or(d.retention_check_interval_ms),
        cleaner_enable: args.log_cleaner_enable.unwrap_or(d.cleaner_enable),
        cleaner_backoff_ms: args.log_cleaner_backoff_ms.unwrap_or(d.cleaner_backoff_ms),
        cleaner_dedupe_buffer_size: args
            .log_cleaner_dedupe_buffer_size
            .unwrap_or(d.cleaner_dedupe_buffer_size),
    };
    if c.retention_check_interval_ms < 1 || c.cleaner_backoff_ms < 1 {
        bail!("log.retention.check.interval.ms and log.cleaner.backoff.ms must be at least 1");
    }
    if c.cleaner_dedupe_buffer_size < 1024 * 1024 {
        bail!("log.cleaner.dedupe.buffer.size must be at least 1048576");
    }
    Ok(c)
}

/// The Kafka names of the broker settings given explicitly (for DescribeConfigs sources).
fn explicit_settings(a: &ServeArgs) -> std::collections::BTreeSet<String> {
    [
        ("log.segment.bytes", a.log_segment_bytes.is_some()),
        ("log.roll.ms", a.log_roll_ms.is_some()),
        ("message.max.bytes", a.message_max_bytes.is_some()),
        (
            "log.flush.interval.messages",
            a.log_flush_interval_messages.is_some(),
        ),
        ("log.flush.interval.ms", a.log_flush_interval_ms.is_some()),
        (
            "log.message.timestamp.type",
            a.log_message_timestamp_type.is_some(),
        ),
        ("log.retention.ms", a.log_retention_ms.is_some()),
        ("log.retention.bytes", a.log_retention_bytes.is_some()),
        ("log.cleanup.policy", a.log_cleanup_policy.is_some()),
        (
            "log.cleaner.delete.retention.ms",
            a.log_cleaner_delete_retention_ms.is_some(),
        ),
        (
            "log.cleaner.min.compaction.lag.ms",
            a.log_cleaner_min_compaction_lag_ms.is_some(),
        ),
        (
            "log.cleaner.max.compaction.lag.ms",
            a.log_cleaner_max_compaction_lag_ms.is_some(),
        ),
        (
            "log.cleaner.min.cleanable.ratio",
            a.log_cleaner_min_cleanable_ratio.is_some(),
        ),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .map(|(name, _)| name.to_string())
    .collect()
}

fn txn_config(args: &ServeArgs) -> Result<TxnConfig> {
    let d = TxnConfig::default();
    let c = TxnConfig {
        max_timeout_ms: args.transaction_max_timeout_ms.unwrap_or(d.max_timeout_ms),
        abort_check_interval_ms: args
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .unwrap_or(d.abort_check_interval_ms),
        topic_num_partitions: args
            .transaction_state_log_num_partitions
            .unwrap_or(d.topic_num_partitions),
        id_expiration_ms: args
            .transactional_id_expiration_ms
            .unwrap_or(d.id_expiration_ms),
        remove_expired_interval_ms: args
            .transaction_remove_expired_transaction_cleanup_interval_ms
            .unwrap_or(d.remove_expired_interval_ms),
    };
    if c.max_timeout_ms < 1 || c.abort_check_interval_ms < 1 {
        bail!("transaction.max.timeout.ms and transaction.abort.timed.out.transaction.cleanup.interval.ms must be at least 1");
    }
    if c.id_expiration_ms < 1 || c.remove_expired_interval_ms < 1 {
        bail!("transactional.id.expiration.ms and transaction.remove.expired.transaction.cleanup.interval.ms must be at least 1");
    }
    if !(1..=1000).contains(&c.topic_num_partitions) {
        bail!("transaction.state.log.num.partitions must be between 1 and 1000");
    }
    Ok(c)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
