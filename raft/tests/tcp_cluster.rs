//! Multi-voter quorums over real TCP on 127.0.0.1: election, forwarding, failover, restart and
//! catch-up via snapshot, minority behaviour, garbage on the listener, broker-only followers.
//! Every wait is a bounded loop; nothing measures speed.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm_raft::{
    CommandOutcome, FollowerConfig, MetadataCommand, MetadataFollower, MetadataQuorum, NewPartition, QuorumConfig,
    QuorumTuning, RaftError, RaftTransport, RpcHandler, RpcKind, TcpTransport, TcpTransportConfig, TransportFuture,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

fn tuning(snapshot_every_entries: u64, propose_timeout: Duration) -> QuorumTuning {
    QuorumTuning {
        snapshot_every_entries,
        entries_kept_after_snapshot: 0,
        election_timeout_min_ms: 400,
        election_timeout_max_ms: 800,
        heartbeat_interval_ms: 80,
        install_snapshot_timeout_ms: 10_000,
        snapshot_chunk_bytes: 1 << 20,
        start_timeout: Duration::from_secs(20),
        propose_timeout,
        propose_attempts: 50,
    }
}

fn create_topic(name: &str) -> MetadataCommand {
    let mut topic_id = [0u8; 16];
    for (slot, byte) in topic_id.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    topic_id[15] = name.len() as u8;
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id,
        partitions: vec![NewPartition { partition: 0, replicas: vec![1] }],
        configs: BTreeMap::new(),
    }
}

/// Polls `check` every 50 ms until it holds or `WAIT` passes.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Binds `address`, retrying briefly: the previous incarnation's socket may still be closing.
async fn bind(address: &str) -> Arc<TcpTransport> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpTransport::bind(address, TcpTransportConfig::default()).await {
            Ok(t) => return t,
            Err(e) => {
                assert!(Instant::now() < deadline, "bind {address}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    voters: Vec<(i32, String)>,
    tuning: QuorumTuning,
    nodes: BTreeMap<i32, MetadataQuorum>,
}

impl Cluster {
    /// Starts `n` voters (ids 1..=n) concurrently, each listening on a port picked by the OS.
    async fn start(n: i32, tuning: QuorumTuning) -> Cluster {
        let mut transports = Vec::new();
        for _ in 0..n {
            transports.push(bind("127.0.0.1:0").await);
        }
        let voters: Vec<(i32, String)> = transports
            .iter()
            .enumerate()
            .map(|(i, t)| (i as i32 + 1, t.local_addr().expect("bound").to_string()))
            .collect();
        let mut cluster = Cluster {
            dirs: (0..n).map(|_| tempfile::tempdir().expect("tempdir")).collect(),
            voters,
            tuning,
            nodes: BTreeMap::new(),
        };
        let starts: Vec<_> = transports
            .into_iter()
            .enumerate()
            .map(|(i, transport)| {
                let cfg = cluster.config(i as i32 + 1);
                let tuning = cluster.tuning.clone();
                tokio::spawn(async move { MetadataQuorum::start_with(cfg, tuning, transport).await })
            })
            .collect();
        for (i, start) in starts.into_iter().enumerate() {
            let node = start.await.expect("join").expect("start voter");
            cluster.nodes.insert(i as i32 + 1, node);
        }
        cluster
    }

    fn config(&self, id: i32) -> QuorumConfig {
        QuorumConfig {
            node_id: id,
            data_dir: self.dir(id).to_path_buf(),
            voters: self.voters.clone(),
            cluster_id: None,
        }
    }

    fn dir(&self, id: i32) -> &Path {
        self.dirs[(id - 1) as usize].path()
    }

    fn address(&self, id: i32) -> String {
        self.voters.iter().find(|(v, _)| *v == id).map(|(_, a)| a.clone()).expect("voter")
    }

    fn controllers(&self) -> BTreeMap<i32, String> {
        self.voters.iter().cloned().collect()
    }

    /// Restarts voter `id` from its data dir on its old port. Spawned so that a caller can
    /// restart while the quorum is not yet able to elect.
    fn restart(&self, id: i32) -> tokio::task::JoinHandle<Result<MetadataQuorum, RaftError>> {
        let cfg = self.config(id);
        let tuning = self.tuning.clone();
        let address = self.address(id);
        tokio::spawn(async move {
            let transport = bind(&address).await;
            MetadataQuorum::start_with(cfg, tuning, transport).await
        })
    }

    async fn stop(&mut self, id: i32) {
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await.expect("shutdown");
        }
    }

    /// Waits until every running node names the same running leader; returns it.
    async fn agreed_leader(&self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            let views: Vec<Option<i32>> = self.nodes.values().map(|n| n.leader_id()).collect();
            if let Some(Some(leader)) = views.first() {
                if views.iter().all(|v| *v == Some(*leader)) && self.nodes.contains_key(leader) {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {views:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node has topic `name`.
    async fn all_have(&self, name: &str) {
        for node in self.nodes.values() {
            wait_until(&format!("node {} to apply {name}", node.node_id()), || async { node.image().topic(name).is_some() }).await;
        }
    }

    async fn shutdown(mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

async fn must_apply(node: &MetadataQuorum, cmd: MetadataCommand) -> u64 {
    match node.propose(cmd).await {
        Ok(CommandOutcome::Applied(info)) => info.log_index,
        other => panic!("node {}: expected Applied, got {other:?}", node.node_id()),
    }
}

/// The `index` of the one-record `purged` file (`u32 len | u32 crc | JSON log id`), if any.
fn purged_index(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("purged")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(bytes.get(8..)?).ok()?;
    value.get("index")?.as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_forward_and_converge() {
    let cluster = Cluster::start(3, tuning(1000, Duration::from_secs(10))).await;
    let leader = cluster.agreed_leader().await;
    assert_eq!(cluster.nodes.values().filter(|n| n.is_leader()).count(), 1, "exactly one leader");
    assert!(!cluster.nodes[&leader].image().cluster_id.is_empty());

    let mut names = vec!["from-leader".to_string()];
    must_apply(&cluster.nodes[&leader], create_topic("from-leader")).await;
    for (id, node) in &cluster.nodes {
        if *id != leader {
            let name = format!("from-follower-{id}");
            must_apply(node, create_topic(&name)).await;
            names.push(name);
        }
    }
    for name in &names {
        cluster.all_have(name).await;
    }
    // Images converge: same index, same content, same cluster id.
    let reference = cluster.nodes[&leader].image();
    for node in cluster.nodes.values() {
        wait_until("images to converge", || async { node.image().last_applied_index >= reference.last_applied_index }).await;
        let image = node.image();
        assert_eq!(image.cluster_id, reference.cluster_id);
        assert_eq!(image.topics.keys().collect::<Vec<_>>(), reference.topics.keys().collect::<Vec<_>>());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_and_restarted_leader_catches_up_via_snapshot() {
    // A snapshot every 5 entries, nothing kept below it: the new leader purges what the stopped
    // one lacks, so only InstallSnapshot can bring it back.
    let mut tuning = tuning(5, Duration::from_secs(10));
    // Tiny chunks: the snapshot crosses the bulk connection in many InstallSnapshot frames.
    tuning.snapshot_chunk_bytes = 200;
    let mut cluster = Cluster::start(3, tuning).await;
    let old_leader = cluster.agreed_leader().await;
    let last_index_before = must_apply(&cluster.nodes[&old_leader], create_topic("before")).await;
    cluster.all_have("before").await;

    cluster.stop(old_leader).await;
    let new_leader = cluster.agreed_leader().await;
    assert_ne!(new_leader, old_leader);
    let follower = *cluster.nodes.keys().find(|id| **id != new_leader).expect("a follower");
    for i in 0..20 {
        // Alternate: half of them forwarded by the remaining follower.
        let node = if i % 2 == 0 { new_leader } else { follower };
        must_apply(&cluster.nodes[&node], create_topic(&format!("after-{i}"))).await;
    }
    cluster.all_have("after-19").await;
    let leader_dir = cluster.dir(new_leader).to_path_buf();
    wait_until("the new leader to purge past the old leader's log", || {
        let dir = leader_dir.clone();
        async move { purged_index(&dir).is_some_and(|p| p > last_index_before + 1) }
    })
    .await;

    let restarted = cluster.restart(old_leader).await.expect("join").expect("restart old leader");
    cluster.nodes.insert(old_leader, restarted);
    cluster.all_have("after-19").await;
    let image = cluster.nodes[&old_leader].image();
    assert!(image.topic("before").is_some());
    // Proposals through the restarted node still work.
    must_apply(&cluster.nodes[&old_leader], create_topic("after-restart")).await;
    cluster.all_have("after-restart").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_cannot_commit_until_a_second_voter_returns() {
    let mut cluster = Cluster::start(3, tuning(1000, Duration::from_secs(2))).await;
    cluster.agreed_leader().await;
    let ids: Vec<i32> = cluster.nodes.keys().copied().collect();
    let survivor = ids[0];
    for id in &ids[1..] {
        cluster.stop(*id).await;
    }
    let result = cluster.nodes[&survivor].propose(create_topic("minority")).await;
    assert!(matches!(result, Err(RaftError::Timeout(_))), "a minority committed: {result:?}");

    // A second voter returns: a majority again. Its start waits for a leader, which needs it.
    let returning = cluster.restart(ids[1]).await.expect("join").expect("restart");
    cluster.nodes.insert(ids[1], returning);
    let deadline = Instant::now() + WAIT;
    loop {
        match cluster.nodes[&survivor].propose(create_topic("majority")).await {
            Ok(CommandOutcome::Applied(_)) => break,
            other => assert!(Instant::now() < deadline, "no commit after the majority returned: {other:?}"),
        }
    }
    cluster.all_have("majority").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_listener_does_not_disturb_the_quorum() {
    let cluster = Cluster::start(3, tuning(1000, Duration::from_secs(10))).await;
    let leader = cluster.agreed_leader().await;
    let mut garbage: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff, 0xff, 0xff, 0xff, 1, 0],   // length far above the limit
        vec![0, 0, 0, 2, 1, 0],               // length below the header
        vec![0, 0, 0, 10, 99, 0, 0, 0, 0, 0, 0, 0, 0, 1], // unknown kind
        vec![0, 0, 0, 10, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1],  // a response sent to a server
    ];
    // Deterministic pseudo-random noise.
    let mut x: u32 = 0x1234_5678;
    garbage.push(
        (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect(),
    );
    for (id, _) in &cluster.voters {
        for bytes in &garbage {
            let mut stream = TcpStream::connect(cluster.address(*id)).await.expect("connect");
            stream.write_all(bytes).await.expect("write");
            // The server closes the connection (possibly without answering).
            let mut buf = vec![0u8; 1024];
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            // The HTTP line's first 4 bytes are a huge length: also closed.
            assert!(closed.is_ok(), "node {id} kept a connection open after {:?}", &bytes[..bytes.len().min(8)]);
        }
        // A well-formed frame with an undecodable payload gets an error response; the
        // connection stays usable.
        let mut stream = TcpStream::connect(cluster.address(*id)).await.expect("connect");
        for request_id in [7u8, 8] {
            let payload = b"not json";
            let mut frame = ((10 + payload.len()) as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 0, request_id]);
            frame.extend_from_slice(payload);
            stream.write_all(&frame).await.expect("write");
            let mut header = [0u8; 14];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header))
                .await
                .expect("a response in time")
                .expect("read response");
            assert_eq!((header[4], header[5], header[13]), (2, 2, request_id), "an error response to the request");
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut message = vec![0u8; len - 10];
            stream.read_exact(&mut message).await.expect("read message");
        }
    }
    // The quorum still works, through every node.
    for (id, node) in &cluster.nodes {
        must_apply(node, create_topic(&format!("after-garbage-{id}"))).await;
    }
    cluster.all_have("after-garbage-1").await;
    assert!(cluster.nodes.contains_key(&leader));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_only_follower_sees_the_image_and_survives_failover() {
    let mut cluster = Cluster::start(3, tuning(1000, Duration::from_secs(10))).await;
    let leader = cluster.agreed_leader().await;
    let index = must_apply(&cluster.nodes[&leader], create_topic("seen-by-broker")).await;

    let mut cfg = FollowerConfig::new(cluster.controllers());
    cfg.poll_wait = Duration::from_millis(500);
    let follower = MetadataFollower::start(cfg).expect("start follower");
    let image = follower.wait_for_index(index, WAIT).await.expect("follower catches up");
    assert!(image.topic("seen-by-broker").is_some());
    assert_eq!(image.cluster_id, cluster.nodes[&leader].image().cluster_id);

    // A proposal through the follower goes to the leader; the follower then sees its effect.
    let info = match follower.propose(create_topic("proposed-by-broker")).await {
        Ok(CommandOutcome::Applied(info)) => info,
        other => panic!("expected Applied, got {other:?}"),
    };
    let image = follower.wait_for_index(info.log_index, WAIT).await.expect("own write visible");
    assert!(image.topic("proposed-by-broker").is_some());

    // The leader goes away; the follower moves on to the new one.
    cluster.stop(leader).await;
    let new_leader = cluster.agreed_leader().await;
    let index = must_apply(&cluster.nodes[&new_leader], create_topic("after-failover")).await;
    let image = follower.wait_for_index(index, WAIT).await.expect("follower follows the new leader");
    assert!(image.topic("after-failover").is_some());

    follower.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_listens_on_the_own_voter_address_and_whole_cluster_restarts() {
    // `MetadataQuorum::start` binds the listener itself, so the ports must be known up front:
    // take ports the OS hands out and release them (another process grabbing one in between
    // would make the start fail, not pass wrongly).
    let ports: Vec<u16> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port())
        .collect();
    let spec = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let voters = klamm_raft::parse_quorum_voters(&spec).expect("voters");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let config = |id: i32| QuorumConfig {
        node_id: id,
        data_dir: dirs[(id - 1) as usize].path().to_path_buf(),
        voters: voters.clone().into_iter().collect(),
        cluster_id: None,
    };
    let start_all = || async {
        let starts: Vec<_> = (1..=3).map(|id| tokio::spawn(MetadataQuorum::start(config(id)))).collect();
        let mut nodes = Vec::new();
        for start in starts {
            nodes.push(start.await.expect("join").expect("start"));
        }
        nodes
    };

    let nodes = start_all().await;
    let mut last = 0;
    for (i, node) in nodes.iter().enumerate() {
        last = must_apply(node, create_topic(&format!("t{i}"))).await;
    }
    for node in &nodes {
        wait_until("convergence", || async { node.image().last_applied_index >= last }).await;
    }
    let before = nodes[0].image();
    for node in &nodes {
        node.shutdown().await.expect("shutdown");
    }

    // All three come back from their directories with the same content.
    let nodes = start_all().await;
    for node in &nodes {
        wait_until("restored image", || async { node.image().last_applied_index >= before.last_applied_index }).await;
        let image = node.image();
        assert_eq!(image.cluster_id, before.cluster_id);
        assert_eq!(image.topics, before.topics);
    }
    must_apply(&nodes[2], create_topic("after-restart")).await;
    for node in &nodes {
        node.shutdown().await.expect("shutdown");
    }
}

/// A [`TcpTransport`] whose sends fail while the sender or the target is in `cut`: a network
/// partition without touching the sockets.
struct Partitionable {
    node_id: i32,
    inner: Arc<TcpTransport>,
    cut: Arc<std::sync::Mutex<std::collections::BTreeSet<i32>>>,
}

impl RaftTransport for Partitionable {
    fn send(&self, target: i32, address: &str, kind: RpcKind, request: bytes::Bytes) -> TransportFuture {
        let cut = self.cut.lock().expect("lock");
        if cut.contains(&self.node_id) || cut.contains(&target) {
            return Box::pin(async move { Err(RaftError::Transport(format!("partitioned from {target}"))) });
        }
        self.inner.send(target, address, kind, request)
    }

    fn serve(&self, node_id: i32, handler: RpcHandler) -> Result<(), RaftError> {
        self.inner.serve(node_id, handler)
    }

    fn unserve(&self, node_id: i32) {
        self.inner.unserve(node_id)
    }

    fn close(&self) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.close()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_voter_catches_up_via_snapshot_while_running() {
    let mut tuning = tuning(5, Duration::from_secs(10));
    tuning.snapshot_chunk_bytes = 300;
    let cut = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut transports = Vec::new();
    for _ in 0..3 {
        transports.push(bind("127.0.0.1:0").await);
    }
    let voters: Vec<(i32, String)> =
        transports.iter().enumerate().map(|(i, t)| (i as i32 + 1, t.local_addr().expect("bound").to_string())).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let starts: Vec<_> = transports
        .into_iter()
        .enumerate()
        .map(|(i, inner)| {
            let node_id = i as i32 + 1;
            let cfg = QuorumConfig { node_id, data_dir: dirs[i].path().to_path_buf(), voters: voters.clone(), cluster_id: None };
            let transport = Arc::new(Partitionable { node_id, inner, cut: cut.clone() });
            let tuning = tuning.clone();
            tokio::spawn(async move { MetadataQuorum::start_with(cfg, tuning, transport).await })
        })
        .collect();
    let mut nodes = BTreeMap::new();
    for (i, start) in starts.into_iter().enumerate() {
        nodes.insert(i as i32 + 1, start.await.expect("join").expect("start"));
    }
    let leader = loop {
        if let Some(l) = nodes[&1].leader_id().filter(|l| nodes.values().all(|n| n.leader_id() == Some(*l))) {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lagging = *nodes.keys().find(|id| **id != leader).expect("a follower");
    let before = nodes[&lagging].image().last_applied_index;
    cut.lock().expect("lock").insert(lagging);

    // The remaining majority commits, snapshots and purges what the cut-off voter lacks.
    let majority: Vec<i32> = nodes.keys().copied().filter(|id| *id != lagging).collect();
    let mut last = 0;
    for i in 0..20 {
        let node = &nodes[&majority[i % 2]];
        last = must_apply(node, create_topic(&format!("while-cut-{i}"))).await;
    }
    for id in &majority {
        let dir = dirs[(*id - 1) as usize].path().to_path_buf();
        wait_until("the majority to purge past the cut-off voter", || {
            let dir = dir.clone();
            async move { purged_index(&dir).is_some_and(|p| p > before + 1) }
        })
        .await;
    }
    assert!(nodes[&lagging].image().topic("while-cut-0").is_none(), "the cut-off voter saw an entry");

    cut.lock().expect("lock").clear();
    let node = &nodes[&lagging];
    wait_until("the reconnected voter to catch up", || async { node.image().last_applied_index >= last }).await;
    assert!(node.image().topic("while-cut-19").is_some());
    for node in nodes.values() {
        node.shutdown().await.expect("shutdown");
    }
}
