//! `GET /metrics`: the Prometheus text format 0.0.4, built at scrape time.
//!
//! Names follow Prometheus conventions: `weir_` prefix, base units last (`_bytes`,
//! `_seconds`), `_total` on counters. Partition and group figures are read from the
//! partitions and the group coordinator now, not tracked a second time.

use std::fmt::{Display, Write};
use std::sync::atomic::Ordering;

use kafka_protocol::messages::ApiKey;
use weir_server::metrics::{
    CONNECTIONS_ACCEPTED, CONNECTIONS_OPEN, COPIED_FILE_BYTES, REQUESTS, SENDFILE_BYTES,
};
use weir_storage::metrics::{HistogramSnapshot, FILE_EVICTIONS, FSYNC, FSYNC_ERRORS, OPEN_FILES};

use crate::AdminState;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound_nanos, n) in &h.cumulative {
            let le = seconds(*bound_nanos).to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count);
        self.sample(&format!("{name}_sum"), labels, seconds(h.sum_nanos));
        self.sample(&format!("{name}_count"), labels, h.count);
    }
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Label values escape backslash, double quote and newline (text format 0.0.4).
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("Unknown{key}"))
}

/// Resident set size from /proc (Linux); None elsewhere.
pub(crate) fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub(crate) fn render(state: &AdminState) -> String {
    let mut o = Out(String::with_capacity(16 * 1024));

    o.family(
        "weir_build_info",
        "gauge",
        "Always 1; the labels carry the version.",
    );
    o.sample(
        "weir_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    o.family(
        "weir_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    o.sample("weir_uptime_seconds", &[], state.uptime_seconds());
    o.family(
        "weir_ready",
        "gauge",
        "1 once the logs are recovered and Kafka clients are served.",
    );
    o.sample("weir_ready", &[], u8::from(state.is_ready()));
    if let Some(rss) = resident_memory_bytes() {
        o.family(
            "weir_process_resident_memory_bytes",
            "gauge",
            "Resident set size of the broker process.",
        );
        o.sample("weir_process_resident_memory_bytes", &[], rss);
    }

    // The network edge.
    o.family(
        "weir_connections_open",
        "gauge",
        "Kafka client connections being served.",
    );
    o.sample(
        "weir_connections_open",
        &[],
        CONNECTIONS_OPEN.load(Ordering::Relaxed),
    );
    o.family(
        "weir_connections_accepted_total",
        "counter",
        "Kafka client connections accepted since start.",
    );
    o.sample(
        "weir_connections_accepted_total",
        &[],
        CONNECTIONS_ACCEPTED.load(Ordering::Relaxed),
    );
    o.family(
        "weir_storage_open_files",
        "gauge",
        "Data files (segments, indexes, checkpoints) the broker holds open now.",
    );
    o.sample(
        "weir_storage_open_files",
        &[],
        OPEN_FILES.load(Ordering::Relaxed),
    );
    o.family(
        "weir_storage_file_evictions_total",
        "counter",
        "Data files closed (least recently used, fully synced) to stay within half the descriptor limit.",
    );
    o.sample(
        "weir_storage_file_evictions_total",
        &[],
        FILE_EVICTIONS.load(Ordering::Relaxed),
    );
    o.family(
        "weir_fetch_sendfile_bytes_total",
        "counter",
        "Fetched record bytes sent from segment files by sendfile (no copy through the broker).",
    );
    o.sample(
        "weir_fetch_sendfile_bytes_total",
        &[],
        SENDFILE_BYTES.load(Ordering::Relaxed),
    );
    o.family(
        "weir_fetch_copied_file_bytes_total",
        "counter",
        "Fetched record bytes that were to go by sendfile but were read and copied (no file descriptor).",
    );
    o.sample(
        "weir_fetch_copied_file_bytes_total",
        &[],
        COPIED_FILE_BYTES.load(Ordering::Relaxed),
    );
    let rows = REQUESTS.rows();
    o.family(
        "weir_requests_total",
        "counter",
        "Kafka requests received, by API and version.",
    );
    for r in &rows {
        let (api, version) = (api_name(r.api_key), r.api_version.to_string());
        o.sample(
            "weir_requests_total",
            &[("api", &api), ("version", &version)],
            r.requests,
        );
    }
    o.family(
        "weir_request_errors_total",
        "counter",
        "Kafka requests that could not be answered (malformed, unsupported, failed response); the connection is closed.",
    );
    for r in &rows {
        let (api, version) = (api_name(r.api_key), r.api_version.to_string());
        o.sample(
            "weir_request_errors_total",
            &[("api", &api), ("version", &version)],
            r.errors,
        );
    }
    o.family(
        "weir_response_errors_total",
        "counter",
        "Error codes answered in responses, by API and Kafka error name: top level and per topic, partition, group or resource (the request itself was answered). Produce counts acks=0 requests too.",
    );
    for (key, code, n) in weir_broker::metrics::response_errors_seen() {
        let (api, error) = (api_name(key), crate::api::error_name(code));
        o.sample(
            "weir_response_errors_total",
            &[("api", &api), ("error", &error)],
            n,
        );
    }
    o.family(
        "weir_request_duration_seconds",
        "histogram",
        "Time from a request read to its response written, by API.",
    );
    for (key, h) in REQUESTS.latencies() {
        let api = api_name(key);
        o.histogram(
            "weir_request_duration_seconds",
            &[("api", &api)],
            &h.snapshot(),
        );
    }

    // Storage.
    let fsync = FSYNC.snapshot();
    o.family(
        "weir_fsyncs_total",
        "counter",
        "fsync and fdatasync calls on log, index, checkpoint and directory files.",
    );
    o.sample("weir_fsyncs_total", &[], fsync.count);
    o.family(
        "weir_fsync_errors_total",
        "counter",
        "fsyncs that failed (each takes its log offline).",
    );
    o.sample(
        "weir_fsync_errors_total",
        &[],
        FSYNC_ERRORS.load(Ordering::Relaxed),
    );
    o.family(
        "weir_fsync_duration_seconds",
        "histogram",
        "Duration of each fsync.",
    );
    o.histogram("weir_fsync_duration_seconds", &[], &fsync);
    let (appends, rounds, round_nanos) = weir_broker::partition::counters::snapshot();
    o.family(
        "weir_log_appends_total",
        "counter",
        "Record sets appended to partition logs.",
    );
    o.sample("weir_log_appends_total", &[], appends);
    o.family(
        "weir_group_commit_rounds_total",
        "counter",
        "Group-commit fsync rounds; each makes every append pending at that moment durable.",
    );
    o.sample("weir_group_commit_rounds_total", &[], rounds);
    o.family(
        "weir_group_commit_round_seconds_total",
        "counter",
        "Time spent in group-commit fsync rounds.",
    );
    o.sample(
        "weir_group_commit_round_seconds_total",
        &[],
        seconds(round_nanos),
    );

    let Some(broker) = state.broker() else {
        return o.0;
    };

    // Topics and partitions, read now.
    let topics = broker.topics();
    struct Row {
        topic: String,
        partition: String,
        hw: i64,
        lso: i64,
        log_start: i64,
        log_end: i64,
        size: u64,
        offline: bool,
    }
    let mut parts = Vec::new();
    let mut per_topic = Vec::new();
    for t in &topics {
        let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
        for p in &t.partitions {
            bytes_in += p.bytes_in.load(Ordering::Relaxed);
            bytes_out += p.bytes_out.load(Ordering::Relaxed);
            let Ok((log_end, size)) = p.with_log(|l| (l.log_end_offset(), l.size_bytes())) else {
                continue; // deleted meanwhile
            };
            let s = p.state();
            parts.push(Row {
                topic: t.name.clone(),
                partition: p.index.to_string(),
                hw: s.high_watermark,
                lso: s.last_stable_offset,
                log_start: s.log_start_offset,
                log_end,
                size,
                offline: s.offline,
            });
        }
        per_topic.push((t.name.clone(), bytes_in, bytes_out));
    }
    o.family(
        "weir_topic_bytes_in_total",
        "counter",
        "Record-set bytes appended by Produce requests, per topic.",
    );
    for (topic, bytes_in, _) in &per_topic {
        o.sample("weir_topic_bytes_in_total", &[("topic", topic)], bytes_in);
    }
    o.family(
        "weir_topic_bytes_out_total",
        "counter",
        "Record-set bytes sent in Fetch responses, per topic.",
    );
    for (topic, _, bytes_out) in &per_topic {
        o.sample("weir_topic_bytes_out_total", &[("topic", topic)], bytes_out);
    }
    type Field = fn(&Row) -> String;
    let gauges: [(&str, &str, Field); 6] = [
        (
            "weir_partition_log_end_offset",
            "Offset the next appended record will get.",
            |r| r.log_end.to_string(),
        ),
        (
            "weir_partition_log_start_offset",
            "First offset still in the log.",
            |r| r.log_start.to_string(),
        ),
        (
            "weir_partition_high_watermark",
            "End of what consumers may read (durable records).",
            |r| r.hw.to_string(),
        ),
        (
            "weir_partition_last_stable_offset",
            "End of what read_committed consumers may read.",
            |r| r.lso.to_string(),
        ),
        (
            "weir_partition_size_bytes",
            "Bytes of the partition's segments.",
            |r| r.size.to_string(),
        ),
        (
            "weir_partition_offline",
            "1 after a storage failure made the partition refuse writes.",
            |r| u8::from(r.offline).to_string(),
        ),
    ];
    for (name, help, field) in gauges {
        o.family(name, "gauge", help);
        for r in &parts {
            o.sample(
                name,
                &[("topic", &r.topic), ("partition", &r.partition)],
                field(r),
            );
        }
    }

    // Consumer groups: the coordinator's own lag computation.
    let groups = broker.groups.list();
    o.family(
        "weir_consumer_group_members",
        "gauge",
        "Members of each consumer group.",
    );
    for g in &groups {
        o.sample(
            "weir_consumer_group_members",
            &[("group", &g.group_id)],
            g.members.len(),
        );
    }
    let lags: Vec<_> = groups
        .iter()
        .map(|g| (g.group_id.clone(), broker.groups.lag(&g.group_id)))
        .collect();
    o.family(
        "weir_consumer_group_committed_offset",
        "gauge",
        "Committed offset of each group on each partition.",
    );
    for (group, lag) in &lags {
        for l in lag {
            let partition = l.partition.to_string();
            o.sample(
                "weir_consumer_group_committed_offset",
                &[
                    ("group", group),
                    ("topic", &l.topic),
                    ("partition", &partition),
                ],
                l.committed_offset,
            );
        }
    }
    o.family(
        "weir_consumer_group_lag",
        "gauge",
        "Records between a group's committed offset and the partition's high watermark.",
    );
    for (group, lag) in &lags {
        for l in lag {
            let partition = l.partition.to_string();
            o.sample(
                "weir_consumer_group_lag",
                &[
                    ("group", group),
                    ("topic", &l.topic),
                    ("partition", &partition),
                ],
                l.lag,
            );
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histogram_ends_with_inf_sum_and_count() {
        let h = weir_storage::metrics::Histogram::new();
        h.observe(std::time::Duration::from_millis(2));
        let mut o = Out(String::new());
        o.histogram("x_seconds", &[("api", "Produce")], &h.snapshot());
        assert!(o
            .0
            .contains("x_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 1\n"));
        assert!(o
            .0
            .contains("x_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 1\n"));
        assert!(o.0.contains("x_seconds_sum{api=\"Produce\"} 0.002\n"));
        assert!(o.0.contains("x_seconds_count{api=\"Produce\"} 1\n"));
    }
}
