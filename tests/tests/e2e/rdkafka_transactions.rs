//! Transactions through librdkafka (the `rdkafka` crate) against an in-process
//! broker: commit and abort seen by read_committed and read_uncommitted
//! consumers, a consume-transform-produce loop whose input offsets become the
//! group's committed offsets only when its transaction commits, and fencing
//! of a producer by a newer one with the same transactional id.
//!
//! librdkafka's transactional calls block, and the broker runs on the test's
//! runtime, so every client runs inside `spawn_blocking`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use klamm_tests::TestBroker;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Small internal topics, created on first use, and a quick abort of timed-out transactions.
const BROKER_CONF: &[&str] = &[
    "offsets.topic.num.partitions=2",
    "transaction.state.log.num.partitions=2",
    "group.initial.rebalance.delay.ms=0",
];

fn txn_producer(bootstrap: &str, transactional_id: &str) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("create transactional producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

fn send(p: &BaseProducer, topic: &str, partition: i32, key: &str, value: &str) {
    let mut record = BaseRecord::to(topic).partition(partition).key(key).payload(value);
    // The queue is bounded; a full queue is drained by polling, not by failing the test.
    for _ in 0..1000 {
        match p.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(rdkafka::error::RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send to {topic}/{partition}: {e}"),
        }
    }
    panic!("producer queue stayed full");
}

fn plain_producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("create producer")
}

fn consumer(bootstrap: &str, group: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("session.timeout.ms", "10000")
        .create()
        .expect("create consumer")
}

/// Every (partition, offset, value) of `topic` from offset 0 with `isolation`:
/// reads until `expect` records arrived, then one more second to catch any
/// record that should not be there (bounded by TIMEOUT).
fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str, expect: usize) -> Vec<(i32, i64, String)> {
    let c = consumer(bootstrap, "klamm-tests-txn-reader", isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut complete_at = None;
    while Instant::now() < deadline {
        if out.len() >= expect && complete_at.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(1) {
            break;
        }
        let Some(m) = c.poll(Duration::from_millis(100)) else { continue };
        let m = m.expect("consume");
        let value = String::from_utf8(m.payload().expect("value").to_vec()).expect("utf-8 value");
        out.push((m.partition(), m.offset(), value));
    }
    out.sort();
    out
}

fn values(records: &[(i32, i64, String)]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|(_, _, v)| v.clone()).collect();
    v.sort();
    v
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    // librdkafka's admin client is async; a metadata request with auto-creation
    // would also do, but an explicit CreateTopics states the partition count.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin");
        for r in admin
            .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
            .await
            .expect("create_topics")
        {
            r.expect("topic created");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_seen_by_each_isolation_level() {
    let broker = TestBroker::start(BROKER_CONF).await.expect("start broker");
    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        create_topic(&bootstrap, "txn-iso", 2);
        let p = txn_producer(&bootstrap, "rdkafka-iso");
        let run = |tag: &str, n: usize, commit: bool| {
            p.begin_transaction().expect("begin");
            for i in 0..n {
                send(&p, "txn-iso", (i % 2) as i32, &format!("k{i}"), &format!("{tag}-{i}"));
            }
            if commit {
                p.commit_transaction(TIMEOUT).expect("commit");
            } else {
                p.flush(TIMEOUT).expect("flush before abort");
                p.abort_transaction(TIMEOUT).expect("abort");
            }
        };
        run("first", 10, true);
        run("aborted", 6, false);
        run("second", 4, true);

        let committed = read_all(&bootstrap, "txn-iso", 2, "read_committed", 14);
        let expected: Vec<String> = {
            let mut v: Vec<String> =
                (0..10).map(|i| format!("first-{i}")).chain((0..4).map(|i| format!("second-{i}"))).collect();
            v.sort();
            v
        };
        assert_eq!(values(&committed), expected, "read_committed sees exactly the committed records");

        let everything = read_all(&bootstrap, "txn-iso", 2, "read_uncommitted", 20);
        assert_eq!(everything.len(), 20, "read_uncommitted sees every data record: {everything:?}");
        assert_eq!(everything.iter().filter(|(_, _, v)| v.starts_with("aborted-")).count(), 6);
        // Offsets increase per partition and leave room for the markers between transactions.
        let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (partition, offset, _) in &everything {
            per_partition.entry(*partition).or_default().push(*offset);
        }
        for (partition, offsets) in per_partition {
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "partition {partition}: {offsets:?}");
        }
    })
    .await
    .expect("client thread");
    broker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_offsets_with_the_transaction() {
    let broker = TestBroker::start(BROKER_CONF).await.expect("start broker");
    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        create_topic(&bootstrap, "orders-in", 1);
        create_topic(&bootstrap, "orders-out", 1);
        let input = plain_producer(&bootstrap);
        for i in 0..20 {
            send(&input, "orders-in", 0, &format!("user-{}", i % 3), &format!("order-{i}"));
        }
        input.flush(TIMEOUT).expect("flush input");

        let group = "rdkafka-processor";
        let c = consumer(&bootstrap, group, "read_committed");
        c.subscribe(&["orders-in"]).expect("subscribe");
        let p = txn_producer(&bootstrap, "rdkafka-processor-0");

        // Reads `n` input records (bounded), writes one output per input in a
        // transaction together with the consumer's positions.
        let process = |n: usize, commit: bool| -> Vec<String> {
            let mut got = Vec::new();
            let deadline = Instant::now() + TIMEOUT;
            while got.len() < n && Instant::now() < deadline {
                if let Some(m) = c.poll(Duration::from_millis(100)) {
                    let m = m.expect("consume input");
                    got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
                }
            }
            assert_eq!(got.len(), n, "input records read");
            p.begin_transaction().expect("begin");
            for v in &got {
                send(&p, "orders-out", 0, "k", &format!("processed-{v}"));
            }
            let positions = c.position().expect("positions");
            let metadata = c.group_metadata().expect("group metadata");
            p.send_offsets_to_transaction(&positions, &metadata, TIMEOUT).expect("send offsets");
            if commit {
                p.commit_transaction(TIMEOUT).expect("commit");
            } else {
                // A BaseProducer's delivery reports are served by polling: flush does, then abort.
                p.flush(TIMEOUT).expect("flush before abort");
                p.abort_transaction(TIMEOUT).expect("abort");
            }
            got
        };

        let first = process(12, true);
        let committed_offset = |c: &BaseConsumer| {
            // A fresh consumer of the same group asks the coordinator, with require_stable
            // as librdkafka does, until the markers have settled the pending offsets.
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition("orders-in", 0);
            c.committed_offsets(tpl, TIMEOUT).expect("committed offsets").find_partition("orders-in", 0).unwrap().offset()
        };
        assert_eq!(committed_offset(&c), Offset::Offset(12), "offsets of the committed transaction");

        // The rest goes into a transaction that aborts: neither its output nor its offsets count.
        let rest = process(8, false);
        assert_eq!(committed_offset(&c), Offset::Offset(12), "an aborted transaction commits no offsets");
        drop(c);

        let out = read_all(&bootstrap, "orders-out", 1, "read_committed", 12);
        let mut expected: Vec<String> = first.iter().map(|v| format!("processed-{v}")).collect();
        expected.sort();
        assert_eq!(values(&out), expected);
        assert!(rest.iter().all(|v| !out.iter().any(|(_, _, o)| o == &format!("processed-{v}"))));

        // A new processor instance of the group resumes at the committed offset.
        let c2 = consumer(&bootstrap, group, "read_committed");
        c2.subscribe(&["orders-in"]).expect("subscribe");
        let deadline = Instant::now() + TIMEOUT;
        let first_seen = loop {
            assert!(Instant::now() < deadline, "the restarted consumer reads nothing");
            if let Some(m) = c2.poll(Duration::from_millis(100)) {
                break m.expect("consume").offset();
            }
        };
        assert_eq!(first_seen, 12);
    })
    .await
    .expect("client thread");
    broker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_producer_with_the_same_id_fences_the_older() {
    let broker = TestBroker::start(BROKER_CONF).await.expect("start broker");
    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        create_topic(&bootstrap, "txn-fence", 1);
        let old = txn_producer(&bootstrap, "rdkafka-fenced");
        old.begin_transaction().expect("begin");
        send(&old, "txn-fence", 0, "k", "from-the-old-producer");
        old.flush(TIMEOUT).expect("flush");

        // The newer instance's InitProducerId bumps the epoch and aborts the open transaction.
        let new = txn_producer(&bootstrap, "rdkafka-fenced");
        let err = old.commit_transaction(TIMEOUT).expect_err("the fenced producer must not commit");
        let fatal = match &err {
            KafkaError::Transaction(e) => e.is_fatal(),
            _ => false,
        };
        assert!(fatal, "fencing is fatal for the old producer: {err:?}");

        new.begin_transaction().expect("begin");
        send(&new, "txn-fence", 0, "k", "from-the-new-producer");
        new.commit_transaction(TIMEOUT).expect("commit");

        let out = read_all(&bootstrap, "txn-fence", 1, "read_committed", 1);
        assert_eq!(values(&out), vec!["from-the-new-producer".to_string()]);
    })
    .await
    .expect("client thread");
    broker.stop().await.unwrap();
}
