//! The broker: its identity, its topic catalog and its coordinators, wired together.
//!
//! `Broker` is the request handlers' context. The parts do not know it: the catalog owns the
//! topics and partitions, the group and transaction coordinators hold narrow handles on their
//! internal topics ([`InternalTopic`]) and on what else they need, and the background loops
//! hold weak references to the parts they work on.
//!
//! Files of its own, in the data directory, all written through the storage [`Fs`] with its
//! atomic writer: `broker.json` (the cluster id), `producer-ids.json` (see `producer_ids`),
//! `topics.json` (see `catalog`), and `.clean-shutdown`, written at a clean shutdown and
//! removed at start: its absence at start makes every partition run crash recovery.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weir_storage::{read_optional, write_atomic, BoundedFs, Fs, StdFs};

pub use crate::catalog::{
    internal_topic_configs, is_internal_topic, Topic, TopicError, MAX_PARTITIONS_PER_TOPIC,
};
use crate::catalog::{Catalog, CatalogConfig, OFFSETS_TOPIC, TXN_TOPIC};
use crate::clock::{Clock, SystemClock};
use crate::config::{BrokerConfig, TopicSettings};
use crate::error::MetadataError;
use crate::group::GroupCoordinator;
use crate::internal_topic::InternalTopic;
use crate::partition::Partition;
use crate::producer_ids::ProducerIdManager;
use crate::txn::TxnCoordinator;

const BROKER_FILE: &str = "broker.json";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const FORMAT_VERSION: u32 = 1;
const BROKER_FILE_MAX_BYTES: u64 = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct BrokerFile {
    version: u32,
    cluster_id: String,
}

/// One broker: what the request handlers work with.
pub struct Broker {
    /// The settings it was started with.
    pub config: BrokerConfig,
    /// The cluster id (Metadata, DescribeCluster), made once per data directory.
    pub cluster_id: String,
    /// Topics and their partitions.
    pub catalog: Arc<Catalog>,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Transactional ids and their transactions.
    pub txns: Arc<TxnCoordinator>,
    /// Producer ids for idempotent producers.
    pub producer_ids: Arc<ProducerIdManager>,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
}

impl Broker {
    /// Open the data directory on the real file system and clock (see [`Broker::open_in`]).
    /// Files stay open up to half the process's descriptor limit (`BoundedFs`): the rest is
    /// for client connections and the runtime.
    pub async fn open(config: BrokerConfig) -> Result<Arc<Broker>, MetadataError> {
        let fs = BoundedFs::new(Arc::new(StdFs), open_files_budget());
        Broker::open_in(config, Arc::new(fs), Arc::new(SystemClock)).await
    }

    /// Open the data directory through `fs`: read the catalog, open (and if needed recover)
    /// every partition, replay the coordinators' internal topics, then remove the
    /// clean-shutdown marker so a crash from now on is detected. Starts the coordinators'
    /// timers and the retention and cleaner loops, which end when the broker is dropped.
    pub async fn open_in(
        config: BrokerConfig,
        fs: Arc<dyn Fs>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Broker>, MetadataError> {
        let dir = config.data_dir.clone();
        fs.create_dir_all(&dir)
            .map_err(MetadataError::io(format!("creating {}", dir.display())))?;
        // The data directory's own entry must survive a power loss too.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)
                .map_err(MetadataError::io(format!("fsync {}", parent.display())))?;
        }
        let cluster_id = load_or_create_cluster_id(&*fs, &dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let marker_present = fs
            .exists(&marker)
            .map_err(MetadataError::io(format!("reading {}", marker.display())))?;
        let catalog = Arc::new(
            Catalog::open(
                CatalogConfig {
                    data_dir: dir.clone(),
                    topic_defaults: config.topic_defaults.clone(),
                    num_partitions: config.num_partitions,
                    producer_id_expiration_ms: config.producer_id_expiration_ms,
                },
                Arc::clone(&fs),
                Arc::clone(&clock),
                marker_present,
            )
            .await?,
        );
        if marker_present {
            fs.remove_file(&marker)
                .and_then(|()| fs.sync_dir(&dir))
                .map_err(MetadataError::io(format!("removing {}", marker.display())))?;
        }
        let producer_ids = Arc::new(ProducerIdManager::open(Arc::clone(&fs), &dir)?);
        let groups = Arc::new(GroupCoordinator::new(
            config.group.clone(),
            config.offsets.clone(),
            InternalTopic::new(
                Arc::clone(&catalog),
                OFFSETS_TOPIC,
                config.offsets.topic_num_partitions,
                Arc::clone(&clock),
            ),
            Arc::clone(&catalog),
            Arc::clone(&clock),
        ));
        let txns = Arc::new(TxnCoordinator::new(
            config.txn.clone(),
            InternalTopic::new(
                Arc::clone(&catalog),
                TXN_TOPIC,
                config.txn.topic_num_partitions,
                Arc::clone(&clock),
            ),
            Arc::clone(&catalog),
            Arc::clone(&producer_ids),
            Arc::clone(&groups),
            Arc::clone(&clock),
        ));
        groups.load()?;
        txns.load()?;
        groups.spawn_timer();
        txns.spawn_timer();
        crate::log_manager::spawn(&catalog, config.log_manager.clone(), Arc::clone(&clock));
        Ok(Arc::new(Broker {
            config,
            cluster_id,
            catalog,
            groups,
            txns,
            producer_ids,
            fs,
            clock,
        }))
    }

    /// The broker's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.catalog.topic(name)
    }

    /// The topic whose id is `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.catalog.topic_by_id(id)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.catalog.topics()
    }

    /// Partition `index` of `topic`.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.catalog.partition(topic, index)
    }

    /// See [`Catalog::validate_new_topic`].
    pub fn validate_new_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<(i32, TopicSettings), TopicError> {
        self.catalog
            .validate_new_topic(name, num_partitions, replication_factor, overrides)
    }

    /// See [`Catalog::create_topic`].
    pub async fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        replication_factor: i16,
        overrides: std::collections::BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        self.catalog
            .create_topic(name, num_partitions, replication_factor, overrides)
            .await
    }

    /// See [`Catalog::delete_topic`].
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        self.catalog.delete_topic(name).await
    }

    /// See [`Catalog::create_partitions`].
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.catalog
            .create_partitions(name, count, validate_only)
            .await
    }

    /// See [`Catalog::alter_topic_config`].
    pub async fn alter_topic_config(
        &self,
        name: &str,
        overrides: std::collections::BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.catalog
            .alter_topic_config(name, overrides, validate_only)
            .await
    }

    /// Clean shutdown: close every partition (fsync, checkpoints), then write the marker.
    /// Blocking: run it off the async runtime.
    pub fn shutdown(&self) -> Result<(), MetadataError> {
        let failed = self.catalog.close_all();
        if failed > 0 {
            return Err(MetadataError::NotClosed { partitions: failed });
        }
        let dir = &self.config.data_dir;
        write_atomic(&*self.fs, dir, CLEAN_SHUTDOWN_FILE, b"1\n").map_err(MetadataError::io(
            format!("writing {}", dir.join(CLEAN_SHUTDOWN_FILE).display()),
        ))?;
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

fn load_or_create_cluster_id(fs: &dyn Fs, dir: &Path) -> Result<String, MetadataError> {
    let path = dir.join(BROKER_FILE);
    let read = read_optional(fs, &path, BROKER_FILE_MAX_BYTES)
        .map_err(MetadataError::io(format!("reading {}", path.display())))?;
    if let Some(bytes) = read {
        let f: BrokerFile = serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        return Ok(f.cluster_id);
    }
    let f = BrokerFile {
        version: FORMAT_VERSION,
        cluster_id: Uuid::new_v4().simple().to_string(),
    };
    let json = serde_json::to_vec_pretty(&f).expect("the broker file always serializes");
    write_atomic(fs, dir, BROKER_FILE, &json)
        .map_err(MetadataError::io(format!("writing {}", path.display())))?;
    Ok(f.cluster_id)
}

/// How many files the broker keeps open: half the soft `RLIMIT_NOFILE` (which `weir serve`
/// raises to the hard limit first), at least 64; files past it are closed least recently
/// used first and reopened when read (`weir_storage::BoundedFs`).
fn open_files_budget() -> usize {
    use rustix::process::{getrlimit, Resource};
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(64, 1 << 24)
}
