//! ListGroups (key 16), v0-5: the groups this broker coordinates, filtered
//! by state (v4+) and type (v5+; every group here is "classic").

use klamm_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use klamm_protocol::messages::ListGroupsRequest;

use super::RequestContext;
use crate::group::state::GroupState;

pub async fn handle(ctx: &RequestContext, request: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.api_version;
    let (error, groups) = ctx.broker.groups.list().await;
    let states: Vec<Option<GroupState>> = if v >= 4 { request.states_filter.iter().map(|s| GroupState::parse(s)).collect() } else { Vec::new() };
    let types: Vec<String> = if v >= 5 { request.types_filter.iter().map(|t| t.trim().to_ascii_lowercase()).collect() } else { Vec::new() };
    let groups = groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&Some(g.state)))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| ListedGroup {
            group_id: g.group_id,
            protocol_type: g.protocol_type,
            group_state: g.state.name().to_string(),
            group_type: "classic".to_string(),
            ..Default::default()
        })
        .collect();
    ListGroupsResponse { throttle_time_ms: 0, error_code: error.code(), groups, ..Default::default() }
}
