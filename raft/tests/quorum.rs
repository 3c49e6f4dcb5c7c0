//! End-to-end tests of the metadata quorum: real openraft, real files in a temp dir.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm_raft::{
    BrokerEndpoint, CommandOutcome, ConfigResource, InProcessTransport, MetadataCommand, MetadataImage, MetadataQuorum,
    NewPartition, QuorumConfig, QuorumTuning, RaftError, RejectCode,
};

fn config(dir: &Path) -> QuorumConfig {
    QuorumConfig { node_id: 1, data_dir: dir.to_path_buf(), voters: vec![(1, "127.0.0.1:9093".into())], cluster_id: None }
}

fn tuning(snapshot_every_entries: u64) -> QuorumTuning {
    QuorumTuning {
        snapshot_every_entries,
        entries_kept_after_snapshot: 0,
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        heartbeat_interval_ms: 50,
        install_snapshot_timeout_ms: 10_000,
        snapshot_chunk_bytes: 1 << 20,
        start_timeout: Duration::from_secs(10),
        propose_timeout: Duration::from_secs(10),
        propose_attempts: 20,
    }
}

async fn must_start(dir: &Path, snapshot_every_entries: u64) -> MetadataQuorum {
    MetadataQuorum::start_with(config(dir), tuning(snapshot_every_entries), InProcessTransport::new())
        .await
        .expect("start quorum")
}

async fn must_apply(q: &MetadataQuorum, cmd: MetadataCommand) -> klamm_raft::AppliedInfo {
    let name = cmd.name();
    let watch = q.subscribe();
    match q.propose(cmd).await.expect("propose") {
        CommandOutcome::Applied(info) => {
            // The watch is updated before `propose` returns.
            assert!(watch.borrow().last_applied_index >= info.log_index, "{name}: watch lags behind");
            info
        }
        CommandOutcome::Rejected(r) => panic!("{name} rejected: {r}"),
    }
}

fn create_topic(name: &str, id: u8, partitions: i32) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        topic_id: [id; 16],
        partitions: (0..partitions).map(|p| NewPartition { partition: p, replicas: vec![1] }).collect(),
        configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
    }
}

/// The image as JSON, without `last_applied_index` (a restart adds the new term's blank entry).
fn comparable(image: &MetadataImage) -> String {
    let mut image = image.clone();
    image.last_applied_index = 0;
    serde_json::to_string(&image).expect("serialize image")
}

/// Proposes one command of every kind.
async fn populate(q: &MetadataQuorum) {
    let info = must_apply(
        q,
        MetadataCommand::RegisterBroker {
            node_id: 1,
            incarnation_id: [3; 16],
            endpoints: vec![BrokerEndpoint {
                listener: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
                security_protocol: "PLAINTEXT".into(),
            }],
            rack: Some("r1".into()),
        },
    )
    .await;
    let epoch = info.broker_epoch.expect("broker epoch");
    assert_eq!(epoch as u64, info.log_index);
    must_apply(q, MetadataCommand::UnfenceBroker { node_id: 1, epoch }).await;
    must_apply(q, create_topic("orders", 1, 2)).await;
    must_apply(q, create_topic("payments", 2, 1)).await;
    must_apply(
        q,
        MetadataCommand::CreatePartitions {
            topic_id: [1; 16],
            expected_count: 2,
            new_partitions: vec![NewPartition { partition: 2, replicas: vec![1] }],
        },
    )
    .await;
    must_apply(
        q,
        MetadataCommand::AlterConfigs {
            resource: ConfigResource::Topic("orders".into()),
            set: BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
            delete: vec!["cleanup.policy".into()],
        },
    )
    .await;
    must_apply(
        q,
        MetadataCommand::AlterConfigs {
            resource: ConfigResource::Broker(None),
            set: BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]),
            delete: vec![],
        },
    )
    .await;
    must_apply(q, MetadataCommand::DeleteTopic { topic_id: [2; 16] }).await;
    let first = must_apply(q, MetadataCommand::AllocateProducerIds { node_id: 1, count: 1000 }).await;
    assert_eq!(first.first_producer_id, Some(0));
    let second = must_apply(q, MetadataCommand::AllocateProducerIds { node_id: 1, count: 1000 }).await;
    assert_eq!(second.first_producer_id, Some(1000));
    let change = must_apply(
        q,
        MetadataCommand::ChangePartition {
            topic_id: [1; 16],
            partition: 0,
            expected_partition_epoch: 0,
            leader: None,
            isr: Some(vec![1]),
        },
    )
    .await;
    assert_eq!(change.partition_epoch, Some(1));
}

#[tokio::test]
async fn single_voter_applies_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = must_start(dir.path(), 1000).await;
    assert!(q.is_leader());
    let cluster_id = q.image().cluster_id.clone();
    assert_eq!(cluster_id.len(), 22, "generated cluster id {cluster_id:?}");

    let mut watch = q.subscribe();
    watch.borrow_and_update();
    populate(&q).await;
    assert!(watch.has_changed().expect("watch open"), "the watch saw the proposals");

    let image = watch.borrow_and_update().clone();
    assert_eq!(comparable(&image), comparable(&q.image()));
    let orders = image.topic("orders").expect("orders");
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(orders.configs, BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]));
    assert_eq!(image.topic_by_id(&[1; 16]).map(|t| t.name.as_str()), Some("orders"));
    assert!(image.topic("payments").is_none() && image.topic_by_id(&[2; 16]).is_none());
    let p2 = image.partition("orders", 2).expect("partition 2");
    assert_eq!((p2.leader, p2.isr.clone(), p2.leader_epoch, p2.partition_epoch), (1, vec![1], 0, 0));
    assert_eq!(image.broker_config(1, "log.retention.ms"), Some("1000"));
    assert_eq!(image.next_producer_id, 2000);
    assert!(image.broker(1).is_some_and(|b| !b.fenced && b.rack.as_deref() == Some("r1")));

    // Duplicates and stale preconditions are rejected and change nothing.
    let before = comparable(&q.image());
    for (cmd, code) in [
        (create_topic("orders", 9, 1), RejectCode::TopicAlreadyExists),
        (create_topic("fresh", 1, 1), RejectCode::TopicAlreadyExists),
        (MetadataCommand::DeleteTopic { topic_id: [2; 16] }, RejectCode::UnknownTopic),
        (
            MetadataCommand::CreatePartitions { topic_id: [1; 16], expected_count: 2, new_partitions: vec![] },
            RejectCode::InvalidPartitions,
        ),
        (
            MetadataCommand::ChangePartition {
                topic_id: [1; 16],
                partition: 0,
                expected_partition_epoch: 0,
                leader: None,
                isr: Some(vec![1]),
            },
            RejectCode::StaleEpoch,
        ),
    ] {
        match q.propose(cmd).await.expect("propose") {
            CommandOutcome::Rejected(r) => assert_eq!(r.code, code, "{}", r.message),
            CommandOutcome::Applied(_) => panic!("expected {code:?}"),
        }
    }
    assert_eq!(before, comparable(&q.image()));

    q.shutdown().await.expect("shutdown");
    assert!(matches!(q.propose(create_topic("late", 5, 1)).await, Err(RaftError::ShutDown)));
}

#[tokio::test]
async fn restart_restores_identical_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = must_start(dir.path(), 1000).await;
    populate(&q).await;
    let before = q.image();
    q.shutdown().await.expect("shutdown");

    let q = must_start(dir.path(), 1000).await;
    let after = q.image();
    assert_eq!(comparable(&before), comparable(&after));
    assert!(after.last_applied_index >= before.last_applied_index);
    // Still writable, and ids continue where they were.
    let next = must_apply(&q, MetadataCommand::AllocateProducerIds { node_id: 1, count: 10 }).await;
    assert_eq!(next.first_producer_id, Some(2000));
    q.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn restart_after_snapshot_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = must_start(dir.path(), 10).await;
    populate(&q).await;
    for i in 0..25u8 {
        must_apply(&q, create_topic(&format!("t{i}"), 100 + i, 1)).await;
    }
    // Snapshots are built in the background; wait until one exists and the log was purged.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dir.path().join("purged").exists() {
        assert!(Instant::now() < deadline, "no snapshot + purge happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dir.path().join("snapshot").exists());
    let before = q.image();
    q.shutdown().await.expect("shutdown");

    let q = must_start(dir.path(), 10).await;
    assert_eq!(comparable(&before), comparable(&q.image()));
    must_apply(&q, create_topic("after-restart", 200, 1)).await;
    let before = q.image();
    q.shutdown().await.expect("shutdown");

    // And once more, from whatever mix of snapshot and log is on disk now.
    let q = must_start(dir.path(), 10).await;
    assert_eq!(comparable(&before), comparable(&q.image()));
    q.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn torn_log_tail_recovers_to_a_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = must_start(dir.path(), 1000).await;
    let mut images = vec![q.image()];
    for i in 0..20u8 {
        must_apply(&q, create_topic(&format!("t{i}"), 1 + i, 1)).await;
        images.push(q.image());
    }
    q.shutdown().await.expect("shutdown");

    let log = dir.path().join("raft.log");
    let len = std::fs::metadata(&log).expect("log metadata").len();
    for round in 0..3 {
        // Cut the log somewhere in its last two thirds: the node must still start, and its image
        // must be one the original node went through (topics t0..tk for some k).
        let current = std::fs::metadata(&log).expect("log metadata").len();
        let cut = rand::random::<u64>() % (current.min(len) - len / 3) + len / 3;
        let file = std::fs::OpenOptions::new().write(true).open(&log).expect("open log");
        file.set_len(cut).expect("truncate");
        drop(file);

        let q = must_start(dir.path(), 1000).await;
        let image = q.image();
        let topics: Vec<String> = image.topics.keys().cloned().collect();
        assert!(
            images.iter().any(|old| old.topics.keys().cloned().collect::<Vec<_>>() == topics),
            "round {round}: cut at {cut}: {topics:?} is not a prefix state"
        );
        must_apply(&q, create_topic(&format!("after-cut-{round}"), 200 + round, 1)).await;
        q.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn torn_log_anywhere_still_starts() {
    // Cuts anywhere, including inside the very first entry.
    let dir = tempfile::tempdir().expect("tempdir");
    let q = must_start(dir.path(), 1000).await;
    must_apply(&q, create_topic("a", 1, 1)).await;
    q.shutdown().await.expect("shutdown");
    let log = dir.path().join("raft.log");
    std::fs::OpenOptions::new().write(true).open(&log).expect("open log").set_len(5).expect("truncate");
    let q = must_start(dir.path(), 1000).await;
    assert_eq!(q.image().cluster_id.len(), 22);
    must_apply(&q, create_topic("a", 1, 1)).await;
    q.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn two_hundred_proposals_in_bounded_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = must_start(dir.path(), 1000).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let cmd = MetadataCommand::AlterConfigs {
                resource: ConfigResource::Broker(None),
                set: BTreeMap::from([(format!("k{i}"), i.to_string())]),
                delete: vec![],
            };
            q.propose(cmd).await
        }));
    }
    for task in tasks {
        assert!(task.await.expect("join").expect("propose").is_applied());
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "200 proposals took {elapsed:?}");
    assert_eq!(q.image().broker_configs.get(&None).map(BTreeMap::len), Some(200));
    q.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn configured_cluster_id_is_used_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.cluster_id = Some("MkU3OEVBNTcwNTJENDM2Qk".into());
    let q = MetadataQuorum::start_with(cfg.clone(), tuning(1000), InProcessTransport::new()).await.expect("start");
    assert_eq!(q.image().cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
    q.shutdown().await.expect("shutdown");

    cfg.cluster_id = Some("AAAAAAAAAAAAAAAAAAAAAA".into());
    let err = MetadataQuorum::start_with(cfg, tuning(1000), InProcessTransport::new()).await.err();
    assert!(matches!(err, Some(RaftError::ClusterIdMismatch { .. })), "{err:?}");
}

#[tokio::test]
async fn three_voters_in_process() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let transport = InProcessTransport::new();
    let voters: Vec<(i32, String)> = (1..=3).map(|id| (id, format!("node{id}:9093"))).collect();
    let starts = dirs.iter().enumerate().map(|(i, dir)| {
        let cfg = QuorumConfig {
            node_id: i as i32 + 1,
            data_dir: dir.path().to_path_buf(),
            voters: voters.clone(),
            cluster_id: None,
        };
        let transport: Arc<InProcessTransport> = transport.clone();
        tokio::spawn(async move { MetadataQuorum::start_with(cfg, tuning(1000), transport).await })
    });
    let mut nodes = Vec::new();
    for start in starts.collect::<Vec<_>>() {
        nodes.push(start.await.expect("join").expect("start"));
    }
    let leader_id = nodes[0].leader_id().expect("a leader");
    let leader = nodes.iter().find(|n| n.node_id() == leader_id).expect("leader node").clone();
    let follower = nodes.iter().find(|n| n.node_id() != leader_id).expect("follower").clone();
    // A follower forwards the proposal to the leader.
    match follower.propose(create_topic("x", 1, 1)).await {
        Ok(CommandOutcome::Applied(_)) => {}
        other => panic!("expected the forwarded create to apply, got {other:?}"),
    }
    // The same command again, now on the leader: rejected by its precondition.
    match leader.propose(create_topic("x", 1, 1)).await {
        Ok(CommandOutcome::Rejected(r)) => assert_eq!(r.code, RejectCode::TopicAlreadyExists),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Followers apply it shortly after.
    let deadline = Instant::now() + Duration::from_secs(5);
    for node in &nodes {
        let mut watch = node.subscribe();
        while watch.borrow_and_update().topic("x").is_none() {
            assert!(Instant::now() < deadline, "node {} did not apply", node.node_id());
            let _ = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        }
        assert_eq!(node.image().cluster_id, leader.image().cluster_id);
    }
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}
