//! Broker properties from the environment, as the Apache Kafka container image
//! reads them, so a docker-compose file written for Kafka moves over unchanged:
//! every variable named `KAFKA_<NAME>` sets one property, where `<NAME>` is
//! lower-cased and runs of underscores are read left to right as `___` → `-`,
//! `__` → `_`, `_` → `.` (`KAFKA_LOG_DIRS` → `log.dirs`,
//! `KAFKA_LISTENER_SECURITY_PROTOCOL_MAP` → `listener.security.protocol.map`,
//! `KAFKA_LISTENER_NAME_INTERNAL_SSL_KEYSTORE_LOCATION` →
//! `listener.name.internal.ssl.keystore.location`).
//!
//! The variables Kafka's start scripts use for the JVM and logging
//! (`KAFKA_HEAP_OPTS`, `KAFKA_OPTS`, ...) are not properties and are skipped, as the
//! container images skip them.
//!
//! Precedence (see [`crate::BrokerConfig::load_layered`]): file < environment <
//! `--override`.

use std::collections::BTreeMap;

/// The prefix of property variables.
pub const ENV_PREFIX: &str = "KAFKA_";

/// Variables with the prefix that configure the start scripts, not the broker.
pub const NOT_PROPERTIES: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HOME",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

/// The property a variable name stands for, or `None` when the variable is not a
/// property (no prefix, a start-script variable, or nothing after the prefix).
pub fn property_name(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix(ENV_PREFIX)?;
    if rest.is_empty() || NOT_PROPERTIES.contains(&variable) {
        return None;
    }
    let mut name = String::with_capacity(rest.len());
    let mut underscores = 0usize;
    let flush = |name: &mut String, mut n: usize| {
        // Longest separator first, as the image's successive replacements do.
        while n >= 3 {
            name.push('-');
            n -= 3;
        }
        if n == 2 {
            name.push('_');
        } else if n == 1 {
            name.push('.');
        }
    };
    for c in rest.chars() {
        if c == '_' {
            underscores += 1;
            continue;
        }
        flush(&mut name, underscores);
        underscores = 0;
        name.extend(c.to_lowercase());
    }
    flush(&mut name, underscores);
    Some(name)
}

/// The properties among `variables` (name, value pairs, e.g. `std::env::vars()`).
pub fn properties_from_env(variables: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    variables.into_iter().filter_map(|(k, v)| property_name(&k).map(|name| (name, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_in_the_kafka_image() {
        assert_eq!(property_name("KAFKA_LOG_DIRS").as_deref(), Some("log.dirs"));
        assert_eq!(property_name("KAFKA_NUM_PARTITIONS").as_deref(), Some("num.partitions"));
        assert_eq!(
            property_name("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").as_deref(),
            Some("listener.security.protocol.map")
        );
        // `__` is an underscore inside a name, `___` a dash.
        assert_eq!(property_name("KAFKA_FOO__BAR").as_deref(), Some("foo_bar"));
        assert_eq!(property_name("KAFKA_FOO___BAR").as_deref(), Some("foo-bar"));
        assert_eq!(property_name("KAFKA_A____B").as_deref(), Some("a-.b"));
        assert_eq!(property_name("KAFKA_A_____B").as_deref(), Some("a-_b"));
        assert_eq!(
            property_name("KAFKA_LISTENER_NAME_SASL__SSL_SCRAM___SHA___512_SASL_JAAS_CONFIG").as_deref(),
            Some("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config")
        );
    }

    #[test]
    fn other_variables_are_not_properties() {
        for v in ["PATH", "KAFKA_", "KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_PORT", "CLUSTER_ID", "kafka_log_dirs"] {
            assert_eq!(property_name(v), None, "{v}");
        }
    }

    #[test]
    fn properties_are_collected() {
        let vars = [
            ("KAFKA_NODE_ID".to_string(), "2".to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("KAFKA_HEAP_OPTS".to_string(), "-Xmx1G".to_string()),
            ("KAFKA_AUTO_CREATE_TOPICS_ENABLE".to_string(), "false".to_string()),
        ];
        let props = properties_from_env(vars);
        assert_eq!(props.len(), 2);
        assert_eq!(props["node.id"], "2");
        assert_eq!(props["auto.create.topics.enable"], "false");
    }
}
