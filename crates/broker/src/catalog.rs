//! The topic catalog: which topics exist, their ids, partition counts and config overrides,
//! and the open partitions of each.
//!
//! The catalog is one JSON file, `<data-dir>/topics.json`, replaced atomically through the
//! storage [`Fs`] (temp file, fsync, rename, fsync dir) on every change. Partition data
//! lives in `<data-dir>/<topic>-<partition>/` (weir-storage). Ordering makes a crash at any
//! file operation safe: a new topic's partition directories are made durable before the
//! catalog names it, and a deleted topic leaves the catalog before its directories go, so
//! the catalog never names a topic whose data is missing; directories the catalog does not
//! name are orphans that no one reads.
//!
//! The catalog knows nothing of coordinators: they reach their internal topics through
//! [`crate::internal_topic::InternalTopic`], which holds the catalog.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weir_storage::{read_optional, write_atomic, Fs, Log};

use crate::clock::Clock;
use crate::config::{validate_topic_name, ConfigError, TopicDefaults, TopicSettings};
use crate::error::MetadataError;
use crate::error_codes as ec;
use crate::partition::{rebuild_producer_state, Partition, PartitionDeps};

/// The group coordinator's internal topic: groups and their committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's internal topic: transactional ids and their state.
pub const TXN_TOPIC: &str = "__transaction_state";

const CATALOG_FILE: &str = "topics.json";
const FORMAT_VERSION: u32 = 1;
/// The catalog of even 10k topics is a few MiB; anything far larger is not ours.
const CATALOG_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A generous bound so a CreateTopics cannot ask for millions of directories.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// How many partitions are opened or closed at once (startup, CreateTopics,
/// CreatePartitions, shutdown).
const PARTITION_IO_PARALLELISM: usize = 16;

/// One topic and its open partitions. Replaced whole (never mutated) when it changes.
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// Its stable id (Metadata v10+, Fetch v13+ name topics by id).
    pub id: Uuid,
    /// The settings given for this topic (its overrides of the broker defaults).
    pub overrides: BTreeMap<String, String>,
    /// The effective settings: overrides over broker defaults.
    pub settings: TopicSettings,
    /// Partition `i` at index `i`.
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// Coordinator state topics: written by the broker only, never by clients.
    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }
}

/// Whether `name` is one of the coordinators' internal topics.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TXN_TOPIC
}

/// The config overrides of an internal topic: compacted (only the latest record of each
/// group, offset and transactional id matters), with 100 MiB segments as in Kafka.
pub fn internal_topic_configs() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("segment.bytes".to_string(), "104857600".to_string()),
        ("cleanup.policy".to_string(), "compact".to_string()),
    ])
}

/// A topic-level failure with its Kafka error code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TopicError {
    /// The Kafka error code the client gets.
    pub code: i16,
    /// What went wrong, for the response's error message.
    pub message: String,
}

impl TopicError {
    /// A failure with this code and message.
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }

    fn unknown(name: &str) -> Self {
        TopicError::new(
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        )
    }

    fn storage(e: impl std::fmt::Display) -> Self {
        TopicError::new(ec::KAFKA_STORAGE_ERROR, e.to_string())
    }
}

impl From<ConfigError> for TopicError {
    fn from(e: ConfigError) -> Self {
        TopicError::new(ec::INVALID_CONFIG, e.0)
    }
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

/// What the catalog needs of the broker's settings.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// `log.dirs`: where the catalog and the partition directories live.
    pub data_dir: PathBuf,
    /// Broker defaults of the topic settings.
    pub topic_defaults: TopicDefaults,
    /// `num.partitions`: the count CreateTopics with -1 gets.
    pub num_partitions: i32,
    /// `producer.id.expiration.ms`, handed to every partition's producer state.
    pub producer_id_expiration_ms: i64,
}

/// The topics by name, and by id for the requests that name topics by id (Produce 13,
/// Fetch 13+, Metadata, DeleteTopics, consumer groups): a lookup, not a scan of every topic.
#[derive(Default)]
struct TopicMap {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: std::collections::HashMap<Uuid, Arc<Topic>>,
}

impl TopicMap {
    fn insert(&mut self, name: String, topic: Arc<Topic>) -> Option<Arc<Topic>> {
        let old = self.by_name.insert(name, Arc::clone(&topic));
        if let Some(old) = &old {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(topic.id, topic);
        old
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Topic>> {
        let old = self.by_name.remove(name)?;
        self.by_id.remove(&old.id);
        Some(old)
    }

    fn get(&self, name: &str) -> Option<&Arc<Topic>> {
        self.by_name.get(name)
    }

    fn values(&self) -> impl Iterator<Item = &Arc<Topic>> {
        self.by_name.values()
    }

    fn len(&self) -> usize {
        self.by_name.len()
    }
}

/// The topics of this broker and their partitions.
pub struct Catalog {
    config: CatalogConfig,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
    topics: RwLock<TopicMap>,
    /// Serializes catalog changes (create, delete, add partitions, alter) and their file
    /// writes; held across partition opens, hence an async mutex.
    change_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("data_dir", &self.config.data_dir)
            .field("topics", &self.read_topics().len())
            .finish()
    }
}

impl Catalog {
    /// Read the catalog in `config.data_dir` and open (recovering, unless `clean`) every
    /// partition it names. Internal topics made before they were compacted become compacted.
    ///
    /// `clean_shutdown` says the broker's clean-shutdown marker was there; without it, and
    /// with any topic in the catalog, every partition runs crash recovery.
    pub async fn open(
        config: CatalogConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
        clean_shutdown: bool,
    ) -> Result<Catalog, MetadataError> {
        let file = read_catalog(&*fs, &config.data_dir)?;
        // A directory with no topics has nothing to recover, marker or not.
        let clean = clean_shutdown || file.topics.is_empty();
        if !clean {
            tracing::warn!(data_dir = %config.data_dir.display(), "no clean-shutdown marker: recovering every partition");
        }
        let catalog = Catalog {
            config,
            fs,
            clock,
            topics: RwLock::new(TopicMap::default()),
            change_lock: tokio::sync::Mutex::new(()),
        };
        let mut migrated = false;
        for mut t in file.topics {
            // Internal topics made before they were compacted: compacted from now on, and
            // never subject to time or size retention.
            if is_internal_topic(&t.name)
                && t.configs.get("cleanup.policy").map(String::as_str) != Some("compact")
            {
                t.configs
                    .insert("cleanup.policy".to_string(), "compact".to_string());
                migrated = true;
            }
            let settings = TopicSettings::resolve(&catalog.config.topic_defaults, &t.configs)
                .map_err(|e| MetadataError::Corrupt {
                    path: catalog.config.data_dir.join(CATALOG_FILE),
                    reason: format!("topic {}: stored config invalid: {e}", t.name),
                })?;
            let partitions = catalog
                .open_partitions(&t.name, 0..t.partitions, &settings, clean)
                .await
                .map_err(|(e, opened)| {
                    // Startup fails; what did open is closed, never removed.
                    for p in opened {
                        let _ = p.close();
                    }
                    e
                })?;
            catalog.write_topics().insert(
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
        if migrated {
            catalog.write_catalog()?;
        }
        tracing::info!(
            topics = catalog.read_topics().len(),
            clean,
            "data directory open"
        );
        Ok(catalog)
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, TopicMap> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, TopicMap> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    /// The topic whose id is `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().by_id.get(&id).cloned()
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().values().cloned().collect()
    }

    /// Partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.topic(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i).cloned())
    }

    /// Every partition of every topic.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.read_topics()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Check a CreateTopics request for one topic; returns the partition count and the
    /// effective settings. Replication factors other than 1 are refused: one broker.
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
        check_partition_limit(partitions)?;
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
        let _guard = self.change_lock.lock().await;
        let (partitions, settings) =
            self.validate_new_topic(name, num_partitions, replication_factor, &overrides)?;
        let opened = self
            .open_partitions(name, 0..partitions, &settings, true)
            .await
            .map_err(undo_new_partitions)?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            overrides,
            settings,
            partitions: opened,
        });
        self.write_topics().insert(name.to_string(), topic.clone());
        if let Err(e) = self.write_catalog() {
            self.write_topics().remove(name);
            delete_all(&topic.partitions);
            return Err(TopicError::storage(e));
        }
        tracing::info!(topic = name, partitions, "topic created");
        Ok(topic)
    }

    /// The internal topic `name`, created with `partitions` partitions the first time it is
    /// needed (or returned if it appeared meanwhile).
    pub async fn internal_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        match self
            .create_topic(name, partitions, 1, internal_topic_configs())
            .await
        {
            Ok(t) => Ok(t),
            Err(e) if e.code == ec::TOPIC_ALREADY_EXISTS => self.topic(name).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Delete a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        refuse_internal(name)?;
        let _guard = self.change_lock.lock().await;
        let Some(topic) = self.write_topics().remove(name) else {
            return Err(TopicError::unknown(name));
        };
        // The catalog goes first: if we crash midway, leftover directories are orphans that
        // the next start ignores, never a topic whose data is half gone.
        if let Err(e) = self.write_catalog() {
            // The topic stays, as the catalog on disk still says.
            self.write_topics().insert(name.to_string(), topic);
            return Err(TopicError::storage(e));
        }
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
        let _guard = self.change_lock.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::unknown(name));
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
        check_partition_limit(count)?;
        if validate_only {
            return Ok(());
        }
        let added = self
            .open_partitions(name, current..count, &topic.settings, true)
            .await
            .map_err(undo_new_partitions)?;
        let grown = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            settings: topic.settings.clone(),
            partitions: topic.partitions.iter().chain(&added).cloned().collect(),
        });
        self.write_topics().insert(name.to_string(), grown);
        if let Err(e) = self.write_catalog() {
            // Back to what the catalog on disk says: the new partitions never existed.
            self.write_topics().insert(name.to_string(), topic);
            delete_all(&added);
            return Err(TopicError::storage(e));
        }
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
        let _guard = self.change_lock.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::unknown(name));
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
        self.write_topics().insert(name.to_string(), changed);
        if let Err(e) = self.write_catalog() {
            // Back to what the catalog on disk says.
            self.write_topics().insert(name.to_string(), topic);
            return Err(TopicError::storage(e));
        }
        for p in &topic.partitions {
            p.apply_settings(settings.clone());
        }
        tracing::info!(topic = name, configs = ?overrides, "topic config changed");
        Ok(())
    }

    fn write_catalog(&self) -> Result<(), MetadataError> {
        let file = CatalogFile {
            version: FORMAT_VERSION,
            topics: self
                .read_topics()
                .values()
                .map(|t| CatalogTopic {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions.len() as i32,
                    configs: t.overrides.clone(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("the catalog always serializes");
        let dir = &self.config.data_dir;
        write_atomic(&*self.fs, dir, CATALOG_FILE, &json).map_err(MetadataError::io(format!(
            "writing {}",
            dir.join(CATALOG_FILE).display()
        )))
    }

    /// Close every partition (fsync, checkpoints, producer snapshots), on up to
    /// [`PARTITION_IO_PARALLELISM`] threads: each close is a few fsyncs, and the file system
    /// commits concurrent ones together, so 10,000 partitions close in seconds. Returns how
    /// many failed to close cleanly (each is logged). Blocking.
    pub fn close_all(&self) -> usize {
        let partitions = self.partitions();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicUsize::new(0);
        let workers = PARTITION_IO_PARALLELISM.min(partitions.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while let Some(p) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = p.close() {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(partition = %p.name(), error = %e, "close failed");
                        }
                    }
                });
            }
        });
        failed.into_inner()
    }

    /// Open partitions `indexes` of `topic`, up to [`PARTITION_IO_PARALLELISM`] at once
    /// (recovery and the first fsyncs overlap, as Kafka's `num.recovery.threads.per.data.dir`
    /// does), in index order. If any fails: the first error, with the ones that did open,
    /// for the caller to close (existing data) or remove (new partitions).
    async fn open_partitions(
        &self,
        topic: &str,
        indexes: std::ops::Range<i32>,
        settings: &TopicSettings,
        clean: bool,
    ) -> Result<Vec<Arc<Partition>>, (MetadataError, Vec<Arc<Partition>>)> {
        use futures_util::stream::{self, StreamExt};
        let results: Vec<_> = stream::iter(indexes)
            .map(|index| self.open_partition(topic, index, settings, clean))
            .buffered(PARTITION_IO_PARALLELISM)
            .collect()
            .await;
        let mut opened = Vec::with_capacity(results.len());
        let mut first_error = None;
        for r in results {
            match r {
                Ok(p) => opened.push(p),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(opened),
            Some(e) => Err((e, opened)),
        }
    }

    /// Open (creating if missing) partition `index` of `topic` on a blocking thread, with
    /// its producer state rebuilt, and start its flusher.
    async fn open_partition(
        &self,
        topic: &str,
        index: i32,
        settings: &TopicSettings,
        clean: bool,
    ) -> Result<Arc<Partition>, MetadataError> {
        let name = format!("{topic}-{index}");
        let dir = self.config.data_dir.join(&name);
        let log_config = settings.log_config();
        let deps = PartitionDeps {
            fs: Arc::clone(&self.fs),
            clock: Arc::clone(&self.clock),
            producer_expiration_ms: self.config.producer_id_expiration_ms,
        };
        let (open_deps, open_dir) = (deps.clone(), dir.clone());
        let opened = tokio::task::spawn_blocking(move || -> Result<_, MetadataError> {
            let (dir, fs) = (open_dir, open_deps.fs);
            let (mut log, report) = Log::open_in(Arc::clone(&fs), &dir, log_config, clean)?;
            if report.bytes_truncated > 0 {
                tracing::warn!(
                    partition = %name,
                    bytes_truncated = report.bytes_truncated,
                    reason = report.truncation_reason.as_deref().unwrap_or(""),
                    "recovery truncated the log"
                );
            }
            // What survived recovery becomes durable before anyone can read it.
            log.flush()?;
            let producers = rebuild_producer_state(
                &fs,
                &dir,
                &log,
                open_deps.clock.now_ms(),
                open_deps.producer_expiration_ms,
            )?;
            Ok((log, producers))
        })
        .await
        .map_err(|e| MetadataError::Io {
            context: format!("opening {topic}-{index}"),
            source: std::io::Error::other(e),
        })?;
        let (log, (producers, txn_index)) = opened?;
        Ok(Partition::start(
            topic,
            index,
            dir,
            log,
            producers,
            txn_index,
            deps,
            settings.clone(),
        ))
    }
}

fn check_partition_limit(partitions: i32) -> Result<(), TopicError> {
    if partitions > MAX_PARTITIONS_PER_TOPIC {
        return Err(TopicError::new(
            ec::INVALID_PARTITIONS,
            format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic"),
        ));
    }
    Ok(())
}

/// A new topic's or new partitions' opening failed: remove those that opened.
fn undo_new_partitions((e, opened): (MetadataError, Vec<Arc<Partition>>)) -> TopicError {
    delete_all(&opened);
    TopicError::storage(e)
}

/// Undo partitions opened for a change that did not happen.
fn delete_all(partitions: &[Arc<Partition>]) {
    for p in partitions {
        if let Err(e) = p.delete() {
            tracing::warn!(partition = %p.name(), error = %e, "removing a partition that was never published");
        }
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

fn read_catalog(fs: &dyn Fs, dir: &Path) -> Result<CatalogFile, MetadataError> {
    let path = dir.join(CATALOG_FILE);
    let Some(bytes) = read_optional(fs, &path, CATALOG_MAX_BYTES)
        .map_err(MetadataError::io(format!("reading {}", path.display())))?
    else {
        return Ok(CatalogFile {
            version: FORMAT_VERSION,
            topics: Vec::new(),
        });
    };
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.clone(),
        reason,
    };
    let file: CatalogFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not supported",
            file.version
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: Uuid) -> Arc<Topic> {
        Arc::new(Topic {
            name: name.to_string(),
            id,
            overrides: BTreeMap::new(),
            settings: TopicSettings::resolve(&Default::default(), &BTreeMap::new()).unwrap(),
            partitions: Vec::new(),
        })
    }

    #[test]
    fn the_id_index_follows_every_insert_replace_and_remove() {
        let mut m = TopicMap::default();
        let (a, b, a2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        m.insert("a".into(), topic("a", a));
        m.insert("b".into(), topic("b", b));
        assert_eq!(m.by_id[&a].name, "a");
        // Replaced under the same name (a config change keeps the id; a re-created topic
        // would not): the old id goes.
        m.insert("a".into(), topic("a", a2));
        assert!(!m.by_id.contains_key(&a));
        assert_eq!(m.by_id[&a2].name, "a");
        assert_eq!(m.remove("b").map(|t| t.id), Some(b));
        assert!(!m.by_id.contains_key(&b));
        assert_eq!((m.len(), m.by_id.len()), (1, 1));
        assert!(m.remove("b").is_none());
    }
}
