//! The state machine (openraft's `RaftStateMachine`): the [`MetadataImage`] plus snapshots.
//!
//! The image lives in memory. It is made durable by snapshots: `snapshot` in the data directory
//! holds one record (see [`crate::file_format`]) with the snapshot's Raft metadata (last log id,
//! membership) and the serialized image, replaced atomically. On open the image is loaded from
//! the snapshot (or starts empty) and openraft re-applies the committed log entries after it.
//!
//! Every applied batch publishes the new image on a `watch` channel *before* openraft answers
//! the proposer, so a `propose` that returned is already visible to subscribers.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AnyError, EntryPayload, OptionalSend, RaftLogId, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::command::{AppliedInfo, CommandOutcome};
use crate::error::RaftError;
use crate::file_format::{read_record_file, tmp_path, write_record_file};
use crate::image::MetadataImage;
use crate::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

pub(crate) const SNAPSHOT_FILE: &str = "snapshot";

/// The content of the snapshot file.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    image: MetadataImage,
}

/// The snapshot file and who may write it. Shared by the state machine, its snapshot builders
/// (which openraft runs as background tasks) and the quorum handle (which closes it on
/// shutdown, so that no builder of a stopped node writes afterwards).
pub(crate) struct SnapshotStore {
    dir: PathBuf,
    state: Mutex<SnapshotDisk>,
}

struct SnapshotDisk {
    /// Last log id of the snapshot on disk.
    latest: Option<LogId>,
    closed: bool,
}

impl SnapshotStore {
    /// Writes `snapshot` unless a newer one is already on disk (`force` skips that check, for
    /// snapshots installed from the leader). Writers are serialized.
    fn save(&self, snapshot: &SnapshotFile, force: bool) -> Result<(), RaftError> {
        let mut disk = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if disk.closed {
            return Err(RaftError::ShutDown);
        }
        if !force && snapshot.meta.last_log_id < disk.latest {
            return Ok(());
        }
        save_snapshot(&self.dir, snapshot)?;
        disk.latest = snapshot.meta.last_log_id;
        Ok(())
    }

    /// Waits for a write in progress and refuses later ones. Blocking.
    pub(crate) fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
    }
}

pub(crate) struct StateMachine {
    snapshots: Arc<SnapshotStore>,
    image: MetadataImage,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    /// Counts snapshots built by this process, to make snapshot ids unique.
    snapshots_built: u64,
}

fn snapshot_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

fn read_snapshot_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::new(&e)).into()
}

fn load_snapshot(dir: &Path) -> Result<Option<SnapshotFile>, RaftError> {
    let path = dir.join(SNAPSHOT_FILE);
    match read_record_file(&path)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RaftError::Corrupt { path, message: e.to_string() }),
        None => Ok(None),
    }
}

fn save_snapshot(dir: &Path, snapshot: &SnapshotFile) -> Result<(), RaftError> {
    let payload = serde_json::to_vec(snapshot).map_err(|e| RaftError::Storage(format!("serialize snapshot: {e}")))?;
    write_record_file(&dir.join(SNAPSHOT_FILE), &payload)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, RaftError> + Send + 'static) -> Result<T, RaftError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RaftError::Storage(format!("snapshot task failed: {e}")))?
}

impl StateMachine {
    /// Loads the latest snapshot from `dir` (if any). Returns the state machine and the receiver
    /// side of its image watch.
    pub(crate) fn open(dir: &Path) -> Result<(StateMachine, watch::Receiver<Arc<MetadataImage>>), RaftError> {
        // Leftover of a snapshot write cut short by a crash.
        let _ = std::fs::remove_file(tmp_path(&dir.join(SNAPSHOT_FILE)));
        let (image, last_applied, last_membership) = match load_snapshot(dir)? {
            Some(snapshot) => {
                tracing::info!(
                    last_log_index = snapshot.meta.last_log_id.map(|l| l.index),
                    "metadata log: loaded snapshot"
                );
                (snapshot.image, snapshot.meta.last_log_id, snapshot.meta.last_membership)
            }
            None => (MetadataImage::default(), None, StoredMembership::default()),
        };
        let (image_tx, image_rx) = watch::channel(Arc::new(image.clone()));
        let snapshots = Arc::new(SnapshotStore {
            dir: dir.to_path_buf(),
            state: Mutex::new(SnapshotDisk { latest: last_applied, closed: false }),
        });
        let sm = StateMachine { snapshots, image, last_applied, last_membership, image_tx, snapshots_built: 0 };
        Ok((sm, image_rx))
    }

    /// The snapshot store, for closing it on shutdown.
    pub(crate) fn snapshot_store(&self) -> Arc<SnapshotStore> {
        self.snapshots.clone()
    }

    /// Whether the state machine starts from a snapshot.
    pub(crate) fn has_snapshot(&self) -> bool {
        self.last_applied.is_some()
    }

    fn snapshot_data(image: &MetadataImage) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(image)
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for a builder.
pub(crate) struct SnapshotBuilder {
    snapshots: Arc<SnapshotStore>,
    image: MetadataImage,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshot_id: String,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        };
        let data = StateMachine::snapshot_data(&self.image).map_err(snapshot_err)?;
        let file = SnapshotFile { meta: meta.clone(), image: self.image.clone() };
        let snapshots = self.snapshots.clone();
        blocking(move || snapshots.save(&file, false)).await.map_err(snapshot_err)?;
        tracing::info!(last_log_index = meta.last_log_id.map(|l| l.index), "metadata log: snapshot written");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            let outcome = match &entry.payload {
                EntryPayload::Blank => {
                    self.image.note_applied(log_id.index);
                    CommandOutcome::Applied(AppliedInfo { log_index: log_id.index, ..AppliedInfo::default() })
                }
                EntryPayload::Normal(cmd) => {
                    let outcome = self.image.apply(log_id.index, cmd);
                    if let CommandOutcome::Rejected(r) = &outcome {
                        tracing::debug!(index = log_id.index, command = cmd.name(), code = ?r.code, "metadata command rejected: {}", r.message);
                    }
                    outcome
                }
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(log_id), membership.clone());
                    self.image.note_applied(log_id.index);
                    CommandOutcome::Applied(AppliedInfo { log_index: log_id.index, ..AppliedInfo::default() })
                }
            };
            self.last_applied = Some(log_id);
            outcomes.push(outcome);
        }
        self.image_tx.send_replace(Arc::new(self.image.clone()));
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshots_built += 1;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, self.snapshots_built),
            None => format!("0-0-{}", self.snapshots_built),
        };
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref()).map_err(read_snapshot_err)?;
        let file = SnapshotFile { meta: meta.clone(), image: image.clone() };
        let snapshots = self.snapshots.clone();
        blocking(move || snapshots.save(&file, true)).await.map_err(snapshot_err)?;
        tracing::info!(last_log_index = meta.last_log_id.map(|l| l.index), "metadata log: installed snapshot from leader");
        self.image = image;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.image_tx.send_replace(Arc::new(self.image.clone()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let dir = self.snapshots.dir.clone();
        let Some(file) = blocking(move || load_snapshot(&dir)).await.map_err(read_snapshot_err)? else {
            return Ok(None);
        };
        let data = StateMachine::snapshot_data(&file.image).map_err(read_snapshot_err)?;
        Ok(Some(Snapshot { meta: file.meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
