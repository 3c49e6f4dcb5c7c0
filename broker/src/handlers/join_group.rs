//! JoinGroup (key 11), v0-9: the classic rebalance's first phase.

use klamm_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use klamm_protocol::messages::JoinGroupRequest;

use super::RequestContext;
use crate::group::state::JoinRequest;

pub async fn handle(ctx: &RequestContext, request: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.api_version;
    let req = JoinRequest {
        group_id: request.group_id,
        member_id: request.member_id,
        group_instance_id: if v >= 5 { request.group_instance_id } else { None },
        require_known_member_id: v >= 4,
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if v >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms },
        protocol_type: request.protocol_type,
        protocols: request.protocols.into_iter().map(|p| (p.name, p.metadata)).collect(),
    };
    let r = ctx.broker.groups.join(req).await;
    JoinGroupResponse {
        throttle_time_ms: 0,
        error_code: r.error.code(),
        generation_id: r.generation_id,
        // Nullable only from v7.
        protocol_type: if v >= 7 { r.protocol_type } else { Some(r.protocol_type.unwrap_or_default()) },
        protocol_name: if v >= 7 { r.protocol_name } else { Some(r.protocol_name.unwrap_or_default()) },
        leader: r.leader_id,
        skip_assignment: r.skip_assignment,
        member_id: r.member_id,
        members: r
            .members
            .into_iter()
            .map(|m| JoinGroupResponseMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                metadata: m.metadata,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
