//! The small JSON documents the ops page polls: `/api/cluster` and `/api/topics`, each built
//! from this node's metadata image and local state. `/api/groups`, which must ask the other
//! brokers, is in `groups.rs`.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use crate::metrics::scrape;
use crate::server::Broker;

pub fn cluster(broker: &Broker) -> Value {
    let image = broker.metadata.image();
    let q = scrape::quorum_view(broker);
    let brokers: Vec<Value> = image
        .brokers
        .values()
        .map(|b| {
            let endpoint = b.endpoints.first().map(|e| format!("{}:{}", e.host, e.port)).unwrap_or_default();
            json!({ "id": b.node_id, "endpoint": endpoint, "rack": b.rack, "fenced": b.fenced })
        })
        .collect();
    let m = &broker.metrics;
    json!({
        "node_id": broker.node_id,
        "cluster_id": image.cluster_id,
        "controller": q.leader,
        "brokers": brokers,
        "quorum": {
            "leader": q.leader,
            "epoch": q.epoch,
            "committed_index": q.committed_index,
            "log_end_index": q.log_end_index,
            "voters": q.voters,
            "voter_lag": q.voter_lag.iter().map(|(v, lag)| json!({"voter": v, "lag": lag})).collect::<Vec<_>>(),
        },
        // Counters of this broker; the page turns them into rates.
        "counters": {
            "bytes_in": m.bytes_in.load(Relaxed),
            "messages_in": m.messages_in.load(Relaxed),
            "bytes_out": m.bytes_out.load(Relaxed),
            "produce_requests": m.api(0).map(|a| a.requests.load(Relaxed)).unwrap_or(0),
            "fetch_requests": m.api(1).map(|a| a.requests.load(Relaxed)).unwrap_or(0),
        },
    })
}

pub fn topics(broker: &Broker) -> Value {
    let image = broker.metadata.image();
    let topics: Vec<Value> = image
        .topics
        .values()
        .map(|t| {
            let partitions: Vec<Value> = t
                .partitions
                .values()
                .map(|p| {
                    let local = (p.leader == broker.node_id).then(|| broker.replicas.get(&t.name, p.partition)).flatten();
                    json!({
                        "partition": p.partition,
                        "leader": p.leader,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "under_replicated": p.isr.len() < p.replicas.len(),
                        "offline": p.leader < 0,
                        "end_offset": local.map(|l| l.view().high_watermark),
                    })
                })
                .collect();
            json!({ "name": t.name, "internal": t.name.starts_with("__"), "partitions": partitions })
        })
        .collect();
    json!({ "topics": topics })
}
