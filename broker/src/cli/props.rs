//! `--command-config FILE`: Kafka client properties as Kafka's own tools take them, turned
//! into the connection security the broker uses for its own outgoing connections
//! ([`ClientSecurity`]). Unknown or irrelevant keys are reported and ignored.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use klamm_broker::security::client::{tls_client_config, ClientSecurity, SaslLogin};
use klamm_config::security::{JaasConfig, Keystore, PemSource, SaslMechanism, Truststore};

/// The client settings read from a command config.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientProperties {
    pub security_protocol: String,
    pub sasl_mechanism: Option<SaslMechanism>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub truststore: Option<Truststore>,
    pub keystore: Option<Keystore>,
    /// `ssl.key.password`: the password of an encrypted PEM key.
    pub key_password: Option<String>,
    pub client_id: Option<String>,
    /// Keys read but not understood, for a warning.
    pub ignored: Vec<String>,
}

/// Keys of a Java client config that change nothing for these short-lived admin
/// connections (timeouts and tuning the CLI sets itself), accepted silently.
const HARMLESS: &[&str] = &[
    "request.timeout.ms",
    "default.api.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "connections.max.idle.ms",
    "ssl.endpoint.identification.algorithm",
    "ssl.enabled.protocols",
    "ssl.protocol",
];

impl ClientProperties {
    pub fn load(path: &Path) -> anyhow::Result<ClientProperties> {
        let bytes = std::fs::read(path).with_context(|| format!("read --command-config {}", path.display()))?;
        let text = klamm_config::properties::decode(&bytes);
        let map = klamm_config::properties::parse(&text, path).map_err(|e| anyhow!("{e}"))?;
        ClientProperties::from_map(&map).with_context(|| format!("--command-config {}", path.display()))
    }

    pub fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<ClientProperties> {
        let mut p = ClientProperties { security_protocol: "PLAINTEXT".into(), ..Default::default() };
        let mut jaas = None;
        let mut keystore_location = None;
        let (mut keystore_key, mut keystore_chain) = (None, None);
        let (mut truststore_location, mut truststore_certificates) = (None, None);
        let (mut keystore_type, mut truststore_type) = ("PEM".to_string(), "PEM".to_string());
        let (mut keystore_password, mut truststore_password) = (String::new(), String::new());
        for (key, value) in map {
            let value = value.trim().to_string();
            match key.as_str() {
                "security.protocol" => {
                    let v = value.to_ascii_uppercase();
                    if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&v.as_str()) {
                        bail!("security.protocol {value:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL");
                    }
                    p.security_protocol = v;
                }
                "sasl.mechanism" => p.sasl_mechanism = Some(SaslMechanism::parse(&value).map_err(|e| anyhow!("sasl.mechanism: {e}"))?),
                "sasl.jaas.config" => jaas = Some(JaasConfig::parse(&value).map_err(|e| anyhow!("sasl.jaas.config: {e}"))?),
                "ssl.truststore.location" => truststore_location = Some(value),
                "ssl.truststore.certificates" => truststore_certificates = Some(value),
                "ssl.truststore.type" | "ssl.keystore.type" => {
                    let v = value.to_ascii_uppercase();
                    if v != "PEM" && v != "PKCS12" {
                        bail!("{key} {value:?}: PEM and PKCS12 stores are supported (convert JKS with keytool -importkeystore -deststoretype PKCS12)");
                    }
                    if key == "ssl.keystore.type" {
                        keystore_type = v;
                    } else {
                        truststore_type = v;
                    }
                }
                "ssl.keystore.location" => keystore_location = Some(value),
                "ssl.keystore.key" => keystore_key = Some(value),
                "ssl.keystore.certificate.chain" => keystore_chain = Some(value),
                "ssl.truststore.password" => truststore_password = value,
                "ssl.keystore.password" => keystore_password = value,
                "ssl.key.password" => p.key_password = Some(value),
                "client.id" => p.client_id = Some(value),
                k if HARMLESS.contains(&k) => {}
                _ => p.ignored.push(key.clone()),
            }
        }
        p.keystore = match (keystore_location, keystore_key, keystore_chain) {
            (Some(path), None, None) if keystore_type == "PKCS12" => Some(Keystore::Pkcs12 { path, password: keystore_password }),
            (Some(path), None, None) => Some(Keystore::File(path)),
            (None, Some(key), Some(chain)) if keystore_type == "PEM" => Some(Keystore::Inline { key, chain }),
            (None, None, None) => None,
            _ => bail!("give either ssl.keystore.location or both ssl.keystore.key and ssl.keystore.certificate.chain (PEM)"),
        };
        p.truststore = match (truststore_location, truststore_certificates) {
            (Some(path), None) if truststore_type == "PKCS12" => Some(Truststore::Pkcs12 { path, password: truststore_password }),
            (Some(path), None) => Some(Truststore::Pem(PemSource::File(path))),
            (None, Some(pem)) if truststore_type == "PEM" => Some(Truststore::Pem(PemSource::Inline(pem))),
            (None, None) => None,
            _ => bail!("give either ssl.truststore.location or ssl.truststore.certificates (PEM)"),
        };
        if p.uses_sasl() {
            let mechanism = *p.sasl_mechanism.get_or_insert(SaslMechanism::Plain);
            let jaas = jaas.ok_or_else(|| anyhow!("security.protocol {} needs sasl.jaas.config with username and password", p.security_protocol))?;
            p.username = jaas.options.get("username").cloned();
            p.password = jaas.options.get("password").cloned();
            if p.username.is_none() || p.password.is_none() {
                bail!("sasl.jaas.config for {} needs username=\"...\" and password=\"...\"", mechanism.name());
            }
        }
        Ok(p)
    }

    fn uses_sasl(&self) -> bool {
        self.security_protocol.starts_with("SASL_")
    }

    fn uses_tls(&self) -> bool {
        self.security_protocol.ends_with("SSL")
    }

    /// The connection security these properties ask for.
    pub fn security(&self) -> anyhow::Result<ClientSecurity> {
        let tls = if self.uses_tls() {
            if self.truststore.is_none() {
                bail!("security.protocol {} needs ssl.truststore.location (a PEM file of the CA certificates to trust)", self.security_protocol);
            }
            let keystore = self.keystore.as_ref().map(|k| (k, self.key_password.as_deref()));
            Some(tls_client_config(self.truststore.as_ref(), keystore, "--command-config")?)
        } else {
            None
        };
        let sasl = match (self.uses_sasl(), self.sasl_mechanism, &self.username, &self.password) {
            (true, Some(mechanism), Some(username), Some(password)) => {
                Some(SaslLogin { mechanism, username: username.clone(), password: password.clone() })
            }
            _ => None,
        };
        Ok(ClientSecurity { tls, sasl })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn sasl_ssl_with_scram() {
        let p = ClientProperties::from_map(&map(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="s3cret";"#),
            ("ssl.truststore.location", "/tmp/ca.pem"),
            ("ssl.truststore.type", "PEM"),
            ("client.id", "ops"),
            ("linger.ms", "5"),
        ]))
        .unwrap();
        assert_eq!(p.security_protocol, "SASL_SSL");
        assert_eq!(p.sasl_mechanism, Some(SaslMechanism::ScramSha512));
        assert_eq!(p.username.as_deref(), Some("admin"));
        assert_eq!(p.password.as_deref(), Some("s3cret"));
        assert_eq!(p.truststore, Some(Truststore::Pem(PemSource::File("/tmp/ca.pem".into()))));
        assert_eq!(p.client_id.as_deref(), Some("ops"));
        assert_eq!(p.ignored, vec!["linger.ms".to_string()]);
    }

    #[test]
    fn plain_is_the_default_mechanism_and_plaintext_needs_nothing() {
        let p = ClientProperties::from_map(&map(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.jaas.config", r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";"#),
        ]))
        .unwrap();
        assert_eq!(p.sasl_mechanism, Some(SaslMechanism::Plain));
        let s = p.security().unwrap();
        assert!(s.tls.is_none() && s.sasl.is_some());
        let p = ClientProperties::from_map(&map(&[])).unwrap();
        assert_eq!(p.security_protocol, "PLAINTEXT");
        assert!(p.security().unwrap().sasl.is_none());
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(ClientProperties::from_map(&map(&[("security.protocol", "KERBEROS")])).is_err());
        assert!(ClientProperties::from_map(&map(&[("security.protocol", "SASL_PLAINTEXT")])).is_err());
        assert!(ClientProperties::from_map(&map(&[("ssl.truststore.type", "JKS")])).is_err());
        assert!(ClientProperties::from_map(&map(&[("ssl.keystore.key", "k")])).is_err());
        let tls_without_trust = ClientProperties::from_map(&map(&[("security.protocol", "SSL")])).unwrap();
        assert!(tls_without_trust.security().is_err());
    }
}
