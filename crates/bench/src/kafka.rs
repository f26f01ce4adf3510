//! Kafka protocol (weir, or any Kafka broker) through librdkafka (`rdkafka` crate).

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::backend::{now_ns, stamp, AckFuture, Backend, BoxFuture, ConsumeFor, Received, Sender};

/// W3's consumer: up to 50 MiB per fetch, 8 MiB per partition in it, and up to 256 MiB
/// prefetched in librdkafka's queue, so the reader is never starved by small fetches.
const THROUGHPUT_CONSUMER: [(&str, &str); 3] = [
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "8388608"),
    ("queued.max.messages.kbytes", "262144"),
];

pub struct Kafka {
    pub bootstrap: String,
    pub linger_ms: u32,
}

impl Kafka {
    fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("acks", "all")
            .set("linger.ms", self.linger_ms.to_string())
            .set("enable.idempotence", "false")
            .set("compression.type", "none")
            .set("message.timeout.ms", "60000");
        c
    }
}

fn topic(run: &str) -> String {
    format!("bench-{run}")
}

struct KafkaSender {
    producer: FutureProducer,
    topic: String,
}

impl Sender for KafkaSender {
    fn send(&self, partition: usize, payload: Bytes) -> BoxFuture<'_, Result<AckFuture>> {
        Box::pin(async move {
            loop {
                let record = FutureRecord::<(), [u8]>::to(&self.topic)
                    .partition(partition as i32)
                    .payload(&payload[..]);
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        let ack: AckFuture = Box::pin(async move {
                            match delivery.await {
                                Ok(Ok(_)) => Ok(()),
                                Ok(Err((e, _))) => Err(anyhow!("delivery failed: {e}")),
                                Err(_) => Err(anyhow!("delivery canceled")),
                            }
                        });
                        return Ok(ack);
                    }
                    // librdkafka's queue is full: that is the client's backpressure.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(anyhow!("produce: {e}")),
                }
            }
        })
    }
}

impl Backend for Kafka {
    fn setup<'a>(&'a self, run: &'a str, partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &self.bootstrap)
                .create()?;
            let name = topic(run);
            let new = NewTopic::new(&name, partitions as i32, TopicReplication::Fixed(1));
            let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            let res = admin.create_topics([&new], &opts).await?;
            for r in res {
                r.map_err(|(t, e)| anyhow!("create topic {t}: {e}"))?;
            }
            Ok(())
        })
    }

    fn sender<'a>(
        &'a self,
        run: &'a str,
        _partitions: usize,
    ) -> BoxFuture<'a, Result<Box<dyn Sender>>> {
        Box::pin(async move {
            let producer: FutureProducer = self.producer_config().create()?;
            let name = topic(run);
            // Connection and metadata outside the timed window. `fetch_metadata` blocks: off
            // the runtime's workers, so many senders can connect at once (W4). 500 senders
            // each reading the metadata of 10,000 partitions at once take longer than 30 s
            // on 2 cores (most of it the clients' parsing); the run's setup timeout bounds it.
            let (producer, name) = tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(Some(&name), Duration::from_secs(150))
                    .context("metadata")
                    .map(|_| (producer, name))
            })
            .await??;
            Ok(Box::new(KafkaSender {
                producer,
                topic: name,
            }) as Box<dyn Sender>)
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
            let mut config = ClientConfig::new();
            config
                .set("bootstrap.servers", &self.bootstrap)
                .set("group.id", "weir-bench-unused")
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "false")
                .set("fetch.wait.max.ms", "100");
            if mode == ConsumeFor::Throughput {
                for (k, v) in THROUGHPUT_CONSUMER {
                    config.set(k, v);
                }
            }
            let consumer: StreamConsumer = config.create()?;
            let name = topic(run);
            // Leaders known before the assignment: otherwise librdkafka finds no leader for
            // the offset lookup and retries it only after 500 ms.
            tokio::task::block_in_place(|| {
                consumer
                    .client()
                    .fetch_metadata(Some(&name), Duration::from_secs(30))
            })
            .context("metadata")?;
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition_offset(&name, p as i32, Offset::Beginning)?;
            }
            consumer.assign(&tpl)?;
            tokio::spawn(async move {
                let mut stream = consumer.stream();
                while let Some(m) = stream.next().await {
                    let now = now_ns();
                    match m {
                        Ok(m) => {
                            if tx.send((stamp(m.payload().unwrap_or(&[])), now)).is_err() {
                                break;
                            }
                        }
                        Err(e) => eprintln!("kafka consumer error: {e}"),
                    }
                }
            });
            Ok(())
        })
    }

    fn teardown<'a>(&'a self, run: &'a str, _partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &self.bootstrap)
                .create()?;
            let name = topic(run);
            let _ = admin.delete_topics(&[&name], &AdminOptions::new()).await;
            Ok(())
        })
    }

    fn describe(&self) -> serde_json::Value {
        let (_, v) = rdkafka::util::get_rdkafka_version();
        serde_json::json!({
            "client": format!("rdkafka (librdkafka {v})"),
            "acks": "all",
            "linger.ms": self.linger_ms,
            "enable.idempotence": false,
            "compression.type": "none",
            "consumer": "assign all partitions from the beginning, StreamConsumer; W3: fetch.max.bytes 50 MiB, max.partition.fetch.bytes 8 MiB, queued.max.messages.kbytes 256 MiB",
        })
    }
}
