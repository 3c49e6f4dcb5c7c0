//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets` partition
//! to the transaction, so TxnOffsetCommit's offsets are committed or dropped
//! with it by the marker (Kafka's `handleAddOffsetsToTxnRequest`).

use std::collections::BTreeSet;

use klamm_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use klamm_protocol::messages::AddOffsetsToTxnRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::group::OFFSETS_TOPIC;

pub async fn handle(ctx: &RequestContext, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let broker = &ctx.broker;
    let e = if request.transactional_id.is_empty() {
        ErrorCode::INVALID_REQUEST
    } else {
        let partition = broker.groups.partition_for_image(&broker.metadata.image(), &request.group_id);
        let partitions = BTreeSet::from([crate::topic_partition::TopicPartition::new(OFFSETS_TOPIC, partition)]);
        broker.txns.add_partitions(&request.transactional_id, request.producer_id, request.producer_epoch, partitions).await
    };
    // KIP-588: clients before v2 know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH.
    let e = if ctx.api_version < 2 && e == ErrorCode::PRODUCER_FENCED { ErrorCode::INVALID_PRODUCER_EPOCH } else { e };
    AddOffsetsToTxnResponse { error_code: e.code(), ..Default::default() }
}
