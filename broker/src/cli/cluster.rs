//! `klamm cluster status`: the brokers (DescribeCluster, or Metadata where it is not
//! served), the active controller, the metadata quorum (DescribeQuorum, where served) and
//! the under-replicated and offline partitions (Metadata).

use clap::Subcommand;
use klamm_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use klamm_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest};
use serde_json::{json, Value};

use super::client::{Cluster, Target};
use super::output::{kafka_message, or_dash, Report, Table};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Brokers, controller, quorum and partition health.
    Status,
}

pub async fn run(cluster: &mut Cluster, command: ClusterCommand) -> anyhow::Result<Report> {
    match command {
        ClusterCommand::Status => status(cluster).await,
    }
}

async fn status(cluster: &mut Cluster) -> anyhow::Result<Report> {
    let metadata = cluster.metadata(None).await?;
    let mut cluster_id = metadata.cluster_id.clone().unwrap_or_default();
    let mut controller = metadata.controller_id;
    let mut brokers: Vec<(i32, String, i32, Option<String>)> =
        metadata.brokers.iter().map(|b| (b.node_id, b.host.clone(), b.port, b.rack.clone())).collect();
    if cluster.version::<DescribeClusterRequest>(Target::Any, (0, 1)).await?.is_some() {
        let reply = cluster.send(Target::Any, &DescribeClusterRequest { endpoint_type: 1, ..Default::default() }, (0, 1)).await?;
        let body = reply.body;
        if body.error_code != 0 {
            anyhow::bail!(kafka_message(body.error_code, "describe the cluster", body.error_message.as_deref()));
        }
        cluster_id = body.cluster_id;
        controller = body.controller_id;
        brokers = body.brokers.into_iter().map(|b| (b.broker_id, b.host, b.port, b.rack)).collect();
    }
    brokers.sort_by_key(|b| b.0);

    let (mut total, mut under, mut offline) = (0usize, Vec::new(), Vec::new());
    for t in &metadata.topics {
        let name = t.name.clone().unwrap_or_default();
        for p in &t.partitions {
            total += 1;
            if p.leader_id < 0 {
                offline.push(json!({"topic": name, "partition": p.partition_index}));
            } else if p.isr_nodes.len() < p.replica_nodes.len() {
                under.push(json!({"topic": name, "partition": p.partition_index, "replicas": p.replica_nodes, "isr": p.isr_nodes}));
            }
        }
    }

    let mut text = format!("Cluster: {cluster_id}\nController: {}\n\n", if controller >= 0 { controller.to_string() } else { "none".into() });
    let mut table = Table::new(&["BROKER", "HOST:PORT", "RACK", "CONTROLLER"]);
    let mut brokers_json = Vec::new();
    for (id, host, port, rack) in &brokers {
        table.row(vec![id.to_string(), format!("{host}:{port}"), or_dash(rack.clone()), if *id == controller { "yes".into() } else { "".into() }]);
        brokers_json.push(json!({"id": id, "host": host, "port": port, "rack": rack}));
    }
    text.push_str(&table.render());

    let quorum = quorum(cluster).await?;
    match &quorum {
        Some(q) => {
            text.push_str(&format!("\nMetadata quorum: leader {}  epoch {}  high watermark {}\n", q["leader"], q["epoch"], q["high_watermark"]));
            let mut t = Table::new(&["NODE", "ROLE", "LOG-END-OFFSET", "LAG", "LAST-CAUGHT-UP-MS"]);
            for (role, key) in [("voter", "voters"), ("observer", "observers")] {
                for r in q[key].as_array().into_iter().flatten() {
                    t.row(vec![
                        r["id"].to_string(),
                        role.into(),
                        r["log_end_offset"].to_string(),
                        r["lag"].to_string(),
                        r["last_caught_up_timestamp"].to_string(),
                    ]);
                }
            }
            text.push_str(&t.render());
        }
        None => text.push_str("\nMetadata quorum: not reported (the broker does not serve DescribeQuorum, or is not a quorum voter)\n"),
    }
    text.push_str(&format!("\nPartitions: {total}  under-replicated: {}  offline: {}\n", under.len(), offline.len()));
    for u in &under {
        text.push_str(&format!(
            "  under-replicated: {}-{} replicas {} isr {}\n",
            u["topic"].as_str().unwrap_or(""),
            u["partition"],
            u["replicas"],
            u["isr"]
        ));
    }
    for o in &offline {
        text.push_str(&format!("  offline: {}-{}\n", o["topic"].as_str().unwrap_or(""), o["partition"]));
    }
    let json = json!({
        "cluster_id": cluster_id,
        "controller_id": (controller >= 0).then_some(controller),
        "brokers": brokers_json,
        "quorum": quorum,
        "partitions": {"total": total, "under_replicated_count": under.len(), "offline_count": offline.len(), "under_replicated": under, "offline": offline},
    });
    Ok(Report::new(json, text))
}

/// DescribeQuorum for `__cluster_metadata`, when the broker serves it.
async fn quorum(cluster: &mut Cluster) -> anyhow::Result<Option<Value>> {
    if cluster.version::<DescribeQuorumRequest>(Target::Any, (0, 2)).await?.is_none() {
        return Ok(None);
    }
    let request = DescribeQuorumRequest {
        topics: vec![TopicData {
            topic_name: "__cluster_metadata".into(),
            partitions: vec![PartitionData { partition_index: 0, ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let body = cluster.send(Target::Any, &request, (0, 2)).await?.body;
    if body.error_code != 0 {
        anyhow::bail!(kafka_message(body.error_code, "describe the metadata quorum", body.error_message.as_deref()));
    }
    let Some(p) = body.topics.into_iter().flat_map(|t| t.partitions).next() else { return Ok(None) };
    // A broker that is not a quorum voter (Klamm answers for its own view, it cannot forward
    // to the controllers): no quorum to show, not a failure.
    if p.error_code == klamm_protocol::ErrorCode::NOT_LEADER_OR_FOLLOWER.code() {
        return Ok(None);
    }
    if p.error_code != 0 {
        anyhow::bail!(kafka_message(p.error_code, "describe the metadata quorum", p.error_message.as_deref()));
    }
    let replica = |r: &klamm_protocol::messages::describe_quorum_response::ReplicaState| {
        json!({"id": r.replica_id, "log_end_offset": r.log_end_offset, "lag": (p.high_watermark - r.log_end_offset).max(0),
               "last_fetch_timestamp": r.last_fetch_timestamp, "last_caught_up_timestamp": r.last_caught_up_timestamp})
    };
    Ok(Some(json!({
        "leader": p.leader_id, "epoch": p.leader_epoch, "high_watermark": p.high_watermark,
        "voters": p.current_voters.iter().map(replica).collect::<Vec<_>>(),
        "observers": p.observers.iter().map(replica).collect::<Vec<_>>(),
    })))
}
