//! NATS JetStream through `async-nats`: one file-storage stream per partition, publish and
//! await the stream's ack. Whether the ack means "fsync'd" is the server's setting
//! (`jetstream { sync_interval: always }`, NATS 2.10 and later), not the client's.

use anyhow::{anyhow, Result};
use async_nats::jetstream::{self, consumer, stream, Message};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::backend::{
    forward_received, AckFuture, Backend, BoxFuture, ConsumeFor, Received, Sender,
};

pub struct Nats {
    pub url: String,
}

fn stream_name(run: &str, p: usize) -> String {
    format!("BENCH_{}_{p}", run.replace(['.', '-'], "_"))
}

fn subject(run: &str, p: usize) -> String {
    format!("bench.{}.{p}", run.replace(['.', '-'], "_"))
}

async fn context(url: &str) -> Result<jetstream::Context> {
    let client = async_nats::connect(url).await?;
    Ok(jetstream::ContextBuilder::new()
        .max_ack_inflight(100_000)
        .backpressure_on_inflight(true)
        .build(client))
}

struct NatsSender {
    js: jetstream::Context,
    subjects: Vec<String>,
}

impl Sender for NatsSender {
    fn send(&self, partition: usize, payload: Bytes) -> BoxFuture<'_, Result<AckFuture>> {
        Box::pin(async move {
            let ack = self
                .js
                .publish(self.subjects[partition].clone(), payload)
                .await
                .map_err(|e| anyhow!("publish: {e}"))?;
            let ack: AckFuture =
                Box::pin(async move { ack.await.map(|_| ()).map_err(|e| anyhow!("ack: {e}")) });
            Ok(ack)
        })
    }
}

impl Backend for Nats {
    fn setup<'a>(&'a self, run: &'a str, partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let js = context(&self.url).await?;
            for p in 0..partitions {
                js.create_stream(stream::Config {
                    name: stream_name(run, p),
                    subjects: vec![subject(run, p)],
                    storage: stream::StorageType::File,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow!("create stream: {e}"))?;
            }
            Ok(())
        })
    }

    fn sender<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
    ) -> BoxFuture<'a, Result<Box<dyn Sender>>> {
        Box::pin(async move {
            let js = context(&self.url).await?;
            let subjects = (0..partitions).map(|p| subject(run, p)).collect();
            Ok(Box::new(NatsSender { js, subjects }) as Box<dyn Sender>)
        })
    }

    fn consume<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
        mode: ConsumeFor,
        tx: mpsc::UnboundedSender<Received>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let js = context(&self.url).await?;
            for p in 0..partitions {
                let s = js
                    .get_stream(stream_name(run, p))
                    .await
                    .map_err(|e| anyhow!("get stream: {e}"))?;
                match mode {
                    // A pull consumer with the client's defaults: pulls of 200 messages.
                    ConsumeFor::Latency => {
                        let c = s
                            .create_consumer(consumer::pull::Config {
                                ack_policy: consumer::AckPolicy::None,
                                deliver_policy: consumer::DeliverPolicy::All,
                                ..Default::default()
                            })
                            .await
                            .map_err(|e| anyhow!("create consumer: {e}"))?;
                        let msgs = c.messages().await.map_err(|e| anyhow!("messages: {e}"))?;
                        forward_received("nats", msgs, tx.clone(), |m: &Message| &m.payload);
                    }
                    // The ordered consumer, NATS's way to read a stream start to end: no acks,
                    // flow-controlled pulls, and it recreates itself at the right sequence if
                    // a pull goes missing or a heartbeat is late.
                    ConsumeFor::Throughput => {
                        let c = s
                            .create_consumer(consumer::pull::OrderedConfig {
                                deliver_policy: consumer::DeliverPolicy::All,
                                ..Default::default()
                            })
                            .await
                            .map_err(|e| anyhow!("create consumer: {e}"))?;
                        let msgs = c.messages().await.map_err(|e| anyhow!("messages: {e}"))?;
                        forward_received("nats", msgs, tx.clone(), |m: &Message| &m.payload);
                    }
                }
            }
            Ok(())
        })
    }

    fn teardown<'a>(&'a self, run: &'a str, partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let js = context(&self.url).await?;
            for p in 0..partitions {
                let _ = js.delete_stream(stream_name(run, p)).await;
            }
            Ok(())
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "client": "async-nats 0.51 (JetStream)",
            "storage": "file",
            "publish": "publish + await PubAck",
            "streams": "one per partition",
            "consumer": "one connection; W2: an ephemeral pull consumer per stream (deliver all, no acks, pulls of 200); W3: an ordered consumer per stream",
        })
    }
}
