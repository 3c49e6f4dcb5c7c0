//! Produce (key 0): validate, append, acknowledge per `acks`.
//!
//! Versions 0-2 are advertised (librdkafka < 2.11.1 enables compression only
//! when it sees Produce v0) but refused by closing the connection, as Kafka 4
//! does: they would carry message formats v0/v1, which Klamm never stores.
//!
//! acks=all (-1): refused with NOT_ENOUGH_REPLICAS before appending when the
//! ISR is smaller than `min.insync.replicas`; otherwise appended, and answered
//! once the high watermark passes the batch (REQUEST_TIMED_OUT after the
//! request's `timeout_ms`, NOT_LEADER_OR_FOLLOWER if leadership moved
//! meanwhile). All partitions of a request append first, then wait together.
//!
//! Transactional batches need the request's `transactional_id` (without it
//! every partition gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka
//! answers a request it cannot authorize), and a producer's first batch of a
//! transaction on a partition is verified with its coordinator first
//! (`produce_verify`, KIP-890 part 1): all such partitions of the request in
//! one AddPartitionsToTxn request, before anything is appended.

use crate::topic_partition::TopicPartition;
use klamm_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
use klamm_protocol::messages::ProduceRequest;
use klamm_protocol::ErrorCode;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm_protocol::records::RecordBatch;

use super::produce_verify::{self, Verification};
use super::{Outcome, RequestContext};
use crate::replica::{Partition, PartitionError};

/// An appended batch whose acks=all answer waits for the high watermark.
struct PendingAck {
    topic_index: usize,
    partition_index: usize,
    partition: Arc<Partition>,
    required_offset: i64,
    leader_epoch: i32,
}

/// First Produce version that carries record batch v2.
const FIRST_SERVED_VERSION: i16 = 3;

pub async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Outcome {
    if ctx.api_version < FIRST_SERVED_VERSION {
        return Outcome::Close("produce v0-2 (message format v0/v1) is not served");
    }
    let acks = request.acks;
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let now = crate::clock::now_ms();
    let mut any_error = false;
    let mut pending: Vec<PendingAck> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut refused = if matches!(acks, -1 | 0 | 1) { verify_transactions(ctx, &request, &image).await } else { Refused::default() };
    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let result = if !matches!(acks, -1 | 0 | 1) {
                Err(PartitionError::code(ErrorCode::INVALID_REQUIRED_ACKS))
            } else if refused.no_transactional_id {
                Err(PartitionError::code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
            } else if let Some(e) = refused.partitions.remove(&TopicPartition::new(topic.name.clone(), pd.index)) {
                Err(e)
            } else {
                let txn_guard = refused.guards.get(&TopicPartition::new(topic.name.clone(), pd.index)).copied();
                produce_one(ctx, &image, &topic.name, pd.index, pd.records, acks, now, txn_guard)
            };
            let mut response = PartitionProduceResponse { index: pd.index, base_offset: -1, log_append_time_ms: -1, log_start_offset: -1, ..Default::default() };
            match result {
                Ok((r, local)) => {
                    response.base_offset = r.base_offset;
                    response.log_append_time_ms = r.log_append_time_ms;
                    response.log_start_offset = r.log_start_offset;
                    if acks == -1 && local.view().high_watermark <= r.last_offset {
                        pending.push(PendingAck {
                            topic_index,
                            partition_index: partition_responses.len(),
                            partition: local,
                            required_offset: r.last_offset + 1,
                            leader_epoch: r.leader_epoch,
                        });
                    }
                }
                Err(e) => {
                    any_error = true;
                    if e.code != ErrorCode::NONE {
                        tracing::debug!(topic = %topic.name, partition = pd.index, error = e.code.name(), message = e.message.as_deref().unwrap_or(""), "produce rejected");
                    }
                    response.error_code = e.code.code();
                    response.error_message = e.message;
                    response.record_errors = e
                        .record_errors
                        .into_iter()
                        .map(|(batch_index, message)| BatchIndexAndErrorMessage {
                            batch_index,
                            batch_index_error_message: Some(message),
                            ..Default::default()
                        })
                        .collect();
                }
            }
            partition_responses.push(response);
        }
        responses.push(TopicProduceResponse { name: topic.name, partition_responses, ..Default::default() });
    }
    if acks == 0 {
        // Kafka closes the connection when an acks=0 produce fails, so the
        // producer notices and refreshes its metadata.
        return if any_error { Outcome::Close("acks=0 produce failed") } else { Outcome::NoResponse };
    }
    let response = ProduceResponse { responses, throttle_time_ms: 0, ..Default::default() };
    if pending.is_empty() {
        return response.into();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    Outcome::Deferred(Box::pin(async move {
        let mut response = response;
        let waits = pending.iter().map(|p| p.partition.wait_for_high_watermark(p.required_offset, p.leader_epoch, deadline));
        let results = super::poll_many::join_all(waits).await;
        for (p, result) in pending.iter().zip(results) {
            if let Err(code) = result {
                let r = &mut response.responses[p.topic_index].partition_responses[p.partition_index];
                tracing::debug!(topic = %p.partition.topic, partition = p.partition.index, error = code.name(), "acks=all produce not acknowledged");
                r.error_code = code.code();
                r.base_offset = -1;
                r.log_append_time_ms = -1;
            }
        }
        response.into()
    }))
}

/// What transaction checks refused before anything was appended.
#[derive(Default)]
struct Refused {
    /// Transactional batches without a transactional id: the whole request fails.
    no_transactional_id: bool,
    /// Per (topic, partition): the coordinator's verification said no.
    partitions: HashMap<TopicPartition, PartitionError>,
    /// Per (topic, partition) with a transactional batch: the guard of its
    /// verification (0 when its transaction was open and none was needed).
    guards: HashMap<TopicPartition, u64>,
}

/// The producer id and epoch of a transactional batch (None for anything else).
fn transactional_producer(records: Option<&Bytes>) -> Option<(i64, i16)> {
    let (batch, _) = RecordBatch::parse(records?.clone()).ok()?;
    (batch.is_transactional() && batch.producer_id() >= 0).then(|| (batch.producer_id(), batch.producer_epoch()))
}

/// KIP-890 part 1: verifies with the coordinator every partition led here
/// whose transactional batch would open a transaction (one request per
/// producer id and epoch, normally one per produce request).
async fn verify_transactions(ctx: &RequestContext, request: &ProduceRequest, image: &klamm_raft::MetadataImage) -> Refused {
    let broker = &ctx.broker;
    let mut refused = Refused::default();
    let mut verifications: Vec<Verification> = Vec::new();
    for topic in &request.topic_data {
        for pd in &topic.partition_data {
            let Some((producer_id, producer_epoch)) = transactional_producer(pd.records.as_ref()) else { continue };
            let Some(transactional_id) = request.transactional_id.as_deref().filter(|id| !id.is_empty()) else {
                refused.no_transactional_id = true;
                return refused;
            };
            // Partitions not led here are answered by `produce_one`.
            let Ok(local) = super::led_partition(broker, image, &topic.name, pd.index) else { continue };
            let key = TopicPartition::new(topic.name.clone(), pd.index);
            let Some(guard) = local.begin_txn_verification(producer_id, producer_epoch) else {
                refused.guards.insert(key, 0);
                continue;
            };
            refused.guards.insert(key.clone(), guard);
            match verifications.iter_mut().find(|v| v.producer_id == producer_id && v.producer_epoch == producer_epoch) {
                Some(v) => v.partitions.push(key),
                None => verifications.push(Verification { transactional_id: transactional_id.to_string(), producer_id, producer_epoch, partitions: vec![key] }),
            }
        }
    }
    let timeout = Duration::from_millis(request.timeout_ms.clamp(1_000, 30_000) as u64);
    for v in &verifications {
        for (key, code) in produce_verify::verify(broker, v, timeout).await {
            if let Some(e) = produce_verify::produce_error(code) {
                tracing::debug!(topic = %key.topic, partition = key.partition, producer_id = v.producer_id, error = code.name(), "transactional batch not verified");
                refused.partitions.insert(key, e);
            }
        }
    }
    refused
}

#[allow(clippy::too_many_arguments)]
fn produce_one(
    ctx: &RequestContext,
    image: &klamm_raft::MetadataImage,
    topic: &str,
    partition: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
    now: i64,
    txn_guard: Option<u64>,
) -> Result<(crate::replica::AppendResult, Arc<Partition>), PartitionError> {
    let broker = &ctx.broker;
    let Some(meta) = image.partition(topic, partition) else {
        return Err(PartitionError::code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    };
    if meta.leader != broker.node_id {
        return Err(PartitionError::code(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    }
    // Not open yet (metadata just changed): NOT_LEADER_OR_FOLLOWER; its log
    // could not be opened: KAFKA_STORAGE_ERROR.
    let local = broker.replicas.lookup(topic, partition).map_err(PartitionError::code)?;
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(PartitionError::new(ErrorCode::INVALID_RECORD, "Produce request carries no records"));
    };
    crate::registry::validation::check_produced(&broker.schema_ids, &local.config(), topic, &records)?;
    if acks == -1 {
        let min_isr = local.config().min_insync_replicas;
        let isr = local.isr_len();
        if (isr as i64) < min_isr as i64 {
            return Err(PartitionError::new(
                ErrorCode::NOT_ENOUGH_REPLICAS,
                format!("The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr}"),
            ));
        }
    }
    let bytes = records.len() as u64;
    let result = local.append_from_client_checked(records, ctx.api_version, now, txn_guard)?;
    broker.metrics.produced(&local.metrics, bytes, (result.last_offset - result.base_offset + 1).max(0) as u64);
    Ok((result, local))
}
