//! DescribeTransactions (key 65): the state of each transactional id this
//! broker coordinates (NOT_COORDINATOR for the others, TRANSACTIONAL_ID_NOT_FOUND
//! for unknown ids).

use klamm_protocol::messages::describe_transactions_response::{DescribeTransactionsResponse, TopicData, TransactionState};
use klamm_protocol::messages::DescribeTransactionsRequest;

use super::RequestContext;
use crate::txn::persistence::group_by_topic;

pub async fn handle(ctx: &RequestContext, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let mut transaction_states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let state = match ctx.broker.txns.describe(&id).await {
            Ok(v) => TransactionState {
                error_code: 0,
                transactional_id: id,
                transaction_state: v.state.name().to_string(),
                transaction_timeout_ms: v.timeout_ms,
                transaction_start_time_ms: v.start_ms,
                producer_id: v.producer_id,
                producer_epoch: v.producer_epoch,
                topics: group_by_topic(&v.partitions)
                    .into_iter()
                    .map(|(topic, partitions)| TopicData { topic: topic.to_string(), partitions, ..Default::default() })
                    .collect(),
                ..Default::default()
            },
            Err(e) => TransactionState { error_code: e.code(), transactional_id: id, ..Default::default() },
        };
        transaction_states.push(state);
    }
    DescribeTransactionsResponse { transaction_states, ..Default::default() }
}
