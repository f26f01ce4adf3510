//! The broker's state: its identity, its topics and their partitions.
//!
//! The topic catalog (names, ids, partition counts, config overrides) is one JSON file,
//! `<data-dir>/topics.json`, rewritten atomically (temp file, fsync, rename, fsync dir) on
//! every change. Partition data lives in `<data-dir>/<topic>-<partition>/` (weir-storage).
//! A clean shutdown writes `<data-dir>/.clean-shutdown`; its absence at start makes every
//! partition run crash recovery.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weir_storage::Log;

use crate::config::{validate_topic_name, BrokerConfig, ConfigError, TopicSettings};
use crate::error_codes as ec;
use crate::group::GroupCoordinator;
use crate::partition::{rebuild_producer_state, Partition};
use crate::producer_ids::ProducerIdManager;
use crate::txn::TxnCoordinator;

const CATALOG_FILE: &str = "topics.json";
const BROKER_FILE: &str = "broker.json";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const FORMAT_VERSION: u32 = 1;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub overrides: BTreeMap<String, String>,
    pub settings: TopicSettings,
    pub partitions: Vec<Arc<Partition>>,
}

#[derive(Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    topics: Vec<CatalogTopic>,
}

#[derive(Serialize, Deserialize)]
struct CatalogTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct BrokerFile {
    version: u32,
    cluster_id: String,
}

/// A topic-level failure with its Kafka error code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    pub code: i16,
    pub message: String,
}

impl TopicError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

impl Topic {
    /// Coordinator state topics: written by the broker only, never by clients.
    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }
}

/// The config overrides of an internal topic: compacted (only the latest record of each
/// group, offset and transactional id matters), with 100 MiB segments as in Kafka.
pub fn internal_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("segment.bytes".to_string(), "104857600".to_string()),
        ("cleanup.policy".to_string(), "compact".to_string()),
    ])
}

pub fn is_internal_topic(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC || name == crate::txn::TXN_TOPIC
}

impl From<ConfigError> for TopicError {
    fn from(e: ConfigError) -> Self {
        TopicError::new(ec::INVALID_CONFIG, e.0)
    }
}

pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<TxnCoordinator>,
    pub producer_ids: ProducerIdManager,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes catalog changes (create, delete, add partitions) and their file writes.
    catalog_lock: tokio::sync::Mutex<()>,
}

impl Broker {
    /// Open the data directory: read the catalog, open (and if needed recover) every
    /// partition, then remove the clean-shutdown marker so a crash from now on is detected.
    pub async fn open(config: BrokerConfig) -> anyhow_like::Result<Arc<Broker>> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, "create data dir", e))?;
        // The data directory's own entry must survive a power loss too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_dir(parent)?;
        }
        let cluster_id = load_or_create_cluster_id(&dir)?;
        let catalog = read_catalog(&dir)?;
        // A directory with no topics has nothing to recover, marker or not.
        let clean = dir.join(CLEAN_SHUTDOWN_FILE).exists() || catalog.topics.is_empty();
        if !clean {
            tracing::warn!(data_dir = %dir.display(), "no clean-shutdown marker: recovering every partition");
        }
        let mut topics = BTreeMap::new();
        let mut migrated = false;
        for mut t in catalog.topics {
            // Internal topics made before they were compacted: compacted from now on, and
            // never subject to time or size retention.
            if is_internal_topic(&t.name)
                && t.configs.get("cleanup.policy").map(String::as_str) != Some("compact")
            {
                t.configs
                    .insert("cleanup.policy".to_string(), "compact".to_string());
                migrated = true;
            }
            let settings = TopicSettings::resolve(&config.topic_defaults, &t.configs)
                .map_err(|e| format!("topic {}: stored config invalid: {e}", t.name))?;
            let mut partitions = Vec::new();
            for index in 0..t.partitions {
                partitions.push(open_partition(&config, &t.name, index, &settings, clean).await?);
            }
            topics.insert(
                t.name.clone(),
                Arc::new(Topic {
                    name: t.name,
                    id: t.id,
                    overrides: t.configs,
                    settings,
                    partitions,
                }),
            );
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|e| io_err(&marker, "remove", e))?;
            fsync_dir(&dir)?;
        }
        tracing::info!(topics = topics.len(), clean, "data directory open");
        let groups = Arc::new(GroupCoordinator::new(
            config.group.clone(),
            config.offsets.clone(),
        ));
        let producer_ids = ProducerIdManager::open(&dir)?;
        let txns = Arc::new(TxnCoordinator::new(config.txn.clone()));
        let broker = Arc::new(Broker {
            config,
            cluster_id,
            groups,
            txns,
            producer_ids,
            topics: RwLock::new(topics),
            catalog_lock: tokio::sync::Mutex::new(()),
        });
        if migrated {
            broker.write_catalog()?;
        }
        broker.groups.load(&broker)?;
        broker.txns.load(&broker)?;
        GroupCoordinator::spawn_timer(&broker);
        TxnCoordinator::spawn_timer(&broker);
        crate::log_manager::spawn(&broker);
        Ok(broker)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap()
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().unwrap().values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.topic(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i).cloned())
    }

    /// Check a CreateTopics request for one topic; returns the effective settings.
    pub fn validate_new_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(i32, TopicSettings), TopicError> {
        validate_topic_name(name).map_err(|m| TopicError::new(ec::INVALID_TOPIC_EXCEPTION, m))?;
        if self.topic(name).is_some() {
            return Err(TopicError::new(
                ec::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        let partitions = match num_partitions {
            -1 => self.config.num_partitions,
            n if n >= 1 => n,
            n => {
                return Err(TopicError::new(
                    ec::INVALID_PARTITIONS,
                    format!("number of partitions must be at least 1, not {n}"),
                ))
            }
        };
        if partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(TopicError::new(
                ec::INVALID_PARTITIONS,
                format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
            ));
        }
        if replication_factor != -1 && replication_factor != 1 {
            return Err(TopicError::new(
                ec::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {replication_factor} is larger than the 1 available broker"
                ),
            ));
        }
        let settings = TopicSettings::resolve(&self.config.topic_defaults, overrides)?;
        Ok((partitions, settings))
    }

    /// Create a topic (already validated or not: this validates again under the lock).
    pub async fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.catalog_lock.lock().await;
        let (partitions, settings) =
            self.validate_new_topic(name, num_partitions, replication_factor, &overrides)?;
        let mut opened = Vec::new();
        for index in 0..partitions {
            match open_partition(&self.config, name, index, &settings, true).await {
                Ok(p) => opened.push(p),
                Err(e) => {
                    for p in opened {
                        let _ = p.delete();
                    }
                    return Err(TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()));
                }
            }
        }
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            overrides,
            settings,
            partitions: opened,
        });
        self.topics
            .write()
            .unwrap()
            .insert(name.to_string(), topic.clone());
        if let Err(e) = self.write_catalog() {
            self.topics.write().unwrap().remove(name);
            for p in &topic.partitions {
                let _ = p.delete();
            }
            return Err(TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()));
        }
        tracing::info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// Create a coordinator's internal topic (or return it if it appeared meanwhile).
    pub async fn create_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        match self.create_topic(name, partitions, 1, overrides).await {
            Ok(t) => Ok(t),
            Err(e) if e.code == ec::TOPIC_ALREADY_EXISTS => self.topic(name).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// The partition of internal topic `name` that owns `key` (a group or transactional id:
    /// `abs(java_hash(key)) % partitions`, as Kafka places them), creating the topic with
    /// `partitions` partitions the first time it is needed.
    pub async fn internal_partition(
        &self,
        name: &str,
        partitions: i32,
        key: &str,
    ) -> Result<Arc<Partition>, i16> {
        let topic = match self.topic(name) {
            Some(t) => t,
            None => self
                .create_internal_topic(name, partitions, internal_topic_configs())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e.message, "creating {name}");
                    ec::COORDINATOR_NOT_AVAILABLE
                })?,
        };
        let index = crate::group::offsets_partition_for(key, topic.partitions.len() as i32);
        Ok(topic.partitions[index as usize].clone())
    }

    /// Delete a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        refuse_internal(name)?;
        let _guard = self.catalog_lock.lock().await;
        let Some(topic) = self.topics.write().unwrap().remove(name) else {
            return Err(TopicError::new(
                ec::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        // The catalog goes first: if we crash midway, leftover directories are orphans that
        // the next start ignores, never a topic whose data is half gone.
        self.write_catalog()
            .map_err(|e| TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        for p in &topic.partitions {
            if let Err(e) = p.delete() {
                tracing::error!(partition = %p.name(), error = %e, "could not remove partition data");
            }
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Grow a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        refuse_internal(name)?;
        let _guard = self.catalog_lock.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::new(
                ec::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::new(
                ec::INVALID_PARTITIONS,
                format!(
                    "topic '{name}' has {current} partitions; the new count {count} must be larger"
                ),
            ));
        }
        if count > MAX_PARTITIONS_PER_TOPIC {
            return Err(TopicError::new(
                ec::INVALID_PARTITIONS,
                format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        for index in current..count {
            let p = open_partition(&self.config, name, index, &topic.settings, true)
                .await
                .map_err(|e| TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
            partitions.push(p);
        }
        let grown = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            settings: topic.settings.clone(),
            partitions,
        });
        self.topics.write().unwrap().insert(name.to_string(), grown);
        self.write_catalog()
            .map_err(|e| TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        tracing::info!(topic = name, from = current, to = count, "partitions added");
        Ok(())
    }

    /// Replace a topic's config overrides (AlterConfigs, IncrementalAlterConfigs): validated,
    /// written to the catalog, and applied to every partition at once (segment sizes and
    /// ages, retention, cleanup policy, flush policy...), without a restart.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.catalog_lock.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::new(
                ec::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        let settings = TopicSettings::resolve(&self.config.topic_defaults, &overrides)?;
        if topic.is_internal() && !settings.cleanup_compact {
            return Err(TopicError::new(
                ec::INVALID_CONFIG,
                format!("{name} is internal and must stay compacted"),
            ));
        }
        if validate_only || overrides == topic.overrides {
            return Ok(());
        }
        let changed = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides: overrides.clone(),
            settings: settings.clone(),
            partitions: topic.partitions.clone(),
        });
        self.topics
            .write()
            .unwrap()
            .insert(name.to_string(), changed);
        if let Err(e) = self.write_catalog() {
            // Back to what the catalog on disk says.
            self.topics.write().unwrap().insert(name.to_string(), topic);
            return Err(TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()));
        }
        for p in &topic.partitions {
            p.apply_settings(settings.clone());
        }
        tracing::info!(topic = name, configs = ?overrides, "topic config changed");
        Ok(())
    }

    fn write_catalog(&self) -> anyhow_like::Result<()> {
        let file = CatalogFile {
            version: FORMAT_VERSION,
            topics: self
                .topics
                .read()
                .unwrap()
                .values()
                .map(|t| CatalogTopic {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions.len() as i32,
                    configs: t.overrides.clone(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        write_atomically(&self.config.data_dir, CATALOG_FILE, &json)
    }

    /// Clean shutdown: close every partition (fsync, checkpoints), then write the marker.
    pub fn shutdown(&self) -> anyhow_like::Result<()> {
        let mut failed = false;
        for topic in self.topics() {
            for p in &topic.partitions {
                if let Err(e) = p.close() {
                    failed = true;
                    tracing::error!(partition = %p.name(), error = %e, "close failed");
                }
            }
        }
        if failed {
            return Err(
                "some partitions did not close cleanly; no clean-shutdown marker written".into(),
            );
        }
        write_atomically(&self.config.data_dir, CLEAN_SHUTDOWN_FILE, b"1\n")?;
        let (appends, fsyncs, fsync_nanos) = crate::partition::counters::snapshot();
        tracing::info!(
            appends,
            fsyncs,
            fsync_avg_us = fsync_nanos / fsyncs.max(1) / 1000,
            "storage totals since start"
        );
        tracing::info!("clean shutdown complete");
        Ok(())
    }
}

/// Internal topics keep the shape their coordinator gave them (a group's partition is a
/// hash of its id modulo the partition count).
fn refuse_internal(name: &str) -> Result<(), TopicError> {
    if is_internal_topic(name) {
        Err(TopicError::new(
            ec::INVALID_TOPIC_EXCEPTION,
            format!("{name} is an internal topic"),
        ))
    } else {
        Ok(())
    }
}

/// A generous bound so a CreateTopics cannot ask for millions of directories.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

async fn open_partition(
    config: &BrokerConfig,
    topic: &str,
    index: i32,
    settings: &TopicSettings,
    clean: bool,
) -> anyhow_like::Result<Arc<Partition>> {
    let dir = config.data_dir.join(format!("{topic}-{index}"));
    let log_config = settings.log_config();
    let name = format!("{topic}-{index}");
    let expiration_ms = config.producer_id_expiration_ms;
    let open_dir = dir.clone();
    let (log, (producers, txn_index)) =
        tokio::task::spawn_blocking(move || -> anyhow_like::Result<_> {
            let dir = open_dir;
            let (mut log, report) = Log::open(&dir, log_config, clean)
                .map_err(|e| format!("open {}: {e}", dir.display()))?;
            if report.bytes_truncated > 0 {
                tracing::warn!(
                    partition = %name,
                    bytes_truncated = report.bytes_truncated,
                    reason = report.truncation_reason.as_deref().unwrap_or(""),
                    "recovery truncated the log"
                );
            }
            // What survived recovery becomes durable before anyone can read it.
            log.flush()
                .map_err(|e| format!("flush {}: {e}", dir.display()))?;
            let producers =
                rebuild_producer_state(&dir, &log, crate::clock::now_ms(), expiration_ms)
                    .map_err(|e| format!("producer state of {}: {e}", dir.display()))?;
            Ok((log, producers))
        })
        .await
        .map_err(|e| e.to_string())??;
    Ok(Partition::start(
        topic,
        index,
        dir,
        log,
        producers,
        txn_index,
        expiration_ms,
        settings.clone(),
    ))
}

fn read_catalog(dir: &Path) -> anyhow_like::Result<CatalogFile> {
    let path = dir.join(CATALOG_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let file: CatalogFile =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            if file.version != FORMAT_VERSION {
                return Err(format!(
                    "{}: format version {} is not supported",
                    path.display(),
                    file.version
                )
                .into());
            }
            Ok(file)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CatalogFile {
            version: FORMAT_VERSION,
            topics: Vec::new(),
        }),
        Err(e) => Err(io_err(&path, "read", e)),
    }
}

fn load_or_create_cluster_id(dir: &Path) -> anyhow_like::Result<String> {
    let path = dir.join(BROKER_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let f: BrokerFile =
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(f.cluster_id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = BrokerFile {
                version: FORMAT_VERSION,
                cluster_id: Uuid::new_v4().simple().to_string(),
            };
            let json = serde_json::to_vec_pretty(&f).map_err(|e| e.to_string())?;
            write_atomically(dir, BROKER_FILE, &json)?;
            Ok(f.cluster_id)
        }
        Err(e) => Err(io_err(&path, "read", e)),
    }
}

/// Write `name` in `dir` so that a crash leaves either the old or the new content.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow_like::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, "create", e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, "write", e))?;
    f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, "rename", e))?;
    fsync_dir(dir)
}

fn fsync_dir(dir: &Path) -> anyhow_like::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "fsync dir", e))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> anyhow_like::Error {
    format!("{what} {}: {e}", PathBuf::from(path).display()).into()
}

/// Startup and catalog errors are reported to the operator as text; a small alias keeps
/// `anyhow` out of this library crate.
pub mod anyhow_like {
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
    pub type Result<T> = std::result::Result<T, Error>;
}
