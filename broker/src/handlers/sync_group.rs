//! SyncGroup (key 14), v0-5: the leader's assignment reaches every member.

use klamm_protocol::messages::sync_group_response::SyncGroupResponse;
use klamm_protocol::messages::SyncGroupRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::group::state::SyncRequest;

pub async fn handle(ctx: &RequestContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.api_version;
    // v5+ must name the protocol type and name (Kafka's
    // `areMandatoryProtocolTypeAndNamePresent`).
    if v >= 5 && (request.protocol_type.is_none() || request.protocol_name.is_none()) {
        return SyncGroupResponse { error_code: ErrorCode::INCONSISTENT_GROUP_PROTOCOL.code(), ..Default::default() };
    }
    let req = SyncRequest {
        group_id: request.group_id,
        generation_id: request.generation_id,
        member_id: request.member_id,
        group_instance_id: if v >= 3 { request.group_instance_id } else { None },
        protocol_type: request.protocol_type,
        protocol_name: request.protocol_name,
        assignments: request.assignments.into_iter().map(|a| (a.member_id, a.assignment)).collect(),
    };
    let r = ctx.broker.groups.sync(req).await;
    SyncGroupResponse {
        throttle_time_ms: 0,
        error_code: r.error.code(),
        protocol_type: r.protocol_type,
        protocol_name: r.protocol_name,
        assignment: r.assignment,
        ..Default::default()
    }
}
