//! Small typed values used by broker and topic configs, with their Kafka string forms:
//! [`ProcessRole`], [`Listener`], [`QuorumVoter`], [`SecurityProtocol`], [`CompressionType`],
//! [`CleanupPolicy`], [`TimestampType`] and [`SubjectNameStrategy`].
//!
//! Each type has a `parse` returning `Result<_, String>` (the message is wrapped by the caller
//! with the key name) and a `Display` that prints the form Kafka prints.

use std::fmt;

/// A KRaft role from `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessRole {
    /// `broker`: serves clients and hosts partitions.
    Broker,
    /// `controller`: votes in the metadata quorum.
    Controller,
}

impl ProcessRole {
    /// Parses `broker` or `controller` (case-insensitive, trimmed).
    pub fn parse(s: &str) -> Result<ProcessRole, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "broker" => Ok(ProcessRole::Broker),
            "controller" => Ok(ProcessRole::Controller),
            other => Err(format!(
                "unknown role {other:?}, expected broker and/or controller"
            )),
        }
    }
}

impl fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcessRole::Broker => "broker",
            ProcessRole::Controller => "controller",
        })
    }
}

/// One endpoint of `listeners` / `advertised.listeners`: `NAME://host:port`.
///
/// The name is upper-cased (Kafka normalises listener names). An empty host means all
/// interfaces (for `listeners`); IPv6 hosts are written `[::1]` and stored without brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listener {
    /// Listener name, e.g. `PLAINTEXT`, `CONTROLLER`.
    pub name: String,
    /// Host or IP; empty = all interfaces.
    pub host: String,
    /// TCP port; 0 asks the OS for a free port.
    pub port: u16,
}

impl Listener {
    /// Parses `NAME://host:port`, `NAME://[::1]:port` or `NAME://:port`.
    pub fn parse(s: &str) -> Result<Listener, String> {
        let s = s.trim();
        let (name, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not of the form NAME://host:port"))?;
        if name.is_empty() {
            return Err(format!("{s:?} has an empty listener name"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(format!("{s:?} has an invalid listener name {name:?}"));
        }
        let (host, port) = split_host_port(rest).map_err(|m| format!("{s:?}: {m}"))?;
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host,
            port,
        })
    }

    /// `host:port` with IPv6 hosts in brackets, e.g. `127.0.0.1:9092`, `[::1]:9092`, `:9092`.
    pub fn host_port(&self) -> String {
        format!("{}:{}", bracket(&self.host), self.port)
    }

    /// The address to bind: like [`Listener::host_port`] but an empty host (all interfaces)
    /// becomes `0.0.0.0`, so the result parses as a `SocketAddr` when the host is an IP.
    pub fn bind_address(&self) -> String {
        if self.host.is_empty() {
            format!("0.0.0.0:{}", self.port)
        } else {
            self.host_port()
        }
    }

    /// Parses a comma separated list of listeners; duplicated names are rejected.
    pub fn parse_list(s: &str) -> Result<Vec<Listener>, String> {
        let mut out: Vec<Listener> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let l = Listener::parse(item)?;
            if out.iter().any(|o| o.name == l.name) {
                return Err(format!("listener name {} appears more than once", l.name));
            }
            out.push(l);
        }
        Ok(out)
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.name, bracket(&self.host), self.port)
    }
}

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumVoter {
    /// The voter's `node.id`.
    pub id: i32,
    /// Host or IP (IPv6 without brackets).
    pub host: String,
    /// The voter's controller listener port.
    pub port: u16,
}

impl QuorumVoter {
    /// Parses `id@host:port` (IPv6: `id@[::1]:port`).
    pub fn parse(s: &str) -> Result<QuorumVoter, String> {
        let s = s.trim();
        let (id, rest) = s
            .split_once('@')
            .ok_or_else(|| format!("{s:?} is not of the form id@host:port"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: voter id {id:?} is not an integer"))?;
        if id < 0 {
            return Err(format!("{s:?}: voter id must not be negative"));
        }
        let (host, port) = split_host_port(rest).map_err(|m| format!("{s:?}: {m}"))?;
        if host.is_empty() {
            return Err(format!("{s:?}: voter host must not be empty"));
        }
        Ok(QuorumVoter { id, host, port })
    }

    /// `host:port` with IPv6 hosts in brackets, e.g. `[::1]:9093`.
    pub fn host_port(&self) -> String {
        format!("{}:{}", bracket(&self.host), self.port)
    }

    /// Parses a comma separated list; duplicated ids are rejected.
    pub fn parse_list(s: &str) -> Result<Vec<QuorumVoter>, String> {
        let mut out: Vec<QuorumVoter> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let v = QuorumVoter::parse(item)?;
            if out.iter().any(|o| o.id == v.id) {
                return Err(format!("voter id {} appears more than once", v.id));
            }
            out.push(v);
        }
        Ok(out)
    }
}

impl fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.id, bracket(&self.host), self.port)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Splits `host:port` / `[v6]:port` / `:port`.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing ] after IPv6 address".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "missing :port".to_string())?;
        (host, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| "missing :port".to_string())?;
        if host.contains(':') {
            return Err("IPv6 addresses must be written in brackets, e.g. [::1]:9092".into());
        }
        (host, port)
    };
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '%'))
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number between 0 and 65535"))?;
    Ok((host.to_string(), port))
}

/// A security protocol from `listener.security.protocol.map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// `PLAINTEXT`
    Plaintext,
    /// `SSL`
    Ssl,
    /// `SASL_PLAINTEXT`
    SaslPlaintext,
    /// `SASL_SSL`
    SaslSsl,
}

impl SecurityProtocol {
    /// All protocols, in Kafka's id order.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Parses a protocol name (case-insensitive).
    pub fn parse(s: &str) -> Result<SecurityProtocol, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!(
                "unknown security protocol {other:?}, expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )),
        }
    }

    /// Kafka's name.
    pub fn name(&self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's protocol id (used in the metadata log's broker registrations).
    pub fn id(&self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `compression.type` (broker and topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// Keep whatever codec the producer used.
    Producer,
    /// Store uncompressed.
    Uncompressed,
    /// gzip
    Gzip,
    /// snappy
    Snappy,
    /// lz4
    Lz4,
    /// zstd
    Zstd,
}

impl CompressionType {
    pub(crate) const NAMES: &'static [&'static str] =
        &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

    /// Parses Kafka's lowercase name.
    pub fn parse(s: &str) -> Result<CompressionType, String> {
        match s.trim() {
            "producer" => Ok(CompressionType::Producer),
            "uncompressed" => Ok(CompressionType::Uncompressed),
            "gzip" => Ok(CompressionType::Gzip),
            "snappy" => Ok(CompressionType::Snappy),
            "lz4" => Ok(CompressionType::Lz4),
            "zstd" => Ok(CompressionType::Zstd),
            other => Err(format!(
                "unknown compression type {other:?}, expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }

    /// Kafka's name.
    pub fn name(&self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `cleanup.policy` / `log.cleanup.policy`: delete, compact, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CleanupPolicy {
    /// Segments past retention are deleted.
    pub delete: bool,
    /// The log is compacted by key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `delete` (Kafka's default).
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `compact`.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    /// `compact,delete`.
    pub const BOTH: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: true,
    };

    pub(crate) const NAMES: &'static [&'static str] = &["compact", "delete"];

    /// Parses a comma separated list of `delete` / `compact` (at least one).
    pub fn parse(s: &str) -> Result<CleanupPolicy, String> {
        let mut p = CleanupPolicy {
            delete: false,
            compact: false,
        };
        let mut any = false;
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            any = true;
            match item {
                "delete" => p.delete = true,
                "compact" => p.compact = true,
                other => {
                    return Err(format!(
                        "unknown cleanup policy {other:?}, expected delete and/or compact"
                    ))
                }
            }
        }
        if !any {
            return Err("must list delete and/or compact".into());
        }
        Ok(p)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            (false, true) => "delete",
            (false, false) => "",
        })
    }
}

/// `message.timestamp.type` / `log.message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Keep the producer's timestamp.
    CreateTime,
    /// Overwrite with the broker's append time.
    LogAppendTime,
}

impl TimestampType {
    pub(crate) const NAMES: &'static [&'static str] = &["CreateTime", "LogAppendTime"];

    /// Parses `CreateTime` or `LogAppendTime`.
    pub fn parse(s: &str) -> Result<TimestampType, String> {
        match s.trim() {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            other => Err(format!(
                "unknown timestamp type {other:?}, expected CreateTime or LogAppendTime"
            )),
        }
    }
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

/// `confluent.key.subject.name.strategy` / `confluent.value.subject.name.strategy`: how
/// broker-side schema validation derives the registry subject a record's schema id must be
/// registered under. Values are Confluent's serializer class names (the short class name is
/// accepted too, as a convenience).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (Confluent's default).
    TopicName,
    /// The record's fully-qualified name; the broker checks only that the id is known.
    RecordName,
    /// `<topic>-<record name>`; the broker checks only that the id is known.
    TopicRecordName,
}

impl SubjectNameStrategy {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "io.confluent.kafka.serializers.subject.TopicNameStrategy",
        "io.confluent.kafka.serializers.subject.RecordNameStrategy",
        "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
        "TopicNameStrategy",
        "RecordNameStrategy",
        "TopicRecordNameStrategy",
    ];

    /// Parses a strategy class name (full or short).
    pub fn parse(s: &str) -> Result<SubjectNameStrategy, String> {
        let s = s.trim();
        let short = s.strip_prefix("io.confluent.kafka.serializers.subject.").unwrap_or(s);
        match short {
            "TopicNameStrategy" => Ok(SubjectNameStrategy::TopicName),
            "RecordNameStrategy" => Ok(SubjectNameStrategy::RecordName),
            "TopicRecordNameStrategy" => Ok(SubjectNameStrategy::TopicRecordName),
            other => Err(format!(
                "unknown subject name strategy {other:?}, expected TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"
            )),
        }
    }
}

impl fmt::Display for SubjectNameStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubjectNameStrategy::TopicName => "io.confluent.kafka.serializers.subject.TopicNameStrategy",
            SubjectNameStrategy::RecordName => "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            SubjectNameStrategy::TopicRecordName => {
                "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners() {
        let l =
            Listener::parse_list("PLAINTEXT://127.0.0.1:9092,controller://127.0.0.1:9093").unwrap();
        assert_eq!(
            l,
            vec![
                Listener {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092
                },
                Listener {
                    name: "CONTROLLER".into(),
                    host: "127.0.0.1".into(),
                    port: 9093
                },
            ]
        );
        let v6 = Listener::parse("PLAINTEXT://[::1]:9092").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "PLAINTEXT://[::1]:9092");
        assert_eq!(v6.host_port(), "[::1]:9092");
        assert_eq!(v6.bind_address(), "[::1]:9092");
        let any = Listener::parse("PLAINTEXT://:9092").unwrap();
        assert_eq!(any.bind_address(), "0.0.0.0:9092");
        assert_eq!(any.host_port(), ":9092");
        assert_eq!(any.host, "");
        assert_eq!(any.port, 9092);
        assert_eq!(Listener::parse("X://host.example.com:0").unwrap().port, 0);
    }

    #[test]
    fn listener_errors() {
        assert!(Listener::parse("127.0.0.1:9092")
            .unwrap_err()
            .contains("NAME://host:port"));
        assert!(Listener::parse("://h:1")
            .unwrap_err()
            .contains("empty listener name"));
        assert!(Listener::parse("P://h")
            .unwrap_err()
            .contains("missing :port"));
        assert!(Listener::parse("P://h:99999").unwrap_err().contains("port"));
        assert!(Listener::parse("P://::1:9092")
            .unwrap_err()
            .contains("brackets"));
        assert!(Listener::parse("P://[::1:9092").unwrap_err().contains("]"));
        assert!(Listener::parse("P://h/x:1")
            .unwrap_err()
            .contains("invalid host"));
        assert!(Listener::parse_list("A://:1,a://:2")
            .unwrap_err()
            .contains("more than once"));
    }

    #[test]
    fn voters() {
        let v = QuorumVoter::parse_list("1@127.0.0.1:9093, 2@[::1]:9094").unwrap();
        assert_eq!(v[0].id, 1);
        assert_eq!(v[1].host, "::1");
        assert_eq!(v[1].to_string(), "2@[::1]:9094");
        assert_eq!(v[1].host_port(), "[::1]:9094");
        assert_eq!(v[0].host_port(), "127.0.0.1:9093");
        assert!(QuorumVoter::parse("x@h:1")
            .unwrap_err()
            .contains("not an integer"));
        assert!(QuorumVoter::parse("h:1")
            .unwrap_err()
            .contains("id@host:port"));
        assert!(QuorumVoter::parse("1@:1").unwrap_err().contains("empty"));
        assert!(QuorumVoter::parse("-1@h:1")
            .unwrap_err()
            .contains("negative"));
        assert!(QuorumVoter::parse_list("1@a:1,1@b:2")
            .unwrap_err()
            .contains("more than once"));
    }

    #[test]
    fn enums_round_trip() {
        for p in SecurityProtocol::ALL {
            assert_eq!(SecurityProtocol::parse(p.name()), Ok(p));
        }
        assert!(SecurityProtocol::parse("TLS").is_err());
        for n in CompressionType::NAMES {
            assert_eq!(CompressionType::parse(n).unwrap().name(), *n);
        }
        assert!(CompressionType::parse("brotli").is_err());
        assert_eq!(
            CleanupPolicy::parse("delete,compact"),
            Ok(CleanupPolicy::BOTH)
        );
        assert_eq!(CleanupPolicy::BOTH.to_string(), "compact,delete");
        assert!(CleanupPolicy::parse("").is_err());
        assert!(CleanupPolicy::parse("remove").is_err());
        assert_eq!(
            TimestampType::parse("LogAppendTime"),
            Ok(TimestampType::LogAppendTime)
        );
        assert!(TimestampType::parse("createtime").is_err());
        assert_eq!(ProcessRole::parse(" Broker "), Ok(ProcessRole::Broker));
        assert!(ProcessRole::parse("voter").is_err());
    }
}
