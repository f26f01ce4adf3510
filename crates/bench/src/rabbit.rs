//! RabbitMQ through `lapin` (AMQP 0-9-1): one durable queue per partition (quorum by
//! default, or classic), persistent messages (delivery_mode 2), publisher confirms. RabbitMQ
//! confirms a persistent message on a durable queue once it is fsync'd (classic: message
//! store fsync; quorum: Raft log fsync).

use anyhow::{anyhow, Result};
use bytes::Bytes;
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::mpsc;

use crate::backend::{
    forward_received, AckFuture, Backend, BoxFuture, ConsumeFor, Received, Sender,
};

pub struct Rabbit {
    pub uri: String,
    /// "quorum" or "classic".
    pub queue_type: String,
}

fn queue(run: &str, p: usize) -> String {
    format!("bench-{run}-{p}")
}

async fn channel(uri: &str) -> Result<(Connection, Channel)> {
    let conn = Connection::connect(uri, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    Ok((conn, ch))
}

struct RabbitSender {
    _conn: Connection,
    ch: Channel,
    queues: Vec<String>,
}

impl Sender for RabbitSender {
    fn send(&self, partition: usize, payload: Bytes) -> BoxFuture<'_, Result<AckFuture>> {
        Box::pin(async move {
            let confirm = self
                .ch
                .basic_publish(
                    "",
                    &self.queues[partition],
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            let ack: AckFuture = Box::pin(async move {
                let c = confirm.await?;
                if c.is_ack() {
                    Ok(())
                } else {
                    Err(anyhow!("publish not confirmed: {c:?}"))
                }
            });
            Ok(ack)
        })
    }
}

impl Backend for Rabbit {
    fn setup<'a>(&'a self, run: &'a str, partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            use futures_util::{StreamExt, TryStreamExt};
            let conn = Connection::connect(&self.uri, ConnectionProperties::default()).await?;
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(self.queue_type.clone().into()),
            );
            // Up to 8 declarations in flight (one channel each), so creating 1,000 queues
            // (W4) waits on the server's work, not on one round trip after the other.
            let mut channels = Vec::new();
            for _ in 0..partitions.min(8) {
                channels.push(conn.create_channel().await?);
            }
            futures_util::stream::iter(0..partitions)
                .map(|p| {
                    let ch = channels[p % channels.len()].clone();
                    let args = args.clone();
                    async move {
                        let options = QueueDeclareOptions {
                            durable: true,
                            ..Default::default()
                        };
                        ch.queue_declare(&queue(run, p), options, args).await
                    }
                })
                .buffer_unordered(channels.len())
                .try_collect::<Vec<_>>()
                .await?;
            let _ = conn.close(200, "ok").await;
            Ok(())
        })
    }

    fn sender<'a>(
        &'a self,
        run: &'a str,
        partitions: usize,
    ) -> BoxFuture<'a, Result<Box<dyn Sender>>> {
        Box::pin(async move {
            let (conn, ch) = channel(&self.uri).await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let queues = (0..partitions).map(|p| queue(run, p)).collect();
            Ok(Box::new(RabbitSender {
                _conn: conn,
                ch,
                queues,
            }) as Box<dyn Sender>)
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
            // The same consumer for W2 and W3: no_ack (automatic acknowledgement), so the
            // queue pushes as fast as the connection takes it; basic.qos does not limit a
            // no_ack consumer, it is set only in case someone switches acks on.
            let (conn, ch) = channel(&self.uri).await?;
            ch.basic_qos(10_000, BasicQosOptions::default()).await?;
            for p in 0..partitions {
                let consumer = ch
                    .basic_consume(
                        &queue(run, p),
                        &format!("bench-{p}"),
                        BasicConsumeOptions {
                            no_ack: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                forward_received("rabbitmq", consumer, tx.clone(), |d: &Delivery| &d.data);
            }
            // The connection lives as long as the process (consumers hold the channel).
            std::mem::forget(conn);
            Ok(())
        })
    }

    fn teardown<'a>(&'a self, run: &'a str, partitions: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (conn, ch) = channel(&self.uri).await?;
            for p in 0..partitions {
                let _ = ch
                    .queue_delete(&queue(run, p), QueueDeleteOptions::default())
                    .await;
            }
            let _ = conn.close(200, "ok").await;
            Ok(())
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "client": "lapin 2.5 (AMQP 0-9-1)",
            "queue": format!("durable {} queue per partition", self.queue_type),
            "delivery_mode": 2,
            "publisher_confirms": true,
            "consumer": "one connection and channel, basic.consume per queue, no_ack (prefetch does not apply)",
        })
    }
}
