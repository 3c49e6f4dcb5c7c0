//! InitProducerId (key 22) for idempotent and transactional producers.
//!
//! Without a transactional id every call gets a fresh producer id at epoch 0,
//! as Kafka does, also for a KIP-360 call (v3+) carrying the old id and epoch:
//! the broker keeps no per-producer session for idempotent producers, and a
//! new id is the answer KIP-360 producers accept. With a transactional id the
//! transaction coordinator answers ([`crate::txn`]): a new id at epoch 0, or
//! the same id with the epoch bumped (KIP-360 checks of v3+), aborting an
//! ongoing transaction first (CONCURRENT_TRANSACTIONS until it is done).

use klamm_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use klamm_protocol::messages::InitProducerIdRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::txn::state::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

pub async fn handle(ctx: &RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse { throttle_time_ms: 0, producer_id: -1, producer_epoch: -1, ..Default::default() };
    let fail = |mut r: InitProducerIdResponse, e: ErrorCode| {
        r.error_code = e.code();
        r
    };
    // Kafka's KafkaApis: both -1 (none) or both set; v0-2 carry neither.
    let expected = match (request.producer_id, request.producer_epoch) {
        _ if ctx.api_version < 3 => None,
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => return fail(response, ErrorCode::INVALID_REQUEST),
        (id, epoch) => Some((id, epoch)),
    };
    let Some(transactional_id) = request.transactional_id else {
        return match ctx.broker.producer_ids.next(&ctx.broker.metadata).await {
            Ok(id) => {
                response.producer_id = id;
                response.producer_epoch = 0;
                response
            }
            Err(e) => {
                tracing::warn!(error = %e, "producer id allocation failed");
                fail(response, ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
        };
    };
    if transactional_id.is_empty() {
        // Kafka's transaction coordinator refuses an empty transactional id.
        return fail(response, ErrorCode::INVALID_REQUEST);
    }
    let txns = &ctx.broker.txns;
    if request.transaction_timeout_ms <= 0 || request.transaction_timeout_ms > txns.max_timeout_ms() {
        return fail(response, ErrorCode::INVALID_TRANSACTION_TIMEOUT);
    }
    match txns.init_producer_id(&transactional_id, request.transaction_timeout_ms, expected).await {
        Ok((id, epoch)) => {
            response.producer_id = id;
            response.producer_epoch = epoch;
            response
        }
        // KIP-588: clients before v4 know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH.
        Err(ErrorCode::PRODUCER_FENCED) if ctx.api_version < 4 => fail(response, ErrorCode::INVALID_PRODUCER_EPOCH),
        Err(e) => fail(response, e),
    }
}
