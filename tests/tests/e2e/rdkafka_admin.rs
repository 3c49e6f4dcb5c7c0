//! Admin APIs through librdkafka's AdminClient: CreateTopics (configs,
//! validate_only, errors), DescribeConfigs, AlterConfigs, CreatePartitions,
//! DeleteTopics, and Metadata as the producer sees it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;

use klamm_tests::TestBroker;

const TIMEOUT: Duration = Duration::from_secs(20);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_describe_alter_grow_delete() {
    let broker = TestBroker::start(&[]).await.expect("start broker");
    let a = admin(&broker.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));

    // validate_only creates nothing.
    let r = a
        .create_topics(&[NewTopic::new("orders_raw", 3, TopicReplication::Fixed(1))], &AdminOptions::new().operation_timeout(Some(TIMEOUT)).validate_only(true))
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let md = a.inner().fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "orders_raw"), "validate_only must not create");

    let r = a
        .create_topics(
            &[NewTopic::new("orders_raw", 3, TopicReplication::Fixed(1)).set("retention.ms", "604800000").set("cleanup.policy", "delete")],
            &opts,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{:?}", r[0]);

    // Errors: exists, bad name, bad replication factor, bad config.
    let r = a
        .create_topics(
            &[
                NewTopic::new("orders_raw", 1, TopicReplication::Fixed(1)),
                NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
                NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
                NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
            ],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, RDKafkaErrorCode::TopicAlreadyExists);
    assert_eq!(r[1].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidTopic);
    assert_eq!(r[2].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidReplicationFactor);
    assert_eq!(r[3].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidConfig);

    let md = a.inner().fetch_metadata(Some("orders_raw"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(md.brokers()[0].port() as u16, broker.addr.port());

    // DescribeConfigs: the override and a broker default.
    let d = a.describe_configs(&[ResourceSpecifier::Topic("orders_raw")], &opts).await.unwrap();
    let cfg = d[0].as_ref().unwrap();
    let retention = cfg.get("retention.ms").expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let segment = cfg.get("segment.bytes").expect("segment.bytes described");
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(segment.source, ConfigSource::Default);

    // AlterConfigs replaces the override set.
    let r = a
        .alter_configs(&[AlterConfig::new(ResourceSpecifier::Topic("orders_raw")).set("retention.ms", "3600000")], &opts)
        .await
        .unwrap();
    assert_eq!(r[0].as_ref().unwrap(), &OwnedResourceSpecifier::Topic("orders_raw".into()));
    let d = a.describe_configs(&[ResourceSpecifier::Topic("orders_raw")], &opts).await.unwrap();
    let cfg = d[0].as_ref().unwrap();
    assert_eq!(cfg.get("retention.ms").unwrap().value.as_deref(), Some("3600000"));
    assert_eq!(cfg.get("cleanup.policy").unwrap().source, ConfigSource::Default, "non-incremental alter drops other overrides");

    // Broker resource.
    let d = a.describe_configs(&[ResourceSpecifier::Broker(1)], &opts).await.unwrap();
    let cfg = d[0].as_ref().unwrap();
    assert!(cfg.get("log.retention.hours").is_some() || cfg.get("log.retention.ms").is_some());

    // A dynamic broker config becomes the default of topics without an override.
    let r = a
        .alter_configs(&[AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "7200000")], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{:?}", r[0]);
    let r = a
        .create_topics(&[NewTopic::new("inherits", 1, TopicReplication::Fixed(1))], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let d = a.describe_configs(&[ResourceSpecifier::Topic("inherits")], &opts).await.unwrap();
    let retention = d[0].as_ref().unwrap().get("retention.ms").expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("7200000"));
    assert_ne!(retention.source, ConfigSource::Default);
    let d = a.describe_configs(&[ResourceSpecifier::Broker(1)], &opts).await.unwrap();
    assert_eq!(d[0].as_ref().unwrap().get("log.retention.ms").and_then(|e| e.value.clone()).as_deref(), Some("7200000"));

    // CreatePartitions: grow to 5, shrinking is refused.
    let r = a.create_partitions(&[NewPartitions::new("orders_raw", 5)], &opts).await.unwrap();
    assert!(r[0].is_ok(), "{:?}", r[0]);
    let r = a.create_partitions(&[NewPartitions::new("orders_raw", 2)], &opts).await.unwrap();
    assert_eq!(r[0].as_ref().unwrap_err().1, RDKafkaErrorCode::InvalidPartitions);
    let md = a.inner().fetch_metadata(Some("orders_raw"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    // DeleteTopics.
    let r = a.delete_topics(&["orders_raw", "never_existed"], &opts).await.unwrap();
    assert!(r[0].is_ok());
    assert_eq!(r[1].as_ref().unwrap_err().1, RDKafkaErrorCode::UnknownTopicOrPartition);
    let md = a.inner().fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "orders_raw"));
    broker.stop().await.unwrap();
}
