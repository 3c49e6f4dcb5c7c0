//! ListOffsets (key 2): earliest, latest, by timestamp, max timestamp.

use klamm_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse};
use klamm_protocol::messages::ListOffsetsRequest;
use klamm_protocol::ErrorCode;

use super::RequestContext;
use crate::replica::partition::PartitionView;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let read_committed = request.isolation_level == 1;
    // A broker asking (replica id >= 0) reads up to the log end, as in Kafka;
    // clients (-1 consumer, -2 debugging tools) up to what they may fetch.
    let from_replica = request.replica_id >= 0;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse { partition_index: p.partition_index, timestamp: -1, offset: -1, leader_epoch: -1, ..Default::default() };
                    let code = lookup(ctx, &image, &t.name, &p, read_committed, from_replica, &mut r);
                    r.error_code = code.code();
                    r
                })
                .collect();
            ListOffsetsTopicResponse { name: t.name, partitions, ..Default::default() }
        })
        .collect();
    ListOffsetsResponse { throttle_time_ms: 0, topics, ..Default::default() }
}

fn lookup(
    ctx: &RequestContext,
    image: &klamm_raft::MetadataImage,
    topic: &str,
    p: &klamm_protocol::messages::list_offsets_request::ListOffsetsPartition,
    read_committed: bool,
    from_replica: bool,
    out: &mut ListOffsetsPartitionResponse,
) -> ErrorCode {
    let broker = &ctx.broker;
    let Some(meta) = image.partition(topic, p.partition_index) else {
        return ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    };
    if meta.leader != broker.node_id {
        return ErrorCode::NOT_LEADER_OR_FOLLOWER;
    }
    let local = match broker.replicas.lookup(topic, p.partition_index) {
        Ok(local) => local,
        Err(code) => return code,
    };
    let view = local.view();
    if p.current_leader_epoch >= 0 {
        if p.current_leader_epoch < view.leader_epoch {
            return ErrorCode::FENCED_LEADER_EPOCH;
        }
        if p.current_leader_epoch > view.leader_epoch {
            return ErrorCode::UNKNOWN_LEADER_EPOCH;
        }
    }
    out.leader_epoch = view.leader_epoch;
    let reader = local.reader();
    let query = Query { timestamp: p.timestamp, api_version: ctx.api_version, read_committed, from_replica };
    match resolve(&view, &query, |search| match search {
        Search::MaxTimestamp => reader.max_timestamp_offset(),
        Search::AtOrAfter(ts) => reader.lookup_by_timestamp(ts),
    }) {
        Ok(Some((offset, timestamp))) => {
            out.offset = offset;
            out.timestamp = timestamp;
            ErrorCode::NONE
        }
        Ok(None) => ErrorCode::NONE,
        Err(code) => code,
    }
}

/// What a ListOffsets partition asks, and who asks.
struct Query {
    timestamp: i64,
    api_version: i16,
    read_committed: bool,
    /// A broker (replica id >= 0): reads up to the log end, never refused.
    from_replica: bool,
}

/// A search of the log that [`resolve`] may need.
enum Search {
    MaxTimestamp,
    /// The first batch with a timestamp at or after this one.
    AtOrAfter(i64),
}

/// The (offset, timestamp) to answer, None for "no such offset" (-1, -1),
/// or the error, as Kafka decides (Partition.fetchOffsetForTimestamp):
/// answers stay below what the asker may fetch (high watermark, last
/// stable offset, or log end for a replica); and a leader whose high
/// watermark has not reached the offset where its epoch began does not know
/// the committed end, so the latest offset, and a search that finds nothing
/// below the high watermark, get the retriable OFFSET_NOT_AVAILABLE: a
/// consumer resetting to "latest" retries instead of starting below the
/// real end.
fn resolve(
    view: &PartitionView,
    query: &Query,
    search: impl Fn(Search) -> klamm_storage::Result<Option<(i64, i64)>>,
) -> Result<Option<(i64, i64)>, ErrorCode> {
    let visible_end = match (query.from_replica, query.read_committed) {
        (true, _) => view.log_end_offset,
        (false, true) => view.last_stable_offset,
        (false, false) => view.high_watermark,
    };
    let end_not_known = !query.from_replica && view.leader_epoch_start_offset > view.high_watermark;
    let found = |s: Search| match search(s) {
        Ok(found) => match found.filter(|(offset, _)| *offset < visible_end) {
            None if end_not_known => Err(ErrorCode::OFFSET_NOT_AVAILABLE),
            found => Ok(found),
        },
        Err(_) => Err(ErrorCode::KAFKA_STORAGE_ERROR),
    };
    match query.timestamp {
        LATEST if end_not_known => Err(ErrorCode::OFFSET_NOT_AVAILABLE),
        LATEST => Ok(Some((visible_end, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((view.log_start_offset, -1))),
        // No tiered storage: nothing is tiered.
        LATEST_TIERED => Ok(None),
        MAX_TIMESTAMP if query.api_version >= 7 => found(Search::MaxTimestamp),
        ts if ts >= 0 => found(Search::AtOrAfter(ts)),
        _ => Err(ErrorCode::INVALID_REQUEST),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(high_watermark: i64, leader_epoch_start_offset: i64) -> PartitionView {
        PartitionView {
            log_start_offset: 2,
            high_watermark,
            last_stable_offset: high_watermark,
            log_end_offset: 10,
            leader_epoch: 4,
            leader: 1,
            leader_epoch_start_offset,
        }
    }

    fn client(timestamp: i64) -> Query {
        Query { timestamp, api_version: 7, read_committed: false, from_replica: false }
    }

    /// The log holds offsets 2..10; every batch at or after timestamp 100 starts at offset 8.
    fn search(s: Search) -> klamm_storage::Result<Option<(i64, i64)>> {
        Ok(match s {
            Search::MaxTimestamp => Some((9, 500)),
            Search::AtOrAfter(ts) if ts <= 100 => Some((8, 100)),
            Search::AtOrAfter(_) => None,
        })
    }

    #[test]
    fn answers_stay_below_what_the_asker_may_fetch() {
        let v = view(8, 5);
        assert_eq!(resolve(&v, &client(LATEST), search), Ok(Some((8, -1))));
        assert_eq!(resolve(&v, &client(EARLIEST), search), Ok(Some((2, -1))));
        assert_eq!(resolve(&v, &client(MAX_TIMESTAMP), search), Ok(None), "offset 9 is above the high watermark");
        assert_eq!(resolve(&v, &client(50), search), Ok(None), "offset 8 is not below the high watermark 8");
        assert_eq!(resolve(&view(9, 5), &client(50), search), Ok(Some((8, 100))));
        let replica = Query { from_replica: true, ..client(LATEST) };
        assert_eq!(resolve(&v, &replica, search), Ok(Some((10, -1))), "a replica reads to the log end");
        assert_eq!(resolve(&v, &Query { api_version: 6, ..client(MAX_TIMESTAMP) }, search), Err(ErrorCode::INVALID_REQUEST));
        assert_eq!(resolve(&v, &client(-7), search), Err(ErrorCode::INVALID_REQUEST));
    }

    /// A new leader at epoch start offset 10 whose high watermark is still 6.
    #[test]
    fn a_new_leader_behind_its_epoch_start_answers_offset_not_available() {
        let v = view(6, 10);
        assert_eq!(resolve(&v, &client(LATEST), search), Err(ErrorCode::OFFSET_NOT_AVAILABLE));
        assert_eq!(resolve(&v, &client(MAX_TIMESTAMP), search), Err(ErrorCode::OFFSET_NOT_AVAILABLE));
        assert_eq!(resolve(&v, &client(500), search), Err(ErrorCode::OFFSET_NOT_AVAILABLE), "nothing found below the high watermark");
        // What it does know is answered.
        assert_eq!(resolve(&v, &client(EARLIEST), search), Ok(Some((2, -1))));
        assert_eq!(resolve(&view(9, 10), &client(50), search), Ok(Some((8, 100))));
        // Replicas are never refused; once the high watermark reaches the epoch start, neither are clients.
        assert_eq!(resolve(&v, &Query { from_replica: true, ..client(LATEST) }, search), Ok(Some((10, -1))));
        assert_eq!(resolve(&view(10, 10), &client(LATEST), search), Ok(Some((10, -1))));
        // Not leader (-1): the condition never holds.
        assert_eq!(resolve(&view(6, -1), &client(LATEST), search), Ok(Some((6, -1))));
    }

    /// An open transaction at offset 5: read_committed answers stay below the LSO.
    #[test]
    fn read_committed_answers_stay_below_the_last_stable_offset() {
        let v = PartitionView { last_stable_offset: 5, ..view(9, 5) };
        let committed = |timestamp| Query { read_committed: true, ..client(timestamp) };
        assert_eq!(resolve(&v, &committed(LATEST), search), Ok(Some((5, -1))));
        assert_eq!(resolve(&v, &client(LATEST), search), Ok(Some((9, -1))), "read_uncommitted: the high watermark");
        assert_eq!(resolve(&v, &committed(50), search), Ok(None), "offset 8 is above the LSO");
        assert_eq!(resolve(&v, &client(50), search), Ok(Some((8, 100))));
    }

    #[test]
    fn a_failed_search_is_a_storage_error() {
        let failing = |_: Search| Err(klamm_storage::Error::InvalidOffset { offset: 0, reason: "test" });
        assert_eq!(resolve(&view(8, 5), &client(50), failing), Err(ErrorCode::KAFKA_STORAGE_ERROR));
    }
}
