//! A client for a whole cluster: bootstrap, cluster metadata, one connection per broker,
//! coordinator lookup.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::conn::Connection;
use crate::error::{check, Error, Result};

/// Where and how to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// HOST:PORT of the brokers to bootstrap from, tried in order.
    pub bootstrap: Vec<String>,
    /// Sent in every request header; brokers log it and build group member ids from it.
    pub client_id: String,
    /// How long a request (or a connect) may go unanswered before it is an error.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// From a comma-separated `HOST:PORT[,HOST:PORT]` list.
    pub fn new(brokers: &str) -> Result<ClientConfig> {
        let bootstrap: Vec<String> = brokers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if bootstrap.is_empty() {
            return Err(Error::Invalid("no brokers given".into()));
        }
        for b in &bootstrap {
            match b.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "broker address {b:?} is not HOST:PORT"
                    )))
                }
            }
        }
        Ok(ClientConfig {
            bootstrap,
            client_id: "weir-cli".into(),
            request_timeout: Duration::from_secs(30),
        })
    }
}

/// A cluster seen from one process: metadata, broker addresses and one connection per
/// broker, opened on first use.
pub struct Client {
    config: ClientConfig,
    /// The connection to whichever bootstrap broker answered, for cluster-wide calls.
    any: Option<Connection>,
    /// Connections by node id, for calls that must reach a partition leader or a coordinator.
    nodes: HashMap<i32, Connection>,
    /// node id -> HOST:PORT, from the last Metadata or FindCoordinator.
    broker_addrs: HashMap<i32, String>,
}

impl Client {
    /// A client that has not connected yet: the first call bootstraps.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config,
            any: None,
            nodes: HashMap::new(),
            broker_addrs: HashMap::new(),
        }
    }

    /// The configuration it was made with (callers reuse the timeout and client id).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A connection to any broker (the first bootstrap address that answers).
    pub async fn any(&mut self) -> Result<&mut Connection> {
        if self.any.is_none() {
            let mut failures = Vec::new();
            for addr in &self.config.bootstrap {
                match Connection::connect(addr, &self.config.client_id, self.config.request_timeout)
                    .await
                {
                    Ok(c) => {
                        self.any = Some(c);
                        break;
                    }
                    Err(e) => failures.push(e),
                }
            }
            if self.any.is_none() {
                if failures.len() == 1 {
                    return Err(failures.pop().expect("one failure"));
                }
                return Err(Error::NoBrokerReachable {
                    tried: failures
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
        }
        Ok(self.any.as_mut().expect("connected above"))
    }

    /// A connection to broker `node_id` (its address from the last Metadata).
    pub async fn node(&mut self, node_id: i32) -> Result<&mut Connection> {
        if !self.nodes.contains_key(&node_id) {
            if !self.broker_addrs.contains_key(&node_id) {
                self.metadata(Some(&[]), false).await?;
            }
            let addr = self.broker_addrs.get(&node_id).cloned().ok_or_else(|| {
                Error::Invalid(format!("broker {node_id} is not in the cluster metadata"))
            })?;
            let conn =
                Connection::connect(&addr, &self.config.client_id, self.config.request_timeout)
                    .await?;
            self.nodes.insert(node_id, conn);
        }
        Ok(self.nodes.get_mut(&node_id).expect("inserted above"))
    }

    /// Close every connection (e.g. after a request was abandoned mid-flight, leaving a
    /// response owed); the next call reconnects.
    pub fn reset(&mut self) {
        self.any = None;
        self.nodes.clear();
    }

    /// Forget a broken connection so the next call reconnects.
    pub fn drop_node(&mut self, node_id: i32) {
        self.nodes.remove(&node_id);
    }

    /// Send `req` to any broker.
    pub async fn call_any<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        self.any().await?.call(req).await
    }

    /// Send `req` to broker `node_id`.
    pub async fn call_node<R: Request>(&mut self, node_id: i32, req: &R) -> Result<R::Response> {
        self.node(node_id).await?.call(req).await
    }

    /// Metadata for `topics` (None = every topic, empty = brokers only). Remembers the
    /// broker addresses. Topic-level errors are left in the response for the caller.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse> {
        let conn = self.any().await?;
        let version = conn.version_of::<MetadataRequest>()?;
        let topics = match topics {
            // Metadata v0 has no way to ask for "no topics": an empty list means all.
            Some([]) if version == 0 => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect(),
            ),
            None => None,
        };
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let resp = conn.call(&req).await?;
        for b in &resp.brokers {
            self.broker_addrs
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        Ok(resp)
    }

    /// The node id of the group coordinator for `group` (FindCoordinator, key type 0).
    pub async fn group_coordinator(&mut self, group: &str) -> Result<i32> {
        let mut last = None;
        // COORDINATOR_NOT_AVAILABLE while the broker loads __consumer_offsets: retry briefly.
        for attempt in 0..20 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let conn = self.any().await?;
            let version = conn.version_of::<FindCoordinatorRequest>()?;
            let key = StrBytes::from_string(group.to_string());
            let req = if version >= 4 {
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![key])
            } else {
                FindCoordinatorRequest::default()
                    .with_key(key)
                    .with_key_type(0)
            };
            let resp = conn.call(&req).await?;
            let (code, msg, node, host, port) = if version >= 4 {
                let c = resp.coordinators.first().ok_or_else(|| Error::Protocol {
                    addr: conn.addr().to_string(),
                    detail: "FindCoordinator answered no coordinator".into(),
                })?;
                (
                    c.error_code,
                    c.error_message.clone(),
                    c.node_id,
                    c.host.clone(),
                    c.port,
                )
            } else {
                (
                    resp.error_code,
                    resp.error_message.clone(),
                    resp.node_id,
                    resp.host.clone(),
                    resp.port,
                )
            };
            match check(
                code,
                || format!("finding the coordinator of group {group:?}"),
                msg.map(|m| m.to_string()),
            ) {
                Ok(()) => {
                    let BrokerId(id) = node;
                    let addr = format!("{}:{}", host.as_str(), port);
                    if self.broker_addrs.get(&id) != Some(&addr) {
                        self.nodes.remove(&id);
                        self.broker_addrs.insert(id, addr);
                    }
                    return Ok(id);
                }
                Err(e) if matches!(code, 14 | 15) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("retried at least once"))
    }
}
