//! What the active controller does, and only it: broker liveness and fencing, leader
//! election for partitions whose leader is gone, the automatic preferred-leader rebalance
//! ([`leader_balance`]) and the completion of partition reassignments ([`reassignment`]).
//! Replica placement for new partitions ([`placement`]) is a controller decision too, though
//! the broker receiving the admin request computes it (see that module).
//!
//! Why only the active controller: these are decisions about the whole cluster taken on a
//! clock (a broker stopped answering, a reassignment caught up). Every voter runs [`run`],
//! but it acts only while its node leads the metadata quorum, so there is one actor at a
//! time and its decisions go through the log like any other change; a deposed controller's
//! stale proposals are rejected by the partition epochs they carry. Everything here reaches
//! the cluster through a [`MetadataQuorum`] handle only, never through broker state.
//!
//! **Liveness.** Every [`Settings::tick`] the active controller sends an ApiVersions request
//! to the advertised Kafka endpoint of each unfenced broker (other than itself: a node
//! answering this loop is alive). A broker that has not answered for
//! `broker.session.timeout.ms` is fenced (`FenceBroker` with its broker epoch), which moves
//! its leaderships to other ISR members. This is a probe from the controller rather than
//! Kafka's broker-to-controller heartbeat: it needs no new RPC and catches a dead, stopped
//! (SIGSTOP) or unreachable process, since an answer is required, not just a connection the
//! kernel accepts. A new controller starts every clock afresh, so it never fences a broker for the
//! time before it was elected. A restarted broker registers again (new broker epoch) and
//! unfences itself once its partitions are open.
//!
//! **Leadership.** After liveness, every partition whose leader is fenced or unregistered gets
//! the first unfenced member of its ISR as leader, or none (`-1`, clients see
//! LEADER_NOT_AVAILABLE): a partition whose ISR members are all down is offline until one
//! returns, because only they are known to hold every acknowledged record. Only with
//! `unclean.leader.election.enable=true` (topic config, else the cluster default) does a live
//! replica outside the ISR take over, becoming the whole ISR (records may be lost).

pub mod leader_balance;
pub mod placement;
pub mod reassignment;

use std::collections::BTreeMap;
use std::time::Duration;

use klamm_raft::{MetadataCommand, MetadataImage, MetadataQuorum, NO_LEADER};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Timing of the controller loop.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `broker.session.timeout.ms`: how long a broker may be unreachable before it is fenced.
    pub session_timeout: Duration,
    /// How often liveness and leadership are checked.
    pub tick: Duration,
    /// Timeout of one liveness probe (connect and answer).
    pub probe_timeout: Duration,
    /// `unclean.leader.election.enable` of this node's static config.
    pub unclean_leader_election: bool,
    /// The automatic preferred-leader rebalance ([`leader_balance`]).
    pub leader_balance: leader_balance::Settings,
    /// `inter.broker.listener.name`: brokers are probed on this endpoint, with its TLS
    /// (ApiVersions needs no SASL login), see `crate::security::client`.
    pub inter_broker_listener: String,
    pub probe_security: crate::security::client::ClientSecurity,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_timeout: Duration::from_millis(9000),
            tick: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(1000),
            unclean_leader_election: false,
            leader_balance: leader_balance::Settings::default(),
            inter_broker_listener: "PLAINTEXT".to_string(),
            probe_security: Default::default(),
        }
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(quorum: MetadataQuorum, settings: Settings, mut shutdown: watch::Receiver<bool>) {
    // node id -> (broker epoch, last time it answered)
    let mut last_seen: BTreeMap<i32, (i64, Instant)> = BTreeMap::new();
    let mut was_leader = false;
    let mut rebalance = leader_balance::AutoRebalance::new(settings.leader_balance.clone());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.tick) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
        if *shutdown.borrow() {
            break;
        }
        let leader = quorum.is_leader();
        if !leader {
            was_leader = false;
            continue;
        }
        if !was_leader {
            info!(node_id = quorum.node_id(), "active controller: watching broker liveness");
            last_seen.clear();
            was_leader = true;
        }
        check_liveness(&quorum, &settings, &mut last_seen).await;
        let unclean = quorum.image().broker_config(quorum.node_id(), "unclean.leader.election.enable").map_or(settings.unclean_leader_election, |v| v.eq_ignore_ascii_case("true"));
        elect_leaders(&quorum, unclean).await;
        rebalance.tick(&quorum).await;
        reassignment::complete_ready(&quorum).await;
    }
}

async fn check_liveness(quorum: &MetadataQuorum, settings: &Settings, last_seen: &mut BTreeMap<i32, (i64, Instant)>) {
    let image = quorum.image();
    let now = Instant::now();
    last_seen.retain(|id, (epoch, _)| image.broker(*id).is_some_and(|b| !b.fenced && b.epoch == *epoch));
    let mut probes = tokio::task::JoinSet::new();
    for b in image.unfenced_brokers() {
        let entry = last_seen.entry(b.node_id).or_insert((b.epoch, now));
        if b.node_id == quorum.node_id() {
            entry.1 = now;
            continue;
        }
        let Some(ep) = b.endpoints.iter().find(|e| e.listener == settings.inter_broker_listener).or(b.endpoints.first()) else { continue };
        let (id, addr, timeout) = (b.node_id, format!("{}:{}", ep.host, ep.port), settings.probe_timeout);
        let security = settings.probe_security.clone();
        probes.spawn(async move { (id, probe(&addr, timeout, &security).await) });
    }
    while let Some(joined) = probes.join_next().await {
        if let Ok((id, true)) = joined {
            if let Some(entry) = last_seen.get_mut(&id) {
                entry.1 = Instant::now();
            }
        }
    }
    let expired: Vec<(i32, i64)> = last_seen
        .iter()
        .filter(|(_, (_, seen))| seen.elapsed() > settings.session_timeout)
        .map(|(id, (epoch, _))| (*id, *epoch))
        .collect();
    for (node_id, epoch) in expired {
        warn!(node_id, epoch, timeout = ?settings.session_timeout, "broker session expired; fencing it");
        match quorum.propose(MetadataCommand::FenceBroker { node_id, epoch }).await {
            Ok(outcome) => debug!(node_id, ?outcome, "fence proposed"),
            Err(e) => warn!(node_id, error = %e, "fencing failed; retrying next tick"),
        }
        last_seen.remove(&node_id);
    }
}

/// Whether the broker at `addr` answers an ApiVersions request within `timeout`.
async fn probe(addr: &str, timeout: Duration, security: &crate::security::client::ClientSecurity) -> bool {
    let attempt = async {
        let mut client = crate::net::client::KafkaClient::connect_secured(addr, "klamm-controller", timeout, security).await.ok()?;
        client.send(&klamm_protocol::messages::ApiVersionsRequest::default(), 0, timeout).await.ok()
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(_)))
}

/// The leader changes the image calls for (see the module docs). `unclean_default` is the
/// cluster's `unclean.leader.election.enable`; a topic may override it.
pub fn leadership_changes(image: &MetadataImage, unclean_default: bool) -> Vec<MetadataCommand> {
    let live = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
    let mut changes = Vec::new();
    for topic in image.topics.values() {
        let unclean = topic.configs.get("unclean.leader.election.enable").map_or(unclean_default, |v| v.eq_ignore_ascii_case("true"));
        for p in topic.partitions.values() {
            if p.leader != NO_LEADER && live(p.leader) {
                continue;
            }
            let mut next = p.isr.iter().copied().find(|r| live(*r)).unwrap_or(NO_LEADER);
            let mut isr = None;
            if next == NO_LEADER && unclean {
                if let Some(r) = p.replicas.iter().copied().find(|r| live(*r)) {
                    warn!(topic = %topic.name, partition = p.partition, leader = r, "unclean leader election: records only the old ISR had may be lost");
                    next = r;
                    isr = Some(vec![r]);
                }
            }
            if next != p.leader {
                changes.push(MetadataCommand::ChangePartition {
                    topic_id: topic.topic_id,
                    partition: p.partition,
                    expected_partition_epoch: p.partition_epoch,
                    leader: Some(next),
                    isr,
                });
            }
        }
    }
    changes
}

async fn elect_leaders(quorum: &MetadataQuorum, unclean_default: bool) {
    for change in leadership_changes(&quorum.image(), unclean_default) {
        if let MetadataCommand::ChangePartition { partition, leader, .. } = &change {
            info!(partition, ?leader, "changing partition leader");
        }
        if let Err(e) = quorum.propose(change).await {
            warn!(error = %e, "leader change failed; retrying next tick");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_raft::NewPartition;

    fn image_with(brokers: &[(i32, bool)], replicas: &[i32]) -> MetadataImage {
        let mut img = MetadataImage::default();
        let mut index = 1;
        for (id, fenced) in brokers {
            let reg =
                MetadataCommand::RegisterBroker { node_id: *id, incarnation_id: [*id as u8; 16], endpoints: vec![], rack: None };
            assert!(img.apply(index, &reg).is_applied());
            if !fenced {
                assert!(img.apply(index + 1, &MetadataCommand::UnfenceBroker { node_id: *id, epoch: index as i64 }).is_applied());
            }
            index += 2;
        }
        let partitions = replicas.iter().enumerate().map(|(i, r)| NewPartition { partition: i as i32, replicas: vec![*r] }).collect();
        let create = MetadataCommand::CreateTopic { name: "t".into(), topic_id: [1; 16], partitions, configs: Default::default() };
        assert!(img.apply(index, &create).is_applied());
        img
    }

    #[test]
    fn fenced_leader_loses_leadership_and_gets_it_back() {
        let mut img = image_with(&[(1, false), (2, true)], &[1, 2]);
        let changes = leadership_changes(&img, false);
        assert_eq!(changes.len(), 1, "only the partition led by the fenced broker changes");
        for (i, c) in changes.iter().enumerate() {
            assert!(img.apply(100 + i as u64, c).is_applied());
        }
        assert_eq!(img.partition("t", 1).map(|p| p.leader), Some(NO_LEADER));
        assert_eq!(img.partition("t", 0).map(|p| p.leader), Some(1));
        assert!(leadership_changes(&img, false).is_empty(), "nothing to do while broker 2 is fenced");
        let epoch = img.broker(2).map(|b| b.epoch).unwrap_or_default();
        assert!(img.apply(200, &MetadataCommand::UnfenceBroker { node_id: 2, epoch }).is_applied());
        assert_eq!(img.partition("t", 1).map(|p| p.leader), Some(2), "unfencing hands the partition back at once");
        assert!(leadership_changes(&img, false).is_empty());
    }
}
