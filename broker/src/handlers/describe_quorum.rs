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
