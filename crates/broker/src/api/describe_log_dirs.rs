//! DescribeLogDirs (key 35, v1-4): the one data directory, with each partition's size on
//! disk and (v4) the filesystem's total and usable bytes.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::prelude::*;
use super::str_bytes;
use crate::error_codes as ec;

pub(crate) fn handle(
    broker: &Broker,
    version: i16,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // None: every partition.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    for t in broker.topics() {
        let parts: Vec<i32> = match &wanted {
            None => (0..t.partitions.len() as i32).collect(),
            Some(w) => match w.get(&t.name) {
                Some(p) => p.clone(),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = parts
            .into_iter()
            .filter_map(|i| {
                let p = t.partitions.get(usize::try_from(i).ok()?)?;
                let size = p.with_log(|l| l.size_bytes()).ok()?;
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(i)
                        .with_partition_size(size as i64)
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                )
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(&t.name)))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = &broker.config.data_dir;
    let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let mut result = DescribeLogDirsResult::default()
        .with_error_code(ec::NONE)
        .with_log_dir(str_bytes(&path.display().to_string()))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = fs_space(&path).unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    DescribeLogDirsResponse::default()
        .with_error_code(ec::NONE)
        .with_results(vec![result])
}

/// (total, available to this user) bytes of the filesystem holding `path`.
fn fs_space(path: &std::path::Path) -> Option<(i64, i64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let frsize = st.f_frsize as i64;
    Some((st.f_blocks as i64 * frsize, st.f_bavail as i64 * frsize))
}

/// DescribeLogDirs in the API registry (`super::registry!`).
pub struct DescribeLogDirs;

impl KafkaApi for DescribeLogDirs {
    const KEY: ApiKey = ApiKey::DescribeLogDirs;
    const VERSIONS: RangeInclusive<i16> = 1..=4;
    type Request = DescribeLogDirsRequest;
    type Response = DescribeLogDirsResponse;

    async fn handle(
        broker: &Arc<Broker>,
        meta: &RequestMeta,
        req: Self::Request,
    ) -> Reply<Self::Response> {
        Reply::Now(handle(broker, meta.api_version, req))
    }

    fn each_error(resp: &Self::Response, f: &mut dyn FnMut(i16)) {
        f(resp.error_code);
        resp.results.iter().for_each(|r| f(r.error_code));
    }
}
