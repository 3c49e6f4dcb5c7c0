//! `klamm topics list|create|describe|alter|delete`: Metadata, CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs and IncrementalAlterConfigs for topics.

use anyhow::anyhow;
use clap::Subcommand;
use klamm_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use klamm_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use klamm_protocol::messages::delete_topics_request::DeleteTopicState;
use klamm_protocol::messages::{CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest};
use serde_json::{json, Value};

use super::client::{Cluster, Target};
use super::configs::{alter_configs, describe_configs, ConfigEntry, RESOURCE_TOPIC};
use super::key_value;
use super::output::{ids, kafka_message, Report, Table};

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// List topics with their partition count and replication factor.
    List {
        /// Leave out internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Create a topic.
    Create {
        topic: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replicas per partition (default: the broker's default.replication.factor).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config cleanup.policy=compact` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Succeed without change when the topic exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Partitions with leader, replicas, ISR and offline replicas, and the configs that
    /// differ from the defaults (all topics when none is named).
    Describe { topics: Vec<String> },
    /// Add partitions or change topic configs.
    Alter {
        topic: String,
        /// The new (larger) partition count.
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a topic config (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Remove a topic config, back to the broker default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
}

pub async fn run(cluster: &mut Cluster, command: TopicsCommand) -> anyhow::Result<Report> {
    match command {
        TopicsCommand::List { exclude_internal } => list(cluster, exclude_internal).await,
        TopicsCommand::Create { topic, partitions, replication_factor, configs, if_not_exists } => {
            create(cluster, topic, partitions, replication_factor, configs, if_not_exists).await
        }
        TopicsCommand::Describe { topics } => describe(cluster, topics).await,
        TopicsCommand::Alter { topic, partitions, configs, delete_configs } => alter(cluster, topic, partitions, configs, delete_configs).await,
        TopicsCommand::Delete { topics } => delete(cluster, topics).await,
    }
}

/// Where admin requests that change metadata go: the controller the metadata names (any
/// broker forwards them in KRaft mode, but the controller saves a hop).
async fn controller(cluster: &mut Cluster) -> anyhow::Result<Target> {
    let metadata = cluster.metadata(Some(Vec::new())).await?;
    Ok(if metadata.controller_id >= 0 && cluster.addresses().contains_key(&metadata.controller_id) {
        Target::Node(metadata.controller_id)
    } else {
        Target::Any
    })
}

async fn list(cluster: &mut Cluster, exclude_internal: bool) -> anyhow::Result<Report> {
    let metadata = cluster.metadata(None).await?;
    let mut topics: Vec<_> = metadata.topics.into_iter().filter(|t| !(exclude_internal && t.is_internal)).collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR", "INTERNAL"]);
    let mut json = Vec::new();
    for t in &topics {
        let name = t.name.clone().unwrap_or_default();
        let rf = t.partitions.iter().map(|p| p.replica_nodes.len()).max().unwrap_or(0);
        table.row(vec![name.clone(), t.partitions.len().to_string(), rf.to_string(), if t.is_internal { "yes".into() } else { "".into() }]);
        json.push(json!({"name": name, "topic_id": t.topic_id.to_string(), "partitions": t.partitions.len(), "replication_factor": rf, "internal": t.is_internal}));
    }
    Ok(Report::new(Value::Array(json), table.render()))
}

async fn create(
    cluster: &mut Cluster,
    topic: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: Vec<(String, String)>,
    if_not_exists: bool,
) -> anyhow::Result<Report> {
    let target = controller(cluster).await?;
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: topic.clone(),
            num_partitions: partitions.unwrap_or(-1),
            replication_factor: replication_factor.unwrap_or(-1),
            configs: configs.iter().map(|(k, v)| CreatableTopicConfig { name: k.clone(), value: Some(v.clone()), ..Default::default() }).collect(),
            ..Default::default()
        }],
        timeout_ms: cluster.timeout().as_millis() as i32,
        validate_only: false,
        ..Default::default()
    };
    // v4+ takes -1 for "the broker's default" partitions and replication factor.
    let reply = cluster.send(target, &request, (4, 7)).await?;
    let result = reply.body.topics.into_iter().next().ok_or_else(|| anyhow!("CreateTopics answered no topic"))?;
    if result.error_code == 36 && if_not_exists {
        return Ok(Report::new(json!({"name": topic, "created": false}), format!("Topic '{topic}' already exists.\n")));
    }
    if result.error_code != 0 {
        return Err(anyhow!(kafka_message(result.error_code, &format!("create topic '{topic}'"), result.error_message.as_deref())));
    }
    let text = format!(
        "Created topic '{topic}' ({} partitions, replication factor {}).\n",
        if result.num_partitions > 0 { result.num_partitions.to_string() } else { "default".into() },
        if result.replication_factor > 0 { result.replication_factor.to_string() } else { "default".into() },
    );
    Ok(Report::new(
        json!({"name": topic, "created": true, "topic_id": result.topic_id.to_string(), "partitions": result.num_partitions, "replication_factor": result.replication_factor}),
        text,
    ))
}

/// Configs that differ from Kafka's defaults: any source but DEFAULT_CONFIG.
fn non_default(configs: &[ConfigEntry]) -> Vec<&ConfigEntry> {
    configs.iter().filter(|c| c.source != 5 && !c.is_default).collect()
}

async fn describe(cluster: &mut Cluster, names: Vec<String>) -> anyhow::Result<Report> {
    let metadata = cluster.metadata(if names.is_empty() { None } else { Some(names.clone()) }).await?;
    let mut topics = metadata.topics;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    let mut json = Vec::new();
    let mut failures = Vec::new();
    for t in topics {
        let name = t.name.clone().unwrap_or_default();
        if t.error_code != 0 {
            let what = if t.error_code == 3 { format!("topic '{name}' does not exist") } else { format!("describe topic '{name}'") };
            failures.push(kafka_message(t.error_code, &what, None));
            continue;
        }
        let configs = match describe_configs(cluster, RESOURCE_TOPIC, &name, Target::Any).await {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{e:#}"));
                Vec::new()
            }
        };
        let differing = non_default(&configs);
        let mut partitions = t.partitions;
        partitions.sort_by_key(|p| p.partition_index);
        let rf = partitions.iter().map(|p| p.replica_nodes.len()).max().unwrap_or(0);
        text.push_str(&format!(
            "Topic: {name}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {rf}  Configs: {}\n",
            t.topic_id,
            partitions.len(),
            differing.iter().map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or(""))).collect::<Vec<_>>().join(",")
        ));
        let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"]);
        let mut parts_json = Vec::new();
        for p in &partitions {
            let leader = if p.leader_id >= 0 { p.leader_id.to_string() } else { "none".into() };
            table.row(vec![name.clone(), p.partition_index.to_string(), leader, ids(&p.replica_nodes), ids(&p.isr_nodes), ids(&p.offline_replicas)]);
            parts_json.push(json!({
                "partition": p.partition_index, "leader": (p.leader_id >= 0).then_some(p.leader_id), "leader_epoch": p.leader_epoch,
                "replicas": p.replica_nodes, "isr": p.isr_nodes, "offline_replicas": p.offline_replicas,
                "error": (p.error_code != 0).then(|| klamm_protocol::ErrorCode(p.error_code).name()),
            }));
        }
        text.push_str(&table.render());
        text.push('\n');
        let configs_json: serde_json::Map<String, Value> = differing.iter().map(|c| (c.name.clone(), json!(c.value))).collect();
        let sources_json: serde_json::Map<String, Value> = differing.iter().map(|c| (c.name.clone(), json!(c.source_name()))).collect();
        json.push(json!({
            "name": name, "topic_id": t.topic_id.to_string(), "internal": t.is_internal, "replication_factor": rf,
            "partitions": parts_json, "configs": configs_json, "config_sources": sources_json,
        }));
    }
    let mut report = Report::new(Value::Array(json), text);
    report.failures = failures;
    Ok(report)
}

async fn alter(
    cluster: &mut Cluster,
    topic: String,
    partitions: Option<i32>,
    set: Vec<(String, String)>,
    delete: Vec<String>,
) -> anyhow::Result<Report> {
    if partitions.is_none() && set.is_empty() && delete.is_empty() {
        anyhow::bail!("nothing to change: give --partitions, --config or --delete-config");
    }
    let mut text = String::new();
    let mut json = serde_json::Map::new();
    json.insert("name".into(), json!(topic));
    if let Some(count) = partitions {
        let target = controller(cluster).await?;
        let request = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic { name: topic.clone(), count, assignments: None, ..Default::default() }],
            timeout_ms: cluster.timeout().as_millis() as i32,
            validate_only: false,
            ..Default::default()
        };
        let reply = cluster.send(target, &request, (0, 3)).await?;
        for r in reply.body.results {
            if r.error_code != 0 {
                return Err(anyhow!(kafka_message(
                    r.error_code,
                    &format!("set the partition count of '{topic}' to {count}"),
                    r.error_message.as_deref()
                )));
            }
        }
        text.push_str(&format!("Topic '{topic}' now has {count} partitions.\n"));
        json.insert("partitions".into(), json!(count));
    }
    if !set.is_empty() || !delete.is_empty() {
        alter_configs(cluster, RESOURCE_TOPIC, &topic, &set, &delete, Target::Any).await?;
        for (k, v) in &set {
            text.push_str(&format!("Set {k}={v} on topic '{topic}'.\n"));
        }
        for k in &delete {
            text.push_str(&format!("Removed {k} from topic '{topic}'.\n"));
        }
        json.insert("set".into(), set.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>().into());
        json.insert("deleted".into(), json!(delete));
    }
    Ok(Report::new(Value::Object(json), text))
}

async fn delete(cluster: &mut Cluster, topics: Vec<String>) -> anyhow::Result<Report> {
    let target = controller(cluster).await?;
    let request = DeleteTopicsRequest {
        topics: topics.iter().map(|t| DeleteTopicState { name: Some(t.clone()), ..Default::default() }).collect(),
        topic_names: topics.clone(),
        timeout_ms: cluster.timeout().as_millis() as i32,
        ..Default::default()
    };
    let reply = cluster.send(target, &request, (1, 6)).await?;
    let mut table = Table::new(&["TOPIC", "RESULT"]);
    let mut json = Vec::new();
    let mut failures = Vec::new();
    for r in reply.body.responses {
        let name = r.name.unwrap_or_default();
        if r.error_code == 0 {
            table.row(vec![name.clone(), "deleted".into()]);
            json.push(json!({"name": name, "deleted": true}));
        } else {
            let code = klamm_protocol::ErrorCode(r.error_code).name();
            table.row(vec![name.clone(), code.into()]);
            json.push(json!({"name": name, "deleted": false, "error": code}));
            failures.push(kafka_message(r.error_code, &format!("delete topic '{name}'"), r.error_message.as_deref()));
        }
    }
    let mut report = Report::new(Value::Array(json), table.render());
    report.failures = failures;
    Ok(report)
}
