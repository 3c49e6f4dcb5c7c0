//! LeaveGroup (key 13): v0-2 one member, v3+ a batch with per-member errors.

use klamm_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use klamm_protocol::messages::LeaveGroupRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::group::state::LeavingMember;

pub async fn handle(ctx: &RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.api_version;
    let members: Vec<LeavingMember> = if v <= 2 {
        vec![LeavingMember { member_id: request.member_id.clone(), group_instance_id: None }]
    } else {
        request
            .members
            .iter()
            .map(|m| LeavingMember { member_id: m.member_id.clone(), group_instance_id: m.group_instance_id.clone() })
            .collect()
    };
    let (top, errors) = ctx.broker.groups.leave(&request.group_id, members.clone()).await;
    if v <= 2 {
        // The first error: group-level, else the member's.
        let code = if top != ErrorCode::NONE { top } else { errors.first().copied().unwrap_or(ErrorCode::NONE) };
        return LeaveGroupResponse { error_code: code.code(), ..Default::default() };
    }
    LeaveGroupResponse {
        throttle_time_ms: 0,
        error_code: top.code(),
        members: members
            .into_iter()
            .zip(errors)
            .map(|(m, e)| MemberResponse {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                error_code: e.code(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
