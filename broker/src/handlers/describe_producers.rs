//! DescribeProducers (key 61, v0): the producer state a partition leader
//! keeps (KIP-664): per producer its id, epoch, last sequence, last
//! timestamp, the coordinator epoch of its last transaction marker and the
//! first offset of its open transaction (-1: none). Errors per partition as
//! Kafka: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, or the
//! partition's storage error.

use klamm_protocol::messages::describe_producers_response::{DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse};
use klamm_protocol::messages::DescribeProducersRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::replica::producer_state::ProducerEntry;

pub fn handle(ctx: &RequestContext, request: DescribeProducersRequest) -> DescribeProducersResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let mut r = PartitionResponse { partition_index: index, ..Default::default() };
                    let found = super::led_partition(broker, &image, &t.name, index).and_then(|p| p.producer_states().ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER));
                    match found {
                        Ok(states) => r.active_producers = states.iter().map(|(id, e)| producer_state(*id, e)).collect(),
                        Err(code) => r.error_code = code.code(),
                    }
                    r
                })
                .collect();
            TopicResponse { name: t.name, partitions, ..Default::default() }
        })
        .collect();
    DescribeProducersResponse { throttle_time_ms: 0, topics, ..Default::default() }
}

/// One producer's entry as DescribeProducers reports it.
pub fn producer_state(producer_id: i64, e: &ProducerEntry) -> ProducerState {
    ProducerState {
        producer_id,
        producer_epoch: i32::from(e.epoch),
        last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
        last_timestamp: if e.batches.is_empty() && e.last_timestamp == 0 { -1 } else { e.last_timestamp },
        coordinator_epoch: e.coordinator_epoch,
        current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::producer_state::{IncomingBatch, ProducerStateTable};
    use klamm_protocol::records::EndTransactionMarker;

    #[test]
    fn entries_are_reported_with_their_transaction_fields() {
        let mut t = ProducerStateTable::default();
        let b = IncomingBatch { producer_id: 4, producer_epoch: 2, base_sequence: 0, last_offset_delta: 2, max_timestamp: 77, transactional: true };
        t.record(&b, 10);
        let s = producer_state(4, t.get(4).unwrap());
        assert_eq!((s.producer_epoch, s.last_sequence, s.last_timestamp, s.coordinator_epoch, s.current_txn_start_offset), (2, 2, 77, -1, 10));
        t.complete_txn(4, 2, EndTransactionMarker { commit: true, coordinator_epoch: 6 }, 13, 80);
        let s = producer_state(4, t.get(4).unwrap());
        assert_eq!((s.last_sequence, s.last_timestamp, s.coordinator_epoch, s.current_txn_start_offset), (2, 80, 6, -1));
    }
}
