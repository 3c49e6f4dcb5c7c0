//! EndTxn (key 26): commit or abort. The answer comes once PrepareCommit /
//! PrepareAbort is durable in `__transaction_state`; the markers follow in the
//! background (requests for the transaction meanwhile get
//! CONCURRENT_TRANSACTIONS). A retry after completion answers NONE, as Kafka does.

use klamm_protocol::messages::end_txn_response::EndTxnResponse;
use klamm_protocol::messages::EndTxnRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: EndTxnRequest) -> EndTxnResponse {
    let (e, producer_id, producer_epoch) = if request.transactional_id.is_empty() {
        (ErrorCode::INVALID_REQUEST, -1, -1)
    } else {
        ctx.broker.txns.end_txn(&request.transactional_id, request.producer_id, request.producer_epoch, request.committed).await
    };
    // KIP-588: clients before v2 know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH.
    let e = if ctx.api_version < 2 && e == ErrorCode::PRODUCER_FENCED { ErrorCode::INVALID_PRODUCER_EPOCH } else { e };
    EndTxnResponse { error_code: e.code(), producer_id, producer_epoch, ..Default::default() }
}
