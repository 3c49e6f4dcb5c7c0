//! The classic consumer-group state machine, as Kafka's `GroupCoordinator`
//! (`core/src/main/scala/kafka/coordinator/group/GroupCoordinator.scala`,
//! `GroupMetadata.scala`, `MemberMetadata.scala`) implements it.
//!
//! Everything here is synchronous and deterministic: every input carries
//! `now_ms`, callers that must wait (JoinGroup, SyncGroup) are identified by
//! a [`Waiter`] token, and every output is an explicit [`Effect`] (a reply to
//! deliver to a parked caller, or a group record to persist). Timers are not
//! scheduled here: [`Shard::next_deadline`] says when [`Shard::tick`] must run
//! next. One [`Shard`] holds the groups of one `__consumer_offsets` partition.

use crate::topic_partition::TopicPartition;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use klamm_protocol::ErrorCode;

use super::offsets::CommittedOffset;

/// Identifies a parked JoinGroup/SyncGroup caller (chosen by the caller).
pub type Waiter = u64;

/// `JoinGroupRequest.UNKNOWN_MEMBER_ID`.
pub const UNKNOWN_MEMBER_ID: &str = "";
/// Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`: a new member that is
/// still waiting for its first join response is dropped after this long.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Case-insensitive parse of a state name (ListGroups states filter).
    pub fn parse(s: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|st| st.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// Limits from the broker config.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: i32,
    pub initial_rebalance_delay_ms: i32,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` in ms.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX,
            initial_rebalance_delay_ms: 3000,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<Waiter>,
    pub awaiting_sync: Option<Waiter>,
    /// Joined but has not received its first join response yet.
    pub is_new: bool,
    /// Last heartbeat (or join/sync completion) time.
    pub last_heartbeat_ms: i64,
}

impl Member {
    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(n, _)| n == protocol)
    }
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
    /// The member's preferred protocol among `candidates`.
    fn vote(&self, candidates: &BTreeSet<String>) -> Option<&str> {
        self.protocols.iter().map(|(n, _)| n.as_str()).find(|n| candidates.contains(*n))
    }
    /// When the session of this member expires, if it can expire now
    /// (Kafka's `MemberMetadata.hasSatisfiedHeartbeat`).
    fn expiry_deadline(&self) -> Option<i64> {
        if self.is_new {
            // New members time out with a pending join after NewMemberJoinTimeoutMs.
            Some(self.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS)
        } else if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            None
        } else {
            Some(self.last_heartbeat_ms + self.session_timeout_ms as i64)
        }
    }
}

/// One member as listed to the leader in the JoinGroup response.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: ErrorCode) -> JoinResult {
        JoinResult {
            error,
            member_id: member_id.to_string(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> SyncResult {
        SyncResult { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// Why the coordinator must write the group's metadata record.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreReason {
    /// The leader's SyncGroup: once stored, call [`Shard::assignment_stored`].
    Assignment,
    /// A new generation with no members, or a static member replaced.
    Plain,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Join(Waiter, JoinResult),
    Sync(Waiter, SyncResult),
    /// Persist the group record of `group_id` (current state; with
    /// [`StoreReason::Assignment`] the pending assignment).
    StoreGroup { group_id: String, generation_id: i32, reason: StoreReason },
}

/// The arguments of a JoinGroup.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v4+: a first join with an empty member id gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// One member named in a LeaveGroup.
#[derive(Clone, Debug)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// In join order (the new leader after a removal is the first one).
    pub members: Vec<Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pub pending_members: BTreeMap<String, i64>,
    /// Members that have not sent SyncGroup for the current generation.
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline: Option<i64>,
    /// Deadline of the running DelayedJoin (PreparingRebalance).
    pub join_deadline: Option<i64>,
    /// The InitialDelayedJoin of a new group: (deadline, remaining ms).
    pub initial_delay: Option<(i64, i64)>,
    pub new_member_added: bool,
    /// Leader's assignment waiting to be stored (generation, member -> bytes).
    pub pending_assignment: Option<(i32, Vec<(String, Bytes)>)>,
    /// Committed offsets, by (topic, partition).
    pub offsets: BTreeMap<TopicPartition, CommittedOffset>,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            join_deadline: None,
            initial_delay: None,
            new_member_added: false,
            pending_assignment: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }
    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }
    pub fn has(&self, member_id: &str) -> bool {
        self.member(member_id).is_some()
    }
    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }
    fn leader_or_empty(&self) -> String {
        self.leader_id.clone().unwrap_or_default()
    }
    fn num_awaiting_join(&self) -> usize {
        self.members.iter().filter(|m| m.awaiting_join.is_some()).count()
    }
    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }
    fn can_rebalance(&self) -> bool {
        matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty)
    }
    /// The largest rebalance timeout of the members.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members.iter().map(|m| m.rebalance_timeout_ms as i64).max().unwrap_or(0)
    }
    fn is_static_member_fenced(&self, group_instance_id: Option<&str>, member_id: &str) -> bool {
        match group_instance_id {
            Some(id) => matches!(self.static_members.get(id), Some(current) if current != member_id),
            None => false,
        }
    }
    fn static_member_id(&self, group_instance_id: &str) -> Option<String> {
        self.static_members.get(group_instance_id).cloned()
    }
    fn protocol_votes(&self, name: &str) -> usize {
        self.members.iter().filter(|m| m.supports(name)).count()
    }
    /// Kafka's `GroupMetadata.supportsProtocols`.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) || self.members.is_empty() {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(n, _)| self.protocol_votes(n) == self.members.len())
        }
    }
    fn candidate_protocols(&self) -> BTreeSet<String> {
        let n = self.members.len();
        let mut all = BTreeSet::new();
        for m in &self.members {
            for (p, _) in &m.protocols {
                if self.protocol_votes(p) == n {
                    all.insert(p.clone());
                }
            }
        }
        all
    }
    /// The protocol every member supports that gets the most votes (each
    /// member votes for its preferred candidate); ties go to the protocol the
    /// leader (or first member) prefers, so the choice is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.members {
            if let Some(p) = m.vote(&candidates) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let max = *votes.values().max()?;
        let preference: Vec<&str> = self
            .leader_id
            .as_deref()
            .and_then(|l| self.member(l))
            .or_else(|| self.members.first())
            .map(|m| m.protocols.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default();
        preference
            .iter()
            .find(|p| votes.get(*p) == Some(&max))
            .map(|p| p.to_string())
            .or_else(|| votes.iter().find(|(_, v)| **v == max).map(|(p, _)| p.to_string()))
    }

    /// The members' subscribed topics if every member uses the "consumer"
    /// protocol type and its subscription parses; `None` when unknown.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in &self.members {
            topics.extend(parse_subscription_topics(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    /// Whether the group (a consumer group with members) uses `topic`.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match self.subscribed_topics() {
            Some(t) => t.contains(topic),
            None => true,
        }
    }

    fn current_member_metadata(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    fn join_result_for(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: ErrorCode::NONE,
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_or_empty(),
            skip_assignment: false,
            members: if with_members { self.current_member_metadata() } else { Vec::new() },
        }
    }

    /// Adds a member (Kafka's `GroupMetadata.add`).
    fn add(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(id) = &member.group_instance_id {
            self.static_members.insert(id.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.push(member);
    }

    /// Removes a member (Kafka's `GroupMetadata.remove` + `removeStaticMember`);
    /// returns the member with its parked callers.
    fn remove(&mut self, member_id: &str) -> Option<Member> {
        let idx = self.members.iter().position(|m| m.member_id == member_id)?;
        let member = self.members.remove(idx);
        if let Some(id) = &member.group_instance_id {
            if self.static_members.get(id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(id);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.first().map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// Kafka's `maybeElectNewJoinedLeader`.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else { return false };
        match self.member(&leader) {
            Some(m) if m.awaiting_join.is_some() => true,
            _ => match self.members.iter().find(|m| m.awaiting_join.is_some()) {
                Some(m) => {
                    self.leader_id = Some(m.member_id.clone());
                    true
                }
                None => false,
            },
        }
    }

    fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if !self.members.is_empty() {
            self.protocol_name = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now_ms);
        } else {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
        }
        self.pending_sync = self.members.iter().map(|m| m.member_id.clone()).collect();
    }

    /// Answers every parked SyncGroup with `error` (Kafka's
    /// `resetAndPropagateAssignmentError`).
    fn reset_and_propagate_assignment_error(&mut self, error: ErrorCode, effects: &mut Vec<Effect>) {
        for m in &mut self.members {
            m.assignment = Bytes::new();
            if let Some(w) = m.awaiting_sync.take() {
                effects.push(Effect::Sync(w, SyncResult::error(error)));
            }
        }
    }

    pub fn summary_protocol(&self) -> String {
        if self.is(GroupState::Stable) {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

/// Reads the topic list of a ConsumerProtocolSubscription (any version:
/// `version int16, topics [string], ...`).
pub fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut p = 0usize;
    let take = |p: &mut usize, n: usize| -> Option<&[u8]> {
        let s = metadata.get(*p..*p + n)?;
        *p += n;
        Some(s)
    };
    let _version = i16::from_be_bytes(take(&mut p, 2)?.try_into().ok()?);
    let count = i32::from_be_bytes(take(&mut p, 4)?.try_into().ok()?);
    if count < 0 || count as usize > metadata.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut p, 2)?.try_into().ok()?);
        if len < 0 {
            return None;
        }
        topics.push(String::from_utf8(take(&mut p, len as usize)?.to_vec()).ok()?);
    }
    Some(topics)
}

/// A random member-id suffix in `java.util.UUID.toString()` form.
pub fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The groups of one `__consumer_offsets` partition.
pub struct Shard {
    pub config: GroupConfig,
    pub groups: BTreeMap<String, Group>,
    /// Offsets committed in transactions not yet ended (TxnOffsetCommit).
    pub pending_txn: super::txn_offsets::PendingOffsets,
    /// Generates member-id suffixes; replaceable for deterministic tests.
    pub id_gen: Box<dyn FnMut() -> String + Send>,
}

impl Shard {
    pub fn new(config: GroupConfig) -> Shard {
        Shard { config, groups: BTreeMap::new(), pending_txn: Default::default(), id_gen: Box::new(random_uuid) }
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    fn new_member_id(&mut self, client_id: &str, group_instance_id: Option<&str>) -> String {
        let suffix = (self.id_gen)();
        match group_instance_id {
            Some(i) => format!("{i}-{suffix}"),
            None => format!("{client_id}-{suffix}"),
        }
    }

    // ----- JoinGroup -----

    /// Kafka's `handleJoinGroup`. The answer (now or when the rebalance
    /// completes) is an [`Effect::Join`] for `waiter`.
    pub fn join(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let reply_err = |fx: &mut Vec<Effect>, member: &str, e: ErrorCode| fx.push(Effect::Join(waiter, JoinResult::error(member, e)));
        if req.group_id.is_empty() {
            reply_err(&mut fx, &req.member_id, ErrorCode::INVALID_GROUP_ID);
            return fx;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms || req.session_timeout_ms > self.config.max_session_timeout_ms {
            reply_err(&mut fx, &req.member_id, ErrorCode::INVALID_SESSION_TIMEOUT);
            return fx;
        }
        let is_unknown = req.member_id == UNKNOWN_MEMBER_ID;
        if !self.groups.contains_key(&req.group_id) {
            if !is_unknown {
                reply_err(&mut fx, &req.member_id, ErrorCode::UNKNOWN_MEMBER_ID);
                return fx;
            }
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let max_size = self.config.max_size.max(0) as usize;
        let group = self.groups.get(&req.group_id).expect("just checked");
        let accept = match group.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                group.member(&req.member_id).is_some_and(|m| m.awaiting_join.is_some()) || group.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => group.has(&req.member_id) || group.members.len() < max_size,
        };
        if !accept {
            // Kafka removes the member (if it was known) and answers GROUP_MAX_SIZE_REACHED.
            let group = self.groups.get_mut(&req.group_id).expect("exists");
            if group.has(&req.member_id) {
                self.remove_member_and_update_group(&req.group_id, &req.member_id, now_ms, &mut fx);
            }
            reply_err(&mut fx, UNKNOWN_MEMBER_ID, ErrorCode::GROUP_MAX_SIZE_REACHED);
            self.drop_if_unused(&req.group_id);
            return fx;
        }
        if is_unknown {
            self.do_new_member_join(req, waiter, now_ms, &mut fx);
        } else {
            self.do_current_member_join(req, waiter, now_ms, &mut fx);
        }
        fx
    }

    /// Removes a group that was created for nothing (a rejected first join).
    fn drop_if_unused(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get(group_id) {
            if g.is(GroupState::Empty) && g.members.is_empty() && g.pending_members.is_empty() && g.offsets.is_empty() && g.generation_id == 0 {
                self.groups.remove(group_id);
            }
        }
    }

    fn do_new_member_join(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64, fx: &mut Vec<Effect>) {
        let group = self.groups.get(&req.group_id).expect("exists");
        if group.is(GroupState::Dead) {
            fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::COORDINATOR_NOT_AVAILABLE)));
            return;
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::INCONSISTENT_GROUP_PROTOCOL)));
            self.drop_if_unused(&req.group_id);
            return;
        }
        let new_member_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        if req.group_instance_id.is_some() {
            self.do_static_member_join(req, new_member_id, waiter, now_ms, fx);
        } else if req.require_known_member_id {
            // KIP-394: hand out the id and let the client join again with it.
            let session = req.session_timeout_ms as i64;
            let group = self.groups.get_mut(&req.group_id).expect("exists");
            group.pending_members.insert(new_member_id.clone(), now_ms + session);
            fx.push(Effect::Join(waiter, JoinResult::error(&new_member_id, ErrorCode::MEMBER_ID_REQUIRED)));
        } else {
            self.add_member_and_rebalance(req, new_member_id, waiter, now_ms, fx);
        }
    }

    fn do_static_member_join(&mut self, req: JoinRequest, new_member_id: String, waiter: Waiter, now_ms: i64, fx: &mut Vec<Effect>) {
        let instance = req.group_instance_id.clone().expect("static join");
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        let Some(old_member_id) = group.static_member_id(&instance) else {
            self.add_member_and_rebalance(req, new_member_id, waiter, now_ms, fx);
            return;
        };
        // Replace the old member with the new one (Kafka's replaceStaticMember):
        // the old member's parked callers are fenced.
        let current_leader = group.leader_or_empty();
        let Some(member) = group.member_mut(&old_member_id) else {
            // Inconsistent mapping: treat as a new static member.
            group.static_members.remove(&instance);
            self.add_member_and_rebalance(req, new_member_id, waiter, now_ms, fx);
            return;
        };
        if let Some(w) = member.awaiting_join.take() {
            fx.push(Effect::Join(w, JoinResult::error(&old_member_id, ErrorCode::FENCED_INSTANCE_ID)));
        }
        if let Some(w) = member.awaiting_sync.take() {
            fx.push(Effect::Sync(w, SyncResult::error(ErrorCode::FENCED_INSTANCE_ID)));
        }
        member.member_id = new_member_id.clone();
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.last_heartbeat_ms = now_ms;
        member.awaiting_join = Some(waiter);
        group.static_members.insert(instance.clone(), new_member_id.clone());
        if group.is_leader(&old_member_id) {
            group.leader_id = Some(new_member_id.clone());
        }
        if group.pending_sync.remove(&old_member_id) {
            group.pending_sync.insert(new_member_id.clone());
        }
        match group.state {
            GroupState::Stable => {
                // Same protocol for the next generation: keep the assignment,
                // store the new member id, no rebalance (KIP-345).
                if group.select_protocol() == group.protocol_name {
                    let member = group.member_mut(&new_member_id).expect("replaced");
                    member.awaiting_join = None;
                    let result = JoinResult {
                        error: ErrorCode::NONE,
                        member_id: new_member_id.clone(),
                        generation_id: group.generation_id,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        // The old leader id, so the member does not run an assignment.
                        leader_id: current_leader,
                        skip_assignment: false,
                        members: Vec::new(),
                    };
                    fx.push(Effect::StoreGroup {
                        group_id: req.group_id.clone(),
                        generation_id: group.generation_id,
                        reason: StoreReason::Plain,
                    });
                    fx.push(Effect::Join(waiter, result));
                } else {
                    self.maybe_prepare_rebalance(&req.group_id, now_ms, fx);
                }
            }
            GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(&req.group_id, now_ms, fx);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(&req.group_id, now_ms, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                // Kafka treats this as impossible; answer so the client retries.
                let member = group.member_mut(&new_member_id).expect("replaced");
                member.awaiting_join = None;
                fx.push(Effect::Join(waiter, JoinResult::error(&new_member_id, ErrorCode::UNKNOWN_MEMBER_ID)));
            }
        }
    }

    fn add_member_and_rebalance(&mut self, req: JoinRequest, member_id: String, waiter: Waiter, now_ms: i64, fx: &mut Vec<Effect>) {
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        let member = Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(waiter),
            awaiting_sync: None,
            is_new: true,
            last_heartbeat_ms: now_ms,
        };
        if group.is(GroupState::PreparingRebalance) && group.generation_id == 0 {
            group.new_member_added = true;
        }
        group.add(member);
        self.maybe_prepare_rebalance(&req.group_id, now_ms, fx);
        if self.groups.get(&req.group_id).is_some_and(|g| g.is(GroupState::PreparingRebalance)) {
            self.try_complete_join(&req.group_id, now_ms, fx);
        }
    }

    fn update_member_and_rebalance(&mut self, req: &JoinRequest, waiter: Waiter, now_ms: i64, fx: &mut Vec<Effect>) {
        let group = self.groups.get_mut(&req.group_id).expect("exists");
        let member = group.member_mut(&req.member_id).expect("known member");
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        if let Some(old) = member.awaiting_join.replace(waiter) {
            // A duplicate JoinGroup replaces the parked one; answer the old caller.
            fx.push(Effect::Join(old, JoinResult::error(&req.member_id, ErrorCode::REBALANCE_IN_PROGRESS)));
        }
        self.maybe_prepare_rebalance(&req.group_id, now_ms, fx);
        self.try_complete_join(&req.group_id, now_ms, fx);
    }

    fn do_current_member_join(&mut self, req: JoinRequest, waiter: Waiter, now_ms: i64, fx: &mut Vec<Effect>) {
        let group = self.groups.get(&req.group_id).expect("exists");
        if group.is(GroupState::Dead) {
            fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::COORDINATOR_NOT_AVAILABLE)));
            return;
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::INCONSISTENT_GROUP_PROTOCOL)));
            return;
        }
        if group.pending_members.contains_key(&req.member_id) {
            let id = req.member_id.clone();
            self.add_member_and_rebalance(req, id, waiter, now_ms, fx);
            return;
        }
        let instance_not_found = req.group_instance_id.as_deref().is_some_and(|i| !group.static_members.contains_key(i));
        if group.is_static_member_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::FENCED_INSTANCE_ID)));
            return;
        }
        if !group.has(&req.member_id) || instance_not_found {
            fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::UNKNOWN_MEMBER_ID)));
            return;
        }
        let member = group.member(&req.member_id).expect("known");
        match group.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(&req, waiter, now_ms, fx),
            GroupState::CompletingRebalance => {
                if member.matches(&req.protocols) {
                    // The member missed its join response: return the current generation.
                    let leader = group.is_leader(&req.member_id);
                    fx.push(Effect::Join(waiter, group.join_result_for(&req.member_id, leader)));
                } else {
                    self.update_member_and_rebalance(&req, waiter, now_ms, fx);
                }
            }
            GroupState::Stable => {
                if group.is_leader(&req.member_id) || !member.matches(&req.protocols) {
                    // The leader rejoining forces a rebalance (e.g. topic metadata changed).
                    self.update_member_and_rebalance(&req, waiter, now_ms, fx);
                } else {
                    fx.push(Effect::Join(waiter, group.join_result_for(&req.member_id, false)));
                }
            }
            GroupState::Empty | GroupState::Dead => {
                fx.push(Effect::Join(waiter, JoinResult::error(&req.member_id, ErrorCode::UNKNOWN_MEMBER_ID)));
            }
        }
    }

    fn maybe_prepare_rebalance(&mut self, group_id: &str, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.groups.get(group_id).is_some_and(|g| g.can_rebalance()) {
            self.prepare_rebalance(group_id, now_ms, fx);
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64, fx: &mut Vec<Effect>) {
        let delay = self.config.initial_rebalance_delay_ms.max(0) as i64;
        let group = self.groups.get_mut(group_id).expect("exists");
        if group.is(GroupState::CompletingRebalance) {
            group.reset_and_propagate_assignment_error(ErrorCode::REBALANCE_IN_PROGRESS, fx);
        }
        group.pending_sync.clear();
        group.sync_deadline = None;
        group.pending_assignment = None;
        if group.is(GroupState::Empty) {
            let remaining = (group.rebalance_timeout_ms() - delay).max(0);
            group.initial_delay = Some((now_ms + delay, remaining));
            group.join_deadline = None;
        } else {
            group.initial_delay = None;
            group.join_deadline = Some(now_ms + group.rebalance_timeout_ms());
        }
        group.new_member_added = false;
        group.transition(GroupState::PreparingRebalance, now_ms);
        // DelayedJoin.tryCompleteElseWatch: everyone may already be there;
        // a zero initial delay completes at once.
        self.try_complete_join(group_id, now_ms, fx);
        self.run_timers(group_id, now_ms, fx);
    }

    /// DelayedJoin.tryComplete: completes the join once everyone rejoined
    /// (never during the initial delay of a new group).
    fn try_complete_join(&mut self, group_id: &str, now_ms: i64, fx: &mut Vec<Effect>) {
        let Some(group) = self.groups.get(group_id) else { return };
        if group.is(GroupState::PreparingRebalance) && group.initial_delay.is_none() && group.has_all_members_joined() {
            self.complete_join(group_id, now_ms, fx);
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, group_id: &str, now_ms: i64, fx: &mut Vec<Effect>) {
        let group = self.groups.get_mut(group_id).expect("exists");
        group.join_deadline = None;
        group.initial_delay = None;
        // Dynamic members that did not rejoin in time are removed.
        let failed: Vec<String> = group
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in failed {
            group.remove(&id);
        }
        if !group.maybe_elect_new_joined_leader() && !group.members.is_empty() {
            // Nobody rejoined: wait another rebalance timeout for the session
            // timeouts to remove the silent members.
            group.join_deadline = Some(now_ms + group.rebalance_timeout_ms());
            return;
        }
        group.init_next_generation(now_ms);
        if group.is(GroupState::Empty) {
            fx.push(Effect::StoreGroup { group_id: group_id.to_string(), generation_id: group.generation_id, reason: StoreReason::Plain });
            return;
        }
        let results: Vec<(Waiter, JoinResult)> = group
            .members
            .iter()
            .filter_map(|m| {
                let w = m.awaiting_join?;
                Some((w, group.join_result_for(&m.member_id, group.is_leader(&m.member_id))))
            })
            .collect();
        for m in &mut group.members {
            m.awaiting_join = None;
            m.is_new = false;
            m.last_heartbeat_ms = now_ms;
        }
        group.sync_deadline = Some(now_ms + group.rebalance_timeout_ms());
        fx.extend(results.into_iter().map(|(w, r)| Effect::Join(w, r)));
    }

    /// Kafka's `removeMemberAndUpdateGroup` (expiry, LeaveGroup).
    fn remove_member_and_update_group(&mut self, group_id: &str, member_id: &str, now_ms: i64, fx: &mut Vec<Effect>) {
        let group = self.groups.get_mut(group_id).expect("exists");
        let Some(member) = group.remove(member_id) else { return };
        if let Some(w) = member.awaiting_join {
            fx.push(Effect::Join(w, JoinResult::error(UNKNOWN_MEMBER_ID, ErrorCode::UNKNOWN_MEMBER_ID)));
        }
        if let Some(w) = member.awaiting_sync {
            fx.push(Effect::Sync(w, SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID)));
        }
        match group.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => self.maybe_prepare_rebalance(group_id, now_ms, fx),
            GroupState::PreparingRebalance => self.try_complete_join(group_id, now_ms, fx),
        }
    }

    // ----- SyncGroup -----

    /// Kafka's `handleSyncGroup`; the answer is an [`Effect::Sync`] for `waiter`.
    pub fn sync(&mut self, req: SyncRequest, waiter: Waiter, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let err = |e: ErrorCode| vec![Effect::Sync(waiter, SyncResult::error(e))];
        if req.group_id.is_empty() {
            return err(ErrorCode::INVALID_GROUP_ID);
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return err(ErrorCode::UNKNOWN_MEMBER_ID);
        };
        if group.is(GroupState::Dead) {
            return err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        if group.is_static_member_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return err(ErrorCode::FENCED_INSTANCE_ID);
        }
        if !group.has(&req.member_id) {
            return err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        if req.generation_id != group.generation_id {
            return err(ErrorCode::ILLEGAL_GENERATION);
        }
        if req.protocol_type.as_ref().is_some_and(|t| group.protocol_type.as_ref() != Some(t))
            || req.protocol_name.as_ref().is_some_and(|n| group.protocol_name.as_ref() != Some(n))
        {
            return err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        match group.state {
            GroupState::Empty => return err(ErrorCode::UNKNOWN_MEMBER_ID),
            GroupState::Dead => return err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            GroupState::PreparingRebalance => return err(ErrorCode::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance => {
                let member = group.member_mut(&req.member_id).expect("known");
                if let Some(old) = member.awaiting_sync.replace(waiter) {
                    fx.push(Effect::Sync(old, SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS)));
                }
                member.last_heartbeat_ms = now_ms;
                group.pending_sync.remove(&req.member_id);
                if group.is_leader(&req.member_id) && group.pending_assignment.is_none() {
                    // Fill missing members with an empty assignment, ignore unknown ones.
                    let assignment: Vec<(String, Bytes)> = group
                        .members
                        .iter()
                        .map(|m| {
                            let a = req
                                .assignments
                                .iter()
                                .find(|(id, _)| id == &m.member_id)
                                .map(|(_, a)| a.clone())
                                .unwrap_or_default();
                            (m.member_id.clone(), a)
                        })
                        .collect();
                    group.pending_assignment = Some((group.generation_id, assignment));
                    fx.push(Effect::StoreGroup {
                        group_id: req.group_id.clone(),
                        generation_id: group.generation_id,
                        reason: StoreReason::Assignment,
                    });
                }
            }
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                if group.pending_sync.is_empty() {
                    group.sync_deadline = None;
                }
                let result = SyncResult {
                    error: ErrorCode::NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: group.member(&req.member_id).expect("known").assignment.clone(),
                };
                group.member_mut(&req.member_id).expect("known").last_heartbeat_ms = now_ms;
                fx.push(Effect::Sync(waiter, result));
            }
        }
        fx
    }

    /// The group record of an [`StoreReason::Assignment`] store was written
    /// (`error == NONE`) or failed: distribute the assignment and go Stable,
    /// or fail the parked syncs and rebalance (Kafka's storeGroup callback).
    pub fn assignment_stored(&mut self, group_id: &str, generation_id: i32, error: ErrorCode, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(group) = self.groups.get_mut(group_id) else { return fx };
        let Some((gen, assignment)) = group.pending_assignment.take() else { return fx };
        if !group.is(GroupState::CompletingRebalance) || gen != generation_id || group.generation_id != generation_id {
            return fx;
        }
        if error != ErrorCode::NONE {
            group.reset_and_propagate_assignment_error(error, &mut fx);
            self.maybe_prepare_rebalance(group_id, now_ms, &mut fx);
            return fx;
        }
        for (id, a) in assignment {
            if let Some(m) = group.member_mut(&id) {
                m.assignment = a;
            }
        }
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol_name.clone();
        for m in &mut group.members {
            if let Some(w) = m.awaiting_sync.take() {
                fx.push(Effect::Sync(
                    w,
                    SyncResult {
                        error: ErrorCode::NONE,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                ));
                m.last_heartbeat_ms = now_ms;
            }
        }
        group.transition(GroupState::Stable, now_ms);
        if group.pending_sync.is_empty() {
            group.sync_deadline = None;
        }
        fx
    }

    /// The assignment to store for `group_id`: the pending one when the
    /// leader's sync is being stored, the members' current one otherwise.
    pub fn assignment_to_store(&self, group_id: &str) -> Vec<(String, Bytes)> {
        let Some(group) = self.groups.get(group_id) else { return Vec::new() };
        match &group.pending_assignment {
            Some((_, a)) => a.clone(),
            None => group.members.iter().map(|m| (m.member_id.clone(), m.assignment.clone())).collect(),
        }
    }

    // ----- Heartbeat -----

    pub fn heartbeat(&mut self, group_id: &str, member_id: &str, group_instance_id: Option<&str>, generation_id: i32, now_ms: i64) -> ErrorCode {
        if group_id.is_empty() {
            return ErrorCode::INVALID_GROUP_ID;
        }
        let Some(group) = self.groups.get_mut(group_id) else { return ErrorCode::UNKNOWN_MEMBER_ID };
        if group.is(GroupState::Dead) {
            return ErrorCode::COORDINATOR_NOT_AVAILABLE;
        }
        if group.is_static_member_fenced(group_instance_id, member_id) {
            return ErrorCode::FENCED_INSTANCE_ID;
        }
        if !group.has(member_id) {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        }
        if generation_id != group.generation_id {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        let state = group.state;
        match state {
            GroupState::Empty => ErrorCode::UNKNOWN_MEMBER_ID,
            GroupState::Dead => ErrorCode::COORDINATOR_NOT_AVAILABLE,
            GroupState::CompletingRebalance | GroupState::Stable | GroupState::PreparingRebalance => {
                group.member_mut(member_id).expect("known").last_heartbeat_ms = now_ms;
                if state == GroupState::PreparingRebalance {
                    ErrorCode::REBALANCE_IN_PROGRESS
                } else {
                    ErrorCode::NONE
                }
            }
        }
    }

    // ----- LeaveGroup -----

    /// Kafka's `handleLeaveGroup`: a group-level error, or one error per member.
    pub fn leave(&mut self, group_id: &str, leaving: &[LeavingMember], now_ms: i64) -> (ErrorCode, Vec<ErrorCode>, Vec<Effect>) {
        let mut fx = Vec::new();
        if group_id.is_empty() {
            return (ErrorCode::INVALID_GROUP_ID, Vec::new(), fx);
        }
        let Some(group) = self.groups.get(group_id) else {
            return (ErrorCode::NONE, leaving.iter().map(|_| ErrorCode::UNKNOWN_MEMBER_ID).collect(), fx);
        };
        if group.is(GroupState::Dead) {
            return (ErrorCode::COORDINATOR_NOT_AVAILABLE, Vec::new(), fx);
        }
        let mut errors = Vec::with_capacity(leaving.len());
        for l in leaving {
            let group = self.groups.get_mut(group_id).expect("exists");
            let code = if l.member_id == UNKNOWN_MEMBER_ID {
                // Administrative removal by group.instance.id.
                match l.group_instance_id.as_deref().and_then(|i| group.static_member_id(i)) {
                    Some(current) => {
                        self.remove_member_and_update_group(group_id, &current, now_ms, &mut fx);
                        ErrorCode::NONE
                    }
                    None => ErrorCode::UNKNOWN_MEMBER_ID,
                }
            } else if group.pending_members.remove(&l.member_id).is_some() {
                self.try_complete_join(group_id, now_ms, &mut fx);
                ErrorCode::NONE
            } else if group.is_static_member_fenced(l.group_instance_id.as_deref(), &l.member_id) {
                ErrorCode::FENCED_INSTANCE_ID
            } else if group.has(&l.member_id) {
                self.remove_member_and_update_group(group_id, &l.member_id, now_ms, &mut fx);
                ErrorCode::NONE
            } else {
                ErrorCode::UNKNOWN_MEMBER_ID
            };
            errors.push(code);
        }
        (ErrorCode::NONE, errors, fx)
    }

    // ----- timers -----

    /// Processes the expired deadlines of one group.
    fn run_timers(&mut self, group_id: &str, now_ms: i64, fx: &mut Vec<Effect>) {
        // Bounded loop: each step consumes a deadline.
        for _ in 0..64 {
            let Some(group) = self.groups.get_mut(group_id) else { return };
            // InitialDelayedJoin of a new group.
            if group.is(GroupState::PreparingRebalance) {
                if let Some((deadline, remaining)) = group.initial_delay {
                    if now_ms >= deadline {
                        if group.new_member_added && remaining != 0 {
                            group.new_member_added = false;
                            let delay = (self.config.initial_rebalance_delay_ms.max(0) as i64).min(remaining);
                            group.initial_delay = Some((now_ms + delay, (remaining - delay).max(0)));
                        } else {
                            self.complete_join(group_id, now_ms, fx);
                        }
                        continue;
                    }
                } else if group.join_deadline.is_some_and(|d| now_ms >= d) {
                    self.complete_join(group_id, now_ms, fx);
                    continue;
                }
            }
            // Members that did not send SyncGroup in time.
            if matches!(group.state, GroupState::CompletingRebalance | GroupState::Stable) && group.sync_deadline.is_some_and(|d| now_ms >= d) {
                group.sync_deadline = None;
                let missing: Vec<String> = std::mem::take(&mut group.pending_sync).into_iter().collect();
                if !missing.is_empty() {
                    for id in &missing {
                        if let Some(m) = group.remove(id) {
                            if let Some(w) = m.awaiting_sync {
                                fx.push(Effect::Sync(w, SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID)));
                            }
                        }
                    }
                    self.maybe_prepare_rebalance(group_id, now_ms, fx);
                }
                continue;
            }
            // Pending (MEMBER_ID_REQUIRED) members that never came back.
            let expired_pending: Vec<String> = group.pending_members.iter().filter(|(_, d)| now_ms >= **d).map(|(id, _)| id.clone()).collect();
            if !expired_pending.is_empty() {
                for id in &expired_pending {
                    group.pending_members.remove(id);
                }
                self.try_complete_join(group_id, now_ms, fx);
                continue;
            }
            // Session expiry.
            let expired = group.members.iter().find(|m| m.expiry_deadline().is_some_and(|d| now_ms >= d)).map(|m| m.member_id.clone());
            if let Some(id) = expired {
                self.remove_member_and_update_group(group_id, &id, now_ms, fx);
                continue;
            }
            return;
        }
    }

    /// Runs every expired timer of every group.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| group_next_deadline(g).is_some_and(|d| d <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.run_timers(&id, now_ms, &mut fx);
        }
        fx
    }

    /// The earliest time [`Shard::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().filter_map(group_next_deadline).min()
    }

    // ----- admin -----

    /// Kafka's DeleteGroups check: only Empty (or offset-only) groups may go.
    /// On success the group is Dead and removed; the caller writes tombstones
    /// for the returned offsets and the group record.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<TopicPartition>, ErrorCode> {
        let Some(group) = self.groups.get_mut(group_id) else { return Err(ErrorCode::GROUP_ID_NOT_FOUND) };
        match group.state {
            GroupState::Dead => Err(ErrorCode::GROUP_ID_NOT_FOUND),
            GroupState::Empty => {
                group.state = GroupState::Dead;
                let g = self.groups.remove(group_id).expect("exists");
                Ok(g.offsets.into_keys().collect())
            }
            _ => Err(ErrorCode::NON_EMPTY_GROUP),
        }
    }
}

fn group_next_deadline(g: &Group) -> Option<i64> {
    let mut d: Option<i64> = None;
    let mut add = |x: Option<i64>| {
        if let Some(x) = x {
            d = Some(d.map_or(x, |c: i64| c.min(x)));
        }
    };
    if g.is(GroupState::PreparingRebalance) {
        add(g.initial_delay.map(|(d, _)| d));
        if g.initial_delay.is_none() {
            add(g.join_deadline);
        }
    }
    if matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable) {
        add(g.sync_deadline);
    }
    add(g.pending_members.values().min().copied());
    for m in &g.members {
        add(m.expiry_deadline());
    }
    d
}
