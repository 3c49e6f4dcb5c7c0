//! The high-watermark checkpoint of a log directory: one file,
//! `replication-offset-checkpoint`, naming the high watermark of every
//! partition the directory hosts, in Kafka's text format:
//!
//! ```text
//! 0                 <- version
//! 2                 <- number of entries
//! orders_raw 0 1200 <- topic, partition, high watermark
//! orders_raw 1 1187
//! ```
//!
//! Why one file per directory (as Kafka) and not one per partition: the
//! checkpoint is written every `replica.high.watermark.checkpoint.interval.ms`
//! (5 s); with a file per partition that is a create, write and rename per
//! partition whose high watermark moved, which with 1 000 busy partitions cost
//! more than the produce path itself. One file costs one write whatever the
//! number of partitions.
//!
//! A restarted replica of a replicated partition starts from this value
//! (bounded by its log) so it never exposes less than it had committed; the
//! leader's answers move it on from there. A missing or damaged file only
//! means starting lower (from the log start), never reading past the log end,
//! so damage is logged and ignored rather than stopping the node.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use tracing::warn;

use super::TopicPartition;

/// The file name in the log directory (Kafka's).
pub const FILE: &str = "replication-offset-checkpoint";
/// The per-partition file of earlier Klamm versions, read once for upgrade
/// and then removed.
pub const LEGACY_PARTITION_FILE: &str = "high-watermark-checkpoint";
const VERSION: &str = "0";

/// Parses the checkpoint text; `None` if it is not in the format above.
pub fn parse(text: &str) -> Option<HashMap<TopicPartition, i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = HashMap::with_capacity(count.min(1 << 20));
    for line in lines.by_ref().take(count) {
        // Topic names cannot contain spaces (Kafka's legal characters), so
        // the last two fields are the partition and the offset.
        let mut fields = line.trim().rsplitn(3, ' ');
        let offset: i64 = fields.next()?.parse().ok()?;
        let partition: i32 = fields.next()?.parse().ok()?;
        let topic = fields.next()?;
        if topic.is_empty() || topic.contains(' ') || offset < 0 || partition < 0 {
            return None;
        }
        entries.insert(TopicPartition::new(topic, partition), offset);
    }
    (entries.len() == count && lines.all(|l| l.trim().is_empty())).then_some(entries)
}

/// Renders entries in the format above, sorted so the file is stable.
pub fn render(entries: &HashMap<TopicPartition, i64>) -> String {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort();
    let mut text = format!("{VERSION}\n{}\n", sorted.len());
    for (tp, offset) in sorted {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    text
}

/// Reads the log directory's checkpoint. Missing: empty. Damaged: empty, with a warning.
pub fn read(log_dir: &Path) -> HashMap<TopicPartition, i64> {
    let path = log_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).unwrap_or_else(|| {
            warn!(path = %path.display(), "high-watermark checkpoint is damaged; replicated partitions start from their log start and learn the high watermark again");
            HashMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "reading the high-watermark checkpoint failed");
            HashMap::new()
        }
    }
}

/// Writes the checkpoint crash-safely: a temporary file, fsynced, renamed
/// over the old one, then the directory fsynced (a crash leaves the old or
/// the new file, never a torn one).
pub fn write(log_dir: &Path, entries: &HashMap<TopicPartition, i64>) -> std::io::Result<()> {
    let tmp = log_dir.join(format!("{FILE}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(render(entries).as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, log_dir.join(FILE))?;
    std::fs::File::open(log_dir)?.sync_all()
}

/// Reads and removes the per-partition file of earlier versions.
pub fn take_legacy(partition_dir: &Path) -> Option<i64> {
    let path = partition_dir.join(LEGACY_PARTITION_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    let mut lines = text.lines();
    (lines.next()? == VERSION).then_some(())?;
    lines.next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, i32, i64)]) -> HashMap<TopicPartition, i64> {
        list.iter().map(|&(t, p, o)| (TopicPartition::new(t, p), o)).collect()
    }

    #[test]
    fn round_trips_in_kafkas_format() {
        let e = entries(&[("orders_raw", 1, 1187), ("orders_raw", 0, 1200), ("__consumer_offsets", 7, 0)]);
        let text = render(&e);
        assert_eq!(text, "0\n3\n__consumer_offsets 7 0\norders_raw 0 1200\norders_raw 1 1187\n");
        assert_eq!(parse(&text), Some(e));
        assert_eq!(parse("0\n0\n"), Some(HashMap::new()));
    }

    #[test]
    fn damaged_text_is_refused_not_half_read() {
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\n2\nt 0 5\n",         // fewer entries than counted
            "0\n1\nt 0 5\nt 1 6\n",  // more entries than counted
            "0\n1\nt x 5\n",
            "0\n1\nt 0 -5\n",
            "0\n1\n 0 5\n",
            "0\nmany\n",
            "0\n1\nt 0 99999999999999999999\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn write_replaces_and_read_returns_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        let e = entries(&[("a", 0, 10), ("b-c.d_e", 3, 42)]);
        write(dir.path(), &e).unwrap();
        assert_eq!(read(dir.path()), e);
        let e2 = entries(&[("a", 0, 11)]);
        write(dir.path(), &e2).unwrap();
        assert_eq!(read(dir.path()), e2);
        assert!(!dir.path().join(format!("{FILE}.tmp")).exists());
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(read(dir.path()).is_empty());
    }

    #[test]
    fn legacy_file_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_PARTITION_FILE), "0\n77\n").unwrap();
        assert_eq!(take_legacy(dir.path()), Some(77));
        assert_eq!(take_legacy(dir.path()), None);
    }
}
