//! The `weir` binary.
//!
//! `weir serve` resolves its settings in this order, first found wins: command-line flag,
//! environment variable `WEIR_<NAME>`, the TOML file given with `--config`, built-in default
//! (see `serve_args`; the settings themselves are `weir_broker::settings::BROKER_SETTINGS`).

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::watch;
use weir_broker::settings::ServeConfig;
use weir_broker::Broker;
use weir_server::serve;

mod cmd;
mod serve_args;

use serve_args::ServeArgs;

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

fn main() -> Result<()> {
    let cli = Cli::parse_from(cmd::hoist_client_flags(std::env::args_os().collect()));
    if !matches!(cli.command, Command::Serve(_)) {
        // The client commands report resets and retries as warnings on stderr.
        init_tracing("text")?;
    }
    match cli.command {
        Command::Serve(args) => {
            // The config file may choose the log format, so it is read before logging starts.
            let config = args.resolve()?;
            init_tracing(&config.process.log_format)?;
            run_serve(config)
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

fn run_serve(serve_config: ServeConfig) -> Result<()> {
    let ServeConfig {
        broker: config,
        process,
    } = serve_config;
    let (listen, admin_addr, limits) = (process.listen, process.admin_listen, process.limits);
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

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(flag, env var, value name)` of every `serve` option.
    fn serve_options() -> Vec<(String, String, String)> {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        serve
            .get_arguments()
            .filter_map(|a| {
                Some((
                    a.get_long()?.to_string(),
                    a.get_env()?.to_string_lossy().into_owned(),
                    a.get_value_names()?
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ))
            })
            .collect()
    }

    /// Every flag `weir serve` has ever had keeps its name, its `WEIR_` variable and its value
    /// name: scripts, unit files and container specs use them.
    #[test]
    fn serve_keeps_every_flag_and_env_var() {
        let expected = [
            "config",
            "listen",
            "admin-listen",
            "log-format",
            "data-dir",
            "advertised-listener",
            "node-id",
            "num-partitions",
            "auto-create-topics-enable",
            "log-segment-bytes",
            "log-roll-ms",
            "message-max-bytes",
            "log-flush-interval-messages",
            "log-flush-interval-ms",
            "log-message-timestamp-type",
            "log-message-timestamp-before-max-ms",
            "log-message-timestamp-after-max-ms",
            "log-message-timestamp-difference-max-ms",
            "compression-type",
            "compression-gzip-level",
            "compression-lz4-level",
            "compression-zstd-level",
            "min-insync-replicas",
            "unclean-leader-election-enable",
            "log-roll-jitter-ms",
            "log-index-size-max-bytes",
            "log-segment-delete-delay-ms",
            "log-preallocate",
            "socket-request-max-bytes",
            "max-connections",
            "group-initial-rebalance-delay-ms",
            "group-min-session-timeout-ms",
            "group-max-session-timeout-ms",
            "group-max-size",
            "group-consumer-session-timeout-ms",
            "group-consumer-heartbeat-interval-ms",
            "group-consumer-migration-policy",
            "offsets-retention-minutes",
            "offsets-retention-check-interval-ms",
            "offsets-topic-num-partitions",
            "max-connections-per-ip",
            "connections-max-idle-ms",
            "queued-max-requests",
            "queued-max-request-bytes",
            "producer-id-expiration-ms",
            "transaction-max-timeout-ms",
            "transaction-abort-timed-out-transaction-cleanup-interval-ms",
            "transaction-state-log-num-partitions",
            "transactional-id-expiration-ms",
            "transaction-remove-expired-transaction-cleanup-interval-ms",
            "log-retention-ms",
            "log-retention-bytes",
            "log-cleanup-policy",
            "log-cleaner-delete-retention-ms",
            "log-cleaner-min-compaction-lag-ms",
            "log-cleaner-max-compaction-lag-ms",
            "log-cleaner-min-cleanable-ratio",
            "log-retention-check-interval-ms",
            "log-cleaner-enable",
            "log-cleaner-backoff-ms",
            "log-cleaner-dedupe-buffer-size",
        ];
        let mut got = serve_options();
        got.sort();
        let mut want: Vec<(String, String, String)> = expected
            .iter()
            .map(|f| {
                let upper = f.to_uppercase().replace('-', "_");
                (f.to_string(), format!("WEIR_{upper}"), upper)
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
}
