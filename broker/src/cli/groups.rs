//! `klamm groups list|describe|delete|reset-offsets`: ListGroups (every broker),
//! DescribeGroups with the consumer protocol's assignments decoded, OffsetFetch plus the
//! partitions' end offsets for the lag, DeleteGroups, and OffsetCommit for resets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Buf;
use clap::{Args, Subcommand};
use klamm_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use klamm_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use klamm_protocol::{Decode, ErrorCode};
use serde_json::{json, Value};

use super::client::{Cluster, OffsetSpec, Target, Tp};
use super::output::{kafka_message, or_dash, Report, Table};
use super::reset::{new_offset, parse_datetime, parse_topic_scope, Strategy};

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List the groups of every broker.
    List,
    /// State, members with their assignment, and committed offset, end offset and lag per
    /// partition (as `kafka-consumer-groups.sh --describe`).
    Describe {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Delete groups that have no active members.
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// The group whose offsets move.
    #[arg(long)]
    group: String,
    /// `TOPIC` or `TOPIC:P[,P...]` (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]", required_unless_present = "all_topics")]
    topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topics")]
    all_topics: bool,
    #[command(flatten)]
    to: ResetTo,
    /// Show the plan without changing anything (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    /// To each partition's earliest offset.
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's end.
    #[arg(long)]
    to_latest: bool,
    /// `YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]`.
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// To this offset (moved into each partition's range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Move by N (negative: back), from the committed offset.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

impl ResetTo {
    fn strategy(&self) -> anyhow::Result<Strategy> {
        Ok(if self.to_earliest {
            Strategy::Earliest
        } else if self.to_latest {
            Strategy::Latest
        } else if let Some(t) = &self.to_datetime {
            Strategy::Datetime(parse_datetime(t)?)
        } else if let Some(o) = self.to_offset {
            Strategy::Offset(o)
        } else if let Some(n) = self.shift_by {
            Strategy::ShiftBy(n)
        } else {
            bail!("give one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by")
        })
    }
}

pub async fn run(cluster: &mut Cluster, command: GroupsCommand) -> anyhow::Result<Report> {
    match command {
        GroupsCommand::List => list(cluster).await,
        GroupsCommand::Describe { groups } => {
            let mut text = String::new();
            let mut json = Vec::new();
            let mut failures = Vec::new();
            for group in groups {
                match describe(cluster, &group).await {
                    Ok((t, j)) => {
                        text.push_str(&t);
                        json.push(j);
                    }
                    Err(e) => failures.push(format!("{e:#}")),
                }
            }
            let mut report = Report::new(Value::Array(json), text);
            report.failures = failures;
            Ok(report)
        }
        GroupsCommand::Delete { groups } => delete(cluster, groups).await,
        GroupsCommand::ResetOffsets(args) => reset(cluster, args).await,
    }
}

async fn list(cluster: &mut Cluster) -> anyhow::Result<Report> {
    // Coordinators are spread over the brokers: ask each, as Kafka's admin client does.
    let nodes: Vec<i32> = cluster.addresses().keys().copied().collect();
    let mut groups = BTreeMap::new();
    for node in nodes {
        let reply = cluster.send(Target::Node(node), &ListGroupsRequest::default(), (0, 4)).await?;
        if reply.body.error_code != 0 {
            return Err(anyhow!(kafka_message(reply.body.error_code, &format!("list the groups of broker {node}"), None)));
        }
        for g in reply.body.groups {
            groups.insert(g.group_id.clone(), (g.protocol_type, (reply.version >= 4).then_some(g.group_state), node));
        }
    }
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
    let mut json = Vec::new();
    for (id, (protocol, state, node)) in &groups {
        table.row(vec![id.clone(), or_dash(state.clone()), protocol.clone(), node.to_string()]);
        json.push(json!({"group": id, "state": state, "protocol_type": protocol, "coordinator": node}));
    }
    Ok(Report::new(Value::Array(json), table.render()))
}

/// A member's assigned partitions, from the consumer protocol's assignment bytes
/// (`version: int16` then the body); empty for other protocols or bytes that do not parse.
pub fn decode_assignment(bytes: &bytes::Bytes) -> Vec<(String, Vec<i32>)> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    // Later versions extend the layout compatibly; read them as the newest known one.
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a.assigned_partitions.into_iter().map(|tp| (tp.topic, tp.partitions)).collect(),
        Err(_) => Vec::new(),
    }
}

/// A coordinator still loading the group (just started or just moved): worth a retry.
fn loading(code: i16) -> bool {
    code == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0 || code == ErrorCode::COORDINATOR_NOT_AVAILABLE.0
}

/// Waits a moment before a retry; false once `deadline` has passed.
async fn pause(deadline: Instant) -> bool {
    if Instant::now() >= deadline {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    true
}

struct Member {
    id: String,
    instance: Option<String>,
    client_id: String,
    host: String,
    assignment: Vec<(String, Vec<i32>)>,
}

struct GroupState {
    coordinator: i32,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

async fn group_state(cluster: &mut Cluster, group: &str) -> anyhow::Result<GroupState> {
    let coordinator = cluster.coordinator(group).await?;
    let request = DescribeGroupsRequest { groups: vec![group.to_string()], include_authorized_operations: false, ..Default::default() };
    let deadline = Instant::now() + cluster.timeout();
    let g = loop {
        let reply = cluster.send(Target::Node(coordinator), &request, (0, 5)).await?;
        let g = reply.body.groups.into_iter().next().ok_or_else(|| anyhow!("DescribeGroups answered no group"))?;
        if !(loading(g.error_code) && pause(deadline).await) {
            break g;
        }
    };
    // A group the coordinator does not know is reported as Dead (GROUP_ID_NOT_FOUND from v6).
    if g.error_code == ErrorCode::GROUP_ID_NOT_FOUND.0 || (g.error_code == 0 && g.group_state == "Dead") {
        bail!(kafka_message(ErrorCode::GROUP_ID_NOT_FOUND.0, &format!("group '{group}' does not exist"), None));
    }
    if g.error_code != 0 {
        bail!(kafka_message(g.error_code, &format!("describe group '{group}'"), None));
    }
    let members = g
        .members
        .into_iter()
        .map(|m| Member {
            assignment: if g.protocol_type == "consumer" { decode_assignment(&m.member_assignment) } else { Vec::new() },
            id: m.member_id,
            instance: m.group_instance_id,
            client_id: m.client_id,
            host: m.client_host,
        })
        .collect();
    Ok(GroupState { coordinator, state: g.group_state, protocol_type: g.protocol_type, protocol: g.protocol_data, members })
}

/// The group's committed offsets (all topics).
pub async fn committed(cluster: &mut Cluster, coordinator: i32, group: &str) -> anyhow::Result<BTreeMap<Tp, i64>> {
    // v2..7: `topics: null` asks for every partition; the reply has one group's topics.
    let request = OffsetFetchRequest { group_id: group.to_string(), topics: None, ..Default::default() };
    let deadline = Instant::now() + cluster.timeout();
    let body = loop {
        let body = cluster.send(Target::Node(coordinator), &request, (2, 7)).await?.body;
        let code =
            std::iter::once(body.error_code).chain(body.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code))).find(|c| *c != 0);
        if !(code.is_some_and(loading) && pause(deadline).await) {
            break body;
        }
    };
    if body.error_code != 0 {
        bail!(kafka_message(body.error_code, &format!("fetch the offsets of group '{group}'"), None));
    }
    let mut out = BTreeMap::new();
    for t in body.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(kafka_message(p.error_code, &format!("fetch the offset of group '{group}' for {}-{}", t.name, p.partition_index), None));
            }
            if p.committed_offset >= 0 {
                out.insert((t.name.clone(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

async fn describe(cluster: &mut Cluster, group: &str) -> anyhow::Result<(String, Value)> {
    let state = group_state(cluster, group).await?;
    let offsets = committed(cluster, state.coordinator, group).await?;
    // Rows: every assigned partition and every committed one, as Kafka's tool shows them.
    let mut owner: BTreeMap<Tp, usize> = BTreeMap::new();
    for (i, m) in state.members.iter().enumerate() {
        for (topic, parts) in &m.assignment {
            for p in parts {
                owner.insert((topic.clone(), *p), i);
            }
        }
    }
    let partitions: Vec<Tp> = owner.keys().chain(offsets.keys()).cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let ends = if partitions.is_empty() { BTreeMap::new() } else { end_offsets_lenient(cluster, &partitions).await };
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]);
    let mut rows = Vec::new();
    for tp in &partitions {
        let current = offsets.get(tp).copied();
        let end = ends.get(tp).copied().flatten();
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        let member = owner.get(tp).map(|&i| &state.members[i]);
        table.row(vec![
            group.to_string(),
            tp.0.clone(),
            tp.1.to_string(),
            or_dash(current),
            or_dash(end),
            or_dash(lag),
            or_dash(member.map(|m| m.id.clone())),
            or_dash(member.map(|m| m.host.clone())),
            or_dash(member.map(|m| m.client_id.clone())),
        ]);
        rows.push(json!({
            "topic": tp.0, "partition": tp.1, "current_offset": current, "log_end_offset": end, "lag": lag,
            "consumer_id": member.map(|m| &m.id), "host": member.map(|m| &m.host), "client_id": member.map(|m| &m.client_id),
        }));
    }
    let mut text = format!(
        "Group '{group}': state {}, protocol {} ({}), coordinator {}, {} member(s)\n\n",
        state.state,
        if state.protocol.is_empty() { "-" } else { &state.protocol },
        if state.protocol_type.is_empty() { "-" } else { &state.protocol_type },
        state.coordinator,
        state.members.len()
    );
    if table.is_empty() {
        text.push_str("No committed offsets and no assignments.\n");
    } else {
        text.push_str(&table.render());
    }
    let mut members_json = Vec::new();
    if !state.members.is_empty() {
        let mut mt = Table::new(&["CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]);
        for m in &state.members {
            let count: usize = m.assignment.iter().map(|(_, p)| p.len()).sum();
            let assignment = m.assignment.iter().map(|(t, ps)| format!("{t}({})", super::output::ids(ps))).collect::<Vec<_>>().join(",");
            mt.row(vec![
                m.id.clone(),
                or_dash(m.instance.clone()),
                m.host.clone(),
                m.client_id.clone(),
                count.to_string(),
                if assignment.is_empty() { "-".into() } else { assignment },
            ]);
            members_json.push(json!({
                "member_id": m.id, "group_instance_id": m.instance, "host": m.host, "client_id": m.client_id,
                "assignment": m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>(),
            }));
        }
        text.push('\n');
        text.push_str(&mt.render());
    }
    text.push('\n');
    let json = json!({
        "group": group, "state": state.state, "protocol_type": state.protocol_type, "protocol": state.protocol,
        "coordinator": state.coordinator, "members": members_json, "offsets": rows,
    });
    Ok((text, json))
}

/// End offsets where they can be read; a deleted topic's committed offsets keep their rows
/// with an unknown end (`-`), as in Kafka's tool.
async fn end_offsets_lenient(cluster: &mut Cluster, partitions: &[Tp]) -> BTreeMap<Tp, Option<i64>> {
    if let Ok(all) = cluster.list_offsets(partitions, OffsetSpec::Latest).await {
        return all;
    }
    let mut out = BTreeMap::new();
    for tp in partitions {
        if let Ok(one) = cluster.list_offsets(std::slice::from_ref(tp), OffsetSpec::Latest).await {
            out.extend(one);
        }
    }
    out
}

/// Commits `offsets` for `group` from outside it (generation -1, no member id): what Kafka
/// accepts only while the group has no active members.
pub async fn commit_offsets(cluster: &mut Cluster, coordinator: i32, group: &str, offsets: &BTreeMap<Tp, i64>) -> anyhow::Result<()> {
    let mut topics: BTreeMap<String, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, p), offset) in offsets {
        topics.entry(topic.clone()).or_default().push(OffsetCommitRequestPartition {
            partition_index: *p,
            committed_offset: *offset,
            committed_leader_epoch: -1,
            commit_timestamp: -1,
            committed_metadata: Some(String::new()),
            ..Default::default()
        });
    }
    let request = OffsetCommitRequest {
        group_id: group.to_string(),
        generation_id_or_member_epoch: -1,
        member_id: String::new(),
        topics: topics.into_iter().map(|(name, partitions)| OffsetCommitRequestTopic { name, partitions, ..Default::default() }).collect(),
        ..Default::default()
    };
    let deadline = Instant::now() + cluster.timeout();
    let reply = loop {
        let reply = cluster.send(Target::Node(coordinator), &request, (2, 8)).await?;
        let code = reply.body.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).find(|c| *c != 0);
        if !(code.is_some_and(loading) && pause(deadline).await) {
            break reply;
        }
    };
    for t in reply.body.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(kafka_message(p.error_code, &format!("commit the offset of group '{group}' for {}-{}", t.name, p.partition_index), None));
            }
        }
    }
    Ok(())
}

async fn delete(cluster: &mut Cluster, groups: Vec<String>) -> anyhow::Result<Report> {
    let mut table = Table::new(&["GROUP", "RESULT"]);
    let mut json = Vec::new();
    let mut failures = Vec::new();
    for group in groups {
        let result = async {
            let coordinator = cluster.coordinator(&group).await?;
            let reply = cluster
                .send(Target::Node(coordinator), &DeleteGroupsRequest { groups_names: vec![group.clone()], ..Default::default() }, (0, 2))
                .await?;
            let code = reply.body.results.first().map_or(0, |r| r.error_code);
            anyhow::Ok(code)
        }
        .await;
        match result {
            Ok(0) => {
                table.row(vec![group.clone(), "deleted".into()]);
                json.push(json!({"group": group, "deleted": true}));
            }
            Ok(code) => {
                let name = ErrorCode(code).name();
                table.row(vec![group.clone(), name.into()]);
                json.push(json!({"group": group, "deleted": false, "error": name}));
                let what = if code == ErrorCode::GROUP_ID_NOT_FOUND.0 {
                    format!("group '{group}' does not exist")
                } else {
                    format!("delete group '{group}'")
                };
                failures.push(kafka_message(code, &what, None));
            }
            Err(e) => {
                table.row(vec![group.clone(), "error".into()]);
                json.push(json!({"group": group, "deleted": false, "error": format!("{e:#}")}));
                failures.push(format!("{e:#}"));
            }
        }
    }
    let mut report = Report::new(Value::Array(json), table.render());
    report.failures = failures;
    Ok(report)
}

async fn reset(cluster: &mut Cluster, args: ResetArgs) -> anyhow::Result<Report> {
    let strategy = args.to.strategy()?;
    let group = args.group.as_str();
    let state = group_state(cluster, group).await.or_else(|e| {
        // A group with no members and no offsets is not known yet: resetting creates it.
        if e.to_string().starts_with("GROUP_ID_NOT_FOUND") {
            Ok(GroupState { coordinator: -1, state: "Empty".into(), protocol_type: String::new(), protocol: String::new(), members: Vec::new() })
        } else {
            Err(e)
        }
    })?;
    if !matches!(state.state.as_str(), "Empty" | "Dead") || !state.members.is_empty() {
        bail!(
            "group '{group}' is {} with {} member(s): offsets can only be reset while the group is inactive; stop its consumers first",
            state.state,
            state.members.len()
        );
    }
    let coordinator = if state.coordinator >= 0 { state.coordinator } else { cluster.coordinator(group).await? };
    let current = committed(cluster, coordinator, group).await?;

    let mut partitions: BTreeSet<Tp> = BTreeSet::new();
    if args.all_topics {
        partitions.extend(current.keys().cloned());
    } else {
        for scope in &args.topics {
            let (topic, parts) = parse_topic_scope(scope)?;
            let leaders = cluster.leaders(std::slice::from_ref(&topic)).await.map_err(|e| anyhow!("{e:#}"))?;
            match parts {
                None => partitions.extend(leaders.into_keys()),
                Some(ps) => {
                    for p in ps {
                        if !leaders.contains_key(&(topic.clone(), p)) {
                            bail!(kafka_message(3, &format!("topic '{topic}' has no partition {p}"), None));
                        }
                        partitions.insert((topic.clone(), p));
                    }
                }
            }
        }
    }
    let partitions: Vec<Tp> = partitions.into_iter().collect();
    let (earliest, latest) = if partitions.is_empty() {
        (BTreeMap::new(), BTreeMap::new())
    } else {
        (cluster.list_offsets(&partitions, OffsetSpec::Earliest).await?, cluster.list_offsets(&partitions, OffsetSpec::Latest).await?)
    };
    let at_time = match strategy {
        Strategy::Datetime(t) if !partitions.is_empty() => cluster.list_offsets(&partitions, OffsetSpec::Timestamp(t)).await?,
        _ => BTreeMap::new(),
    };
    let mut plan = Vec::new();
    for tp in &partitions {
        let e = earliest.get(tp).copied().flatten().unwrap_or(0);
        let l = latest.get(tp).copied().flatten().unwrap_or(e);
        let target = new_offset(strategy, current.get(tp).copied(), e, l, at_time.get(tp).copied().flatten());
        plan.push((tp.clone(), current.get(tp).copied(), target));
    }

    if args.execute && !plan.is_empty() {
        let offsets: BTreeMap<Tp, i64> = plan.iter().map(|(tp, _, target)| (tp.clone(), *target)).collect();
        commit_offsets(cluster, coordinator, group, &offsets).await?;
    }
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    let mut json = Vec::new();
    for ((topic, p), cur, target) in &plan {
        table.row(vec![group.to_string(), topic.clone(), p.to_string(), or_dash(*cur), target.to_string()]);
        json.push(json!({"topic": topic, "partition": p, "current_offset": cur, "new_offset": target}));
    }
    let mut text = table.render();
    text.push_str(if args.execute {
        "\nCommitted the new offsets.\n"
    } else {
        "\nDry run: nothing changed; add --execute to commit these offsets.\n"
    });
    let _ = args.dry_run; // the default; the flag exists for scripts that say it explicitly
    Ok(Report::new(json!({"group": group, "executed": args.execute, "partitions": json}), text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use klamm_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use klamm_protocol::Encode;

    #[test]
    fn assignments_decode_from_the_consumer_protocol() {
        let a = ConsumerProtocolAssignment {
            assigned_partitions: vec![TopicPartition { topic: "orders".into(), partitions: vec![0, 2], ..Default::default() }],
            user_data: None,
            ..Default::default()
        };
        for version in [0i16, 1, 3] {
            let mut buf = BytesMut::new();
            buf.put_i16(version);
            a.encode(&mut buf, version).unwrap();
            assert_eq!(decode_assignment(&buf.freeze()), vec![("orders".to_string(), vec![0, 2])]);
        }
        assert!(decode_assignment(&bytes::Bytes::new()).is_empty());
        assert!(decode_assignment(&bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_empty());
    }
}
