//! InitProducerId (key 22) for idempotent producers.
//!
//! Without a transactional id every call gets a fresh producer id at epoch 0,
//! as Kafka does (also for a KIP-360 call carrying the old id and epoch: the
//! broker keeps no per-producer session for idempotent producers). Calls with
//! a transactional id need the transaction coordinator, which does not exist
//! yet: they get COORDINATOR_NOT_AVAILABLE and FindCoordinator is not advertised.

use klamm_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use klamm_protocol::messages::InitProducerIdRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse { throttle_time_ms: 0, producer_id: -1, producer_epoch: -1, ..Default::default() };
    if request.transactional_id.as_deref() == Some("") {
        // Kafka's transaction coordinator refuses an empty transactional id.
        response.error_code = ErrorCode::INVALID_REQUEST.code();
        return response;
    }
    if request.transactional_id.is_some() {
        response.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
        return response;
    }
    match ctx.broker.producer_ids.next(&ctx.broker.metadata).await {
        Ok(id) => {
            response.producer_id = id;
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "producer id allocation failed");
            response.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
        }
    }
    response
}
