//! The client commands of the `weir` binary: topic, produce, consume, group, cluster,
//! completions. They speak only public Kafka APIs (through weir-client), so they work
//! against any Kafka-compatible broker, not just weir.
//!
//! Output: human tables on stdout by default; `--json` prints JSON with stable field
//! names (the weir-client structs). Errors go to stderr as `error: ...` with the Kafka
//! error name, and the exit status is 1.

pub mod cluster;
pub mod completions;
pub mod consume;
pub mod group;
pub mod output;
pub mod produce;
pub mod topic;

use std::future::Future;

use clap::Args;
use weir_client::{Client, ClientConfig};

/// Connection and output flags shared by every client command.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Brokers to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        short = 'b',
        env = "WEIR_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,
    /// Print JSON instead of tables (one object per record for `consume`).
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for a broker's answer, in ms.
    #[arg(long, default_value_t = 30_000, global = true)]
    pub request_timeout_ms: u64,
}

impl ClientArgs {
    pub fn client(&self) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(&self.brokers)?;
        config.request_timeout = std::time::Duration::from_millis(self.request_timeout_ms);
        Ok(Client::new(config))
    }
}

/// The commands that take [`ClientArgs`].
const CLIENT_COMMANDS: [&str; 5] = ["topic", "produce", "consume", "group", "cluster"];

/// Let the connection and output flags come before the command, as with kcat and rpk
/// (`weir -b HOST:PORT --json topic list`): flags of [`ClientArgs`] placed between the
/// program name and a client command are moved after the command, where clap takes them
/// (they are `global` within each command). Anything else is left for clap to judge.
pub fn hoist_client_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    let mut flags = Vec::new();
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        let with_value = matches!(arg, "-b" | "--brokers" | "--request-timeout-ms");
        let inline = arg.starts_with("--brokers=")
            || arg.starts_with("--request-timeout-ms=")
            || (arg.starts_with("-b") && arg.len() > 2 && !arg.starts_with("--"));
        if with_value && i + 1 < args.len() {
            flags.extend_from_slice(&args[i..i + 2]);
            i += 2;
        } else if inline || arg == "--json" {
            flags.push(args[i].clone());
            i += 1;
        } else {
            break;
        }
    }
    let command = args.get(i).and_then(|a| a.to_str());
    if flags.is_empty() || !command.is_some_and(|c| CLIENT_COMMANDS.contains(&c)) {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    out.push(args[0].clone());
    out.push(args[i].clone());
    out.extend(flags);
    out.extend_from_slice(&args[i + 1..]);
    out
}

/// Run one client command on a small runtime; on failure print the error and exit 1.
pub fn run<F: Future<Output = anyhow::Result<()>>>(fut: F) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Err(e) = runtime.block_on(fut) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hoist_client_flags;

    fn hoist(line: &str) -> String {
        let args = line.split(' ').map(Into::into).collect();
        let out: Vec<String> = hoist_client_flags(args)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        out.join(" ")
    }

    #[test]
    fn flags_before_a_client_command_move_after_it() {
        assert_eq!(
            hoist("weir -b h:1 --json topic list"),
            "weir topic -b h:1 --json list"
        );
        assert_eq!(
            hoist("weir --brokers=h:1 --request-timeout-ms 5 consume t --count 1"),
            "weir consume --brokers=h:1 --request-timeout-ms 5 t --count 1"
        );
        assert_eq!(hoist("weir -bh:1 cluster info"), "weir cluster -bh:1 info");
    }

    #[test]
    fn anything_else_is_left_for_clap() {
        for line in [
            "weir topic list -b h:1",
            "weir -b h:1 serve",
            "weir --json",
            "weir -b",
            "weir --version",
            "weir --json --unknown topic list",
        ] {
            assert_eq!(hoist(line), line);
        }
    }
}
