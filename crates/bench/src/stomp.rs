//! ActiveMQ through a minimal STOMP 1.2 client over tokio TCP: one queue per partition,
//! `persistent:true` messages, each SEND asks for a receipt and the receipt is the ack
//! (ActiveMQ answers it once the KahaDB journal write is done; KahaDB syncs its journal on
//! every write by default, `enableJournalDiskSyncs=true`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{now_ns, stamp, AckFuture, Backend, BoxFuture, ConsumeFor, Received, Sender};

pub struct Stomp {
    pub addr: String,
}

fn queue(run: &str, p: usize) -> String {
    format!("/queue/bench-{run}-{p}")
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<()>>>>>;

struct Frame {
    command: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Frame {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    }
}

fn encode(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 128);
    v.extend_from_slice(command.as_bytes());
    v.push(b'\n');
    for (k, val) in headers {
        v.extend_from_slice(format!("{k}:{val}\n").as_bytes());
    }
    if !body.is_empty() {
        v.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    v.push(b'\n');
    v.extend_from_slice(body);
    v.push(0);
    v
}

async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Frame>> {
    let mut line = String::new();
    // Skip heart-beat newlines (and the NUL's trailing EOLs).
    let command = loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let t = line.trim_end_matches(['\n', '\r']);
        if !t.is_empty() {
            break t.to_string();
        }
    };
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            bail!("eof in headers");
        }
        let t = line.trim_end_matches(['\n', '\r']);
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).await?;
            let mut nul = [0u8; 1];
            r.read_exact(&mut nul).await?;
        }
        None => {
            r.read_until(0, &mut body).await?;
            body.pop();
        }
    }
    Ok(Some(Frame {
        command,
        headers,
        body,
    }))
}

/// One STOMP connection: a writer task fed by a channel, a reader task that resolves
/// receipts and forwards MESSAGE frames.
struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_receipt: AtomicU64,
}

async fn connect(addr: &str, messages: Option<mpsc::UnboundedSender<Received>>) -> Result<Conn> {
    let addr = addr
        .trim_start_matches("stomp://")
        .trim_start_matches("tcp://");
    let sock = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    sock.set_nodelay(true)?;
    let (rd, wr) = sock.into_split();
    let mut rd = BufReader::with_capacity(256 * 1024, rd);
    let mut wr = BufWriter::with_capacity(256 * 1024, wr);
    wr.write_all(&encode(
        "CONNECT",
        &[
            ("accept-version", "1.2"),
            ("host", "localhost"),
            ("heart-beat", "0,0"),
        ],
        b"",
    ))
    .await?;
    wr.flush().await?;
    let f = read_frame(&mut rd)
        .await?
        .ok_or_else(|| anyhow!("eof after CONNECT"))?;
    if f.command != "CONNECTED" {
        bail!(
            "STOMP CONNECT refused: {} {}",
            f.command,
            String::from_utf8_lossy(&f.body)
        );
    }
    let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(buf) = out_rx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                return;
            }
            // Coalesce whatever else is queued into the same write.
            while let Ok(buf) = out_rx.try_recv() {
                if wr.write_all(&buf).await.is_err() {
                    return;
                }
            }
            if wr.flush().await.is_err() {
                return;
            }
        }
    });
    let pending: Pending = Arc::default();
    let p2 = pending.clone();
    tokio::spawn(async move {
        loop {
            let f = match read_frame(&mut rd).await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    eprintln!("stomp read: {e}");
                    break;
                }
            };
            match f.command.as_str() {
                "RECEIPT" => {
                    if let Some(id) = f.header("receipt-id").and_then(|v| v.parse::<u64>().ok()) {
                        if let Some(tx) = p2.lock().unwrap().remove(&id) {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                "MESSAGE" => {
                    if let Some(m) = &messages {
                        let _ = m.send((stamp(&f.body), now_ns()));
                    }
                }
                "ERROR" => {
                    let msg = format!(
                        "STOMP ERROR {}: {}",
                        f.header("message").unwrap_or(""),
                        String::from_utf8_lossy(&f.body)
                    );
                    eprintln!("{msg}");
                    let id = f.header("receipt-id").and_then(|v| v.parse::<u64>().ok());
                    let mut p = p2.lock().unwrap();
                    if let Some(tx) = id.and_then(|id| p.remove(&id)) {
                        let _ = tx.send(Err(anyhow!(msg)));
                    }
                }
                _ => {}
            }
        }
        // Connection gone: fail whatever still waits.
        for (_, tx) in p2.lock().unwrap().drain() {
            let _ = tx.send(Err(anyhow!("connection closed")));
        }
    });
    Ok(Conn {
        out,
        pending,
        next_receipt: AtomicU64::new(1),
    })
}

struct StompSender {
    conn: Conn,
    queues: Vec<String>,
}

impl Sender for StompSender {
    fn send(&self, partition: usize, payload: Bytes) -> BoxFuture<'_, Result<AckFuture>> {
        Box::pin(async move {
            let id = self.conn.next_receipt.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.conn.pending.lock().unwrap().insert(id, tx);
            let ids = id.to_string();
            let frame = encode(
                "SEND",
                &[
                    ("destination", &self.queues[partition]),
                    ("persistent", "true"),
                    ("receipt", &ids),
                ],
                &payload,
            );
            self.conn
                .out
                .send(frame)
                .map_err(|_| anyhow!("connection closed"))?;
            let ack: AckFuture =
                Box::pin(async move { rx.await.map_err(|_| anyhow!("receipt dropped"))? });
            Ok(ack)
        })
    }
}

impl Backend for Stomp {
    fn setup<'a>(&'a self, _run: &'a str, _partitions: usize) -> BoxFuture<'a, Result<()>> {
        // ActiveMQ creates queues on first use.
        Box::pin(async { Ok(()) })
    }

    fn sender<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
    ) -> BoxFuture<'a, Result<Box<dyn Sender>>> {
        Box::pin(async move {
            let conn = connect(&self.addr, None).await?;
            let queues = (0..partitions).map(|p| queue(run, p)).collect();
            Ok(Box::new(StompSender { conn, queues }) as Box<dyn Sender>)
        })
    }

    fn consume<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
        _mode: ConsumeFor,
        tx: mpsc::UnboundedSender<Received>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let conn = connect(&self.addr, Some(tx)).await?;
            for p in 0..partitions {
                let id = p.to_string();
                let q = queue(run, p);
                conn.out
                    .send(encode(
                        "SUBSCRIBE",
                        &[
                            ("destination", &q),
                            ("id", &id),
                            ("ack", "auto"),
                            ("activemq.prefetchSize", "10000"),
                        ],
                        b"",
                    ))
                    .map_err(|_| anyhow!("connection closed"))?;
            }
            // Keep the connection (its tasks hold the socket halves) for the process's life.
            std::mem::forget(conn);
            Ok(())
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "client": "weir-bench STOMP 1.2 client (tokio)",
            "send": "persistent:true, receipt per SEND, pipelined",
            "consumer": "one connection, SUBSCRIBE per queue, ack:auto, prefetch 10000 (W2 and W3)",
        })
    }
}
