//! DescribeGroups (key 15), v0-5. A group that does not exist is described
//! as Dead with no error, as Kafka does for these versions.

use klamm_protocol::messages::describe_groups_response::{DescribeGroupsResponse, DescribedGroup, DescribedGroupMember};
use klamm_protocol::messages::DescribeGroupsRequest;

use super::RequestContext;

/// READ, DELETE and DESCRIBE on a group (no ACLs yet: everything allowed).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(ctx: &RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    let ops = if request.include_authorized_operations { GROUP_OPERATIONS } else { i32::MIN };
    for group_id in request.groups {
        let described = match ctx.broker.groups.describe(&group_id).await {
            Ok(s) => DescribedGroup {
                error_code: 0,
                group_id,
                group_state: s.state.name().to_string(),
                protocol_type: s.protocol_type,
                protocol_data: s.protocol,
                members: s
                    .members
                    .into_iter()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        member_metadata: m.metadata,
                        member_assignment: m.assignment,
                        ..Default::default()
                    })
                    .collect(),
                authorized_operations: ops,
                ..Default::default()
            },
            Err(e) => DescribedGroup {
                error_code: e.code(),
                group_id,
                group_state: String::new(),
                protocol_type: String::new(),
                protocol_data: String::new(),
                authorized_operations: ops,
                ..Default::default()
            },
        };
        groups.push(described);
    }
    DescribeGroupsResponse { throttle_time_ms: 0, groups, ..Default::default() }
}
