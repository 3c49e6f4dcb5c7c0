//! Small text checkpoint files written atomically (tmp + fsync + rename +
//! directory fsync): the log start offset and the leader-epoch checkpoint.
//!
//! Format (Kafka's checkpoint style): a version line (`0`), a count line,
//! then one entry per line with space-separated decimal fields.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `lines` as a version-0 checkpoint at `path`, atomically.
pub(crate) fn write_checkpoint(path: &Path, lines: &[String]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut text = String::with_capacity(16 + lines.len() * 24);
    text.push_str("0\n");
    text.push_str(&lines.len().to_string());
    text.push('\n');
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    {
        let mut f = File::create(&tmp).map_err(Error::io("create checkpoint", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(Error::io("write checkpoint", &tmp))?;
        f.sync_all().map_err(Error::io("fsync checkpoint", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io("rename checkpoint", path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads a checkpoint's entry lines, each split into i64 fields.
/// `Ok(None)` if the file does not exist; `Err(Corrupt)` if it is malformed.
pub(crate) fn read_checkpoint(path: &Path, fields: usize) -> Result<Option<Vec<Vec<i64>>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read checkpoint", path)(e)),
    };
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: reason.to_owned(),
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(corrupt("unknown checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("bad entry count"))?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let line = lines.next().ok_or_else(|| corrupt("missing entry"))?;
        let values: Vec<i64> = line
            .split_whitespace()
            .map(|f| f.parse::<i64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| corrupt("bad number"))?;
        if values.len() != fields {
            return Err(corrupt("wrong field count"));
        }
        out.push(values);
    }
    Ok(Some(out))
}

/// fsyncs a directory so renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp");
        assert!(read_checkpoint(&p, 2).unwrap().is_none());
        write_checkpoint(&p, &["1 10".into(), "3 25".into()]).unwrap();
        assert_eq!(
            read_checkpoint(&p, 2).unwrap().unwrap(),
            vec![vec![1, 10], vec![3, 25]]
        );
        std::fs::write(&p, "0\n2\n1 10\n").unwrap();
        assert!(read_checkpoint(&p, 2).is_err());
        std::fs::write(&p, "garbage").unwrap();
        assert!(read_checkpoint(&p, 2).is_err());
    }
}
