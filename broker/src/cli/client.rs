//! The Kafka client the `klamm` subcommands share: connect to a bootstrap server (with the
//! `--command-config` security), learn the APIs and versions each broker serves
//! (ApiVersions) and the brokers of the cluster (Metadata), and send requests to the
//! bootstrap broker, a given node, the partition leaders or a group's coordinator at the
//! highest version both sides know. Built on the broker's own connection
//! ([`KafkaClient`]: framing, TLS, SASL) and the protocol crate's messages.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use klamm_broker::net::client::{ClientError, KafkaClient};
use klamm_broker::security::client::ClientSecurity;
use klamm_protocol::messages::metadata_request::MetadataRequestTopic;
use klamm_protocol::messages::{ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse};
use klamm_protocol::{Decode, ErrorCode, Request};

use super::output::kafka_error;

/// How to reach the cluster.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub bootstrap: Vec<String>,
    pub security: ClientSecurity,
    pub client_id: String,
    /// Bound on every connect, handshake and request.
    pub timeout: Duration,
}

/// One connection and the API versions its broker serves.
struct Connection {
    client: KafkaClient,
    versions: HashMap<i16, (i16, i16)>,
}

/// Which broker a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The bootstrap broker the session started with.
    Any,
    /// A node id from the cluster metadata.
    Node(i32),
}

/// A session with the cluster: lazily opened connections by node.
pub struct Cluster {
    options: ConnectOptions,
    bootstrap: Connection,
    nodes: HashMap<i32, Connection>,
    /// `node id -> host:port`, from the last Metadata.
    addresses: BTreeMap<i32, String>,
}

/// A reply and the version it was exchanged at (some replies change shape by version).
pub struct Reply<T> {
    pub body: T,
    pub version: i16,
}

fn describe(e: ClientError, addr: &str, timeout: Duration) -> anyhow::Error {
    match e {
        ClientError::Timeout => anyhow!("broker {addr} did not answer within {} ms", timeout.as_millis()),
        ClientError::Io(e) => anyhow!("broker {addr}: {e}"),
        ClientError::Protocol(m) => anyhow!("broker {addr}: {m}"),
    }
}

async fn open(addr: &str, options: &ConnectOptions) -> anyhow::Result<Connection> {
    let mut client = KafkaClient::connect_secured(addr, &options.client_id, options.timeout, &options.security)
        .await
        .map_err(|e| describe(e, addr, options.timeout))?;
    // v3 first (flexible; what current clients send); a broker that predates it answers
    // UNSUPPORTED_VERSION in the v0 layout, so ask again at v0.
    let request = ApiVersionsRequest {
        client_software_name: "klamm-cli".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let mut response = client.send(&request, 3, options.timeout).await;
    if matches!(&response, Ok(r) if r.error_code == ErrorCode::UNSUPPORTED_VERSION.0) || matches!(&response, Err(ClientError::Protocol(_))) {
        client = KafkaClient::connect_secured(addr, &options.client_id, options.timeout, &options.security)
            .await
            .map_err(|e| describe(e, addr, options.timeout))?;
        response = client.send(&request, 0, options.timeout).await;
    }
    let response = response.map_err(|e| describe(e, addr, options.timeout))?;
    if response.error_code != 0 {
        return Err(kafka_error(response.error_code, &format!("ApiVersions to {addr}"), None));
    }
    let versions = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
    Ok(Connection { client, versions })
}

impl Cluster {
    /// Connects to the first bootstrap server that answers and reads the cluster's brokers.
    pub async fn connect(options: ConnectOptions) -> anyhow::Result<Cluster> {
        let started = Instant::now();
        let mut failures = Vec::new();
        for addr in &options.bootstrap {
            match open(addr, &options).await {
                Ok(bootstrap) => {
                    let mut cluster = Cluster { options, bootstrap, nodes: HashMap::new(), addresses: BTreeMap::new() };
                    cluster.metadata(Some(Vec::new())).await?;
                    return Ok(cluster);
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!(
            "could not reach any bootstrap server after {:.1} s: {}; check --bootstrap-server and that the broker runs (and --command-config for a secured listener)",
            started.elapsed().as_secs_f64(),
            failures.join("; ")
        )
    }

    pub fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// The node ids and addresses from the last Metadata.
    pub fn addresses(&self) -> &BTreeMap<i32, String> {
        &self.addresses
    }

    async fn connection(&mut self, target: Target) -> anyhow::Result<&mut Connection> {
        let node = match target {
            Target::Any => return Ok(&mut self.bootstrap),
            Target::Node(node) => node,
        };
        if !self.nodes.contains_key(&node) {
            let addr = self.addresses.get(&node).cloned().ok_or_else(|| anyhow!("node {node} is not in the cluster metadata"))?;
            let connection = open(&addr, &self.options).await.with_context(|| format!("connect to node {node}"))?;
            self.nodes.insert(node, connection);
        }
        Ok(self.nodes.get_mut(&node).expect("inserted above"))
    }

    /// The version to use for `R` on `target`: the highest both the broker and this client
    /// (`ours`, the range whose fields the caller fills and reads) support.
    pub async fn version<R: Request>(&mut self, target: Target, ours: (i16, i16)) -> anyhow::Result<Option<i16>> {
        let connection = self.connection(target).await?;
        Ok(connection.versions.get(&(R::API_KEY as i16)).and_then(|&(min, max)| {
            let v = max.min(ours.1);
            (v >= min.max(ours.0)).then_some(v)
        }))
    }

    /// Sends `request` to `target` at the best common version in `ours`.
    pub async fn send<R: Request>(&mut self, target: Target, request: &R, ours: (i16, i16)) -> anyhow::Result<Reply<R::Response>>
    where
        R::Response: Decode,
    {
        let api = format!("{:?}", R::API_KEY);
        let version = self
            .version::<R>(target, ours)
            .await?
            .ok_or_else(|| anyhow!("the broker does not serve {api} at a version this tool speaks ({}..={})", ours.0, ours.1))?;
        let timeout = self.options.timeout;
        let addr = match target {
            Target::Any => "bootstrap".to_string(),
            Target::Node(n) => self.addresses.get(&n).cloned().unwrap_or_default(),
        };
        let connection = self.connection(target).await?;
        match connection.client.send(request, version, timeout).await {
            Ok(body) => Ok(Reply { body, version }),
            Err(e) => {
                // The connection is in an unknown state: open a new one next time.
                if let Target::Node(n) = target {
                    self.nodes.remove(&n);
                }
                Err(describe(e, &addr, timeout).context(format!("{api} request")))
            }
        }
    }

    /// Sends `request` without waiting for an answer (Produce with `acks=0`).
    pub async fn send_without_reply<R: Request>(&mut self, target: Target, request: &R, ours: (i16, i16)) -> anyhow::Result<()> {
        let api = format!("{:?}", R::API_KEY);
        let version =
            self.version::<R>(target, ours).await?.ok_or_else(|| anyhow!("the broker does not serve {api} at a version this tool speaks"))?;
        let timeout = self.options.timeout;
        let connection = self.connection(target).await?;
        connection
            .client
            .send_without_response(request, version, timeout)
            .await
            .map_err(|e| describe(e, "broker", timeout).context(format!("{api} request")))
    }

    /// Metadata for `topics` (`None`: all topics; `Some([])`: none, brokers only). Refreshes
    /// the node addresses.
    pub async fn metadata(&mut self, topics: Option<Vec<String>>) -> anyhow::Result<MetadataResponse> {
        let request = MetadataRequest {
            topics: topics.map(|names| names.into_iter().map(|n| MetadataRequestTopic { name: Some(n), ..Default::default() }).collect()),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        // v4+ has allow_auto_topic_creation (so describing never creates a topic); 12 is the newest.
        let reply = self.send(Target::Any, &request, (4, 12)).await?;
        self.addresses = reply.body.brokers.iter().map(|b| (b.node_id, format!("{}:{}", b.host, b.port))).collect();
        Ok(reply.body)
    }

    /// The node coordinating `group`, retried while the coordinator is still loading.
    pub async fn coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let request = FindCoordinatorRequest { key: group.to_string(), key_type: 0, coordinator_keys: vec![group.to_string()], ..Default::default() };
        let deadline = Instant::now() + self.options.timeout;
        loop {
            let reply = self.send(Target::Any, &request, (0, 4)).await?;
            let (code, message, node, host, port) = if reply.version >= 4 {
                let c = reply.body.coordinators.into_iter().next().ok_or_else(|| anyhow!("FindCoordinator answered no coordinator"))?;
                (c.error_code, c.error_message, c.node_id, c.host, c.port)
            } else {
                let b = reply.body;
                (b.error_code, b.error_message, b.node_id, b.host, b.port)
            };
            if code == 0 {
                self.addresses.insert(node, format!("{host}:{port}"));
                return Ok(node);
            }
            let retriable =
                [ErrorCode::COORDINATOR_NOT_AVAILABLE.0, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0, ErrorCode::NOT_COORDINATOR.0].contains(&code);
            if !retriable || Instant::now() >= deadline {
                return Err(kafka_error(code, &format!("find the coordinator of group '{group}'"), message.as_deref()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `host:port[,host:port]` as a list; a port is required.
pub fn parse_bootstrap(text: &str) -> anyhow::Result<Vec<String>> {
    let servers: Vec<String> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if servers.is_empty() {
        bail!("--bootstrap-server is empty");
    }
    for s in &servers {
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => bail!("--bootstrap-server {s:?}: expected host:port"),
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists() {
        assert_eq!(parse_bootstrap("a:1, b:2").unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(parse_bootstrap("[::1]:9092").unwrap(), vec!["[::1]:9092"]);
        assert!(parse_bootstrap("").is_err());
        assert!(parse_bootstrap("localhost").is_err());
        assert!(parse_bootstrap("h:99999").is_err());
    }
}

/// A topic partition.
pub type Tp = (String, i32);

/// What ListOffsets asks for: the earliest, the latest, or the first offset at or after a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

impl Cluster {
    /// The leader of each partition of `topics` (`-1` while it has none); an unknown topic
    /// is an UNKNOWN_TOPIC_OR_PARTITION error.
    pub async fn leaders(&mut self, topics: &[String]) -> anyhow::Result<BTreeMap<Tp, i32>> {
        let metadata = self.metadata(Some(topics.to_vec())).await?;
        let mut leaders = BTreeMap::new();
        for t in metadata.topics {
            let name = t.name.unwrap_or_default();
            if t.error_code != 0 {
                return Err(kafka_error(t.error_code, &format!("topic '{name}'"), None));
            }
            for p in t.partitions {
                leaders.insert((name.clone(), p.partition_index), p.leader_id);
            }
        }
        Ok(leaders)
    }

    /// ListOffsets for `partitions`, sent to their leaders. `None` for a time past the last
    /// record (Kafka answers offset -1 then).
    pub async fn list_offsets(&mut self, partitions: &[Tp], spec: OffsetSpec) -> anyhow::Result<BTreeMap<Tp, Option<i64>>> {
        use klamm_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        use klamm_protocol::messages::ListOffsetsRequest;
        let mut topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
        topics.sort();
        topics.dedup();
        let leaders = self.leaders(&topics).await?;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for tp in partitions {
            let leader = *leaders.get(tp).ok_or_else(|| kafka_error(3, &format!("partition {}-{} does not exist", tp.0, tp.1), None))?;
            if leader < 0 {
                return Err(kafka_error(5, &format!("partition {}-{} has no leader", tp.0, tp.1), None));
            }
            by_leader.entry(leader).or_default().entry(tp.0.clone()).or_default().push(tp.1);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = ListOffsetsRequest {
                replica_id: -1,
                isolation_level: 0,
                topics: topics
                    .into_iter()
                    .map(|(name, ps)| ListOffsetsTopic {
                        name,
                        partitions: ps
                            .into_iter()
                            .map(|p| ListOffsetsPartition {
                                partition_index: p,
                                current_leader_epoch: -1,
                                timestamp: spec.timestamp(),
                                max_num_offsets: 1,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                timeout_ms: self.timeout().as_millis() as i32,
                ..Default::default()
            };
            let reply = self.send(Target::Node(leader), &request, (1, 7)).await?;
            for t in reply.body.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(kafka_error(p.error_code, &format!("list offsets of {}-{}", t.name, p.partition_index), None));
                    }
                    out.insert((t.name.clone(), p.partition_index), (p.offset >= 0).then_some(p.offset));
                }
            }
        }
        Ok(out)
    }
}
