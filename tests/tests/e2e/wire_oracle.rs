//! Every advertised version of every served API, checked against an
//! independent codec: requests are encoded by the `kafka-protocol` crate, sent
//! over a real socket, and the responses decoded by `kafka-protocol` at the
//! same version, which must consume every byte. Record batches produced with
//! kafka-protocol's encoder must come back through Fetch decodable by its
//! decoder.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use klamm_tests::TestBroker;

use crate::common;
use common::{topic, versions, Conn};

/// One uncompressed batch of `n` records. kafka-protocol's encoder splits
/// records into several batches, and Produce v3+ must carry exactly one, so
/// the batch is built with Klamm's builder; what comes back through Fetch is
/// decoded by kafka-protocol.
fn batch(n: usize, base_ts: i64) -> Bytes {
    let mut b = klamm_protocol::records::RecordBatchBuilder::new(0);
    for i in 0..n {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let hv = format!("hv{i}");
        b = b.record_with_headers(
            base_ts + i as i64,
            Some(key.as_bytes()),
            if i % 5 == 4 { None } else { Some(value.as_bytes()) },
            &[("h", Some(hv.as_bytes()))],
        );
    }
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_decodes_with_an_independent_codec() {
    let broker = TestBroker::start(&["auto.create.topics.enable=true", "num.partitions=1"]).await.expect("start");
    let mut c = Conn::open(broker.addr).await;

    // ApiVersions: every version we advertise.
    let advertised = c.call(&ApiVersionsRequest::default(), 0).await;
    assert_eq!(advertised.error_code, 0);
    for v in versions::<ApiVersionsRequest>(&advertised) {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("oracle"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let r = c.call(&req, v).await;
        assert_eq!(r.error_code, 0, "ApiVersions v{v}");
        assert_eq!(r.api_keys.len(), advertised.api_keys.len());
    }

    // CreateTopics: one topic per version.
    for v in versions::<CreateTopicsRequest>(&advertised) {
        let name = format!("oracle-create-{v}");
        let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
            .with_name(topic(&name))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("86400000")))])]);
        let r = c.call(&req, v).await;
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}: {:?}", r.topics[0].error_message);
        if v >= 5 {
            assert_eq!(r.topics[0].num_partitions, 2);
            assert!(r.topics[0].configs.as_ref().map_or(false, |c| c.iter().any(|e| e.name.as_str() == "retention.ms" && e.value.as_deref() == Some("86400000"))));
        }
        if v >= 7 {
            assert!(!r.topics[0].topic_id.is_nil(), "topic id returned");
        }
    }

    // Metadata: all topics and one named topic, every version.
    let mut topic_id = Default::default();
    for v in versions::<MetadataRequest>(&advertised) {
        let all = if v == 0 { MetadataRequest::default().with_topics(Some(vec![])) } else { MetadataRequest::default().with_topics(None) };
        let r = c.call(&all, v).await;
        assert_eq!(r.brokers.len(), 1, "Metadata v{v}");
        assert_eq!(r.brokers[0].port, broker.addr.port() as i32);
        assert!(r.topics.iter().any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("oracle-create-2")));
        let one = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("oracle-create-2")))]));
        let r = c.call(&one, v).await;
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].partitions.len(), 2);
        assert_eq!(r.topics[0].partitions[0].leader_id.0, 1);
        if v >= 10 {
            topic_id = r.topics[0].topic_id;
            assert!(!topic_id.is_nil());
        }
    }

    // Produce every version, then read everything back with every Fetch version.
    let mut expected_offset = 0i64;
    for v in versions::<ProduceRequest>(&advertised) {
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("oracle-create-2"))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch(5, 1_700_000_000_000)))])]);
        let r = c.call(&req, v).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{v}: {:?}", p.error_message);
        assert_eq!(p.base_offset, expected_offset, "Produce v{v}");
        expected_offset += 5;
    }
    for v in versions::<FetchRequest>(&advertised) {
        let mut t = FetchTopic::default().with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)]);
        if v >= 13 {
            t = t.with_topic_id(topic_id);
        } else {
            t = t.with_topic(topic("oracle-create-2"));
        }
        let req = FetchRequest::default().with_max_wait_ms(100).with_min_bytes(1).with_max_bytes(10 << 20).with_topics(vec![t]);
        let r = c.call(&req, v).await;
        assert_eq!(r.error_code, 0, "Fetch v{v}");
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, expected_offset);
        let mut records = p.records.clone().expect("records");
        let mut n = 0i64;
        while records.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut records).expect("decode fetched batch");
            for rec in set.records {
                assert_eq!(rec.offset, n);
                let i = n % 5;
                assert_eq!(rec.key.as_deref(), Some(format!("key-{i}").as_bytes()));
                n += 1;
            }
        }
        assert_eq!(n, expected_offset, "Fetch v{v} returned every record");
    }

    // ListOffsets: earliest, latest, by timestamp.
    for v in versions::<ListOffsetsRequest>(&advertised) {
        for (ts, want) in [(-2i64, 0i64), (-1, expected_offset), (1_700_000_000_003, 3)] {
            let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic("oracle-create-2"))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts)])]);
            let r = c.call(&req, v).await;
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "ListOffsets v{v} ts {ts}");
            assert_eq!(p.offset, want, "ListOffsets v{v} ts {ts}");
        }
    }

    // DescribeConfigs / AlterConfigs / IncrementalAlterConfigs.
    for v in versions::<DescribeConfigsRequest>(&advertised) {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("oracle-create-2"))]);
        let r = c.call(&req, v).await;
        assert_eq!(r.results[0].error_code, 0);
        assert!(r.results[0].configs.iter().any(|e| e.name.as_str() == "retention.ms" && e.value.as_deref() == Some("86400000")));
    }
    for v in versions::<AlterConfigsRequest>(&advertised) {
        let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("oracle-create-2"))
            .with_configs(vec![AlterableConfig::default().with_name(StrBytes::from_static_str("retention.ms")).with_value(Some(StrBytes::from_static_str("86400000")))])]);
        let r = c.call(&req, v).await;
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
    }
    for v in versions::<IncrementalAlterConfigsRequest>(&advertised) {
        use kafka_protocol::messages::incremental_alter_configs_request as iac;
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![iac::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("oracle-create-2"))
            .with_configs(vec![iac::AlterableConfig::default().with_name(StrBytes::from_static_str("segment.ms")).with_config_operation(0).with_value(Some(StrBytes::from_static_str("3600000")))])]);
        let r = c.call(&req, v).await;
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }

    // CreatePartitions, InitProducerId, DescribeCluster.
    let mut partitions = 2;
    for v in versions::<CreatePartitionsRequest>(&advertised) {
        partitions += 1;
        let req = CreatePartitionsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatePartitionsTopic::default().with_name(topic("oracle-create-2")).with_count(partitions)]);
        let r = c.call(&req, v).await;
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}: {:?}", r.results[0].error_message);
    }
    let mut last_pid = -1;
    for v in versions::<InitProducerIdRequest>(&advertised) {
        let r = c.call(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000), v).await;
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        assert!(r.producer_id.0 > last_pid, "fresh producer ids");
        last_pid = r.producer_id.0;
    }
    for v in versions::<DescribeClusterRequest>(&advertised) {
        let r = c.call(&DescribeClusterRequest::default(), v).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.brokers.len(), 1);
    }

    // DeleteRecords: offset -1 (the high watermark) on an existing partition,
    // an offset past the high watermark, and an unknown topic.
    for v in versions::<DeleteRecordsRequest>(&advertised) {
        use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
        let req = DeleteRecordsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            DeleteRecordsTopic::default().with_name(topic("oracle-create-2")).with_partitions(vec![
                DeleteRecordsPartition::default().with_partition_index(0).with_offset(-1),
                DeleteRecordsPartition::default().with_partition_index(1).with_offset(1_000_000),
            ]),
            DeleteRecordsTopic::default()
                .with_name(topic("oracle-no-such-topic"))
                .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(0)]),
        ]);
        let r = c.call(&req, v).await;
        assert_eq!(r.topics.len(), 2, "DeleteRecords v{v}");
        let p = &r.topics[0].partitions;
        assert_eq!((p[0].error_code, p[1].error_code), (0, 1), "DeleteRecords v{v}: {p:?}");
        assert!(p[0].low_watermark >= 0);
        assert_eq!(r.topics[1].partitions[0].error_code, 3, "DeleteRecords v{v} unknown topic");
    }

    // DeleteTopics: by name (v1-5) and by id (v6).
    for v in versions::<DeleteTopicsRequest>(&advertised) {
        let name = format!("oracle-create-{}", 2 + (v - 1).min(5));
        let req = if v >= 6 {
            DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![DeleteTopicState::default().with_name(Some(topic(&name)))])
        } else {
            DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topic_names(vec![topic(&name)])
        };
        let r = c.call(&req, v).await;
        assert_eq!(r.responses.len(), 1);
        let code = r.responses[0].error_code;
        assert!(code == 0 || code == 3, "DeleteTopics v{v}: {code}");
    }
    broker.stop().await.unwrap();
}
