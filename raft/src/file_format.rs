//! The on-disk framing shared by every file of the metadata log directory.
//!
//! A *record* is `u32 LE payload length | u32 LE CRC32C of the payload | payload`, the payload
//! being JSON. The log file is a sequence of records; the small files (vote, purge marker,
//! snapshot) each hold exactly one record and are replaced atomically: written to a temporary
//! file, fsynced, renamed over the old one, then the directory is fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::RaftError;

/// Bytes of the record header (length + CRC).
pub(crate) const RECORD_HEADER_BYTES: usize = 8;
/// No single record may be larger than this (a sanity bound when reading lengths from disk).
pub(crate) const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Frames `payload` as one record.
pub(crate) fn encode_record(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= RECORD_BYTES_MAX, "metadata record of {} bytes is too large", payload.len());
    let len = u32::try_from(payload.len()).expect("bounded by RECORD_BYTES_MAX");
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Why a record could not be read at some position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The buffer ends inside the header or the payload.
    Truncated,
    /// The length field is beyond [`RECORD_BYTES_MAX`].
    BadLength(u64),
    /// The CRC does not match the payload.
    BadCrc,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Truncated => write!(f, "record is cut short"),
            RecordError::BadLength(len) => write!(f, "record length {len} is out of bounds"),
            RecordError::BadCrc => write!(f, "record CRC32C mismatch"),
        }
    }
}

/// Reads the record at the start of `buf`: returns its payload and its total size.
pub(crate) fn decode_record(buf: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if buf.len() < RECORD_HEADER_BYTES {
        return Err(RecordError::Truncated);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > RECORD_BYTES_MAX {
        return Err(RecordError::BadLength(len as u64));
    }
    let end = RECORD_HEADER_BYTES + len;
    if buf.len() < end {
        return Err(RecordError::Truncated);
    }
    let payload = &buf[RECORD_HEADER_BYTES..end];
    if crc32c::crc32c(payload) != crc {
        return Err(RecordError::BadCrc);
    }
    Ok((payload, end))
}

pub(crate) fn io_err(path: &Path, source: io::Error) -> RaftError {
    RaftError::Io { path: path.to_path_buf(), source }
}

/// fsyncs a directory so that renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RaftError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))
}

/// Replaces `path` with a file holding exactly one record of `payload`, atomically and durably.
pub(crate) fn write_record_file(path: &Path, payload: &[u8]) -> Result<(), RaftError> {
    let tmp = tmp_path(path);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(&encode_record(payload))?;
        f.sync_all()
    };
    write().map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a file written by [`write_record_file`]; `Ok(None)` when it does not exist.
pub(crate) fn read_record_file(path: &Path) -> Result<Option<Vec<u8>>, RaftError> {
    let buf = match fs::read(path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    match decode_record(&buf) {
        Ok((payload, used)) if used == buf.len() => Ok(Some(payload.to_vec())),
        Ok(_) => Err(RaftError::Corrupt { path: path.to_path_buf(), message: "trailing bytes after the record".into() }),
        Err(e) => Err(RaftError::Corrupt { path: path.to_path_buf(), message: e.to_string() }),
    }
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_damage() {
        let rec = encode_record(b"hello");
        assert_eq!(decode_record(&rec), Ok((&b"hello"[..], rec.len())));
        for cut in 0..rec.len() {
            assert_eq!(decode_record(&rec[..cut]), Err(RecordError::Truncated));
        }
        let mut bad = rec.clone();
        bad[9] ^= 1;
        assert_eq!(decode_record(&bad), Err(RecordError::BadCrc));
    }

    #[test]
    fn record_file_is_replaced_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vote");
        assert_eq!(read_record_file(&path).expect("read"), None);
        write_record_file(&path, b"one").expect("write");
        write_record_file(&path, b"two").expect("write");
        assert_eq!(read_record_file(&path).expect("read"), Some(b"two".to_vec()));
        assert!(!tmp_path(&path).exists());
        fs::write(&path, b"garbage").expect("write");
        assert!(matches!(read_record_file(&path), Err(RaftError::Corrupt { .. })));
    }
}
