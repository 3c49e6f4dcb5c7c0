//! DescribeQuorum (key 55): the metadata quorum's state, as `kafka-metadata-quorum.sh
//! describe --status` and Admin.describeMetadataQuorum read it.
//!
//! Kafka brokers forward this request to the active controller. Klamm's quorum speaks its own
//! transport, not the Kafka protocol, so there is nothing to forward to: a voter answers with
//! its own view. The leader (the active controller) knows every voter's log end; another voter
//! knows the leader, the epoch and its own end, and reports the other voters' ends as unknown
//! (-1), as Kafka does for a voter it has no fetch from. A broker that is not a voter answers
//! NOT_LEADER_OR_FOLLOWER for the partition: ask a controller.
//!
//! Offsets are the quorum's log indexes; the high watermark is the last applied (committed)
//! index.

use klamm_protocol::messages::describe_quorum_response::{DescribeQuorumResponse, PartitionData, ReplicaState, TopicData};
use klamm_protocol::messages::DescribeQuorumRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

/// The metadata log's topic name in Kafka (KRaft).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn handle(ctx: &RequestContext, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let status = ctx.broker.metadata.quorum().map(|q| q.status());
    let now = crate::clock::now_ms();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let known_topic = t.topic_name == METADATA_TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = PartitionData { partition_index: p.partition_index, leader_id: -1, leader_epoch: -1, high_watermark: -1, ..Default::default() };
                    if !known_topic || p.partition_index != 0 {
                        out.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                        out.error_message = Some(format!("the metadata quorum is {METADATA_TOPIC}-0"));
                        return out;
                    }
                    let Some(status) = &status else {
                        out.error_code = ErrorCode::NOT_LEADER_OR_FOLLOWER.code();
                        out.error_message = Some("this broker is not a metadata quorum voter; ask a controller".into());
                        return out;
                    };
                    out.leader_id = status.leader.unwrap_or(-1);
                    out.leader_epoch = i32::try_from(status.term).unwrap_or(i32::MAX);
                    out.high_watermark = i64::try_from(status.last_applied_index).unwrap_or(i64::MAX);
                    let is_leader = status.leader == Some(status.node_id);
                    let leader_end = i64::try_from(status.last_log_index).unwrap_or(i64::MAX);
                    out.current_voters = status
                        .voters
                        .iter()
                        .map(|&id| {
                            let (log_end_offset, last_fetch, caught_up) = if id == status.node_id {
                                // Kafka reports the leader's own fetch time as -1 and its
                                // caught-up time as now.
                                (leader_end, -1, if is_leader { now } else { -1 })
                            } else if is_leader {
                                match status.voter_lag.iter().find(|(v, _)| *v == id) {
                                    Some((_, lag)) => {
                                        let end = leader_end.saturating_sub(i64::try_from(*lag).unwrap_or(i64::MAX));
                                        (end, -1, if *lag == 0 { now } else { -1 })
                                    }
                                    None => (-1, -1, -1),
                                }
                            } else {
                                (-1, -1, -1)
                            };
                            ReplicaState {
                                replica_id: id,
                                log_end_offset,
                                last_fetch_timestamp: last_fetch,
                                last_caught_up_timestamp: caught_up,
                                ..Default::default()
                            }
                        })
                        .collect();
                    out
                })
                .collect();
            TopicData { topic_name: t.topic_name, partitions, ..Default::default() }
        })
        .collect();
    DescribeQuorumResponse { topics, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use klamm_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use klamm_protocol::messages::DescribeQuorumRequest;
    use klamm_protocol::{ApiKey, ErrorCode};

    use super::{handle, METADATA_TOPIC};
    use crate::handlers::dispatch_tests::{start_single_node, test_context};

    fn ask(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
        DescribeQuorumRequest {
            topics: vec![TopicData {
                topic_name: topic.to_string(),
                partitions: partitions.iter().map(|&p| PartitionData { partition_index: p, ..Default::default() }).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_metadata_partition_is_described_and_anything_else_is_unknown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let running = start_single_node(&dir, &[]).await;
        let ctx = test_context(&running.broker, ApiKey::DescribeQuorum, 1, "test");

        // The one voter of a single node leads the quorum and reports itself.
        let answer = handle(&ctx, ask(METADATA_TOPIC, &[0]));
        let p = &answer.topics[0].partitions[0];
        assert_eq!(p.error_code, ErrorCode::NONE.code(), "{:?}", p.error_message);
        assert_eq!(p.leader_id, 1);
        assert!(p.leader_epoch >= 1 && p.high_watermark >= 1, "{p:?}");
        assert_eq!(p.current_voters.iter().map(|v| v.replica_id).collect::<Vec<_>>(), vec![1]);

        // Another partition of the metadata topic, and another topic: per-partition
        // UNKNOWN_TOPIC_OR_PARTITION with a message, as Kafka's raft client answers.
        let answer = handle(&ctx, ask(METADATA_TOPIC, &[1]));
        let p = &answer.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.error_code), (1, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()));
        assert!(p.error_message.as_deref().is_some_and(|m| m.contains(METADATA_TOPIC)));
        assert!(p.current_voters.is_empty() && p.leader_id == -1);

        let answer = handle(&ctx, ask("orders_raw", &[0, 2]));
        assert_eq!(answer.topics[0].topic_name, "orders_raw");
        let codes: Vec<(i32, i16)> = answer.topics[0].partitions.iter().map(|p| (p.partition_index, p.error_code)).collect();
        let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
        assert_eq!(codes, vec![(0, unknown), (2, unknown)]);
    }
}
