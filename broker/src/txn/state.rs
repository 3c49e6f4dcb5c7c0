//! The pure transaction state machine of one `__transaction_state` partition
//! (Kafka's `TransactionMetadata` and the decisions of `TransactionCoordinator`),
//! without I/O: time comes in as an argument, producer ids are handed in by the
//! caller when a decision needs one ([`InitDecision::NeedProducerId`]), and
//! every change that must be durable comes out as a [`Transit`] that the owner
//! writes to the log and then feeds back through [`TxnShard::write_done`].
//!
//! While a transit is being written the transaction has a pending state and
//! every other request for it gets CONCURRENT_TRANSACTIONS, as in Kafka. After
//! a PrepareCommit/PrepareAbort is written the pending state is the matching
//! Complete* state until the markers are written ([`TxnShard::markers_done`]).

use std::collections::{BTreeMap, BTreeSet};

use klamm_protocol::ErrorCode;

/// `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// A topic partition of a transaction.
/// A partition in a transaction.
pub type Tp = crate::topic_partition::TopicPartition;

/// Kafka's `TransactionState`, with the ids written to `__transaction_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        TxnState::ALL.iter().position(|s| *s == self).expect("every state is listed") as i8
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.get(usize::try_from(id).ok()?).copied()
    }

    /// The name DescribeTransactions / ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Kafka's `validPreviousStates`.
    pub fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    pub fn can_follow(self, previous: TxnState) -> bool {
        self.valid_previous().contains(&previous)
    }
}

/// Kafka's `isEpochExhausted`: the last two epochs are kept for the fence bump.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// What `__transaction_state` stores for a transactional id (value v0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<Tp>,
    pub last_update_ms: i64,
    /// -1 until a transaction starts.
    pub start_ms: i64,
}

/// One transactional id.
#[derive(Clone, Debug)]
pub struct Txn {
    pub transactional_id: String,
    pub rec: TxnRecord,
    /// The producer id before the last rotation (KIP-360 retries), not persisted (value v0).
    pub last_producer_id: i64,
    /// The epoch before the last bump (KIP-360 retries), not persisted.
    pub last_producer_epoch: i16,
    /// The state a transit in flight (or the markers) will bring.
    pub pending: Option<TxnState>,
}

impl Txn {
    pub fn loaded(transactional_id: String, rec: TxnRecord) -> Txn {
        Txn { transactional_id, rec, last_producer_id: NO_PRODUCER_ID, last_producer_epoch: NO_PRODUCER_EPOCH, pending: None }
    }

    /// A transit to `rec` that keeps the KIP-360 retry fields.
    fn transit(&self, kind: TransitKind, rec: TxnRecord) -> Transit {
        Transit {
            transactional_id: self.transactional_id.clone(),
            kind,
            rec,
            last_producer_id: self.last_producer_id,
            last_producer_epoch: self.last_producer_epoch,
        }
    }
}

/// Why a transit is written; says what happens once it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitKind {
    /// InitProducerId: answer the new producer id and epoch.
    Init,
    /// InitProducerId found an ongoing transaction: abort it with a bumped epoch
    /// and answer CONCURRENT_TRANSACTIONS (the client retries).
    EpochFence,
    /// A transaction ran past its timeout: abort it with a bumped epoch.
    TimeoutAbort,
    AddPartitions,
    /// EndTxn: PrepareCommit / PrepareAbort.
    End,
    /// The markers are written: CompleteCommit / CompleteAbort.
    Complete,
    /// The transactional id expired: a tombstone.
    Expire,
}

/// A change to write to the log before it takes effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transit {
    pub transactional_id: String,
    pub kind: TransitKind,
    pub rec: TxnRecord,
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
}

/// The markers to write once a Prepare* state is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<Tp>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum InitDecision {
    Reply(Result<(i64, i16), ErrorCode>),
    /// Call again with a freshly allocated producer id.
    NeedProducerId,
    Write(Transit),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Reply(ErrorCode),
    Write(Transit),
}

/// What follows a durable (or failed) write.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterWrite {
    /// The write failed or nothing more is to do.
    Nothing,
    /// A Prepare* state is durable: write these markers, then call [`TxnShard::markers_done`].
    SendMarkers(MarkerJob),
}

/// A transaction as DescribeTransactions / ListTransactions show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnView {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: BTreeSet<Tp>,
}

#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

/// The transactions of one `__transaction_state` partition.
pub struct TxnShard {
    pub config: TxnConfig,
    pub txns: BTreeMap<String, Txn>,
}

impl TxnShard {
    pub fn new(config: TxnConfig) -> TxnShard {
        TxnShard { config, txns: BTreeMap::new() }
    }

    pub fn get(&self, id: &str) -> Option<&Txn> {
        self.txns.get(id)
    }

    /// Kafka's `validateTransactionTimeoutMs`.
    pub fn valid_timeout(&self, timeout_ms: i32) -> bool {
        timeout_ms > 0 && timeout_ms <= self.config.max_timeout_ms
    }

    /// InitProducerId with a transactional id (`handleInitProducerId` and
    /// `prepareInitProducerIdTransit`). `expected` is the KIP-360 producer id
    /// and epoch of v3+ requests (None when the request carries -1/-1).
    pub fn init_producer_id(&mut self, id: &str, timeout_ms: i32, expected: Option<(i64, i16)>, fresh_id: Option<i64>, now: i64) -> InitDecision {
        if !self.valid_timeout(timeout_ms) {
            return InitDecision::Reply(Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT));
        }
        let mut fresh_id = fresh_id;
        if !self.txns.contains_key(id) {
            let Some(pid) = fresh_id.take() else { return InitDecision::NeedProducerId };
            let rec = TxnRecord {
                producer_id: pid,
                producer_epoch: NO_PRODUCER_EPOCH,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now,
                start_ms: -1,
            };
            self.txns.insert(id.to_string(), Txn::loaded(id.to_string(), rec));
        }
        let txn = self.txns.get_mut(id).expect("inserted above");
        if txn.pending.is_some() {
            return InitDecision::Reply(Err(ErrorCode::CONCURRENT_TRANSACTIONS));
        }
        if let Some((pid, epoch)) = expected {
            // Kafka's `isValidProducerId`: a just-created id, the current id, or
            // the previous one retrying after a rotation.
            let valid = txn.rec.producer_epoch == NO_PRODUCER_EPOCH
                || pid == txn.rec.producer_id
                || (pid == txn.last_producer_id && epoch_exhausted(epoch));
            if !valid {
                return InitDecision::Reply(Err(ErrorCode::PRODUCER_FENCED));
            }
        }
        let transit = |txn: &Txn, rec: TxnRecord, last_pid: i64, last_epoch: i16, kind: TransitKind| Transit {
            transactional_id: txn.transactional_id.clone(),
            kind,
            rec,
            last_producer_id: last_pid,
            last_producer_epoch: last_epoch,
        };
        let t = match txn.rec.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::Dead | TxnState::PrepareEpochFence => {
                return InitDecision::Reply(Err(ErrorCode::CONCURRENT_TRANSACTIONS));
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let empty = |pid: i64, epoch: i16| TxnRecord {
                    producer_id: pid,
                    producer_epoch: epoch,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now,
                    start_ms: -1,
                };
                if epoch_exhausted(txn.rec.producer_epoch) && expected.is_none_or(|(_, e)| e == txn.rec.producer_epoch) {
                    // Rotation to a new producer id (`prepareProducerIdRotation`).
                    let Some(pid) = fresh_id else { return InitDecision::NeedProducerId };
                    let last_epoch = if expected.is_some() { txn.rec.producer_epoch } else { NO_PRODUCER_EPOCH };
                    transit(txn, empty(pid, 0), txn.rec.producer_id, last_epoch, TransitKind::Init)
                } else {
                    // `prepareIncrementProducerEpoch`.
                    let current = txn.rec.producer_epoch;
                    let bumped = current + 1;
                    let (epoch, last_epoch) = match expected {
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some((_, e)) if current == NO_PRODUCER_EPOCH || e == current => (bumped, current),
                        // A retry of a bump whose answer was lost.
                        Some((_, e)) if e == txn.last_producer_epoch => (current, txn.last_producer_epoch),
                        Some(_) => return InitDecision::Reply(Err(ErrorCode::PRODUCER_FENCED)),
                    };
                    transit(txn, empty(txn.rec.producer_id, epoch), txn.last_producer_id, last_epoch, TransitKind::Init)
                }
            }
            TxnState::Ongoing => {
                // Abort the ongoing transaction with a bumped epoch that is never
                // returned: the client retries and gets a second bump.
                match fence_transit(txn, TransitKind::EpochFence, now) {
                    Some(t) => t,
                    None => return InitDecision::Reply(Err(ErrorCode::PRODUCER_FENCED)),
                }
            }
        };
        txn.pending = Some(pending_state(&t));
        InitDecision::Write(t)
    }

    /// AddPartitionsToTxn v0-3 and v4+ without verify_only
    /// (`handleAddPartitionsToTransaction`).
    pub fn add_partitions(&mut self, id: &str, producer_id: i64, epoch: i16, partitions: &BTreeSet<Tp>, now: i64) -> Decision {
        let Some(txn) = self.txns.get_mut(id) else { return Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING) };
        if txn.rec.producer_id != producer_id {
            return Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if txn.rec.producer_epoch != epoch {
            return Decision::Reply(ErrorCode::PRODUCER_FENCED);
        }
        if txn.pending.is_some() || matches!(txn.rec.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        if txn.rec.state == TxnState::Ongoing && partitions.is_subset(&txn.rec.partitions) {
            return Decision::Reply(ErrorCode::NONE);
        }
        if !TxnState::Ongoing.can_follow(txn.rec.state) {
            return Decision::Reply(ErrorCode::INVALID_TXN_STATE);
        }
        let mut rec = txn.rec.clone();
        if rec.state != TxnState::Ongoing {
            rec.start_ms = now;
        }
        rec.state = TxnState::Ongoing;
        rec.partitions.extend(partitions.iter().cloned());
        rec.last_update_ms = now;
        let t = txn.transit(TransitKind::AddPartitions, rec);
        txn.pending = Some(TxnState::Ongoing);
        Decision::Write(t)
    }

    /// AddPartitionsToTxn v4+ with verify_only (KIP-890 part 1,
    /// `handleVerifyPartitionsInTransaction`): per partition NONE when it is in
    /// the producer's ongoing transaction, INVALID_TXN_STATE when not.
    pub fn verify(&self, id: &str, producer_id: i64, epoch: i16, partitions: &[Tp]) -> Result<Vec<ErrorCode>, ErrorCode> {
        let txn = self.txns.get(id).ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        if txn.rec.producer_id != producer_id {
            return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if txn.rec.producer_epoch != epoch {
            return Err(ErrorCode::PRODUCER_FENCED);
        }
        if matches!(txn.rec.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        Ok(partitions
            .iter()
            .map(|tp| if txn.rec.state == TxnState::Ongoing && txn.rec.partitions.contains(tp) { ErrorCode::NONE } else { ErrorCode::INVALID_TXN_STATE })
            .collect())
    }

    /// EndTxn from a client (`endTransaction`, transactions v1). A retry of a
    /// completed end answers NONE; a Prepare* in progress answers CONCURRENT_TRANSACTIONS.
    pub fn end_txn(&mut self, id: &str, producer_id: i64, epoch: i16, commit: bool, now: i64) -> Decision {
        let Some(txn) = self.txns.get_mut(id) else { return Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING) };
        if txn.rec.producer_id != producer_id {
            return Decision::Reply(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch != txn.rec.producer_epoch {
            return Decision::Reply(ErrorCode::PRODUCER_FENCED);
        }
        if txn.pending.is_some() {
            return Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        let same = |want_commit: bool| if commit == want_commit { None } else { Some(ErrorCode::INVALID_TXN_STATE) };
        match txn.rec.state {
            TxnState::Ongoing => {}
            TxnState::CompleteCommit => return Decision::Reply(same(true).unwrap_or(ErrorCode::NONE)),
            TxnState::CompleteAbort => return Decision::Reply(same(false).unwrap_or(ErrorCode::NONE)),
            TxnState::PrepareCommit => return Decision::Reply(same(true).unwrap_or(ErrorCode::CONCURRENT_TRANSACTIONS)),
            TxnState::PrepareAbort => return Decision::Reply(same(false).unwrap_or(ErrorCode::CONCURRENT_TRANSACTIONS)),
            TxnState::Empty => return Decision::Reply(ErrorCode::INVALID_TXN_STATE),
            TxnState::Dead | TxnState::PrepareEpochFence => return Decision::Reply(ErrorCode::CONCURRENT_TRANSACTIONS),
        }
        let mut rec = txn.rec.clone();
        rec.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        rec.last_update_ms = now;
        let t = txn.transit(TransitKind::End, rec);
        txn.pending = Some(t.rec.state);
        Decision::Write(t)
    }

    /// Transactions Ongoing past their timeout with nothing in flight
    /// (`timedOutTransactions`).
    pub fn timed_out(&self, now: i64) -> Vec<String> {
        self.txns
            .values()
            .filter(|t| t.pending.is_none() && t.rec.state == TxnState::Ongoing && t.rec.start_ms + i64::from(t.rec.timeout_ms) < now)
            .map(|t| t.transactional_id.clone())
            .collect()
    }

    /// Starts aborting a timed-out transaction: PrepareAbort with a bumped
    /// epoch, so the producer that let it time out is fenced (`abortTimedOutTransactions`).
    pub fn abort_timed_out(&mut self, id: &str, now: i64) -> Option<Transit> {
        let txn = self.txns.get_mut(id)?;
        if txn.pending.is_some() || txn.rec.state != TxnState::Ongoing {
            return None;
        }
        let t = fence_transit(txn, TransitKind::TimeoutAbort, now)?;
        txn.pending = Some(pending_state(&t));
        Some(t)
    }

    /// Tombstones for transactional ids idle past `transactional.id.expiration.ms`
    /// (`removeExpiredTransactionalIds`): only ids with no transaction open.
    pub fn expire(&mut self, now: i64) -> Vec<Transit> {
        let horizon = now - self.config.id_expiration_ms;
        let mut out = Vec::new();
        for txn in self.txns.values_mut() {
            let idle = matches!(txn.rec.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort);
            if txn.pending.is_none() && idle && txn.rec.last_update_ms <= horizon {
                let mut rec = txn.rec.clone();
                rec.state = TxnState::Dead;
                rec.partitions.clear();
                rec.last_update_ms = now;
                txn.pending = Some(TxnState::Dead);
                out.push(txn.transit(TransitKind::Expire, rec));
            }
        }
        out
    }

    /// Applies a transit once it is durable (`completeTransitionTo`), or drops
    /// its pending state when the write failed.
    pub fn write_done(&mut self, t: &Transit, result: Result<(), ErrorCode>) -> AfterWrite {
        let Some(txn) = self.txns.get_mut(&t.transactional_id) else { return AfterWrite::Nothing };
        if result.is_err() {
            // Nothing changed in memory (a failed fence included: the next
            // fence bumps from the durable epoch again, to the same epoch,
            // which is what Kafka's `hasFailedEpochFence` achieves).
            txn.pending = None;
            return AfterWrite::Nothing;
        }
        if !t.rec.state.can_follow(txn.rec.state) {
            // Only transits this shard prepared are applied; a mismatch means
            // the metadata changed under it (a reload): keep what is there.
            tracing::error!(id = %t.transactional_id, from = txn.rec.state.name(), to = t.rec.state.name(), "illegal transaction state transition ignored");
            txn.pending = None;
            return AfterWrite::Nothing;
        }
        if t.rec.state == TxnState::Dead {
            self.txns.remove(&t.transactional_id);
            return AfterWrite::Nothing;
        }
        txn.rec = t.rec.clone();
        txn.last_producer_id = t.last_producer_id;
        txn.last_producer_epoch = t.last_producer_epoch;
        txn.pending = None;
        self.after_prepare(&t.transactional_id)
    }

    /// A transaction in PrepareCommit/PrepareAbort (just written, or found on
    /// load) waits for its markers with the Complete* state pending.
    pub fn after_prepare(&mut self, id: &str) -> AfterWrite {
        let Some(txn) = self.txns.get_mut(id) else { return AfterWrite::Nothing };
        let (commit, complete) = match txn.rec.state {
            TxnState::PrepareCommit => (true, TxnState::CompleteCommit),
            TxnState::PrepareAbort => (false, TxnState::CompleteAbort),
            _ => return AfterWrite::Nothing,
        };
        txn.pending = Some(complete);
        AfterWrite::SendMarkers(MarkerJob {
            transactional_id: id.to_string(),
            producer_id: txn.rec.producer_id,
            producer_epoch: txn.rec.producer_epoch,
            commit,
            partitions: txn.rec.partitions.clone(),
        })
    }

    /// Every marker of `job` is written: the Complete* transit (`prepareComplete`).
    pub fn markers_done(&mut self, job: &MarkerJob, now: i64) -> Option<Transit> {
        let txn = self.txns.get(&job.transactional_id)?;
        let complete = if job.commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        if txn.pending != Some(complete) || txn.rec.producer_id != job.producer_id || txn.rec.producer_epoch != job.producer_epoch {
            return None;
        }
        let mut rec = txn.rec.clone();
        rec.state = complete;
        rec.partitions.clear();
        rec.last_update_ms = now;
        Some(txn.transit(TransitKind::Complete, rec))
    }

    /// A Complete* write failed: the markers are durable, so the state stays
    /// pending and the write is retried (Kafka retries it likewise).
    pub fn complete_failed(&mut self, t: &Transit) {
        if let Some(txn) = self.txns.get_mut(&t.transactional_id) {
            txn.pending = Some(t.rec.state);
        }
    }

    pub fn view(&self, id: &str) -> Option<TxnView> {
        self.txns.get(id).filter(|t| t.rec.state != TxnState::Dead).map(view_of)
    }

    /// ListTransactions' filters: states (empty = all), producer ids
    /// (empty = all), and v1's running time to exceed (-1 = none).
    pub fn list(&self, states: &[TxnState], producer_ids: &[i64], min_duration_ms: i64, now: i64) -> Vec<TxnView> {
        self.txns
            .values()
            .filter(|t| t.rec.state != TxnState::Dead)
            .filter(|t| states.is_empty() || states.contains(&t.rec.state))
            .filter(|t| producer_ids.is_empty() || producer_ids.contains(&t.rec.producer_id))
            // Kafka's `listTransactionStates` keeps those running longer than the filter.
            .filter(|t| min_duration_ms < 0 || now - t.rec.start_ms > min_duration_ms)
            .map(view_of)
            .collect()
    }
}

fn view_of(t: &Txn) -> TxnView {
    TxnView {
        transactional_id: t.transactional_id.clone(),
        producer_id: t.rec.producer_id,
        producer_epoch: t.rec.producer_epoch,
        state: t.rec.state,
        timeout_ms: t.rec.timeout_ms,
        start_ms: t.rec.start_ms,
        partitions: t.rec.partitions.clone(),
    }
}

/// The pending state while a transit is written.
fn pending_state(t: &Transit) -> TxnState {
    match t.kind {
        TransitKind::EpochFence | TransitKind::TimeoutAbort => TxnState::PrepareEpochFence,
        _ => t.rec.state,
    }
}

/// Kafka's `prepareFenceProducerEpoch` followed by the abort: PrepareAbort at
/// epoch + 1. None when the epoch cannot grow.
fn fence_transit(txn: &Txn, kind: TransitKind, now: i64) -> Option<Transit> {
    let epoch = txn.rec.producer_epoch.checked_add(1)?;
    let mut rec = txn.rec.clone();
    rec.producer_epoch = epoch;
    rec.state = TxnState::PrepareAbort;
    rec.last_update_ms = now;
    Some(Transit { last_producer_epoch: NO_PRODUCER_EPOCH, ..txn.transit(kind, rec) })
}
