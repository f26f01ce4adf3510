//! `weir cluster info`.

use clap::{Args, Subcommand};

use super::output::{fields, json, opt, table};
use super::ClientArgs;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Cluster id, controller, brokers and topic count.
    ///
    /// Asks DescribeCluster (Metadata on brokers without it) and Metadata for the topics.
    ///
    /// Example: weir cluster info --brokers 127.0.0.1:9092 --json
    Info,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let mut client = args.client.client()?;
    match args.command {
        ClusterCommand::Info => {
            let info = client.cluster_info().await?;
            if args.client.json {
                return json(&info);
            }
            fields(&[
                ("CLUSTER ID", opt(info.cluster_id.clone())),
                ("CONTROLLER", info.controller_id.to_string()),
                (
                    "TOPICS",
                    format!(
                        "{} (+{} internal)",
                        info.topic_count, info.internal_topic_count
                    ),
                ),
                ("BROKERS", info.brokers.len().to_string()),
            ]);
            println!();
            let rows: Vec<Vec<String>> = info
                .brokers
                .iter()
                .map(|b| {
                    vec![
                        b.node_id.to_string(),
                        b.host.clone(),
                        b.port.to_string(),
                        opt(b.rack.clone()),
                    ]
                })
                .collect();
            table(&["ID", "HOST", "PORT", "RACK"], &rows);
            Ok(())
        }
    }
}
