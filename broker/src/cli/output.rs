//! What every `klamm` subcommand prints: an aligned text table for people, or one JSON
//! document for scripts (`--json`), and errors that name the Kafka error code and what to do.

use std::fmt::Write as _;

use klamm_protocol::ErrorCode;
use serde_json::Value;

/// The result of a command: its JSON form and its text form (tables, notes).
pub struct Report {
    pub json: Value,
    pub text: String,
    /// Per-item failures (already part of the report): the command still exits non-zero.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(json: Value, text: String) -> Report {
        Report { json, text, failures: Vec::new() }
    }
}

/// An aligned table: columns as wide as their widest cell, two spaces apart, no trailing blanks.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i + 1 == line.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `[1,2,3]` as `1,2,3` (how Kafka's tools print replica lists).
pub fn ids(list: &[i32]) -> String {
    list.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// `-` for a missing value, as `kafka-consumer-groups.sh` prints it.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// What to do about an error code, for the codes an operator meets with these commands.
fn hint(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION | ErrorCode::UNKNOWN_TOPIC_ID => "list topics with `klamm topics list`",
        ErrorCode::TOPIC_ALREADY_EXISTS => "describe it with `klamm topics describe`, or pick another name",
        ErrorCode::GROUP_ID_NOT_FOUND => "list groups with `klamm groups list`",
        ErrorCode::NON_EMPTY_GROUP => "stop the group's consumers first (see `klamm groups describe`)",
        ErrorCode::INVALID_REPLICATION_FACTOR => "the replication factor cannot exceed the number of live brokers (see `klamm cluster status`)",
        ErrorCode::INVALID_PARTITIONS => "partition counts must be positive and can only grow",
        ErrorCode::INVALID_CONFIG => "check the key and value (see `klamm configs describe`)",
        ErrorCode::INVALID_TOPIC_EXCEPTION => "topic names use [a-zA-Z0-9._-], at most 249 characters",
        ErrorCode::POLICY_VIOLATION => "the cluster's policy refused the change",
        ErrorCode::TOPIC_AUTHORIZATION_FAILED | ErrorCode::GROUP_AUTHORIZATION_FAILED | ErrorCode::CLUSTER_AUTHORIZATION_FAILED => {
            "the principal of --command-config lacks the ACL for this operation"
        }
        ErrorCode::SASL_AUTHENTICATION_FAILED => "check sasl.mechanism and sasl.jaas.config in --command-config",
        ErrorCode::UNSUPPORTED_SASL_MECHANISM => "set sasl.mechanism to one the listener enables",
        ErrorCode::COORDINATOR_NOT_AVAILABLE | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS | ErrorCode::NOT_COORDINATOR => {
            "the group coordinator is starting or moving; retry in a moment"
        }
        ErrorCode::LEADER_NOT_AVAILABLE | ErrorCode::NOT_LEADER_OR_FOLLOWER => "a leader election is under way; retry in a moment",
        ErrorCode::UNSUPPORTED_VERSION => "the broker does not serve this request version",
        ErrorCode::OFFSET_OUT_OF_RANGE => "choose an offset between the partition's earliest and latest",
        ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION | ErrorCode::REBALANCE_IN_PROGRESS => {
            "the group has active members; stop them before committing offsets from here"
        }
        _ => return None,
    })
}

/// `CODE_NAME: what; hint` for a Kafka error code.
pub fn kafka_message(code: i16, what: &str, detail: Option<&str>) -> String {
    let code = ErrorCode(code);
    let mut text = format!("{}: {what}", code.name());
    if let Some(detail) = detail.filter(|d| !d.is_empty()) {
        let _ = write!(text, " ({detail})");
    }
    if let Some(hint) = hint(code) {
        let _ = write!(text, "; {hint}");
    }
    text
}

/// [`kafka_message`] as an error.
pub fn kafka_error(code: i16, what: &str, detail: Option<&str>) -> anyhow::Error {
    anyhow::anyhow!(kafka_message(code, what, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_trailing_blanks() {
        let mut t = Table::new(&["TOPIC", "PARTITION", "LEADER"]);
        t.row(vec!["orders".into(), "0".into(), "1".into()]);
        t.row(vec!["a".into(), "12".into(), "".into()]);
        assert_eq!(t.render(), "TOPIC   PARTITION  LEADER\norders  0          1\na       12\n");
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let mut t = Table::new(&["K", "V"]);
        t.row(vec!["é".into(), "x".into()]);
        assert_eq!(t.render(), "K  V\né  x\n");
    }

    #[test]
    fn errors_name_the_code_and_a_hint() {
        let m = kafka_message(3, "topic 'x' does not exist", None);
        assert_eq!(m, "UNKNOWN_TOPIC_OR_PARTITION: topic 'x' does not exist; list topics with `klamm topics list`");
        let m = kafka_message(-1, "boom", Some("detail"));
        assert_eq!(m, "UNKNOWN_SERVER_ERROR: boom (detail)");
    }
}
