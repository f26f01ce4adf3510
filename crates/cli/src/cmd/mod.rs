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
