//! Topic rules shared by the admin APIs: name validation and the mapping from
//! metadata-log rejections to Kafka error codes. Replica placement is the
//! controller's decision and lives in [`crate::controller::placement`].

use klamm_protocol::ErrorCode;
use klamm_raft::RejectCode;

/// Kafka's limit: 249 characters, so that `<topic>-<partition>` directory
/// names stay within common file-name limits.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why a topic name is not legal, in Kafka's words.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

pub fn rejection_error_code(code: RejectCode) -> ErrorCode {
    match code {
        RejectCode::TopicAlreadyExists => ErrorCode::TOPIC_ALREADY_EXISTS,
        RejectCode::UnknownTopic | RejectCode::UnknownPartition => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        RejectCode::InvalidTopic => ErrorCode::INVALID_TOPIC_EXCEPTION,
        RejectCode::StaleEpoch => ErrorCode::STALE_BROKER_EPOCH,
        RejectCode::InvalidPartitions => ErrorCode::INVALID_PARTITIONS,
        RejectCode::InvalidReplicaAssignment => ErrorCode::INVALID_REPLICA_ASSIGNMENT,
        RejectCode::InvalidConfig => ErrorCode::INVALID_CONFIG,
        RejectCode::UnknownBroker => ErrorCode::INVALID_REPLICA_ASSIGNMENT,
        RejectCode::InvalidRequest | RejectCode::ClusterIdMismatch => ErrorCode::INVALID_REQUEST,
        RejectCode::NoReassignmentInProgress => ErrorCode::NO_REASSIGNMENT_IN_PROGRESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders_raw").is_ok());
        assert!(validate_topic_name("a.b-c_D9").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name(".").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad/name").is_err());
        assert!(validate_topic_name("with space").is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
