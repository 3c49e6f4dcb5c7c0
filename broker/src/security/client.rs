//! The client side of a secured inter-broker listener: how this broker connects and logs in
//! to the other brokers (follower fetches, the controller's liveness checks) when
//! `inter.broker.listener.name` names an SSL, SASL_PLAINTEXT or SASL_SSL listener.
//!
//! As in Kafka, the settings are the listener's own: its truststore verifies the other
//! brokers' certificates, its keystore is presented when the listener asks clients for one,
//! and the SASL login uses `sasl.mechanism.inter.broker.protocol` with the `username` /
//! `password` options of the listener's JAAS config for that mechanism.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use klamm_config::security::{ClientAuth, Keystore, SaslMechanism, Truststore};
use klamm_config::BrokerConfig;

use super::tls::{key_and_chain, trusted_certificates};

/// A SASL login: mechanism and credentials.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

/// How to connect to another broker's inter-broker listener.
#[derive(Clone, Default)]
pub struct ClientSecurity {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for ClientSecurity {
    // Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| (s.mechanism, s.username.as_str())))
            .finish()
    }
}

impl ClientSecurity {
    /// The inter-broker listener's client settings (plaintext when it is PLAINTEXT).
    pub fn inter_broker(config: &BrokerConfig) -> anyhow::Result<ClientSecurity> {
        let listener = &config.inter_broker_listener_name;
        let Some(settings) = config.listener_security.get(listener) else {
            return Ok(ClientSecurity::default());
        };
        let what = format!("inter-broker listener {listener}");
        let tls = match &settings.ssl {
            None => None,
            Some(ssl) => {
                if ssl.truststore.is_none() {
                    // A single node never connects to another broker, so this is no error.
                    tracing::warn!(
                        "{what} has no truststore (ssl.truststore.location / ssl.truststore.certificates): \
                         connections to other brokers will fail their TLS handshake"
                    );
                }
                let keystore = (ssl.client_auth != ClientAuth::None).then_some((&ssl.keystore, ssl.key_password.as_deref()));
                Some(tls_client_config(ssl.truststore.as_ref(), keystore, &what)?)
            }
        };
        let sasl = match &settings.sasl {
            None => None,
            Some(sasl) => {
                let mechanism = SaslMechanism::parse(&config.sasl_mechanism_inter_broker_protocol).map_err(|e| anyhow!("sasl.mechanism.inter.broker.protocol: {e}"))?;
                if !sasl.enabled_mechanisms.contains(&mechanism) {
                    bail!("{what}: sasl.mechanism.inter.broker.protocol {} is not in sasl.enabled.mechanisms", mechanism.name());
                }
                let option = |k: &str| sasl.jaas_for(mechanism).and_then(|j| j.options.get(k).cloned());
                match (option("username"), option("password")) {
                    (Some(username), Some(password)) => Some(SaslLogin { mechanism, username, password }),
                    _ => {
                        tracing::warn!(
                            "{what}: the {} JAAS config has no username=\"...\" password=\"...\" for this broker's own login: \
                             connections to other brokers will fail to authenticate",
                            mechanism.name()
                        );
                        None
                    }
                }
            }
        };
        Ok(ClientSecurity { tls, sasl })
    }
}

/// A TLS client configuration trusting the certificates of `truststore` (none trusted when
/// absent) and presenting `keystore` (key and chain) when given, for mTLS. Shared by the
/// inter-broker connections and the admin CLI's `--command-config`.
pub fn tls_client_config(
    truststore: Option<&Truststore>,
    keystore: Option<(&Keystore, Option<&str>)>,
    what: &str,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(trust) = truststore {
        for cert in trusted_certificates(trust, what)? {
            roots.add(cert).with_context(|| format!("{what}: truststore certificate"))?;
        }
    }
    #[allow(deprecated)] // ring: see tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots);
    let config = match keystore {
        None => builder.with_no_client_auth(),
        Some((keystore, key_password)) => {
            let (chain, key) = key_and_chain(keystore, key_password, what)?;
            builder
                .with_client_auth_cert(chain, key)
                .with_context(|| format!("{what}: client certificate"))?
        }
    };
    Ok(Arc::new(config))
}
