//! DeleteTopics (key 20): by name (v0-5) or by name or topic id (v6+).

use klamm_protocol::messages::delete_topics_response::{DeletableTopicResult, DeleteTopicsResponse};
use klamm_protocol::messages::DeleteTopicsRequest;
use klamm_protocol::{ErrorCode, Uuid};
use klamm_raft::MetadataCommand;

use super::RequestContext;

pub async fn handle(ctx: &RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let broker = &ctx.broker;
    // Normalise both request shapes to (name, id) pairs.
    let targets: Vec<(Option<String>, Uuid)> = if ctx.api_version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|n| (Some(n), Uuid::ZERO)).collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let image = broker.metadata.image();
        let by_id = name.is_none() || !id.is_zero();
        let topic = if let Some(n) = &name { image.topic(n) } else { image.topic_by_id(&id.0) };
        let mut result = DeletableTopicResult { name: name.clone(), topic_id: id, ..Default::default() };
        let Some(topic) = topic else {
            let code = if by_id && name.is_none() { ErrorCode::UNKNOWN_TOPIC_ID } else { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION };
            result.error_code = code.code();
            result.error_message = Some(code.name().to_string());
            responses.push(result);
            continue;
        };
        result.name = Some(topic.name.clone());
        result.topic_id = Uuid(topic.topic_id);
        if !broker.config.delete_topic_enable {
            result.error_code = ErrorCode::TOPIC_DELETION_DISABLED.code();
            result.error_message = Some("Topic deletion is disabled.".into());
            responses.push(result);
            continue;
        }
        let topic_id = topic.topic_id;
        if let Err((code, message)) = broker.apply_metadata(MetadataCommand::DeleteTopic { topic_id }).await {
            result.error_code = code.code();
            result.error_message = Some(message);
        }
        responses.push(result);
    }
    DeleteTopicsResponse { throttle_time_ms: 0, responses, ..Default::default() }
}
