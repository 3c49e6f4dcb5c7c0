//! The crate's one error type, [`ConfigError`].
//!
//! Messages are written for the operator who has to fix the file: they name the key (and, for
//! file syntax errors, `file:line`) and say what was expected. Topic-level validation errors use
//! Kafka's own wording (`Invalid value abc for configuration retention.ms: Not a number of type
//! LONG`) so clients see what a Kafka broker would tell them; the broker maps every
//! [`ConfigError`] raised by topic validation to `INVALID_CONFIG`.

use std::path::PathBuf;

/// Everything that can go wrong while reading, merging or validating configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The properties file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A syntax error in a properties file (`file:line: message`).
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file (or `<input>` for in-memory text).
        path: PathBuf,
        /// 1-based line number where the offending logical line starts.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An `--override` argument that is not `key=value`.
    #[error("invalid override {0:?}: expected key=value")]
    BadOverride(String),
    /// A broker key whose value does not type-check or is out of range,
    /// e.g. `log.segment.bytes: "abc" is not an integer`.
    #[error("{key}: {message}")]
    Value {
        /// The Kafka property name.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A topic-level (or dynamic) value rejected with Kafka's wording:
    /// `Invalid value abc for configuration retention.ms: Not a number of type LONG`.
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        /// The Kafka property name.
        key: String,
        /// The value as given.
        value: String,
        /// Kafka-style reason.
        reason: String,
    },
    /// A key that is not a known topic configuration (maps to `INVALID_CONFIG`).
    #[error("Unknown topic config name: {0}")]
    UnknownTopicKey(String),
    /// A key that is not a known broker configuration.
    #[error("Unknown broker config name: {0}")]
    UnknownBrokerKey(String),
    /// A broker key that cannot be changed without a restart.
    #[error("Cannot update these configs dynamically: {0} is read-only")]
    ReadOnly(String),
    /// Several keys that are each valid but do not fit together.
    #[error("{0}")]
    Inconsistent(String),
}

impl ConfigError {
    pub(crate) fn value(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Value {
            key: key.to_string(),
            message: message.into(),
        }
    }
}
