//! `weir consume TOPIC`: by assignment or as a consumer-group member.

use std::io::Write;

use clap::Args;
use serde::Serialize;
use weir_client::consumer::{Consumer, ConsumerConfig, GroupConfig, StartFrom};
use weir_client::records::{ConsumedRecord, TimestampType};

use super::ClientArgs;

/// Print records of a topic.
///
/// Without --group it reads the chosen partitions (all by default) directly; with --group
/// it joins the consumer group (range assignor), starts from the group's committed
/// offsets (--from only where there is none), commits what it printed, and leaves the
/// group on exit. Stops at the end of the partitions unless --follow.
///
/// --format tokens (as kcat's -f): %t topic, %p partition, %o offset, %k key, %s value,
/// %h headers (k=v,k=v), %T timestamp (ms), %K key length, %S value length, %% a percent;
/// escapes \n \t \\. Default: "%s\n".
///
/// Examples:
///   weir consume orders --from beginning --count 10
///   weir consume orders --group billing --from-beginning
///   weir consume orders -p 0 --from offset:42 --format '%p:%o %k=%s\n'
///   weir consume orders --group billing --follow --json
///   weir consume orders --from timestamp:1700000000000
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    topic: String,
    /// Where to start: beginning, end, offset:N (offset:-N = N before the end) or
    /// timestamp:MS.
    #[arg(long, short = 'o', default_value = "beginning")]
    from: String,
    /// Same as --from beginning (kafka-console-consumer's spelling).
    #[arg(long, conflicts_with = "from")]
    from_beginning: bool,
    /// Read only these partitions (repeatable).
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Vec<i32>,
    /// Consume as a member of this consumer group.
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Stop after this many records.
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Output template (see above).
    #[arg(long, conflicts_with = "json")]
    format: Option<String>,
    /// read_uncommitted or read_committed (hides aborted and open transactions).
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_uncommitted", "read_committed"])]
    isolation: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn parse_from(s: &str) -> anyhow::Result<StartFrom> {
    Ok(match s {
        "beginning" | "earliest" => StartFrom::Beginning,
        "end" | "latest" => StartFrom::End,
        _ => {
            if let Some(n) = s.strip_prefix("offset:") {
                StartFrom::Offset(
                    n.parse()
                        .map_err(|_| anyhow::anyhow!("--from {s:?}: {n:?} is not an offset"))?,
                )
            } else if let Some(ms) = s.strip_prefix("timestamp:") {
                let ms: i64 = ms.parse().map_err(|_| {
                    anyhow::anyhow!("--from {s:?}: {ms:?} is not a timestamp in ms")
                })?;
                if ms < 0 {
                    anyhow::bail!("--from {s:?}: the timestamp must not be negative");
                }
                StartFrom::Timestamp(ms)
            } else {
                anyhow::bail!("--from {s:?}: expected beginning, end, offset:N or timestamp:MS")
            }
        }
    })
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<String>,
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: TimestampType,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeader<'a>>,
}

fn text(b: &Option<Vec<u8>>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

enum Token {
    Lit(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
    KeyLen,
    ValueLen,
}

pub struct Template(Vec<Token>);

impl Template {
    pub fn parse(s: &str) -> anyhow::Result<Template> {
        let mut tokens = Vec::new();
        let mut lit = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let t = match chars.next() {
                        Some('t') => Token::Topic,
                        Some('p') => Token::Partition,
                        Some('o') => Token::Offset,
                        Some('k') => Token::Key,
                        Some('s') => Token::Value,
                        Some('h') => Token::Headers,
                        Some('T') => Token::Timestamp,
                        Some('K') => Token::KeyLen,
                        Some('S') => Token::ValueLen,
                        Some('%') => {
                            lit.push(b'%');
                            continue;
                        }
                        other => anyhow::bail!(
                            "--format: unknown token %{} (known: %t %p %o %k %s %h %T %K %S %%)",
                            other.map(String::from).unwrap_or_default()
                        ),
                    };
                    if !lit.is_empty() {
                        tokens.push(Token::Lit(std::mem::take(&mut lit)));
                    }
                    tokens.push(t);
                }
                '\\' => match chars.next() {
                    Some('n') => lit.push(b'\n'),
                    Some('t') => lit.push(b'\t'),
                    Some('r') => lit.push(b'\r'),
                    Some('\\') => lit.push(b'\\'),
                    Some('0') => lit.push(0),
                    Some(other) => {
                        lit.push(b'\\');
                        let mut b = [0u8; 4];
                        lit.extend_from_slice(other.encode_utf8(&mut b).as_bytes());
                    }
                    None => lit.push(b'\\'),
                },
                c => {
                    let mut b = [0u8; 4];
                    lit.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit));
        }
        Ok(Template(tokens))
    }

    pub fn write(&self, out: &mut impl Write, r: &ConsumedRecord) -> std::io::Result<()> {
        for t in &self.0 {
            match t {
                Token::Lit(b) => out.write_all(b)?,
                Token::Topic => out.write_all(r.topic.as_bytes())?,
                Token::Partition => write!(out, "{}", r.partition)?,
                Token::Offset => write!(out, "{}", r.offset)?,
                Token::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
                Token::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
                Token::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(k.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(v.as_deref().unwrap_or_default())?;
                    }
                }
                Token::Timestamp => write!(out, "{}", r.timestamp_ms)?,
                Token::KeyLen => write!(out, "{}", r.key.as_ref().map_or(-1, |k| k.len() as i64))?,
                Token::ValueLen => {
                    write!(out, "{}", r.value.as_ref().map_or(-1, |v| v.len() as i64))?
                }
            }
        }
        Ok(())
    }
}

fn write_record(
    out: &mut impl Write,
    r: &ConsumedRecord,
    template: Option<&Template>,
) -> std::io::Result<()> {
    match template {
        Some(t) => t.write(out, r),
        None => {
            let j = JsonRecord {
                topic: &r.topic,
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp_ms,
                timestamp_type: r.timestamp_type,
                key: text(&r.key),
                value: text(&r.value),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| JsonHeader {
                        key: k,
                        value: text(v),
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &j)?;
            out.write_all(b"\n")
        }
    }
}

/// Consecutive failed polls (about a second apart) `--follow` waits through.
const MAX_FOLLOW_FAILURES: u32 = 60;

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let start = if args.from_beginning {
        StartFrom::Beginning
    } else {
        parse_from(&args.from)?
    };
    let template = if args.client.json {
        None
    } else {
        Some(Template::parse(args.format.as_deref().unwrap_or("%s\\n"))?)
    };
    if args.count == Some(0) {
        return Ok(());
    }
    let mut client = args.client.client()?;
    let mut config = ConsumerConfig::new(&args.topic);
    config.start = start;
    config.read_committed = args.isolation == "read_committed";
    config.stop_at_end = !args.follow;
    let mut consumer = match &args.group {
        Some(g) => Consumer::join(&mut client, config, GroupConfig::new(g)).await?,
        None => {
            let only = (!args.partition.is_empty()).then_some(args.partition.as_slice());
            Consumer::assign(&mut client, config, only).await?
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut interrupted = false;
    let mut failures = 0u32;
    let result: anyhow::Result<()> = async {
        'outer: loop {
            if !args.follow && consumer.at_end() {
                break;
            }
            let polled = tokio::select! {
                r = consumer.poll() => r,
                _ = &mut shutdown => { interrupted = true; break; }
            };
            let records = match polled {
                Ok(records) => {
                    failures = 0;
                    records
                }
                // Following, a restarting broker is waited for rather than fatal.
                Err(e) if args.follow && e.is_transient() && failures < MAX_FOLLOW_FAILURES => {
                    failures += 1;
                    eprintln!("warning: {e}; retrying ({failures}/{MAX_FOLLOW_FAILURES})");
                    consumer.reset_connections();
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = &mut shutdown => { interrupted = true; break; }
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for r in &records {
                if args.count.is_some_and(|c| printed >= c) {
                    break 'outer;
                }
                match write_record(&mut out, r, template.as_ref()) {
                    Ok(()) => {}
                    // The reader went away (`| head`): a normal way to stop.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break 'outer,
                    Err(e) => return Err(e.into()),
                }
                consumer.ack(r);
                printed += 1;
            }
            if args.count.is_none_or(|c| printed < c) {
                consumer.ack_all();
            }
            match out.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                Err(e) => return Err(e.into()),
            }
            if args.count.is_some_and(|c| printed >= c) {
                break;
            }
        }
        Ok(())
    }
    .await;
    let _ = out.flush();
    if interrupted {
        // A poll was cut off mid-request: its connection may still owe a response.
        consumer.reset_connections();
    }
    let closed = consumer.close().await;
    result?;
    closed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_like_kcat() {
        let r = ConsumedRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp_ms: 1000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k".to_vec()),
            value: None,
            headers: vec![("a".into(), Some(b"1".to_vec())), ("b".into(), None)],
        };
        let t = Template::parse("%t/%p/%o %k=%s %h %T %K %S 100%%\\n").unwrap();
        let mut out = Vec::new();
        t.write(&mut out, &r).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t/2/7 k= a=1,b= 1000 1 -1 100%\n"
        );
        assert!(Template::parse("%x").is_err());
    }

    #[test]
    fn from_parses() {
        assert_eq!(parse_from("offset:5").unwrap(), StartFrom::Offset(5));
        assert_eq!(parse_from("timestamp:9").unwrap(), StartFrom::Timestamp(9));
        assert!(parse_from("offset:x").is_err());
        assert!(parse_from("yesterday").is_err());
    }
}
