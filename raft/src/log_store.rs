//! The Raft log and vote on disk (openraft's `RaftLogStorage`).
//!
//! Files in the data directory:
//! - `raft.log`: append-only sequence of records (see [`crate::file_format`]), one JSON-encoded
//!   openraft entry each, with consecutive indexes. fsynced on every append. Conflict truncation
//!   cuts the file; purging below a snapshot rewrites the file without the purged prefix
//!   (temp file + rename).
//! - `purged`: one record with the last purged log id, replaced atomically *before* the log file
//!   is rewritten, so entries at or below it left in the file by a crash are skipped on open.
//! - `vote`: one record with the last saved vote, replaced atomically (and fsynced) on every
//!   `save_vote`.
//!
//! All entries that were not purged are also kept in memory (metadata is small), so reads never
//! touch the disk. Writes happen on a blocking thread; openraft serializes them.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogId, StorageIOError};

use crate::error::RaftError;
use crate::file_format::{decode_record, encode_record, io_err, read_record_file, sync_dir, tmp_path, write_record_file};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

pub(crate) const LOG_FILE: &str = "raft.log";
pub(crate) const PURGED_FILE: &str = "purged";
pub(crate) const VOTE_FILE: &str = "vote";

/// What opening the log found.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogRecovery {
    /// Entries read back.
    pub entries: usize,
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
}

/// The in-memory view shared by the writer and the readers.
#[derive(Default)]
struct LogMem {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
}

/// The log file and where each entry starts in it. Only the writer touches it.
struct LogFile {
    path: PathBuf,
    file: File,
    /// log index -> byte position of its record.
    positions: BTreeMap<u64, u64>,
    len: u64,
}

impl LogFile {
    fn append(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(records.iter().map(|(_, r)| r.len()).sum());
        let mut pos = self.len;
        for (index, rec) in records {
            self.positions.insert(*index, pos);
            pos += rec.len() as u64;
            buf.extend_from_slice(rec);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.len = pos;
        Ok(())
    }

    /// Removes entries at and after `index`.
    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some(&pos) = self.positions.get(&index) else {
            // Not in the file (already gone): keep only the positions below.
            self.positions.split_off(&index);
            return Ok(());
        };
        self.file.set_len(pos)?;
        self.file.sync_all()?;
        self.positions.split_off(&index);
        self.len = pos;
        Ok(())
    }

    /// Rewrites the file without the entries at and below `upto`.
    fn purge_upto(&mut self, upto: u64) -> Result<(), RaftError> {
        let keep_from = self.positions.range(upto + 1..).next().map(|(_, pos)| *pos).unwrap_or(self.len);
        if keep_from == 0 {
            return Ok(());
        }
        let mut rest = Vec::new();
        let read = |file: &mut File, rest: &mut Vec<u8>| -> io::Result<()> {
            file.seek(SeekFrom::Start(keep_from))?;
            file.read_to_end(rest)?;
            Ok(())
        };
        read(&mut self.file, &mut rest).map_err(|e| io_err(&self.path, e))?;
        let tmp = tmp_path(&self.path);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(&rest)?;
            f.sync_all()
        };
        write().map_err(|e| io_err(&tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        self.file = open_append(&self.path)?;
        let positions = std::mem::take(&mut self.positions);
        self.positions = positions.range(upto + 1..).map(|(i, p)| (*i, p - keep_from)).collect();
        self.len -= keep_from;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, RaftError> {
    OpenOptions::new().read(true).append(true).create(true).open(path).map_err(|e| io_err(path, e))
}

/// The log storage handed to openraft.
pub(crate) struct LogStore {
    dir: PathBuf,
    mem: Arc<Mutex<LogMem>>,
    file: Arc<Mutex<LogFile>>,
}

/// A reader of the log, used by openraft's replication tasks.
#[derive(Clone)]
pub(crate) struct LogReader {
    mem: Arc<Mutex<LogMem>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn corrupt(path: &Path, message: impl Into<String>) -> RaftError {
    RaftError::Corrupt { path: path.to_path_buf(), message: message.into() }
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, validating every record and cutting a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<(LogStore, LogRecovery), RaftError> {
        let vote_path = dir.join(VOTE_FILE);
        let vote: Option<Vote> = match read_record_file(&vote_path)? {
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| corrupt(&vote_path, e.to_string()))?),
            None => None,
        };
        let purged_path = dir.join(PURGED_FILE);
        let last_purged: Option<LogId> = match read_record_file(&purged_path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&purged_path, e.to_string()))?,
            None => None,
        };

        let path = dir.join(LOG_FILE);
        let buf = match fs::read(&path) {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path, e)),
        };
        let mut entries = BTreeMap::new();
        let mut positions = BTreeMap::new();
        let mut pos = 0usize;
        let mut prev_index: Option<u64> = None;
        let mut stale_prefix = false;
        while pos < buf.len() {
            let (payload, used) = match decode_record(&buf[pos..]) {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(path = %path.display(), position = pos, error = %e, "metadata log: cutting torn tail");
                    break;
                }
            };
            let entry: Entry = match serde_json::from_slice(payload) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(path = %path.display(), position = pos, error = %e, "metadata log: undecodable entry, cutting tail");
                    break;
                }
            };
            let index = entry.get_log_id().index;
            if let Some(prev) = prev_index {
                if index != prev + 1 {
                    tracing::warn!(path = %path.display(), position = pos, index, prev, "metadata log: index gap, cutting tail");
                    break;
                }
            }
            prev_index = Some(index);
            if last_purged.as_ref().is_some_and(|p| index <= p.index) {
                stale_prefix = true;
            } else {
                positions.insert(index, pos as u64);
                entries.insert(index, entry);
            }
            pos += used;
        }
        if let (Some(purged), Some(first)) = (last_purged.as_ref(), entries.keys().next()) {
            if *first != purged.index + 1 {
                return Err(corrupt(&path, format!("log starts at {first} but entries up to {} were purged", purged.index)));
            }
        }
        let valid_len = pos as u64;
        let truncated_bytes = buf.len() as u64 - valid_len;

        let file = open_append(&path)?;
        if truncated_bytes > 0 {
            file.set_len(valid_len).and_then(|_| file.sync_all()).map_err(|e| io_err(&path, e))?;
        }
        let mut log_file = LogFile { path: path.clone(), file, positions, len: valid_len };
        if stale_prefix {
            if let Some(purged) = &last_purged {
                log_file.purge_upto(purged.index)?;
            }
        }
        sync_dir(dir)?;
        let recovery = LogRecovery { entries: entries.len(), truncated_bytes };
        let mem = LogMem { entries, last_purged, vote };
        Ok((
            LogStore { dir: dir.to_path_buf(), mem: Arc::new(Mutex::new(mem)), file: Arc::new(Mutex::new(log_file)) },
            recovery,
        ))
    }

    /// Whether the log holds no entry and never purged one.
    pub(crate) fn is_empty(&self) -> bool {
        let mem = lock(&self.mem);
        mem.entries.is_empty() && mem.last_purged.is_none()
    }

    /// Whether a vote was ever saved.
    pub(crate) fn has_vote(&self) -> bool {
        lock(&self.mem).vote.is_some()
    }

    /// Forgets the saved vote. Only safe when this node is the only voter: nobody else can have
    /// seen it.
    pub(crate) fn reset_vote(&mut self) -> Result<(), RaftError> {
        let path = self.dir.join(VOTE_FILE);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path, e)),
        }
        sync_dir(&self.dir)?;
        lock(&self.mem).vote = None;
        Ok(())
    }

    /// Runs blocking file work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogFile) -> Result<T, RaftError> + Send + 'static,
    ) -> Result<T, RaftError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&file)))
            .await
            .map_err(|e| RaftError::Storage(format!("log writer task failed: {e}")))?
    }
}

fn sto_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(lock(&self.mem).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(lock(&self.mem).entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mem = lock(&self.mem);
        let last_log_id = mem.entries.values().next_back().map(|e| *e.get_log_id()).or(mem.last_purged);
        Ok(LogState { last_purged_log_id: mem.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { mem: self.mem.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let payload = serde_json::to_vec(vote).map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        let path = self.dir.join(VOTE_FILE);
        self.blocking(move |_| write_record_file(&path, &payload))
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        lock(&self.mem).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.mem).vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let payload = serde_json::to_vec(entry).map_err(sto_write)?;
            records.push((entry.get_log_id().index, encode_record(&payload)));
        }
        {
            // Readable as soon as `append` returns; durable once the callback fires.
            let mut mem = lock(&self.mem);
            for entry in entries {
                mem.entries.insert(entry.get_log_id().index, entry);
            }
        }
        let result = self.blocking(move |file| file.append(&records).map_err(|e| io_err(&file.path, e))).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(sto_write(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::info!(index = log_id.index, "metadata log: truncating conflicting entries");
        let index = log_id.index;
        self.blocking(move |file| file.truncate_from(index).map_err(|e| io_err(&file.path, e))).await.map_err(sto_write)?;
        lock(&self.mem).entries.split_off(&index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "metadata log: purging entries below snapshot");
        let payload = serde_json::to_vec(&Some(log_id)).map_err(sto_write)?;
        let marker = self.dir.join(PURGED_FILE);
        let index = log_id.index;
        self.blocking(move |file| {
            write_record_file(&marker, &payload)?;
            file.purge_upto(index)
        })
        .await
        .map_err(sto_write)?;
        let mut mem = lock(&self.mem);
        mem.last_purged = Some(log_id);
        mem.entries = mem.entries.split_off(&(index + 1));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Blank }
    }

    /// Writes entries `indexes` as the log file, the way `append` frames them.
    fn must_write_log(dir: &Path, indexes: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in indexes {
            buf.extend_from_slice(&encode_record(&serde_json::to_vec(&entry(i)).expect("encode")));
            ends.push(buf.len() as u64);
        }
        fs::write(dir.join(LOG_FILE), &buf).expect("write log");
        ends
    }

    async fn indexes(store: &mut LogStore) -> Vec<u64> {
        store.try_get_log_entries(..).await.expect("read").iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn open_cuts_torn_tail_anywhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ends = must_write_log(dir.path(), 0..5);
        let full = fs::read(dir.path().join(LOG_FILE)).expect("read");
        // Every record boundary and its neighbours, plus every 7th byte (each open fsyncs).
        let near_boundary = |cut: u64| ends.iter().any(|end| end.abs_diff(cut) <= 1) || cut <= 1;
        for cut in (0..=full.len()).filter(|cut| cut % 7 == 0 || near_boundary(*cut as u64)) {
            fs::write(dir.path().join(LOG_FILE), &full[..cut]).expect("write");
            let (mut store, recovery) = LogStore::open(dir.path()).expect("open");
            let complete = ends.iter().filter(|end| **end <= cut as u64).count() as u64;
            assert_eq!(indexes(&mut store).await, (0..complete).collect::<Vec<_>>(), "cut at {cut}");
            let kept = if complete == 0 { 0 } else { ends[complete as usize - 1] };
            assert_eq!(recovery.truncated_bytes, cut as u64 - kept);
            assert_eq!(fs::metadata(dir.path().join(LOG_FILE)).expect("stat").len(), kept);
        }
    }

    #[tokio::test]
    async fn open_cuts_at_corruption_and_index_gaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ends = must_write_log(dir.path(), [0, 1, 2, 5, 6]);
        let (mut store, recovery) = LogStore::open(dir.path()).expect("open");
        assert_eq!(indexes(&mut store).await, vec![0, 1, 2]);
        assert_eq!(recovery.truncated_bytes, ends[4] - ends[2]);

        let ends = must_write_log(dir.path(), 0..4);
        let mut bytes = fs::read(dir.path().join(LOG_FILE)).expect("read");
        bytes[ends[1] as usize + 10] ^= 0xff; // inside entry 2's payload
        fs::write(dir.path().join(LOG_FILE), &bytes).expect("write");
        let (mut store, _) = LogStore::open(dir.path()).expect("open");
        assert_eq!(indexes(&mut store).await, vec![0, 1]);
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        must_write_log(dir.path(), 0..10);
        let (mut store, _) = LogStore::open(dir.path()).expect("open");
        store.truncate(entry(8).log_id).await.expect("truncate");
        store.purge(entry(3).log_id).await.expect("purge");
        assert_eq!(indexes(&mut store).await, vec![4, 5, 6, 7]);
        let state = store.get_log_state().await.expect("state");
        assert_eq!((state.last_purged_log_id.map(|l| l.index), state.last_log_id.map(|l| l.index)), (Some(3), Some(7)));
        drop(store);

        let (mut store, recovery) = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(indexes(&mut store).await, vec![4, 5, 6, 7]);
        // Purging past the end leaves an empty log whose last id is the purged one.
        store.purge(entry(12).log_id).await.expect("purge");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id.map(|l| l.index), Some(12));
        assert_eq!(fs::metadata(dir.path().join(LOG_FILE)).expect("stat").len(), 0);
    }

    #[tokio::test]
    async fn stale_prefix_after_crash_in_purge_is_dropped() {
        // The purge marker was written but the crash came before the log was rewritten.
        let dir = tempfile::tempdir().expect("tempdir");
        must_write_log(dir.path(), 0..6);
        let marker = serde_json::to_vec(&Some(entry(2).log_id)).expect("encode");
        write_record_file(&dir.path().join(PURGED_FILE), &marker).expect("marker");
        let (mut store, _) = LogStore::open(dir.path()).expect("open");
        assert_eq!(indexes(&mut store).await, vec![3, 4, 5]);
        drop(store);
        let (mut store, recovery) = LogStore::open(dir.path()).expect("reopen");
        assert_eq!((indexes(&mut store).await, recovery.truncated_bytes), (vec![3, 4, 5], 0));
    }

    #[tokio::test]
    async fn vote_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = LogStore::open(dir.path()).expect("open");
        assert_eq!(store.read_vote().await.expect("vote"), None);
        let vote = Vote::new(3, 1);
        store.save_vote(&vote).await.expect("save");
        drop(store);
        let (mut store, _) = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        fs::write(dir.path().join(VOTE_FILE), b"junk").expect("write");
        assert!(matches!(LogStore::open(dir.path()), Err(RaftError::Corrupt { .. })));
    }
}
