//! Heartbeat (key 12), v0-4.

use klamm_protocol::messages::heartbeat_response::HeartbeatResponse;
use klamm_protocol::messages::HeartbeatRequest;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: HeartbeatRequest) -> HeartbeatResponse {
    let instance = if ctx.api_version >= 3 { request.group_instance_id } else { None };
    let code = ctx.broker.groups.heartbeat(&request.group_id, &request.member_id, instance, request.generation_id).await;
    HeartbeatResponse { throttle_time_ms: 0, error_code: code.code(), ..Default::default() }
}
