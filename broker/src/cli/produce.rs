//! `klamm produce TOPIC`: records from standard input or a file, one per line (optionally
//! `key<SEP>value`), with headers, to one partition or spread as Kafka's default
//! partitioner does (murmur2 of the key; keyless records round-robin), in Produce v3+
//! record batches sent to each partition's leader.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use klamm_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klamm_protocol::messages::ProduceRequest;
use klamm_protocol::records::RecordBatchBuilder;
use klamm_protocol::ErrorCode;
use serde_json::json;

use super::client::{Cluster, Target};
use super::key_value;
use super::output::{kafka_message, Report, Table};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    topic: String,
    /// Read records from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (no SEP: the whole line is the
    /// value, with no key).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header on every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Acknowledgements: all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: i16,
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("{text:?}: expected all, -1, 1 or 0")),
    }
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h: u32 = 0x9747_b28c ^ length;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as i64 % i64::from(partitions.max(1))) as i32
}

/// A record's key (if any) and value.
pub type KeyValue = (Option<Vec<u8>>, Vec<u8>);

/// One input line as key and value.
pub fn split_line(line: &str, separator: Option<&str>) -> KeyValue {
    match separator.filter(|s| !s.is_empty()).and_then(|s| line.split_once(s)) {
        Some((k, v)) => (Some(k.as_bytes().to_vec()), v.as_bytes().to_vec()),
        None => (None, line.as_bytes().to_vec()),
    }
}

/// Records per batch: keeps each request well below the broker's message.max.bytes for
/// ordinary lines.
const BATCH_RECORDS: usize = 500;

pub async fn run(cluster: &mut Cluster, args: ProduceArgs) -> anyhow::Result<Report> {
    let reader: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?)),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut leaders = cluster.leaders(std::slice::from_ref(&args.topic)).await?;
    let count = leaders.len() as i32;
    if count == 0 {
        bail!(kafka_message(3, &format!("topic '{}' has no partitions", args.topic), None));
    }
    if let Some(p) = args.partition {
        if !leaders.contains_key(&(args.topic.clone(), p)) {
            bail!(kafka_message(3, &format!("topic '{}' has no partition {p}", args.topic), None));
        }
    }
    let mut by_partition: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
    let mut round_robin = 0i32;
    let mut total = 0usize;
    for line in reader.lines() {
        let line = line.context("read input")?;
        let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
        let (key, value) = split_line(&line, args.key_separator.as_deref());
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, count),
            (None, None) => {
                round_robin = (round_robin + 1) % count;
                round_robin
            }
        };
        by_partition.entry(partition).or_default().push((key, value));
        total += 1;
    }
    let headers: Vec<(&str, Option<&[u8]>)> = args.headers.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))).collect();
    let now = klamm_broker::clock::now_ms();
    let mut results = BTreeMap::new();
    for (partition, records) in &by_partition {
        for chunk in records.chunks(BATCH_RECORDS) {
            let mut builder = RecordBatchBuilder::new(0);
            for (key, value) in chunk {
                builder.push(now, key.as_deref(), Some(value), &headers);
            }
            let request = ProduceRequest {
                transactional_id: None,
                acks: args.acks,
                timeout_ms: cluster.timeout().as_millis() as i32,
                topic_data: vec![TopicProduceData {
                    name: args.topic.clone(),
                    partition_data: vec![PartitionProduceData { index: *partition, records: Some(builder.build()), ..Default::default() }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let deadline = Instant::now() + cluster.timeout();
            let r = loop {
                let leader = leaders.get(&(args.topic.clone(), *partition)).copied().unwrap_or(-1);
                let (code, response) = if leader < 0 {
                    (ErrorCode::LEADER_NOT_AVAILABLE, None)
                } else if args.acks == 0 {
                    cluster.send_without_reply(Target::Node(leader), &request, (3, 11)).await?;
                    break None;
                } else {
                    let reply = cluster.send(Target::Node(leader), &request, (3, 11)).await?;
                    let r = reply
                        .body
                        .responses
                        .into_iter()
                        .flat_map(|t| t.partition_responses)
                        .next()
                        .ok_or_else(|| anyhow!("Produce answered no partition"))?;
                    (ErrorCode(r.error_code), Some(r))
                };
                if code == ErrorCode::NONE {
                    break response;
                }
                // Refused before any append (a leader change, too few in-sync replicas): safe
                // to send again to the current leader, until the request timeout.
                let retriable = [ErrorCode::NOT_LEADER_OR_FOLLOWER, ErrorCode::LEADER_NOT_AVAILABLE, ErrorCode::NOT_ENOUGH_REPLICAS].contains(&code);
                if !retriable || Instant::now() >= deadline {
                    let message = response.and_then(|r| r.error_message);
                    bail!(kafka_message(code.0, &format!("produce to {}-{partition}", args.topic), message.as_deref()));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                leaders = cluster.leaders(std::slice::from_ref(&args.topic)).await?;
            };
            let entry = results.entry(*partition).or_insert((r.map(|r| r.base_offset), 0usize));
            entry.1 += chunk.len();
        }
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "RECORDS", "BASE-OFFSET"]);
    let mut json = Vec::new();
    for (p, (base, n)) in &results {
        table.row(vec![args.topic.clone(), p.to_string(), n.to_string(), super::output::or_dash(*base)]);
        json.push(json!({"partition": p, "records": n, "base_offset": base}));
    }
    let text = format!("Produced {total} record(s) to '{}'.\n{}", args.topic, if results.is_empty() { String::new() } else { table.render() });
    Ok(Report::new(json!({"topic": args.topic, "records": total, "partitions": json}), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from the Java client's own tests of Utils.murmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58_897_971);
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn partitions_and_lines() {
        assert!((0..7).contains(&partition_for_key(b"any", 7)));
        assert_eq!(partition_for_key(b"x", 1), 0);
        assert_eq!(split_line("k:v:w", Some(":")), (Some(b"k".to_vec()), b"v:w".to_vec()));
        assert_eq!(split_line("novalue", Some(":")), (None, b"novalue".to_vec()));
        assert_eq!(split_line("k:v", None), (None, b"k:v".to_vec()));
    }
}
