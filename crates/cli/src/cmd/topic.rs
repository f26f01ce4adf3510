//! `weir topic create|list|describe|delete|alter-config`.

use clap::{Args, Subcommand};
use serde::Serialize;
use weir_client::admin::parse_key_value;

use super::output::{fields, json, list, opt, table};
use super::ClientArgs;

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic (CreateTopics).
    ///
    /// Example: weir topic create orders --partitions 6 --config retention.ms=86400000 --config cleanup.policy=delete
    Create {
        name: String,
        /// Partitions [default: the broker's num.partitions].
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replicas of each partition [default: the broker's default.replication.factor].
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config KEY=VALUE (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics (Metadata).
    ///
    /// Example: weir topic list --internal --json
    List {
        /// Include internal topics such as __consumer_offsets.
        #[arg(long)]
        internal: bool,
    },
    /// Partitions with leaders and log start/end offsets (ListOffsets), and configs
    /// (DescribeConfigs).
    ///
    /// Example: weir topic describe orders
    Describe { name: String },
    /// Delete a topic and its data (DeleteTopics).
    ///
    /// Example: weir topic delete orders
    Delete { name: String },
    /// Change topic configs (IncrementalAlterConfigs): --set KEY=VALUE, --delete KEY
    /// (back to the broker default).
    ///
    /// Example: weir topic alter-config orders --set retention.ms=3600000 --delete cleanup.policy
    AlterConfig {
        name: String,
        /// Set KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Remove the override of KEY (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

#[derive(Serialize)]
struct Done<'a> {
    topic: &'a str,
    deleted: bool,
}

#[derive(Serialize)]
struct Altered<'a> {
    topic: &'a str,
    set: std::collections::BTreeMap<String, String>,
    deleted: Vec<String>,
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let mut client = args.client.client()?;
    let as_json = args.client.json;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| parse_key_value(c))
                .collect::<Result<Vec<_>, _>>()?;
            if partitions.is_some_and(|p| p <= 0) {
                anyhow::bail!("--partitions must be at least 1");
            }
            let created = client
                .create_topic(
                    &name,
                    partitions.unwrap_or(-1),
                    replication_factor.unwrap_or(-1),
                    &configs,
                )
                .await?;
            if as_json {
                return json(&created);
            }
            println!(
                "Created topic {} ({} partitions, replication factor {})",
                created.name, created.partitions, created.replication_factor
            );
        }
        TopicCommand::List { internal } => {
            let topics: Vec<_> = client
                .list_topics()
                .await?
                .into_iter()
                .filter(|t| internal || !t.internal)
                .collect();
            if as_json {
                return json(&topics);
            }
            let rows: Vec<Vec<String>> = topics
                .iter()
                .map(|t| {
                    let mut row = vec![t.name.clone(), t.partition_count.to_string()];
                    if internal {
                        row.push(t.internal.to_string());
                    }
                    row
                })
                .collect();
            if internal {
                table(&["NAME", "PARTITIONS", "INTERNAL"], &rows);
            } else {
                table(&["NAME", "PARTITIONS"], &rows);
            }
        }
        TopicCommand::Describe { name } => {
            let d = client.describe_topic(&name).await?;
            if as_json {
                return json(&d);
            }
            fields(&[
                ("NAME", d.name.clone()),
                ("TOPIC ID", d.topic_id.clone()),
                ("INTERNAL", d.internal.to_string()),
                ("PARTITIONS", d.partitions.len().to_string()),
            ]);
            println!();
            let rows: Vec<Vec<String>> = d
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.partition.to_string(),
                        p.leader.to_string(),
                        list(&p.replicas),
                        list(&p.isr),
                        p.log_start_offset.to_string(),
                        p.log_end_offset.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "PARTITION",
                    "LEADER",
                    "REPLICAS",
                    "ISR",
                    "LOG-START-OFFSET",
                    "LOG-END-OFFSET",
                ],
                &rows,
            );
            println!();
            let rows: Vec<Vec<String>> = d
                .configs
                .iter()
                .map(|c| vec![c.name.clone(), opt(c.value.clone()), c.source.clone()])
                .collect();
            table(&["CONFIG", "VALUE", "SOURCE"], &rows);
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            if as_json {
                return json(&Done {
                    topic: &name,
                    deleted: true,
                });
            }
            println!("Deleted topic {name}");
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
            }
            let set = set
                .iter()
                .map(|c| parse_key_value(c))
                .collect::<Result<Vec<_>, _>>()?;
            client.alter_topic_config(&name, &set, &delete).await?;
            if as_json {
                return json(&Altered {
                    topic: &name,
                    set: set.into_iter().collect(),
                    deleted: delete,
                });
            }
            let mut parts = Vec::new();
            if !set.is_empty() {
                parts.push(format!(
                    "set {}",
                    set.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !delete.is_empty() {
                parts.push(format!("deleted {}", delete.join(", ")));
            }
            println!("Altered configs of topic {name}: {}", parts.join("; "));
        }
    }
    Ok(())
}
