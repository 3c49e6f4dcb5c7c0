//! `/api/groups` across the cluster: every consumer group with its coordinator, members and
//! lag, whichever broker coordinates it.
//!
//! A group's state and offsets live only with its coordinator, so this broker answers for its
//! own groups from memory and asks every other live broker over the Kafka protocol, on the
//! inter-broker listener with its security, as an admin client would: ListGroups, then
//! DescribeGroups and OffsetFetch (the batched v8 form) for what that broker coordinates.
//! End offsets come from the partition leaders ([`scrape::end_offsets`]). Brokers are asked
//! concurrently, each bounded by [`REMOTE_TIMEOUT`]; one that does not answer is named in
//! `unreachable` and the page shows the rest.
//!
//! `/metrics` stays per broker (each exports the groups it coordinates, so a Prometheus
//! scraping every broker counts each group once); this view is for a person.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use klamm_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use klamm_protocol::messages::{DescribeGroupsRequest, ListGroupsRequest, OffsetFetchRequest};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::metrics::scrape::{self, GroupLag, PartitionLag};
use crate::net::client::KafkaClient;
use crate::server::Broker;

/// How long one other broker may take to answer all three requests.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(3);
/// Versions asked for: every Klamm and every Kafka 3.x+ broker serves them.
const LIST_GROUPS_VERSION: i16 = 4;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
const OFFSET_FETCH_VERSION: i16 = 8;

/// The groups of the whole cluster, in the shape the ops page draws.
pub async fn cluster_groups(broker: &Arc<Broker>) -> Value {
    let image = broker.metadata.image();
    let mut asks = JoinSet::new();
    for b in image.brokers.values().filter(|b| b.node_id != broker.node_id && !b.fenced) {
        let (broker, image, id) = (broker.clone(), image.clone(), b.node_id);
        asks.spawn(async move {
            let asked = tokio::time::timeout(REMOTE_TIMEOUT, remote_groups(&broker, &image, id)).await;
            (id, asked.ok().flatten())
        });
    }
    let mut by_coordinator: BTreeMap<i32, Vec<GroupLag>> = BTreeMap::new();
    by_coordinator.insert(broker.node_id, scrape::group_lags(broker).await);
    let mut unreachable = Vec::new();
    while let Some(joined) = asks.join_next().await {
        match joined {
            Ok((id, Some(groups))) => {
                by_coordinator.insert(id, groups);
            }
            Ok((id, None)) => unreachable.push(id),
            Err(e) => tracing::warn!(error = %e, "asking a broker for its groups failed"),
        }
    }
    unreachable.sort_unstable();

    // Remote groups still need their end offsets (local ones have them).
    let wanted: BTreeSet<(String, i32)> = by_coordinator
        .iter()
        .filter(|(id, _)| **id != broker.node_id)
        .flat_map(|(_, groups)| groups.iter().flat_map(|g| g.partitions.iter().map(|p| (p.topic.clone(), p.partition))))
        .collect();
    let ends = scrape::end_offsets(broker, &image, &wanted).await;

    // A group that moved between coordinators while we asked shows once, at the first seen.
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (coordinator, groups) in by_coordinator {
        for mut g in groups {
            if !seen.insert(g.group.clone()) {
                continue;
            }
            if coordinator != broker.node_id {
                for p in &mut g.partitions {
                    p.end = ends.get(&(p.topic.clone(), p.partition)).copied();
                }
            }
            out.push(group_json(&g, coordinator));
        }
    }
    out.sort_by(|a, b| a["group"].as_str().cmp(&b["group"].as_str()));
    json!({ "answered_by": broker.node_id, "unreachable": unreachable, "groups": out })
}

fn group_json(g: &GroupLag, coordinator: i32) -> Value {
    let total: i64 = g.partitions.iter().filter_map(|p| p.lag()).sum();
    json!({
        "group": g.group,
        "coordinator": coordinator,
        "state": g.state,
        "members": g.members.iter().map(|(id, client, host)| json!({"member_id": id, "client_id": client, "host": host})).collect::<Vec<_>>(),
        "total_lag": total,
        "partitions": g.partitions.iter().map(|p| json!({
            "topic": p.topic, "partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag(),
        })).collect::<Vec<_>>(),
    })
}

/// The groups broker `id` coordinates, with members and committed offsets (ends unknown yet);
/// None if it cannot be reached or answers with an error.
async fn remote_groups(broker: &Broker, image: &klamm_raft::MetadataImage, id: i32) -> Option<Vec<GroupLag>> {
    let addr = crate::metadata::broker_address(image, &broker.config.inter_broker_listener_name, id)?;
    let client_id = format!("klamm-ops-{}", broker.node_id);
    let mut client = KafkaClient::connect_secured(&addr, &client_id, REMOTE_TIMEOUT, &broker.inter_broker_security).await.ok()?;

    let listed = client.send(&ListGroupsRequest::default(), LIST_GROUPS_VERSION, REMOTE_TIMEOUT).await.ok()?;
    if listed.error_code != 0 {
        tracing::debug!(broker = id, error = listed.error_code, "ListGroups for the ops page failed");
        return None;
    }
    if listed.groups.is_empty() {
        return Some(Vec::new());
    }
    let ids: Vec<String> = listed.groups.iter().map(|g| g.group_id.clone()).collect();

    let described = client
        .send(&DescribeGroupsRequest { groups: ids.clone(), ..Default::default() }, DESCRIBE_GROUPS_VERSION, REMOTE_TIMEOUT)
        .await
        .ok()?;
    let offsets = client
        .send(
            &OffsetFetchRequest {
                groups: ids.iter().map(|g| OffsetFetchRequestGroup { group_id: g.clone(), topics: None, ..Default::default() }).collect(),
                ..Default::default()
            },
            OFFSET_FETCH_VERSION,
            REMOTE_TIMEOUT,
        )
        .await
        .ok()?;

    let mut groups: BTreeMap<String, GroupLag> = listed
        .groups
        .into_iter()
        .map(|g| {
            let lag = GroupLag { group: g.group_id.clone(), state: g.group_state, members: Vec::new(), partitions: Vec::new() };
            (g.group_id, lag)
        })
        .collect();
    for d in described.groups {
        if let Some(g) = groups.get_mut(&d.group_id).filter(|_| d.error_code == 0) {
            g.state = d.group_state;
            g.members = d.members.into_iter().map(|m| (m.member_id, m.client_id, m.client_host)).collect();
        }
    }
    for fetched in offsets.groups {
        let Some(g) = groups.get_mut(&fetched.group_id).filter(|_| fetched.error_code == 0) else { continue };
        for t in fetched.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    g.partitions.push(PartitionLag { topic: t.name.clone(), partition: p.partition_index, committed: p.committed_offset, end: None });
                }
            }
        }
    }
    Some(groups.into_values().collect())
}
