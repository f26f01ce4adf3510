//! Admin operations over plain Kafka APIs, each returning plain data (serde-serializable
//! so the CLI's `--json` output is these structs, with stable field names).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::{Message, StrBytes};
use serde::Serialize;

use crate::client::Client;
use crate::error::{check, only, Error, Result};

/// ListOffsets timestamp asking for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp asking for the log end offset (the last stable offset under
/// read_committed).
pub const LATEST_TIMESTAMP: i64 = -1;

const TOPIC_RESOURCE: i8 = 2;

/// One broker as the cluster advertises it.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerInfo {
    /// The broker's `node.id`.
    pub node_id: i32,
    /// Advertised host clients connect to.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

/// What `weir cluster info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfo {
    /// None if the broker sent a null cluster id (old Metadata versions).
    pub cluster_id: Option<String>,
    /// Node id of the active controller, -1 if none is known.
    pub controller_id: i32,
    /// Every broker of the cluster.
    pub brokers: Vec<BrokerInfo>,
    /// Topics other than the internal ones (`__consumer_offsets`, ...).
    pub topic_count: usize,
    /// Internal topics (`__consumer_offsets`, `__transaction_state`).
    pub internal_topic_count: usize,
    /// Which API answered the cluster id and brokers: DescribeCluster, else Metadata.
    pub source: &'static str,
}

/// A partition as Metadata describes it.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    /// Partition index within the topic.
    pub partition: i32,
    /// Node id of its leader, -1 while it has none.
    pub leader: i32,
    /// The leader's epoch, -1 if the broker did not say (old Metadata versions).
    pub leader_epoch: i32,
    /// Node ids holding a replica.
    pub replicas: Vec<i32>,
    /// Replicas in sync with the leader.
    pub isr: Vec<i32>,
    /// The partition's Metadata error, if any (e.g. LEADER_NOT_AVAILABLE).
    pub error: Option<String>,
}

/// A topic as Metadata describes it: what producing and fetching need.
#[derive(Debug, Clone, Serialize)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// Its UUID (KIP-516), all zeros from brokers that do not have one.
    pub topic_id: String,
    /// An internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Every partition, by index.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Each partition's leader (-1 while it has none): where produce and fetch go.
    pub fn leaders(&self) -> std::collections::BTreeMap<i32, i32> {
        self.partitions
            .iter()
            .map(|p| (p.partition, p.leader))
            .collect()
    }
}

/// One line of `weir topic list`.
#[derive(Debug, Clone, Serialize)]
pub struct TopicSummary {
    /// The topic's name.
    pub name: String,
    /// Its UUID (KIP-516).
    pub topic_id: String,
    /// An internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// How many partitions it has.
    pub partition_count: usize,
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    /// Kafka's config name (`retention.ms`).
    pub name: String,
    /// None for a sensitive config or one with no value.
    pub value: Option<String>,
    /// Kafka's ConfigSource name: DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG, ...
    pub source: String,
    /// Cannot be changed with IncrementalAlterConfigs.
    pub read_only: bool,
    /// A secret: the broker withholds its value.
    pub sensitive: bool,
}

/// A partition with its offset range, for `weir topic describe`.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionOffsets {
    /// Partition index within the topic.
    pub partition: i32,
    /// Node id of its leader, -1 while it has none.
    pub leader: i32,
    /// First offset still readable (after retention and DeleteRecords).
    pub log_start_offset: i64,
    /// ListOffsets latest, the high watermark: on one node, the offset the next record gets.
    pub log_end_offset: i64,
    /// Node ids holding a replica.
    pub replicas: Vec<i32>,
    /// Replicas in sync with the leader.
    pub isr: Vec<i32>,
}

/// What `weir topic describe` shows: partitions with offsets, and every config.
#[derive(Debug, Clone, Serialize)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// Its UUID (KIP-516).
    pub topic_id: String,
    /// An internal topic (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Every partition, by index.
    pub partitions: Vec<PartitionOffsets>,
    /// Every config of the topic, defaults included.
    pub configs: Vec<ConfigEntry>,
}

/// What CreateTopics made, as Metadata sees it right after (the request's answer if that
/// Metadata failed).
#[derive(Debug, Clone, Serialize)]
pub struct CreatedTopic {
    /// The topic's name.
    pub name: String,
    /// Its UUID (KIP-516).
    pub topic_id: String,
    /// Partitions created.
    pub partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i16,
}

/// Kafka's name of a DescribeConfigs `config_source` code (ConfigSource in the Java
/// client), as operators know it.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// `k=v` into (k, v); the key must be non-empty.
pub fn parse_key_value(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Invalid(format!("{s:?} is not KEY=VALUE"))),
    }
}

impl Client {
    /// Cluster id, controller and brokers: DescribeCluster where the broker has it, else
    /// Metadata.
    pub async fn cluster_info(&mut self) -> Result<ClusterInfo> {
        let meta = self.metadata(None, false).await?;
        let topic_count = meta.topics.iter().filter(|t| !t.is_internal).count();
        let internal_topic_count = meta.topics.len() - topic_count;
        let conn = self.any().await?;
        if conn.supports(ApiKey::DescribeCluster, DescribeClusterRequest::VERSIONS) {
            let resp = conn.call(&DescribeClusterRequest::default()).await?;
            check(
                resp.error_code,
                || "DescribeCluster".into(),
                opt_str(&resp.error_message),
            )?;
            return Ok(ClusterInfo {
                cluster_id: Some(resp.cluster_id.to_string()),
                controller_id: resp.controller_id.0,
                brokers: resp
                    .brokers
                    .iter()
                    .map(|b| BrokerInfo {
                        node_id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: opt_str(&b.rack),
                    })
                    .collect(),
                topic_count,
                internal_topic_count,
                source: "DescribeCluster",
            });
        }
        Ok(ClusterInfo {
            cluster_id: opt_str(&meta.cluster_id),
            controller_id: meta.controller_id.0,
            brokers: meta
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: opt_str(&b.rack),
                })
                .collect(),
            topic_count,
            internal_topic_count,
            source: "Metadata",
        })
    }

    /// Every topic the cluster reports without an error, sorted by name.
    pub async fn list_topics(&mut self) -> Result<Vec<TopicSummary>> {
        let meta = self.metadata(None, false).await?;
        let mut out: Vec<TopicSummary> = meta
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| TopicSummary {
                name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                topic_id: t.topic_id.to_string(),
                internal: t.is_internal,
                partition_count: t.partitions.len(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Metadata of one existing topic (never auto-creates it).
    pub async fn topic_info(&mut self, topic: &str) -> Result<TopicInfo> {
        self.topic_info_allowing(topic, false).await
    }

    /// Metadata of one topic, asking the broker to create it if it does not exist (the
    /// broker does only when `auto.create.topics.enable` is on; otherwise this fails with
    /// UNKNOWN_TOPIC_OR_PARTITION as [`Client::topic_info`] does). A broker that answers
    /// LEADER_NOT_AVAILABLE while the new topic's partitions come up is asked again.
    pub async fn topic_info_auto_create(&mut self, topic: &str) -> Result<TopicInfo> {
        let mut attempt = 0;
        loop {
            match self.topic_info_allowing(topic, true).await {
                Err(Error::Kafka { code: 5, .. }) if attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn topic_info_allowing(&mut self, topic: &str, auto_create: bool) -> Result<TopicInfo> {
        let meta = self
            .metadata(Some(&[topic.to_string()]), auto_create)
            .await?;
        let t = meta
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
            .ok_or_else(|| Error::kafka(format!("topic {topic:?}"), 3, None))?;
        check(t.error_code, || format!("topic {topic:?}"), None)?;
        let mut partitions: Vec<PartitionInfo> = t
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                error: (p.error_code != 0).then(|| crate::error::error_name(p.error_code)),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(TopicInfo {
            name: topic.to_string(),
            topic_id: t.topic_id.to_string(),
            internal: t.is_internal,
            partitions,
        })
    }

    /// CreateTopics for one topic with these topic configs; a Kafka error (such as
    /// TOPIC_ALREADY_EXISTS) is returned as such.
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<CreatedTopic> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000);
        // CreateTopics must reach the controller; on one node (and in KRaft Kafka, which
        // forwards) any broker will do.
        let resp = self.call_any(&req).await?;
        let r = only(&resp.topics, "CreateTopics")?;
        check(
            r.error_code,
            || format!("creating topic {name:?}"),
            opt_str(&r.error_message),
        )?;
        let info = self.topic_info(name).await.ok();
        Ok(CreatedTopic {
            name: name.to_string(),
            topic_id: info
                .as_ref()
                .map(|i| i.topic_id.clone())
                .unwrap_or_else(|| r.topic_id.to_string()),
            partitions: info
                .as_ref()
                .map(|i| i.partitions.len() as i32)
                .unwrap_or(r.num_partitions),
            replication_factor: info
                .as_ref()
                .and_then(|i| i.partitions.first())
                .map(|p| p.replicas.len() as i16)
                .unwrap_or(r.replication_factor),
        })
    }

    /// DeleteTopics for one topic (by name in any DeleteTopics version).
    pub async fn delete_topic(&mut self, name: &str) -> Result<()> {
        let conn = self.any().await?;
        let version = conn.version_of::<DeleteTopicsRequest>()?;
        let req = if version >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(name)))
            ])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic_name(name)])
        }
        .with_timeout_ms(30_000);
        let resp = conn.call(&req).await?;
        let r = only(&resp.responses, "DeleteTopics")?;
        check(
            r.error_code,
            || format!("deleting topic {name:?}"),
            opt_str(&r.error_message),
        )
    }

    /// Every config of a topic (DescribeConfigs with no key filter).
    pub async fn topic_configs(&mut self, name: &str) -> Result<Vec<ConfigEntry>> {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let resp = self.call_any(&req).await?;
        let r = only(&resp.results, "DescribeConfigs")?;
        check(
            r.error_code,
            || format!("describing the configs of topic {name:?}"),
            opt_str(&r.error_message),
        )?;
        let mut out: Vec<ConfigEntry> = r
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: if c.is_sensitive {
                    None
                } else {
                    opt_str(&c.value)
                },
                source: config_source_name(c.config_source).to_string(),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// IncrementalAlterConfigs: SET each of `set`, DELETE (back to the default) each of `delete`.
    pub async fn alter_topic_config(
        &mut self,
        name: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<()> {
        let mut configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        configs.extend(delete.iter().map(|k| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(1)
                .with_value(None)
        }));
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(configs),
        ]);
        let resp = self.call_any(&req).await?;
        let r = only(&resp.responses, "IncrementalAlterConfigs")?;
        check(
            r.error_code,
            || format!("altering the configs of topic {name:?}"),
            opt_str(&r.error_message),
        )
    }

    /// ListOffsets for each of `partitions` of `topic` at `timestamp` (EARLIEST_TIMESTAMP,
    /// LATEST_TIMESTAMP or ms since the epoch), asked of each partition's leader. The
    /// answer maps partition -> (offset, timestamp); offset -1 means no record at or after
    /// the timestamp.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
        read_committed: bool,
    ) -> Result<BTreeMap<i32, (i64, i64)>> {
        let info = self.topic_info(topic).await?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            let pi = info
                .partitions
                .iter()
                .find(|x| x.partition == p)
                .ok_or_else(|| Error::kafka(format!("topic {topic:?} partition {p}"), 3, None))?;
            by_leader.entry(pi.leader).or_default().push(p);
        }
        let mut out = BTreeMap::new();
        for (leader, parts) in by_leader {
            if leader < 0 {
                return Err(Error::kafka(
                    format!("topic {topic:?} partitions {parts:?}"),
                    5,
                    None,
                ));
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(read_committed))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let resp = self.call_node(leader, &req).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    check(
                        p.error_code,
                        || format!("ListOffsets of {topic}-{}", p.partition_index),
                        None,
                    )?;
                    out.insert(p.partition_index, (p.offset, p.timestamp));
                }
            }
        }
        for p in partitions {
            if !out.contains_key(p) {
                return Err(Error::Invalid(format!(
                    "ListOffsets did not answer {topic}-{p}"
                )));
            }
        }
        Ok(out)
    }

    /// Metadata, both ends of every partition (two ListOffsets) and the configs of a topic.
    pub async fn describe_topic(&mut self, name: &str) -> Result<TopicDescription> {
        let info = self.topic_info(name).await?;
        let parts: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        let starts = self
            .list_offsets(name, &parts, EARLIEST_TIMESTAMP, false)
            .await?;
        let ends = self
            .list_offsets(name, &parts, LATEST_TIMESTAMP, false)
            .await?;
        let configs = self.topic_configs(name).await?;
        Ok(TopicDescription {
            name: info.name,
            topic_id: info.topic_id,
            internal: info.internal,
            partitions: info
                .partitions
                .iter()
                .map(|p| PartitionOffsets {
                    partition: p.partition,
                    leader: p.leader,
                    log_start_offset: starts[&p.partition].0,
                    log_end_offset: ends[&p.partition].0,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                })
                .collect(),
            configs,
        })
    }

    /// Partitions of `topic`, all or the chosen ones (each checked to exist).
    pub async fn partitions_of(&mut self, topic: &str, only: Option<&[i32]>) -> Result<Vec<i32>> {
        let info = self.topic_info(topic).await?;
        let all: BTreeSet<i32> = info.partitions.iter().map(|p| p.partition).collect();
        match only {
            None => Ok(all.into_iter().collect()),
            Some(chosen) => {
                for p in chosen {
                    if !all.contains(p) {
                        return Err(Error::Invalid(format!(
                            "topic {topic:?} has no partition {p} (it has {})",
                            all.len()
                        )));
                    }
                }
                Ok(chosen.to_vec())
            }
        }
    }
}
