//! `klamm consume TOPIC`: Fetch from the partition leaders and print each record (value,
//! and with `--print-*` its key, headers, partition, offset, timestamp; or one JSON object
//! per line with `--json`), from the latest offset, the earliest (`--from-beginning`), a
//! given offset, or a group's committed offsets (`--group`, committed again at the end;
//! the tool reads as a standalone consumer and does not join the group).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use clap::Args;
use klamm_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use klamm_protocol::messages::FetchRequest;
use klamm_protocol::records::{iter_batches, TimestampType};
use klamm_protocol::ErrorCode;
use serde_json::{json, Value};

use super::client::{Cluster, OffsetSpec, Target, Tp};
use super::groups::{commit_offsets, committed};
use super::output::{kafka_message, Report};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    topic: String,
    /// Start at the earliest offset (default: the latest, or the group's committed offset).
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset (in each partition read).
    #[arg(long, conflicts_with = "from_beginning")]
    offset: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop when no record arrives for this long.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Start from this group's committed offsets and commit the position reached at the end.
    #[arg(long)]
    group: Option<String>,
    /// Print each record's key.
    #[arg(long)]
    print_key: bool,
    /// Print each record's headers (`k:v,k:v`, or NO_HEADERS).
    #[arg(long)]
    print_headers: bool,
    /// Print each record's offset.
    #[arg(long)]
    print_offset: bool,
    /// Print each record's partition.
    #[arg(long)]
    print_partition: bool,
    /// Print each record's timestamp and its type.
    #[arg(long)]
    print_timestamp: bool,
    /// Between the printed fields.
    #[arg(long, default_value = "\t", value_name = "SEP")]
    separator: String,
}

/// One consumed record.
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<bytes::Bytes>,
    pub value: Option<bytes::Bytes>,
    pub headers: Vec<(String, Option<bytes::Bytes>)>,
}

fn text(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The printed line of a record: the fields asked for, in Kafka's console order.
pub fn format_record(r: &Consumed, args: &ConsumeArgs) -> String {
    let mut fields = Vec::new();
    if args.print_timestamp {
        let kind = if r.timestamp_type == TimestampType::LogAppendTime { "LogAppendTime" } else { "CreateTime" };
        fields.push(format!("{kind}:{}", r.timestamp));
    }
    if args.print_partition {
        fields.push(format!("Partition:{}", r.partition));
    }
    if args.print_offset {
        fields.push(format!("Offset:{}", r.offset));
    }
    if args.print_headers {
        if r.headers.is_empty() {
            fields.push("NO_HEADERS".into());
        } else {
            fields.push(r.headers.iter().map(|(k, v)| format!("{k}:{}", text(v).unwrap_or_else(|| "null".into()))).collect::<Vec<_>>().join(","));
        }
    }
    if args.print_key {
        fields.push(text(&r.key).unwrap_or_else(|| "null".into()));
    }
    fields.push(text(&r.value).unwrap_or_else(|| "null".into()));
    fields.join(&args.separator)
}

pub fn record_json(topic: &str, r: &Consumed) -> Value {
    json!({
        "topic": topic, "partition": r.partition, "offset": r.offset, "timestamp": r.timestamp,
        "timestamp_type": if r.timestamp_type == TimestampType::LogAppendTime { "LogAppendTime" } else { "CreateTime" },
        "key": text(&r.key), "value": text(&r.value),
        "headers": r.headers.iter().map(|(k, v)| json!({"key": k, "value": text(v)})).collect::<Vec<_>>(),
    })
}

/// Bound on one partition's share of a fetch and on a decompressed batch.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const MAX_DECOMPRESSED: usize = 64 << 20;

pub async fn run(cluster: &mut Cluster, args: ConsumeArgs, json: bool) -> anyhow::Result<Report> {
    let topic = args.topic.clone();
    let mut leaders = cluster.leaders(std::slice::from_ref(&topic)).await?;
    let partitions: Vec<Tp> = match args.partition {
        Some(p) if !leaders.contains_key(&(topic.clone(), p)) => bail!(kafka_message(3, &format!("topic '{topic}' has no partition {p}"), None)),
        Some(p) => vec![(topic.clone(), p)],
        None => leaders.keys().cloned().collect(),
    };
    let earliest = cluster.list_offsets(&partitions, OffsetSpec::Earliest).await?;
    let latest = cluster.list_offsets(&partitions, OffsetSpec::Latest).await?;
    let group_offsets = match &args.group {
        Some(g) => {
            let coordinator = cluster.coordinator(g).await?;
            Some((coordinator, committed(cluster, coordinator, g).await?))
        }
        None => None,
    };
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    for tp in &partitions {
        let start = earliest.get(tp).copied().flatten().unwrap_or(0);
        let end = latest.get(tp).copied().flatten().unwrap_or(start);
        let position = if let Some(o) = args.offset {
            o.clamp(start, end)
        } else if let Some(c) = group_offsets.as_ref().and_then(|(_, offsets)| offsets.get(tp)) {
            *c
        } else if args.from_beginning {
            start
        } else {
            end
        };
        positions.insert(tp.1, position);
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let idle = args.timeout_ms.map(Duration::from_millis);
    let mut failing_since: Option<Instant> = None;
    'poll: loop {
        if args.max_messages.is_some_and(|m| printed >= m) {
            break;
        }
        if idle.is_some_and(|idle| last_record.elapsed() >= idle) {
            break;
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in positions.keys() {
            by_leader.entry(*leaders.get(&(topic.clone(), *p)).unwrap_or(&-1)).or_default().push(*p);
        }
        if by_leader.contains_key(&-1) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            leaders = cluster.leaders(std::slice::from_ref(&topic)).await?;
            continue;
        }
        // Wait at most until the idle deadline, so --timeout-ms is kept.
        let max_wait = idle.map_or(500, |idle| idle.saturating_sub(last_record.elapsed()).as_millis().clamp(1, 500) as i32);
        for (leader, parts) in by_leader {
            let request = FetchRequest {
                replica_id: -1,
                max_wait_ms: max_wait,
                min_bytes: 1,
                max_bytes: 16 << 20,
                isolation_level: 0,
                session_id: 0,
                session_epoch: -1,
                topics: vec![FetchTopic {
                    topic: topic.clone(),
                    partitions: parts
                        .iter()
                        .map(|p| FetchPartition {
                            partition: *p,
                            fetch_offset: positions[p],
                            partition_max_bytes: PARTITION_MAX_BYTES,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            // v4..12 name topics (v13+ use topic ids).
            let reply = match cluster.send(Target::Node(leader), &request, (4, 12)).await {
                Ok(reply) => {
                    failing_since = None;
                    reply
                }
                // The leader went away: follow the partitions to their new leaders, for up to
                // the request timeout.
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= cluster.timeout() {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if let Ok(fresh) = cluster.leaders(std::slice::from_ref(&topic)).await {
                        leaders = fresh;
                    }
                    continue 'poll;
                }
            };
            if reply.body.error_code != 0 {
                bail!(kafka_message(reply.body.error_code, &format!("fetch from '{topic}'"), None));
            }
            for t in reply.body.responses {
                for p in t.partitions {
                    let code = ErrorCode(p.error_code);
                    if code == ErrorCode::NOT_LEADER_OR_FOLLOWER
                        || code == ErrorCode::LEADER_NOT_AVAILABLE
                        || code == ErrorCode::FENCED_LEADER_EPOCH
                        || code == ErrorCode::UNKNOWN_LEADER_EPOCH
                    {
                        leaders = cluster.leaders(std::slice::from_ref(&topic)).await?;
                        continue;
                    }
                    if code == ErrorCode::OFFSET_OUT_OF_RANGE && args.offset.is_none() {
                        // Retention moved the start past our position: go on from the earliest.
                        positions.insert(p.partition_index, p.log_start_offset.max(0));
                        continue;
                    }
                    if code != ErrorCode::NONE {
                        bail!(kafka_message(code.0, &format!("fetch {topic}-{}", p.partition_index), None));
                    }
                    let Some(records) = p.records else { continue };
                    let position = positions
                        .get_mut(&p.partition_index)
                        .ok_or_else(|| anyhow!("fetch answered partition {} not asked for", p.partition_index))?;
                    for batch in iter_batches(records) {
                        // A batch cut off at the size limit ends the answer; the next fetch reads it whole.
                        let Ok(batch) = batch else { break };
                        if batch.next_offset() <= *position {
                            continue;
                        }
                        if batch.is_control() {
                            *position = batch.next_offset();
                            continue;
                        }
                        for record in batch.records_bounded(MAX_DECOMPRESSED) {
                            let record = record
                                .map_err(|e| anyhow!("{topic}-{}: bad record batch at offset {}: {e}", p.partition_index, batch.base_offset()))?;
                            let offset = record.offset(batch.base_offset());
                            if offset < *position {
                                continue;
                            }
                            let timestamp_type = batch.timestamp_type();
                            let timestamp = if timestamp_type == TimestampType::LogAppendTime {
                                batch.max_timestamp()
                            } else {
                                record.timestamp(batch.base_timestamp())
                            };
                            let consumed = Consumed {
                                partition: p.partition_index,
                                offset,
                                timestamp,
                                timestamp_type,
                                key: record.key,
                                value: record.value,
                                headers: record.headers,
                            };
                            let line = if json { record_json(&topic, &consumed).to_string() } else { format_record(&consumed, &args) };
                            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                                // The reader went away (`| head`): stop quietly.
                                break 'poll;
                            }
                            *position = offset + 1;
                            printed += 1;
                            last_record = Instant::now();
                            if args.max_messages.is_some_and(|m| printed >= m) {
                                break 'poll;
                            }
                        }
                        *position = (*position).max(batch.next_offset());
                    }
                }
            }
        }
    }
    drop(out);
    eprintln!("Processed a total of {printed} messages");
    if let (Some(group), Some((coordinator, _))) = (&args.group, &group_offsets) {
        let offsets: BTreeMap<Tp, i64> = positions.iter().map(|(p, o)| ((topic.clone(), *p), *o)).collect();
        commit_offsets(cluster, *coordinator, group, &offsets).await?;
    }
    Ok(Report::new(Value::Null, String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    #[test]
    fn lines_follow_the_console_consumer_layout() {
        let r = Consumed {
            partition: 1,
            offset: 7,
            timestamp: 1000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: vec![("h".into(), Some(bytes::Bytes::from_static(b"1"))), ("n".into(), None)],
        };
        let all = Wrap::parse_from(["x", "t", "--print-key", "--print-headers", "--print-offset", "--print-partition", "--print-timestamp"]).args;
        assert_eq!(format_record(&r, &all), "CreateTime:1000\tPartition:1\tOffset:7\th:1,n:null\tk\tv");
        let plain = Wrap::parse_from(["x", "t"]).args;
        assert_eq!(format_record(&r, &plain), "v");
        let keyed = Wrap::parse_from(["x", "t", "--print-key", "--separator", "="]).args;
        let none = Consumed { key: None, value: None, headers: vec![], ..r };
        assert_eq!(format_record(&none, &keyed), "null=null");
        let j = record_json("t", &none);
        assert_eq!(j["key"], Value::Null);
        assert_eq!(j["offset"], 7);
    }
}
