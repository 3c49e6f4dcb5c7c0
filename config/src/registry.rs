//! Security of the schema registry listener (`klamm.schema.registry.*`): whether it serves
//! TLS, with which `ssl.*` settings, and whether it asks for HTTP basic auth.
//!
//! - `klamm.schema.registry.listener` is `host:port` or `http://host:port` (plain HTTP) or
//!   `https://host:port` (TLS). With `https://` the TLS settings are the broker's `ssl.*`
//!   keys, each overridable as `klamm.schema.registry.ssl.<key>` (the way
//!   `listener.name.<l>.ssl.<key>` overrides them for a Kafka listener), so the registry
//!   and the Kafka listeners share one keystore unless told otherwise.
//! - `klamm.schema.registry.authentication`: `auto` (default) asks for basic auth when any
//!   Kafka listener is SASL_PLAINTEXT or SASL_SSL, i.e. when the broker requires
//!   authentication; `basic` always; `none` never.

use std::collections::BTreeMap;

use crate::security::{listener_keys_ssl, ssl_settings_with_prefix, ListenerSecurity, SslSettings};
use crate::types::SecurityProtocol;
use crate::ConfigError;

/// Prefix of the registry's own overrides of `ssl.*` keys.
pub(crate) const SSL_PREFIX: &str = "klamm.schema.registry.";

/// How the registry listener is secured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrySecurity {
    /// TLS settings when the listener is `https://`.
    pub ssl: Option<SslSettings>,
    /// Whether requests need HTTP basic auth (resolved from `klamm.schema.registry.authentication`).
    pub basic_auth: bool,
}

/// `klamm.schema.registry.listener` split into its address and whether it is `https://`.
/// A value without a scheme is plain HTTP.
pub(crate) fn split_scheme(value: &str) -> Result<(&str, bool), String> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix("https://") {
        return Ok((rest, true));
    }
    if let Some(rest) = value.strip_prefix("http://") {
        return Ok((rest, false));
    }
    if let Some((scheme, _)) = value.split_once("://") {
        return Err(format!("{value:?}: scheme {scheme:?} is not http or https"));
    }
    Ok((value, false))
}

/// True for `klamm.schema.registry.ssl.<key>` where `ssl.<key>` is one Klamm acts on.
pub(crate) fn is_registry_ssl_key(key: &str) -> bool {
    key.strip_prefix(SSL_PREFIX).is_some_and(|suffix| listener_keys_ssl().any(|k| k == suffix))
}

/// Resolves the registry's security from the merged properties and the Kafka listeners'.
pub(crate) fn registry_security(
    map: &BTreeMap<String, String>,
    https: bool,
    authentication: &str,
    listeners: &BTreeMap<String, ListenerSecurity>,
) -> Result<RegistrySecurity, ConfigError> {
    let ssl = if https { Some(ssl_settings_with_prefix(map, SSL_PREFIX, "klamm.schema.registry.listener")?) } else { None };
    let sasl_listener = listeners.values().any(|l| matches!(l.protocol, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl));
    let basic_auth = match authentication.trim().to_ascii_lowercase().as_str() {
        "auto" | "" => sasl_listener,
        "basic" => true,
        "none" => false,
        other => {
            return Err(ConfigError::Inconsistent(format!(
                "klamm.schema.registry.authentication: {other:?} is not one of auto, basic, none"
            )))
        }
    };
    Ok(RegistrySecurity { ssl, basic_auth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{ClientAuth, Keystore};

    use crate::test_properties as map;

    #[test]
    fn schemes() {
        assert_eq!(split_scheme("127.0.0.1:8081"), Ok(("127.0.0.1:8081", false)));
        assert_eq!(split_scheme("http://h:1"), Ok(("h:1", false)));
        assert_eq!(split_scheme("https://h:1"), Ok(("h:1", true)));
        assert!(split_scheme("ftp://h:1").is_err());
    }

    #[test]
    fn registry_ssl_keys_override_the_brokers() {
        let m = map(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/broker.pem"),
            ("klamm.schema.registry.ssl.keystore.location", "/registry.pem"),
        ]);
        let s = registry_security(&m, true, "auto", &BTreeMap::new()).unwrap();
        let ssl = s.ssl.unwrap();
        assert_eq!(ssl.keystore, Keystore::File("/registry.pem".into()));
        assert_eq!(ssl.client_auth, ClientAuth::None);
        assert!(!s.basic_auth);
        let m = map(&[("ssl.keystore.type", "PEM"), ("ssl.keystore.location", "/broker.pem")]);
        assert_eq!(registry_security(&m, true, "none", &BTreeMap::new()).unwrap().ssl.unwrap().keystore, Keystore::File("/broker.pem".into()));
        let e = registry_security(&map(&[]), true, "auto", &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("klamm.schema.registry.listener") && e.contains("ssl.keystore"), "{e}");
        assert!(is_registry_ssl_key("klamm.schema.registry.ssl.keystore.location"));
        assert!(!is_registry_ssl_key("klamm.schema.registry.sasl.jaas.config"));
        assert!(!is_registry_ssl_key("klamm.schema.registry.ssl.cipher.suites"));
    }

    #[test]
    fn authentication_follows_the_kafka_listeners() {
        let sasl = ListenerSecurity { protocol: SecurityProtocol::SaslSsl, ssl: None, sasl: None };
        let plain = ListenerSecurity { protocol: SecurityProtocol::Plaintext, ssl: None, sasl: None };
        let with = |l: &ListenerSecurity| [("X".to_string(), l.clone())].into_iter().collect::<BTreeMap<_, _>>();
        assert!(registry_security(&map(&[]), false, "auto", &with(&sasl)).unwrap().basic_auth);
        assert!(!registry_security(&map(&[]), false, "auto", &with(&plain)).unwrap().basic_auth);
        assert!(registry_security(&map(&[]), false, "basic", &with(&plain)).unwrap().basic_auth);
        assert!(!registry_security(&map(&[]), false, "none", &with(&sasl)).unwrap().basic_auth);
        assert!(registry_security(&map(&[]), false, "maybe", &with(&sasl)).is_err());
    }
}
