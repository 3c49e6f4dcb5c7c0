//! Topic rules shared by the admin APIs: name validation, replica placement,
//! and the mapping from metadata-log rejections to Kafka error codes.

use klamm_protocol::ErrorCode;
use klamm_raft::{MetadataImage, NewPartition, RejectCode};

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

/// Places `count` new partitions starting at `first_index` with
/// `replication_factor` replicas each over the unfenced brokers, round-robin
/// with a shifting start so leaders spread out (Kafka's rack-unaware placement
/// in spirit). Fails when there are fewer brokers than replicas.
pub fn place_replicas(
    image: &MetadataImage,
    first_index: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<NewPartition>, (ErrorCode, String)> {
    let brokers: Vec<i32> = image.unfenced_brokers().map(|b| b.node_id).collect();
    let rf = replication_factor as usize;
    if rf == 0 || replication_factor < 0 {
        return Err((ErrorCode::INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.".into()));
    }
    if rf > brokers.len() {
        return Err((
            ErrorCode::INVALID_REPLICATION_FACTOR,
            format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
                brokers.len()
            ),
        ));
    }
    let n = brokers.len();
    Ok((0..count)
        .map(|i| {
            let p = first_index + i;
            let start = (p as usize) % n;
            let replicas = (0..rf).map(|r| brokers[(start + r) % n]).collect();
            NewPartition { partition: p, replicas }
        })
        .collect())
}

/// Checks a manual replica assignment: every broker registered, no duplicate
/// within a partition, all partitions the same replication factor.
pub fn validate_assignment(image: &MetadataImage, assignment: &[Vec<i32>]) -> Result<(), (ErrorCode, String)> {
    let mut rf = None;
    for (i, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return Err((ErrorCode::INVALID_REPLICA_ASSIGNMENT, format!("Empty replica list for partition {i}.")));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err((
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                format!("Duplicate replica assignment for partition {i}: {replicas:?}"),
            ));
        }
        if let Some(b) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return Err((ErrorCode::INVALID_REPLICA_ASSIGNMENT, format!("Unknown broker {b} in replica assignment.")));
        }
        match rf {
            None => rf = Some(replicas.len()),
            Some(r) if r != replicas.len() => {
                return Err((
                    ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                    "All partitions should have the same number of replicas".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(())
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
