//! Fetch (key 1) for consumers: whole batches below the high watermark (or
//! the last stable offset under read_committed), long-polling until
//! `min_bytes` are ready or `max_wait_ms` passes.
//!
//! - Sizes: `max_bytes` bounds the response and `partition_max_bytes` each
//!   partition, except that the first partition with data always gets at
//!   least one whole batch (KIP-74), so a consumer can pass a large batch.
//! - Fetch sessions (KIP-227) are declined: every response carries
//!   session id 0, which every client treats as "keep sending full fetches".
//! - read_committed (`isolation_level=1`) reads below the last stable offset
//!   and lists the aborted transactions the data overlaps; a delayed fetch
//!   wakes on every change of the partition's view, so also when the LSO moves.
//! - Errors are per partition and make the response return at once, as in
//!   Kafka's DelayedFetch.
//!
//! A fetch with a replica id (`replica_id` before v15, `replica_state` from
//! v15) comes from a follower: it reads up to the log end offset instead of
//! the high watermark, its fetch offset is recorded as the follower's log end
//! offset (which may advance the high watermark and later the ISR), and its
//! last fetched epoch is checked against the leader-epoch cache: a diverging
//! log gets `diverging_epoch` and no records, so the follower truncates first.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use klamm_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchResponse, FetchableTopicResponse, PartitionData};
use klamm_protocol::messages::FetchRequest;
use klamm_protocol::{left_out, ErrorCode, Uuid};
use klamm_storage::FileRegion;
use tokio::sync::watch;
use tokio::time::Instant;

use super::RequestContext;
use crate::replica::{Partition, PartitionView};

/// Kafka caps the wait a client may ask for at the request timeout; we cap it
/// so a confused client cannot park a connection for hours.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

/// Most record bytes sent for one partition in one fetch, and in one response. Clients may
/// ask for far more (some set 100 MB); answering with less is always allowed (the client
/// fetches again), and bounds how long one response holds the connection's writer.
/// KIP-74 still wins: a single larger batch is returned whole.
const PARTITION_READ_CAP: i64 = 16 << 20;
const RESPONSE_READ_CAP: i64 = 48 << 20;

struct Target {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    local: Result<Arc<Partition>, ErrorCode>,
    /// Follower fetches: the leader's diverging epoch when the follower must truncate.
    diverging: Option<(i32, i64)>,
}

/// The response, and the file regions its `records` placeholders stand for
/// (see [`super::Outcome::RespondFromFiles`]).
pub async fn handle(ctx: &RequestContext, request: FetchRequest) -> (FetchResponse, Vec<FileRegion>) {
    let version = ctx.api_version;
    let mut response = FetchResponse { throttle_time_ms: 0, session_id: 0, ..Default::default() };
    if request.session_id != 0 {
        // We never hand out sessions, so any id is unknown.
        response.error_code = ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code();
        return (response, Vec::new());
    }
    if request.session_epoch != -1 && request.session_epoch != 0 {
        response.error_code = ErrorCode::INVALID_FETCH_SESSION_EPOCH.code();
        return (response, Vec::new());
    }

    let replica_id = if version >= 15 { request.replica_state.replica_id } else { request.replica_id };
    let follower = (replica_id >= 0).then_some(replica_id);
    let targets = resolve(ctx, &request, follower);
    let read_committed = request.isolation_level == 1 && follower.is_none();
    let max_bytes = if version >= 3 { request.max_bytes.max(0) as i64 } else { i64::MAX }.min(RESPONSE_READ_CAP);
    let min_bytes = request.min_bytes.max(0) as i64;
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;

    // Subscribe before the first read so no append between read and wait is missed.
    let mut watchers: Vec<watch::Receiver<PartitionView>> = targets
        .iter()
        .filter_map(|t| t.local.as_ref().ok().map(|p| p.subscribe()))
        .collect();
    loop {
        for w in watchers.iter_mut() {
            w.borrow_and_update();
        }
        let read = read_all(&targets, read_committed, max_bytes, follower.is_some());
        if read.bytes >= min_bytes || read.any_error || Instant::now() >= deadline || watchers.is_empty() {
            count_out(ctx, &targets, &read, follower.is_some());
            response.responses = read.topics;
            return (response, read.regions);
        }
        // Long-polling is Kafka's fetch purgatory; its time is intended, not slowness.
        let (waiting, wait_started) = (ctx.broker.metrics.fetch_purgatory.enter(), Instant::now());
        let changed = wait_for_change(&mut watchers, deadline).await;
        crate::metrics::requests::intended_wait(wait_started.elapsed());
        drop(waiting);
        if !changed {
            // Deadline passed: one last read so data that arrived is not left behind.
            let read = read_all(&targets, read_committed, max_bytes, follower.is_some());
            count_out(ctx, &targets, &read, follower.is_some());
            response.responses = read.topics;
            return (response, read.regions);
        }
    }
}

fn resolve(ctx: &RequestContext, request: &FetchRequest, follower: Option<i32>) -> Vec<Target> {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let now = crate::clock::now_ms();
    let mut targets = Vec::new();
    for t in &request.topics {
        let (name, id, topic_error) = if ctx.api_version >= 13 {
            match image.topic_by_id(&t.topic_id.0) {
                Some(topic) => (topic.name.clone(), t.topic_id, None),
                None => (String::new(), t.topic_id, Some(ErrorCode::UNKNOWN_TOPIC_ID)),
            }
        } else {
            match image.topic(&t.topic) {
                Some(topic) => (t.topic.clone(), Uuid(topic.topic_id), None),
                None => (t.topic.clone(), Uuid::ZERO, Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)),
            }
        };
        for p in &t.partitions {
            let mut local = match topic_error {
                Some(code) => Err(code),
                None => match image.partition(&name, p.partition) {
                    None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                    Some(meta) if meta.leader != broker.node_id => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
                    Some(_) => broker.replicas.lookup(&name, p.partition),
                },
            };
            if let Ok(partition) = &local {
                if let Err(code) = check_leader_epoch(partition, p.current_leader_epoch, ctx.api_version) {
                    local = Err(code);
                }
            }
            let mut diverging = None;
            if let (Some(replica), Ok(partition)) = (follower, &local) {
                match partition.record_follower_fetch(replica, p.fetch_offset, p.last_fetched_epoch, now) {
                    Ok(d) => diverging = d,
                    // Answered below with the log start and high watermark the follower needs.
                    Err(ErrorCode::OFFSET_OUT_OF_RANGE) => {}
                    Err(code) => local = Err(code),
                }
            }
            targets.push(Target {
                topic: if ctx.api_version >= 13 { String::new() } else { name.clone() },
                topic_id: id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                local,
                diverging,
            });
        }
    }
    targets
}

/// One pass over the fetched partitions.
struct ReadAll {
    topics: Vec<FetchableTopicResponse>,
    /// The regions that the `records` placeholders stand for, by key.
    regions: Vec<FileRegion>,
    /// Bytes of record data included.
    bytes: i64,
    /// Whether any partition carries an error (the fetch then returns at once).
    any_error: bool,
    /// Record bytes included per target, in target order (for `/metrics`).
    sizes: Vec<u64>,
}

/// Reads every target once. Record data is found, not read: each partition's
/// `records` is a placeholder for a file region (read into memory only when
/// there are more regions or larger ones than placeholders allow).
/// Counts the record bytes of an answer per partition (`/metrics` bytes out).
fn count_out(ctx: &RequestContext, targets: &[Target], read: &ReadAll, follower: bool) {
    for (t, bytes) in targets.iter().zip(&read.sizes) {
        if let (Ok(p), true) = (&t.local, *bytes > 0) {
            ctx.broker.metrics.fetched(&p.metrics, *bytes, follower);
        }
    }
}

fn read_all(targets: &[Target], read_committed: bool, max_bytes: i64, follower: bool) -> ReadAll {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut regions: Vec<FileRegion> = Vec::new();
    let mut total: i64 = 0;
    let mut any_error = false;
    let mut sizes = Vec::with_capacity(targets.len());
    for t in targets {
        let before = total;
        let mut data = PartitionData {
            partition_index: t.partition,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            preferred_read_replica: -1,
            aborted_transactions: if read_committed { Some(Vec::new()) } else { None },
            records: Some(Bytes::new()),
            ..Default::default()
        };
        match &t.local {
            Err(code) => {
                data.error_code = code.code();
                any_error = true;
            }
            // Taken offline after the request resolved it (a long poll wakes for it).
            Ok(partition) if partition.is_offline() => {
                data.error_code = ErrorCode::KAFKA_STORAGE_ERROR.code();
                any_error = true;
            }
            Ok(partition) => {
                let view = partition.view();
                data.high_watermark = view.high_watermark;
                data.last_stable_offset = view.last_stable_offset;
                data.log_start_offset = view.log_start_offset;
                if let Some((epoch, end_offset)) = t.diverging {
                    data.diverging_epoch = EpochEndOffset { epoch, end_offset, ..Default::default() };
                    any_error = true;
                } else if t.fetch_offset < view.log_start_offset || t.fetch_offset > view.log_end_offset {
                    data.error_code = ErrorCode::OFFSET_OUT_OF_RANGE.code();
                    any_error = true;
                } else {
                    let bound = if follower {
                        view.log_end_offset
                    } else if read_committed {
                        view.last_stable_offset
                    } else {
                        view.high_watermark
                    };
                    let remaining = (max_bytes - total).max(0);
                    let limit = remaining.min(t.partition_max_bytes.max(0) as i64).min(PARTITION_READ_CAP);
                    let min_one = total == 0;
                    if t.fetch_offset < bound && (limit > 0 || min_one) {
                        let found = partition.reader().read_region(t.fetch_offset, limit as usize, bound, min_one);
                        match found.and_then(|region| region.map(|r| records_for(r, &mut regions)).transpose()) {
                            Ok(records) => {
                                let records = records.unwrap_or_default();
                                total += records.len() as i64;
                                if read_committed && !records.is_empty() {
                                    data.aborted_transactions = Some(aborted_transactions(partition, t.fetch_offset, bound));
                                }
                                data.records = Some(records);
                            }
                            Err(e) => {
                                tracing::warn!(topic = %partition.topic, partition = t.partition, error = %e, "fetch read failed");
                                data.error_code = ErrorCode::KAFKA_STORAGE_ERROR.code();
                                any_error = true;
                            }
                        }
                    }
                }
            }
        }
        let same_topic = topics.last().map_or(false, |last| last.topic == t.topic && last.topic_id == t.topic_id);
        if !same_topic {
            topics.push(FetchableTopicResponse { topic: t.topic.clone(), topic_id: t.topic_id, partitions: Vec::new(), ..Default::default() });
        }
        topics.last_mut().expect("pushed above").partitions.push(data);
        sizes.push((total - before).max(0) as u64);
    }
    ReadAll { topics, regions, bytes: total, any_error, sizes }
}

/// read_committed: the aborted transactions overlapping the fetched range
/// (from the fetch offset up to the last stable offset), which the consumer
/// uses to drop their records. Control batches stay in the data, as in
/// Kafka; clients skip them.
fn aborted_transactions(partition: &Partition, fetch_offset: i64, last_stable_offset: i64) -> Vec<AbortedTransaction> {
    partition
        .reader()
        .collect_aborted(fetch_offset, last_stable_offset)
        .into_iter()
        .map(|t| AbortedTransaction { producer_id: t.producer_id, first_offset: t.first_offset, ..Default::default() })
        .collect()
}

/// The `records` value for `region`: a placeholder keyed by its place in
/// `regions`, or (beyond what placeholders allow) the bytes themselves.
fn records_for(region: FileRegion, regions: &mut Vec<FileRegion>) -> Result<Bytes, klamm_storage::Error> {
    match left_out::placeholder(regions.len(), region.len()) {
        Some(placeholder) => {
            regions.push(region);
            Ok(placeholder)
        }
        None => region.read(),
    }
}

/// Kafka's leader epoch check (v9+; -1 skips it): an older epoch than the
/// partition's is fenced, a newer one is not known here yet.
fn check_leader_epoch(partition: &Partition, current_leader_epoch: i32, version: i16) -> Result<(), ErrorCode> {
    if version < 9 || current_leader_epoch < 0 {
        return Ok(());
    }
    let epoch = partition.view().leader_epoch;
    if current_leader_epoch < epoch {
        Err(ErrorCode::FENCED_LEADER_EPOCH)
    } else if current_leader_epoch > epoch {
        Err(ErrorCode::UNKNOWN_LEADER_EPOCH)
    } else {
        Ok(())
    }
}

/// Waits until any watched partition publishes a change; false at the deadline
/// (or when the first view to wake was closed).
async fn wait_for_change(watchers: &mut [watch::Receiver<PartitionView>], deadline: Instant) -> bool {
    let any = super::poll_many::select_first(watchers.iter_mut().map(|w| async move { w.changed().await.is_ok() }));
    tokio::time::timeout_at(deadline, any).await.unwrap_or(false)
}
