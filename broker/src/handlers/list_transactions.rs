//! ListTransactions (key 66): the transactions of every `__transaction_state`
//! partition coordinated here, filtered by state names (unknown names are
//! echoed in `unknown_state_filters` and match nothing), producer ids and (v1)
//! a running time to exceed, as Kafka's `listTransactionStates`.

use klamm_protocol::messages::list_transactions_response::{ListTransactionsResponse, TransactionState};
use klamm_protocol::messages::ListTransactionsRequest;

use super::RequestContext;
use crate::txn::state::TxnState;

pub async fn handle(ctx: &RequestContext, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown_state_filters = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => unknown_state_filters.push(name.clone()),
        }
    }
    let duration = if ctx.api_version >= 1 { request.duration_filter } else { -1 };
    let mut response = ListTransactionsResponse { unknown_state_filters, ..Default::default() };
    let (error, listed) = ctx.broker.txns.list(states.clone(), request.producer_id_filters, duration).await;
    response.error_code = error.code();
    // Filters that name only unknown states match nothing.
    if !request.state_filters.is_empty() && states.is_empty() {
        return response;
    }
    response.transaction_states = listed
        .into_iter()
        .map(|v| TransactionState {
            transactional_id: v.transactional_id,
            producer_id: v.producer_id,
            transaction_state: v.state.name().to_string(),
            ..Default::default()
        })
        .collect();
    response
}
