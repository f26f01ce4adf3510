//! Acceptance 4 of issue 9: the CLI sends only plain Kafka protocol.
//!
//! A real `weir serve` advertises a recording TCP proxy as its address, so every connection
//! the CLI opens (bootstrap, partition leaders, the group coordinator) goes through the
//! proxy, which forwards bytes unchanged and keeps a copy of what the CLI sent. Every CLI
//! command then runs through it, and afterwards every recorded request frame is decoded
//! with the kafka-protocol crate's decoders for its declared API key and version: the
//! header and body must decode, consume the whole frame, and name one of Kafka's public
//! client APIs. One frame that does not fails the test.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Forwards every connection to `upstream`; keeps each connection's client->broker bytes.
struct RecordingProxy {
    port: u16,
    streams: Arc<Mutex<Vec<Vec<u8>>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl RecordingProxy {
    fn start(upstream: u16) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let streams: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, t) = (streams.clone(), threads.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let broker = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (mut c_read, mut b_write) =
                    (client.try_clone().unwrap(), broker.try_clone().unwrap());
                let (mut b_read, mut c_write) = (broker, client);
                let streams = s.clone();
                let up = std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 64 * 1024];
                    loop {
                        match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                seen.extend_from_slice(&buf[..n]);
                                if b_write.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = b_write.shutdown(Shutdown::Write);
                    streams.lock().unwrap().push(seen);
                });
                let down = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut b_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
                t.lock().unwrap().extend([up, down]);
            }
        });
        RecordingProxy {
            port,
            streams,
            threads,
        }
    }

    /// Every connection's bytes, once the CLI has closed them all.
    fn finish(&self) -> Vec<Vec<u8>> {
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap());
        for t in threads {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.streams.lock().unwrap())
    }
}

struct Broker {
    child: Child,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(data: &Path, port: u16, advertised: u16) -> Broker {
    let log = data.with_extension("log");
    let child = Command::new(WEIR)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--advertised-listener", &format!("127.0.0.1:{advertised}")])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--group-initial-rebalance-delay-ms", "0"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let broker = Broker { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return broker;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("weir serve did not start");
}

fn cli(proxy: u16, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(WEIR)
        .args(args)
        .env("WEIR_BROKERS", format!("127.0.0.1:{proxy}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "weir {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Decode a request body of `key` at `version` with kafka-protocol; None if the key is not
/// one of Kafka's public client APIs.
fn decode_body(key: ApiKey, body: &mut Bytes, version: i16) -> Option<anyhow::Result<()>> {
    macro_rules! public {
        ($($api:ident => $req:ty),* $(,)?) => {
            match key {
                $(ApiKey::$api => Some(<$req>::decode(body, version).map(|_| ())),)*
                _ => None,
            }
        };
    }
    public! {
        Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest, FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest,
        DescribeGroups => DescribeGroupsRequest, ListGroups => ListGroupsRequest,
        SaslHandshake => SaslHandshakeRequest, ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest, DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest, InitProducerId => InitProducerIdRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest, AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest, TxnOffsetCommit => TxnOffsetCommitRequest,
        DescribeConfigs => DescribeConfigsRequest, AlterConfigs => AlterConfigsRequest,
        DescribeLogDirs => DescribeLogDirsRequest, SaslAuthenticate => SaslAuthenticateRequest,
        CreatePartitions => CreatePartitionsRequest, DeleteGroups => DeleteGroupsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        OffsetDelete => OffsetDeleteRequest, DescribeCluster => DescribeClusterRequest,
        DescribeProducers => DescribeProducersRequest,
        DescribeTransactions => DescribeTransactionsRequest,
        ListTransactions => ListTransactionsRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        DescribeTopicPartitions => DescribeTopicPartitionsRequest,
    }
}

/// The records of a Produce request are RecordBatch v2 with a valid CRC-32C, exactly one
/// batch per partition (Kafka rejects more since Produce v3); uncompressed ones also decode
/// record by record with kafka-protocol's own decoder.
fn check_record_batches(records: &Bytes) {
    assert!(records.len() >= 61, "a batch shorter than its header");
    let batch_length = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize;
    assert_eq!(
        12 + batch_length,
        records.len(),
        "not exactly one whole batch"
    );
    assert_eq!(records[16], 2, "magic must be 2");
    let crc = u32::from_be_bytes(records[17..21].try_into().unwrap());
    assert_eq!(crc32c::crc32c(&records[21..]), crc, "CRC-32C mismatch");
    let attributes = i16::from_be_bytes(records[21..23].try_into().unwrap());
    if attributes & 0x7 == 0 {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records.clone())
            .unwrap_or_else(|e| panic!("the batch does not decode: {e:#}"));
        let count = i32::from_be_bytes(records[57..61].try_into().unwrap());
        assert_eq!(set.records.len(), count as usize);
    }
}

/// Decode every frame of one recorded client->broker stream; returns (api, version) of each.
fn decode_stream(stream: &[u8]) -> Vec<(ApiKey, i16)> {
    let mut seen = Vec::new();
    let mut rest = Bytes::copy_from_slice(stream);
    while rest.has_remaining() {
        assert!(
            rest.remaining() >= 4,
            "a torn frame size at the end of a stream"
        );
        let size = rest.get_i32();
        assert!(
            size >= 4 && size as usize <= rest.remaining(),
            "frame size {size} does not fit"
        );
        let mut frame = rest.split_to(size as usize);
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let key = ApiKey::try_from(raw_key)
            .unwrap_or_else(|_| panic!("api key {raw_key} is not a Kafka API"));
        let range = key.valid_versions();
        assert!(
            range.min <= version && version <= range.max,
            "{key:?} v{version} is outside Kafka's versions {range}"
        );
        let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
            .unwrap_or_else(|e| panic!("{key:?} v{version}: the header does not decode: {e}"));
        assert_eq!(header.request_api_key, raw_key);
        if key == ApiKey::Produce {
            let req = ProduceRequest::decode(&mut frame.clone(), version)
                .unwrap_or_else(|e| panic!("Produce v{version}: {e:#}"));
            for t in &req.topic_data {
                for p in &t.partition_data {
                    check_record_batches(p.records.as_ref().expect("Produce carries records"));
                }
            }
        }
        match decode_body(key, &mut frame, version) {
            None => panic!("{key:?} is not one of Kafka's public client APIs"),
            Some(Err(e)) => panic!("{key:?} v{version}: the body does not decode: {e:#}"),
            Some(Ok(())) => {}
        }
        assert_eq!(
            frame.remaining(),
            0,
            "{key:?} v{version}: {} bytes left after the body",
            frame.remaining()
        );
        seen.push((key, version));
    }
    seen
}

#[test]
fn every_cli_command_sends_only_plain_kafka_requests() {
    let dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    // The proxy must know the broker's port before the broker knows the proxy's.
    let proxy = RecordingProxy::start(broker_port);
    let _broker = start_broker(&dir.path().join("data"), broker_port, proxy.port);
    let p = proxy.port;
    let input: Vec<u8> = (0..300)
        .map(|i| format!("key-{i}:value-{i}\n"))
        .collect::<String>()
        .into_bytes();

    cli(p, &["cluster", "info"], b"");
    cli(p, &["cluster", "info", "--json"], b"");
    cli(
        p,
        &[
            "topic",
            "create",
            "plain",
            "-p",
            "3",
            "-c",
            "retention.ms=600000",
        ],
        b"",
    );
    cli(p, &["topic", "list", "--internal"], b"");
    for (compression, acks) in [
        ("none", "all"),
        ("gzip", "1"),
        ("snappy", "all"),
        ("lz4", "0"),
        ("zstd", "1"),
    ] {
        cli(
            p,
            &[
                "produce",
                "plain",
                "-K",
                ":",
                "-H",
                "a=b",
                "--compression",
                compression,
                "--acks",
                acks,
            ],
            &input,
        );
    }
    cli(p, &["produce", "plain", "--partition", "1"], b"one\ntwo\n");
    cli(p, &["topic", "describe", "plain", "--json"], b"");
    cli(
        p,
        &[
            "topic",
            "alter-config",
            "plain",
            "--set",
            "retention.ms=700000",
            "--delete",
            "cleanup.policy",
        ],
        b"",
    );
    cli(p, &["consume", "plain", "--count", "10"], b"");
    cli(
        p,
        &[
            "consume", "plain", "-p", "2", "--from", "offset:3", "--json",
        ],
        b"",
    );
    cli(
        p,
        &[
            "consume",
            "plain",
            "--from",
            "timestamp:0",
            "--isolation",
            "read_committed",
            "--count",
            "5",
        ],
        b"",
    );
    cli(p, &["consume", "plain", "--from", "end"], b"");
    cli(
        p,
        &["consume", "plain", "--group", "g", "--count", "500"],
        b"",
    );
    cli(p, &["group", "list"], b"");
    cli(p, &["group", "describe", "g", "--json"], b"");
    cli(
        p,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "plain",
            "--to-earliest",
        ],
        b"",
    );
    cli(
        p,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "plain",
            "--to-timestamp",
            "0",
            "--execute",
        ],
        b"",
    );
    cli(p, &["group", "delete", "g"], b"");
    cli(p, &["topic", "delete", "plain"], b"");

    let streams = proxy.finish();
    assert!(
        streams.len() >= 20,
        "only {} connections recorded",
        streams.len()
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in &streams {
        for (key, version) in decode_stream(s) {
            *counts.entry(format!("{key:?} v{version}")).or_default() += 1;
        }
    }
    let apis: Vec<String> = counts
        .keys()
        .map(|k| k.split(' ').next().unwrap().to_string())
        .collect();
    // The run really exercised every API the CLI uses, so the decoding above covered them.
    for want in [
        "ApiVersions",
        "Metadata",
        "DescribeCluster",
        "CreateTopics",
        "DeleteTopics",
        "DescribeConfigs",
        "IncrementalAlterConfigs",
        "ListOffsets",
        "Produce",
        "Fetch",
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "OffsetFetch",
        "OffsetCommit",
        "LeaveGroup",
        "ListGroups",
        "DescribeGroups",
        "DeleteGroups",
    ] {
        assert!(
            apis.iter().any(|a| a == want),
            "no {want} request was recorded: {counts:?}"
        );
    }
    eprintln!(
        "decoded {} frames over {} connections: {counts:?}",
        counts.values().sum::<usize>(),
        streams.len()
    );
}

#[test]
fn a_frame_that_is_not_plain_kafka_fails_the_decoder() {
    // The check above must be able to fail: a frame with an unknown API key, one with
    // trailing bytes, and one with a truncated body are each rejected.
    let frame = |body: &[u8]| {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    // ApiVersions v0: key 18, version 0, correlation id, client id (null).
    let good = [0u8, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    assert_eq!(decode_stream(&frame(&good)), vec![(ApiKey::ApiVersions, 0)]);
    let mut unknown = good;
    unknown[1] = 250;
    assert!(std::panic::catch_unwind(|| decode_stream(&frame(&unknown))).is_err());
    let mut trailing = good.to_vec();
    trailing.push(7);
    assert!(std::panic::catch_unwind(|| decode_stream(&frame(&trailing))).is_err());
    // Metadata v1 with a topic array announcing 5 topics and holding none.
    let truncated = [0u8, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 5];
    assert!(std::panic::catch_unwind(|| decode_stream(&frame(&truncated))).is_err());
    // BrokerHeartbeat (KRaft, broker to controller) is a Kafka API but not a client one.
    let inter_broker = [0u8, 63, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0];
    assert!(std::panic::catch_unwind(|| decode_stream(&frame(&inter_broker))).is_err());
}

#[test]
fn a_corrupt_or_doubled_record_batch_fails_the_batch_check() {
    use weir_client::records::{encode_produce_batch, Compression, ProduceRecord};
    let record = ProduceRecord {
        key: Some(b"k".to_vec()),
        value: Some(b"v".to_vec()),
        headers: vec![("h".into(), Some(b"1".to_vec()))],
        timestamp_ms: 1,
        partition: None,
    };
    let batch = encode_produce_batch(&[record.clone(), record], Compression::None, None).unwrap();
    check_record_batches(&Bytes::from(batch.clone()));
    let mut flipped = batch.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(std::panic::catch_unwind(|| check_record_batches(&Bytes::from(flipped))).is_err());
    let doubled = [batch.clone(), batch].concat();
    assert!(std::panic::catch_unwind(|| check_record_batches(&Bytes::from(doubled))).is_err());
}
