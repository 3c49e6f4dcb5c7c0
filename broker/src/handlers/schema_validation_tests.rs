//! Broker-side schema validation end to end through the handlers, on a
//! running single-node broker whose known schema ids are filled directly
//! (`Broker::schema_ids`, as the registry's store does when it applies
//! `_schemas`): CreateTopics and IncrementalAlterConfigs accept Confluent
//! Server's topic properties, and Produce answers a raw JSON record with
//! INVALID_RECORD and per-record errors while a record with the magic byte
//! and a known id is appended.

use std::sync::Arc;

use klamm_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use klamm_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use klamm_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klamm_protocol::messages::produce_response::PartitionProduceResponse;
use klamm_protocol::messages::*;
use klamm_protocol::records::{Compression, RecordBatchBuilder};
use klamm_protocol::{ApiKey, ErrorCode};

use super::{Outcome, RequestContext};
use crate::server::Broker;

fn ctx(broker: &Arc<Broker>, key: ApiKey, version: i16) -> RequestContext {
    super::dispatch_tests::test_context(broker, key, version, "schema-validation-test")
}

async fn create_topic(broker: &Arc<Broker>, name: &str, configs: &[(&str, &str)]) {
    let configs = configs.iter().map(|(k, v)| CreatableTopicConfig { name: k.to_string(), value: Some(v.to_string()), ..Default::default() }).collect();
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic { name: name.into(), num_partitions: 1, replication_factor: 1, configs, ..Default::default() }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r = super::create_topics::handle(&ctx(broker, ApiKey::CreateTopics, 7), request).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

async fn produce(broker: &Arc<Broker>, topic: &str, values: &[Option<&[u8]>], codec: Compression) -> PartitionProduceResponse {
    let mut b = RecordBatchBuilder::new(0).compression(codec);
    for v in values {
        b = b.record(crate::clock::now_ms(), Some(&b"key"[..]), *v);
    }
    let request = ProduceRequest {
        acks: 1,
        timeout_ms: 5_000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData { index: 0, records: Some(b.build()), ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = match super::produce::handle(&ctx(broker, ApiKey::Produce, 9), request).await {
        Outcome::Respond(ResponseKind::Produce(r)) => r,
        _ => panic!("unexpected produce outcome"),
    };
    response.responses[0].partition_responses[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_topics_refuse_records_without_a_known_schema_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = super::dispatch_tests::start_single_node(&dir, &[]).await;
    let broker = running.broker.clone();
    broker.schema_ids.insert(1, "orders-value");
    broker.schema_ids.insert(2, "elsewhere-value");
    create_topic(&broker, "orders", &[("confluent.value.schema.validation", "true")]).await;
    create_topic(&broker, "plain", &[]).await;

    let raw_json: &[u8] = br#"{"event":"ORDER_CREATED","order_id":"o-1"}"#;
    let refused = produce(&broker, "orders", &[Some(raw_json)], Compression::None).await;
    assert_eq!(refused.error_code, ErrorCode::INVALID_RECORD.code());
    assert_eq!(refused.base_offset, -1);
    assert_eq!(refused.record_errors.len(), 1);
    assert_eq!(refused.record_errors[0].batch_index, 0);
    let why = refused.record_errors[0].batch_index_error_message.as_deref().unwrap_or("");
    assert!(why.contains("magic byte"), "{why}");
    assert!(refused.error_message.as_deref().unwrap_or("").contains("schema validation"), "{:?}", refused.error_message);

    let accepted = produce(&broker, "orders", &[Some(framed(1, b"\x02avro").as_slice()), None], Compression::None).await;
    assert_eq!(accepted.error_code, 0, "{:?}", accepted.error_message);
    assert_eq!(accepted.base_offset, 0);

    // Compressed, mixed: the second record carries another topic's id.
    let mixed = produce(&broker, "orders", &[Some(framed(1, b"a").as_slice()), Some(framed(2, b"b").as_slice())], Compression::Lz4).await;
    assert_eq!(mixed.error_code, ErrorCode::INVALID_RECORD.code());
    assert_eq!(mixed.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1]);
    let accepted = produce(&broker, "orders", &[Some(framed(1, b"a").as_slice()), Some(framed(1, b"b").as_slice())], Compression::Zstd).await;
    assert_eq!(accepted.error_code, 0, "{:?}", accepted.error_message);
    assert_eq!(accepted.base_offset, 2, "nothing of the refused batches was appended");

    // A topic without the property takes anything.
    let plain = produce(&broker, "plain", &[Some(raw_json)], Compression::None).await;
    assert_eq!(plain.error_code, 0);

    // Turned on later (IncrementalAlterConfigs SET), it applies to the next produce.
    let alter = IncrementalAlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: 2,
            resource_name: "plain".into(),
            configs: vec![AlterableConfig { name: "confluent.value.schema.validation".into(), config_operation: 0, value: Some("true".into()), ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = super::admin_configs::incremental_alter(&ctx(&broker, ApiKey::IncrementalAlterConfigs, 1), alter).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    let mut refused_after_alter = false;
    for _ in 0..50 {
        if produce(&broker, "plain", &[Some(raw_json)], Compression::None).await.error_code == ErrorCode::INVALID_RECORD.code() {
            refused_after_alter = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused_after_alter, "validation turned on by IncrementalAlterConfigs never applied");
    running.shutdown().await.expect("shutdown");
}
