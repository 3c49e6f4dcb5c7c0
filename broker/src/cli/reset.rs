//! The pure part of `klamm groups reset-offsets`: the reset strategies, the `--topic T[:p,p]`
//! scope syntax, the ISO-8601 times of `--to-datetime`, and the new offset of each
//! partition, clamped into the partition's range as `kafka-consumer-groups.sh` does.

use anyhow::{anyhow, bail};

/// Where to move a group's committed offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this time (ms since the epoch).
    Datetime(i64),
    Offset(i64),
    ShiftBy(i64),
}

/// `T` (every partition) or `T:0,2`.
pub fn parse_topic_scope(text: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    match text.split_once(':') {
        None if !text.is_empty() => Ok((text.to_string(), None)),
        Some((topic, parts)) if !topic.is_empty() => {
            let list = parts
                .split(',')
                .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(|| anyhow!("--topic {text}: {p:?} is not a partition number")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((topic.to_string(), Some(list)))
        }
        _ => bail!("--topic {text:?}: expected TOPIC or TOPIC:PARTITION[,PARTITION...]"),
    }
}

/// The new offset of one partition: `current` is the committed offset (if any),
/// `earliest`/`latest` the partition's range, `at_time` the ListOffsets answer for a
/// `Datetime` strategy (`None`: no record that late, so the end). Results outside the range
/// are clamped to it, as Kafka's tool does.
pub fn new_offset(strategy: Strategy, current: Option<i64>, earliest: i64, latest: i64, at_time: Option<i64>) -> i64 {
    let wanted = match strategy {
        Strategy::Earliest => earliest,
        Strategy::Latest => latest,
        Strategy::Datetime(_) => at_time.unwrap_or(latest),
        Strategy::Offset(o) => o,
        // With nothing committed Kafka shifts from the position the consumer would take;
        // the end is the default `auto.offset.reset=latest` of its tool.
        Strategy::ShiftBy(n) => current.unwrap_or(latest).saturating_add(n),
    };
    wanted.clamp(earliest, latest.max(earliest))
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM]` (no zone:
/// UTC; Kafka's tool reads it in the JVM's zone, which containers run as UTC).
pub fn parse_datetime(text: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("--to-datetime {text:?}: expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]");
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-');
    let (year, month, day): (i64, i64, i64) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(y), Some(m), Some(day), None) if y.len() == 4 && m.len() == 2 && day.len() == 2 => {
            (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, day.parse().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    let (time, offset_minutes) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, zone) = rest.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "00"));
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 {
            return Err(bad());
        }
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':');
    let (hour, minute, second): (i64, i64, i64) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(m), s, None) => {
            (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, s.map_or(Ok(0), |s| s.parse()).map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    if fraction.len() > 9 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().map_err(|_| bad())?;
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute - offset_minutes) * 60_000 + second * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_and_clamping() {
        assert_eq!(new_offset(Strategy::Earliest, Some(7), 2, 10, None), 2);
        assert_eq!(new_offset(Strategy::Latest, Some(7), 2, 10, None), 10);
        assert_eq!(new_offset(Strategy::Offset(5), Some(7), 2, 10, None), 5);
        assert_eq!(new_offset(Strategy::Offset(50), Some(7), 2, 10, None), 10);
        assert_eq!(new_offset(Strategy::Offset(0), None, 2, 10, None), 2);
        assert_eq!(new_offset(Strategy::ShiftBy(-3), Some(7), 2, 10, None), 4);
        assert_eq!(new_offset(Strategy::ShiftBy(-30), Some(7), 2, 10, None), 2);
        assert_eq!(new_offset(Strategy::ShiftBy(2), Some(9), 2, 10, None), 10);
        assert_eq!(new_offset(Strategy::ShiftBy(-1), None, 0, 10, None), 9);
        assert_eq!(new_offset(Strategy::Datetime(1), Some(0), 0, 10, Some(4)), 4);
        assert_eq!(new_offset(Strategy::Datetime(1), Some(0), 0, 10, None), 10);
        assert_eq!(new_offset(Strategy::ShiftBy(i64::MAX), Some(5), 0, 10, None), 10);
        // An empty partition whose start moved past its end never yields a reversed range.
        assert_eq!(new_offset(Strategy::Latest, None, 5, 5, None), 5);
    }

    #[test]
    fn topic_scopes() {
        assert_eq!(parse_topic_scope("orders").unwrap(), ("orders".into(), None));
        assert_eq!(parse_topic_scope("orders:0,2").unwrap(), ("orders".into(), Some(vec![0, 2])));
        assert!(parse_topic_scope("orders:x").is_err());
        assert!(parse_topic_scope("orders:-1").is_err());
        assert!(parse_topic_scope(":1").is_err());
        assert!(parse_topic_scope("").is_err());
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:00.5Z").unwrap(), 500);
        assert_eq!(parse_datetime("2024-02-29T12:34:56.789Z").unwrap(), 1_709_210_096_789);
        assert_eq!(parse_datetime("2024-02-29T14:34:56.789+02:00").unwrap(), 1_709_210_096_789);
        assert_eq!(parse_datetime("2024-02-29T07:34:56.789-05:00").unwrap(), 1_709_210_096_789);
        assert_eq!(parse_datetime("2024-02-29T12:34").unwrap(), 1_709_210_040_000);
        assert!(parse_datetime("2023-02-29T00:00:00").is_err());
        assert!(parse_datetime("2024-13-01T00:00:00").is_err());
        assert!(parse_datetime("2024-01-01 00:00:00").is_err());
        assert!(parse_datetime("2024-01-01T25:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }
}
