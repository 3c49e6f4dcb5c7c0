//! AddPartitionsToTxn (key 24). v0-3 is the client's form (one transaction,
//! answered per topic); v4-5 is the batched broker-to-broker form, where a
//! partition leader with `verify_only` asks whether partitions are in a
//! producer's ongoing transaction (KIP-890 part 1) and gets per-partition
//! answers per transaction. As in Kafka's `KafkaApis`, partitions of unknown
//! topics get UNKNOWN_TOPIC_OR_PARTITION and then the transaction's other
//! partitions OPERATION_NOT_ATTEMPTED; otherwise every partition carries the
//! coordinator's answer.

use std::collections::BTreeSet;

use klamm_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use klamm_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use klamm_protocol::messages::AddPartitionsToTxnRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::txn::persistence::group_by_topic;
use crate::txn::state::Tp;

pub async fn handle(ctx: &RequestContext, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let v = ctx.api_version;
    if v < 4 {
        let partitions = flatten(&request.v3_and_below_topics);
        let results = one_transaction(
            ctx,
            &request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch,
            false,
            partitions,
        )
        .await;
        // KIP-588: clients before v2 know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH.
        let results = results
            .into_iter()
            .map(|(tp, e)| (tp, if v < 2 && e == ErrorCode::PRODUCER_FENCED { ErrorCode::INVALID_PRODUCER_EPOCH } else { e }))
            .collect();
        return AddPartitionsToTxnResponse { results_by_topic_v3_and_below: topic_results(results), ..Default::default() };
    }
    let mut results_by_transaction = Vec::with_capacity(request.transactions.len());
    for t in request.transactions {
        let partitions = flatten(&t.topics);
        let results = one_transaction(ctx, &t.transactional_id, t.producer_id, t.producer_epoch, t.verify_only, partitions).await;
        results_by_transaction.push(AddPartitionsToTxnResult {
            transactional_id: t.transactional_id,
            topic_results: topic_results(results),
            ..Default::default()
        });
    }
    AddPartitionsToTxnResponse { results_by_transaction, ..Default::default() }
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<Tp> {
    topics.iter().flat_map(|t| t.partitions.iter().map(|p| Tp::new(t.name.clone(), *p))).collect()
}

/// The per-partition answers for one transaction.
async fn one_transaction(ctx: &RequestContext, id: &str, producer_id: i64, epoch: i16, verify_only: bool, partitions: Vec<Tp>) -> Vec<(Tp, ErrorCode)> {
    if id.is_empty() {
        return partitions.into_iter().map(|tp| (tp, ErrorCode::INVALID_REQUEST)).collect();
    }
    let image = ctx.broker.metadata.image();
    let unknown: BTreeSet<&Tp> = partitions.iter().filter(|tp| image.partition(&tp.topic, tp.partition).is_none()).collect();
    if !unknown.is_empty() {
        return partitions
            .iter()
            .map(|tp| (tp.clone(), if unknown.contains(tp) { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION } else { ErrorCode::OPERATION_NOT_ATTEMPTED }))
            .collect();
    }
    let txns = &ctx.broker.txns;
    if verify_only {
        return match txns.verify(id, producer_id, epoch, partitions.clone()).await {
            Ok(codes) => partitions.into_iter().zip(codes).collect(),
            Err(e) => partitions.into_iter().map(|tp| (tp, e)).collect(),
        };
    }
    let set: BTreeSet<Tp> = partitions.iter().cloned().collect();
    let e = txns.add_partitions(id, producer_id, epoch, set).await;
    partitions.into_iter().map(|tp| (tp, e)).collect()
}

fn topic_results(results: Vec<(Tp, ErrorCode)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let codes: std::collections::BTreeMap<Tp, ErrorCode> = results.into_iter().collect();
    let tps: BTreeSet<Tp> = codes.keys().cloned().collect();
    group_by_topic(&tps)
        .into_iter()
        .map(|(name, partitions)| AddPartitionsToTxnTopicResult {
            name: name.to_string(),
            results_by_partition: partitions
                .into_iter()
                .map(|p| AddPartitionsToTxnPartitionResult {
                    partition_index: p,
                    partition_error_code: codes[&Tp::new(name, p)].code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect()
}
