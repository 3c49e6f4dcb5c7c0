//! Replica placement: where new partitions' replicas go (CreateTopics, CreatePartitions,
//! auto-creation) and the checks on a manual assignment.
//!
//! In Kafka this is the active controller's decision. Here the broker that receives the
//! admin request computes it from its image and proposes the result through the metadata
//! log, which rejects it if the brokers it names are unknown by the time it applies.

use klamm_protocol::ErrorCode;
use klamm_raft::{MetadataImage, NewPartition};

/// Places `count` new partitions starting at `first_index` with
/// `replication_factor` replicas each over the unfenced brokers: round-robin over a
/// rack-alternating broker order, from a random start so that the first partitions of
/// successive topics do not all land on the same broker (Kafka's placement in spirit). The
/// followers of a partition are the brokers after its leader in that order, so with racks
/// they land on other racks first. Fails when there are fewer brokers than replicas.
pub fn place_replicas(
    image: &MetadataImage,
    first_index: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<NewPartition>, (ErrorCode, String)> {
    let brokers: Vec<(i32, Option<String>)> = image.unfenced_brokers().map(|b| (b.node_id, b.rack.clone())).collect();
    place_on(&brokers, first_index, count, replication_factor, rand::random::<u32>() as usize)
}

/// [`place_replicas`] over an explicit broker list and start offset (deterministic, for tests).
pub fn place_on(
    brokers: &[(i32, Option<String>)],
    first_index: i32,
    count: i32,
    replication_factor: i16,
    start_offset: usize,
) -> Result<Vec<NewPartition>, (ErrorCode, String)> {
    let rf = replication_factor.max(0) as usize;
    if replication_factor <= 0 {
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
    let order = rack_alternating(brokers);
    let n = order.len();
    Ok((0..count)
        .map(|i| {
            let p = first_index.saturating_add(i);
            let start = (p.max(0) as usize).wrapping_add(start_offset) % n;
            let replicas = (0..rf).map(|r| order[(start + r) % n]).collect();
            NewPartition { partition: p, replicas }
        })
        .collect())
}

/// Broker ids ordered so that consecutive entries alternate between racks (brokers of
/// each rack in id order, racks in name order); without racks, plain id order. Brokers
/// without a rack count as one more rack.
fn rack_alternating(brokers: &[(i32, Option<String>)]) -> Vec<i32> {
    let mut by_rack: std::collections::BTreeMap<Option<&str>, Vec<i32>> = Default::default();
    for (id, rack) in brokers {
        by_rack.entry(rack.as_deref()).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut order = Vec::with_capacity(brokers.len());
    for round in 0.. {
        let before = order.len();
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                order.push(*id);
            }
        }
        if order.len() == before {
            break;
        }
    }
    order
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_leaders_and_replicas() {
        let brokers = vec![(1, None), (2, None), (3, None)];
        let placed = place_on(&brokers, 0, 6, 1, 7).unwrap_or_default();
        let leaders: Vec<i32> = placed.iter().map(|p| p.replicas[0]).collect();
        assert_eq!(leaders, vec![2, 3, 1, 2, 3, 1]);
        let placed = place_on(&brokers, 0, 3, 3, 0).unwrap_or_default();
        let replicas: Vec<Vec<i32>> = placed.iter().map(|p| p.replicas.clone()).collect();
        assert_eq!(replicas, vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]);
        let err = place_on(&brokers, 0, 1, 4, 0).err().map(|e| e.0);
        assert_eq!(err, Some(ErrorCode::INVALID_REPLICATION_FACTOR));
        assert!(place_on(&brokers, 0, 1, 0, 0).is_err());
    }

    #[test]
    fn placement_alternates_racks() {
        let brokers = vec![(1, Some("a".into())), (2, Some("a".into())), (3, Some("b".into())), (4, Some("b".into()))];
        assert_eq!(rack_alternating(&brokers), vec![1, 3, 2, 4]);
        let placed = place_on(&brokers, 0, 2, 1, 0).unwrap_or_default();
        let leaders: Vec<i32> = placed.iter().map(|p| p.replicas[0]).collect();
        assert_eq!(leaders, vec![1, 3], "consecutive partitions go to different racks");
    }
}
