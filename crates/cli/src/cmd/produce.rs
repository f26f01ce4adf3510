//! `weir produce TOPIC`: one record per input line.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use weir_client::admin::parse_key_value;
use weir_client::producer::{Producer, ProducerConfig};
use weir_client::records::{Compression, ProduceRecord};

use super::output::{json, opt, table};
use super::ClientArgs;

/// Produce records, one per line of stdin or --file.
///
/// Keys go to the partition Kafka's murmur2 hash picks (the Java client's and librdkafka's
/// murmur2_random placement); keyless records fill one batch per partition in turn. Empty
/// lines are skipped. Prints a summary (records, bytes, partitions) when done.
///
/// Examples:
///   printf 'user1:hello\nuser2:world\n' | weir produce orders -K :
///   weir produce orders --file events.txt --compression zstd --acks 1 -H source=import
#[derive(Args, Debug)]
pub struct ProduceArgs {
    topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (lines without it have no key).
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// Add a header KEY=VALUE to every record (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Write every record to this partition.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// 0 (no answer), 1 (the leader wrote it) or all (every in-sync replica has it).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, short = 'z', default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Do not take a producer id: a batch whose answer is lost is then an error, not retried.
    /// (With --acks all the producer is idempotent by default, like the Java client: a
    /// retried batch is written once. With acks 0 or 1 it never is.)
    #[arg(long)]
    no_idempotence: bool,
    /// Longest input line accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_line_bytes: usize,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let headers: Vec<(String, Option<Vec<u8>>)> = args
        .headers
        .iter()
        .map(|h| parse_key_value(h).map(|(k, v)| (k, Some(v.into_bytes()))))
        .collect::<Result<_, _>>()?;
    let acks: i16 = match args.acks.as_str() {
        "0" => 0,
        "1" => 1,
        _ => -1,
    };
    let compression = Compression::parse(&args.compression)?;
    let separator = args.key_separator.as_ref().map(|s| s.as_bytes().to_vec());
    if separator.as_ref().is_some_and(|s| s.is_empty()) {
        anyhow::bail!("--key-separator must not be empty");
    }
    let (input, input_len): (Box<dyn Read + Send>, Option<u64>) = match &args.file {
        Some(path) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let max_line_bytes = args.max_line_bytes;
    // Lines are read on their own thread so a slow source (`tail -f log | weir produce`)
    // never holds buffered records back: when no line comes for LINGER, what is buffered
    // is sent. The channel is small and each message bounded, so memory stays bounded.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<Vec<u8>>>>(8);
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(256 * 1024, input);
        read_lines(&mut reader, max_line_bytes, &tx)
    });

    let mut client = args.client.client()?;
    let config = ProducerConfig {
        acks,
        compression,
        idempotent: acks == -1 && !args.no_idempotence,
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(&mut client, &args.topic, config).await?;
    let progress = progress_bar(input_len);

    let mut line_no = 0u64;
    let mut read_bytes = 0u64;
    loop {
        let next = if producer.buffered_records() > 0 {
            match tokio::time::timeout(LINGER, rx.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    producer.flush().await?;
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let lines = match next {
            None => break,
            Some(Ok(lines)) => lines,
            Some(Err(e)) => {
                return Err(anyhow::Error::new(e).context(format!("reading line {}", line_no + 1)))
            }
        };
        for mut line in lines {
            line_no += 1;
            read_bytes += line.len() as u64;
            strip_eol(&mut line);
            if line.is_empty() {
                continue;
            }
            let (key, value) = match &separator {
                Some(sep) => match find(&line, sep) {
                    Some(at) => (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec()),
                    None => (None, line),
                },
                None => (None, line),
            };
            producer
                .send(ProduceRecord {
                    key,
                    value: Some(value),
                    headers: headers.clone(),
                    timestamp_ms: now_ms(),
                    partition: args.partition,
                })
                .await?;
            if let Some(pb) = &progress {
                if line_no.is_multiple_of(1000) {
                    match input_len {
                        Some(_) => pb.set_position(read_bytes),
                        None => pb.set_message(format!("{line_no} records")),
                    }
                }
            }
        }
    }
    producer.flush().await?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let summary = producer.summary().clone();
    if args.client.json {
        return json(&summary);
    }
    println!(
        "Produced {} records ({} bytes) to topic {} in {} batches over {} partitions{}{}",
        summary.records,
        summary.bytes,
        summary.topic,
        summary.batches,
        summary.partitions.len(),
        if acks == 0 {
            " (acks=0: not confirmed)"
        } else {
            ""
        },
        match (summary.producer_id, summary.retries) {
            (Some(id), 0) => format!(" (idempotent, producer id {id})"),
            (Some(id), n) => format!(" (idempotent, producer id {id}; {n} retries)"),
            (None, 0) => String::new(),
            (None, n) => format!(" ({n} retries)"),
        }
    );
    if !summary.partitions.is_empty() {
        let rows: Vec<Vec<String>> = summary
            .partitions
            .iter()
            .map(|(p, s)| {
                vec![
                    p.to_string(),
                    s.records.to_string(),
                    s.bytes.to_string(),
                    opt(s.first_offset),
                    opt(s.last_offset),
                ]
            })
            .collect();
        table(
            &[
                "PARTITION",
                "RECORDS",
                "BYTES",
                "FIRST-OFFSET",
                "LAST-OFFSET",
            ],
            &rows,
        );
    }
    Ok(())
}

/// A progress bar on stderr, only when it is a terminal.
fn progress_bar(input_len: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match input_len {
        Some(len) => {
            let pb = ProgressBar::new(len);
            pb.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
                )
                .expect("a valid template"),
            );
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("a valid template"),
            );
            pb
        }
    };
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(pb)
}

/// How long buffered records wait for more input before they are sent.
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);
/// Lines handed over at once: what is already in the read buffer, up to this many bytes.
const LINES_CHUNK_BYTES: usize = 1024 * 1024;

/// The reader thread: sends lines in chunks (as many as are already buffered, so a slow
/// source gets each line through at once and a fast one in bulk) until the end or an error.
fn read_lines<R: Read>(
    reader: &mut BufReader<R>,
    max: usize,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Vec<Vec<u8>>>>,
) {
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        loop {
            let mut line = Vec::new();
            match next_line(reader, max, &mut line) {
                Ok(true) => {
                    bytes += line.len();
                    chunk.push(line);
                }
                Ok(false) => {
                    if !chunk.is_empty() {
                        let _ = tx.blocking_send(Ok(chunk));
                    }
                    return;
                }
                Err(e) => {
                    if !chunk.is_empty() && tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            // Stop the chunk when the next line is not already in memory (reading on
            // would block) or the chunk is big enough.
            if bytes >= LINES_CHUNK_BYTES || !reader.buffer().contains(&b'\n') {
                break;
            }
        }
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Read one line (with its '\n') into `buf`; false at the end of input. A line longer
/// than `max` is an error rather than an ever-growing buffer.
fn next_line<R: BufRead>(r: &mut R, max: usize, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > max + 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line longer than --max-line-bytes {max}"),
            ));
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

fn strip_eol(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_split() {
        let mut r = BufReader::with_capacity(4, &b"ab\ncdefgh\nij"[..]);
        let mut buf = Vec::new();
        assert!(next_line(&mut r, 100, &mut buf).unwrap());
        assert_eq!(buf, b"ab\n");
        assert!(next_line(&mut r, 100, &mut buf).unwrap());
        assert_eq!(buf, b"cdefgh\n");
        assert!(next_line(&mut r, 100, &mut buf).unwrap());
        assert_eq!(buf, b"ij");
        assert!(!next_line(&mut r, 100, &mut buf).unwrap());
        let mut r = BufReader::with_capacity(4, &b"abcdefgh\n"[..]);
        assert!(next_line(&mut r, 5, &mut buf).is_err());
    }
}
