//! DeleteGroups (key 42), v0-2: only empty groups can be deleted; their
//! offsets and metadata get tombstones in `__consumer_offsets`.

use klamm_protocol::messages::delete_groups_response::{DeletableGroupResult, DeleteGroupsResponse};
use klamm_protocol::messages::DeleteGroupsRequest;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let code = ctx.broker.groups.delete_group(&group_id).await;
        results.push(DeletableGroupResult { group_id, error_code: code.code(), ..Default::default() });
    }
    DeleteGroupsResponse { throttle_time_ms: 0, results, ..Default::default() }
}
