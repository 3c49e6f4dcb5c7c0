//! DescribeCluster (key 60): what Java's admin client asks before falling back to Metadata.

use klamm_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
use klamm_protocol::messages::DescribeClusterRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;

/// `EndpointType` 1 = brokers, 2 = controllers (v1+).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(ctx: &RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let image = ctx.broker.metadata.image();
    let mut response = DescribeClusterResponse {
        cluster_id: image.cluster_id.clone(),
        controller_id: super::metadata::controller_id(ctx, &image),
        endpoint_type: request.endpoint_type,
        ..Default::default()
    };
    if ctx.api_version >= 1 && request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        // Controller endpoints are only served on controller listeners, as in Kafka.
        response.error_code = ErrorCode::UNSUPPORTED_ENDPOINT_TYPE.code();
        response.error_message = Some("The target broker only supports broker endpoints".into());
        return response;
    }
    response.brokers = super::metadata::brokers(ctx, &image)
        .into_iter()
        .map(|b| DescribeClusterBroker { broker_id: b.node_id, host: b.host, port: b.port, rack: b.rack, ..Default::default() })
        .collect();
    response
}
