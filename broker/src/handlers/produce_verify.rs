//! KIP-890 part 1: before a leader appends a producer's first transactional
//! batch of a transaction to a partition, it asks the transaction
//! coordinator whether the partition was added to that transaction, so a
//! hanging transaction (a late batch of an already ended transaction) cannot
//! start one the coordinator knows nothing of.
//!
//! Which batches: a transactional batch whose producer has no open
//! transaction on the partition at that producer epoch
//! (`Partition::begin_txn_verification`). As in Kafka, the verification
//! leaves a guard in the producer state that a marker clears: the append
//! must present it, so a batch verified before a marker ended the
//! transaction cannot open a new one (INVALID_TXN_STATE). Once the batch is
//! appended the partition's open transaction stands for the verified answer
//! until its marker ends it; a transactional batch that finds no open
//! transaction and has no guard is refused the same way.
//!
//! How: all partitions of one produce request that need it go in one
//! AddPartitionsToTxn v4 request (`verify_only = true`) to the coordinator:
//! the leader of the `__transaction_state` partition the transactional id
//! hashes to, at its inter-broker listener endpoint, over a new connection
//! (verification happens once per partition and transaction, so a pooled
//! connection would save little).
//!
//! Errors are mapped as Kafka's AddPartitionsToTxnManager and ReplicaManager
//! map them for Produce v3-11: PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH;
//! the retriable coordinator errors (NETWORK_EXCEPTION,
//! COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
//! CONCURRENT_TRANSACTIONS) become NOT_ENOUGH_REPLICAS, which every client
//! retries without a metadata refresh; INVALID_TXN_STATE says "Partition was
//! not added to the transaction".

use crate::topic_partition::TopicPartition;
use std::collections::HashMap;
use std::time::Duration;

use klamm_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use klamm_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use klamm_protocol::ErrorCode;

use crate::net::client::KafkaClient;
use crate::security::client::ClientSecurity;
use crate::replica::PartitionError;
use crate::server::Broker;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The AddPartitionsToTxn version of the broker-to-broker verify-only form.
const VERIFY_VERSION: i16 = 4;

/// One producer's partitions to verify (one produce request's worth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// (topic, partition), in request order.
    pub partitions: Vec<TopicPartition>,
}

impl Verification {
    fn request(&self) -> AddPartitionsToTxnRequest {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for TopicPartition { topic, partition } in &self.partitions {
            match topics.iter_mut().find(|t| &t.name == topic) {
                Some(t) => t.partitions.push(*partition),
                None => topics.push(AddPartitionsToTxnTopic { name: topic.clone(), partitions: vec![*partition], ..Default::default() }),
            }
        }
        AddPartitionsToTxnRequest {
            transactions: vec![AddPartitionsToTxnTransaction {
                transactional_id: self.transactional_id.clone(),
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                verify_only: true,
                topics,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Every partition with the same error (the coordinator could not be asked).
    fn all(&self, code: ErrorCode) -> HashMap<TopicPartition, ErrorCode> {
        self.partitions.iter().map(|p| (p.clone(), code)).collect()
    }
}

/// The produce error for a coordinator's answer about one partition (None: verified).
pub fn produce_error(code: ErrorCode) -> Option<PartitionError> {
    match code {
        ErrorCode::NONE => None,
        ErrorCode::PRODUCER_FENCED => Some(PartitionError::code(ErrorCode::INVALID_PRODUCER_EPOCH)),
        ErrorCode::NETWORK_EXCEPTION
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        | ErrorCode::COORDINATOR_NOT_AVAILABLE
        | ErrorCode::NOT_COORDINATOR
        | ErrorCode::CONCURRENT_TRANSACTIONS => Some(PartitionError::new(
            ErrorCode::NOT_ENOUGH_REPLICAS,
            format!("Unable to verify the partition has been added to the transaction. Underlying error: {}", code.name()),
        )),
        ErrorCode::INVALID_TXN_STATE => Some(PartitionError::new(code, "Partition was not added to the transaction")),
        other => Some(PartitionError::code(other)),
    }
}

/// The coordinator's inter-broker endpoint for `transactional_id`, if the
/// metadata names a live leader for its `__transaction_state` partition.
pub fn coordinator_address(broker: &Broker, transactional_id: &str) -> Option<String> {
    let image = broker.metadata.image();
    // The coordinator's own rule (the existing topic's partition count).
    let partition = broker.txns.partition_for_image(&image, transactional_id);
    let leader = image.partition(TRANSACTION_STATE_TOPIC, partition)?.leader;
    crate::metadata::broker_address(&image, &broker.config.inter_broker_listener_name, leader)
}

/// Asks the coordinator for `broker`'s transactional id; the coordinator's
/// answer per partition (NONE: verified).
pub async fn verify(broker: &Broker, v: &Verification, timeout: Duration) -> HashMap<TopicPartition, ErrorCode> {
    match coordinator_address(broker, &v.transactional_id) {
        Some(addr) => verify_at(&addr, &format!("klamm-txn-verify-{}", broker.node_id), v, timeout, &broker.inter_broker_security).await,
        None => v.all(ErrorCode::COORDINATOR_NOT_AVAILABLE),
    }
}

/// Sends the verify-only request to the coordinator at `addr`. A connection
/// failure or timeout is NETWORK_EXCEPTION; a partition the answer leaves out
/// is INVALID_TXN_STATE (not known to be in the transaction).
pub async fn verify_at(addr: &str, client_id: &str, v: &Verification, timeout: Duration, security: &ClientSecurity) -> HashMap<TopicPartition, ErrorCode> {
    let answer = async {
        let mut client = KafkaClient::connect_secured(addr, client_id, timeout, security).await?;
        client.send(&v.request(), VERIFY_VERSION, timeout).await
    };
    let response: AddPartitionsToTxnResponse = match answer.await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(addr, error = %e, "transaction verification failed to reach the coordinator");
            return v.all(ErrorCode::NETWORK_EXCEPTION);
        }
    };
    if response.error_code != 0 {
        return v.all(ErrorCode::from(response.error_code));
    }
    let mut out = v.all(ErrorCode::INVALID_TXN_STATE);
    for txn in response.results_by_transaction.iter().filter(|t| t.transactional_id == v.transactional_id) {
        for topic in &txn.topic_results {
            for p in &topic.results_by_partition {
                if let Some(code) = out.get_mut(&TopicPartition::new(topic.name.clone(), p.partition_index)) {
                    *code = ErrorCode::from(p.partition_error_code);
                }
            }
        }
    }
    out
}
