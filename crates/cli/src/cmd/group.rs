//! `weir group list|describe|reset-offsets|delete`.

use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use weir_client::groups::ResetTo;

use super::output::{fields, json, opt, table};
use super::ClientArgs;

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List consumer groups (ListGroups on every broker).
    ///
    /// Example: weir group list --json
    List,
    /// State, members with their assignments, and per partition the committed offset,
    /// log end offset and lag (like kafka-consumer-groups --describe).
    ///
    /// Example: weir group describe billing
    Describe { group: String },
    /// Move a stopped group's committed offsets. Prints the plan and changes nothing
    /// unless --execute is given; refused while the group has active members.
    ///
    /// Example: weir group reset-offsets billing --topic orders --to-earliest --execute
    #[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_timestamp", "to_offset"])))]
    ResetOffsets {
        group: String,
        /// The topic whose offsets move.
        #[arg(long, short = 't')]
        topic: String,
        /// Only these partitions (repeatable) [default: all].
        #[arg(long, short = 'p')]
        partition: Vec<i32>,
        /// The log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// The log end offset.
        #[arg(long)]
        to_latest: bool,
        /// The first offset at or after this time (ms since the epoch).
        #[arg(long, value_name = "MS")]
        to_timestamp: Option<i64>,
        /// This offset (clamped into the log).
        #[arg(long, value_name = "N")]
        to_offset: Option<i64>,
        /// Commit the new offsets (without it: a dry run).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group and its committed offsets (DeleteGroups; the group must be empty).
    ///
    /// Example: weir group delete billing
    Delete { group: String },
}

#[derive(Serialize)]
struct Deleted<'a> {
    group: &'a str,
    deleted: bool,
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let mut client = args.client.client()?;
    let as_json = args.client.json;
    match args.command {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            if as_json {
                return json(&groups);
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        opt(g.group_type.clone()),
                        opt(g.state.clone()),
                        g.protocol_type.clone(),
                    ]
                })
                .collect();
            table(&["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"], &rows);
        }
        GroupCommand::Describe { group } => {
            let d = client.describe_group(&group).await?;
            if as_json {
                return json(&d);
            }
            let mut head = vec![
                ("GROUP", d.group.clone()),
                ("TYPE", d.group_type.clone()),
                ("STATE", d.state.clone()),
                ("PROTOCOL-TYPE", d.protocol_type.clone()),
            ];
            if d.group_type == "consumer" {
                head.push(("ASSIGNOR", d.protocol.clone()));
                head.push(("GROUP-EPOCH", opt(d.group_epoch)));
                head.push(("ASSIGNMENT-EPOCH", opt(d.assignment_epoch)));
            } else {
                head.push(("PROTOCOL", d.protocol.clone()));
            }
            head.extend([
                ("COORDINATOR", d.coordinator.to_string()),
                ("MEMBERS", d.members.len().to_string()),
                ("TOTAL-LAG", d.total_lag.to_string()),
            ]);
            fields(&head);
            if !d.members.is_empty() {
                println!();
                let rows: Vec<Vec<String>> = d
                    .members
                    .iter()
                    .map(|m| {
                        let assigned = m
                            .assignment
                            .iter()
                            .map(|(t, ps)| format!("{t}:{}", super::output::list(ps)))
                            .collect::<Vec<_>>()
                            .join(" ");
                        vec![
                            m.member_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            opt(m.member_epoch),
                            if assigned.is_empty() {
                                "-".into()
                            } else {
                                assigned
                            },
                        ]
                    })
                    .collect();
                table(
                    &["MEMBER-ID", "CLIENT-ID", "HOST", "EPOCH", "ASSIGNMENT"],
                    &rows,
                );
            }
            println!();
            let rows: Vec<Vec<String>> = d
                .offsets
                .iter()
                .map(|o| {
                    vec![
                        o.topic.clone(),
                        o.partition.to_string(),
                        opt(o.committed_offset),
                        if o.log_end_offset < 0 {
                            "-".into()
                        } else {
                            o.log_end_offset.to_string()
                        },
                        opt(o.lag),
                        opt(o.member_id.clone()),
                    ]
                })
                .collect();
            table(
                &[
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "MEMBER-ID",
                ],
                &rows,
            );
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to_earliest,
            to_latest,
            to_timestamp,
            to_offset,
            execute,
        } => {
            let to = match (to_earliest, to_latest, to_timestamp, to_offset) {
                (true, _, _, _) => ResetTo::Earliest,
                (_, true, _, _) => ResetTo::Latest,
                (_, _, Some(ms), _) => ResetTo::Timestamp(ms),
                (_, _, _, Some(n)) => ResetTo::Offset(n),
                _ => unreachable!("clap requires one target"),
            };
            let only = (!partition.is_empty()).then_some(partition.as_slice());
            let plan = client
                .reset_offsets(&group, &topic, only, to, execute)
                .await?;
            if as_json {
                return json(&plan);
            }
            let rows: Vec<Vec<String>> = plan
                .partitions
                .iter()
                .map(|e| {
                    vec![
                        e.topic.clone(),
                        e.partition.to_string(),
                        opt(e.current_offset),
                        e.new_offset.to_string(),
                    ]
                })
                .collect();
            table(
                &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
                &rows,
            );
            if execute {
                println!("\nCommitted the new offsets of group {group}.");
            } else {
                println!("\nDry run: nothing changed. Add --execute to commit these offsets.");
            }
        }
        GroupCommand::Delete { group } => {
            client.delete_group(&group).await?;
            if as_json {
                return json(&Deleted {
                    group: &group,
                    deleted: true,
                });
            }
            println!("Deleted group {group}");
        }
    }
    Ok(())
}
