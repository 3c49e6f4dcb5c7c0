//! Security: who a connection is (authentication) — TLS listeners and client certificates
//! ([`tls`]), SASL PLAIN and SCRAM ([`sasl`], [`scram`]) — and the per-listener settings the
//! connection layer consults before any request reaches a handler.
//!
//! Authentication sits in the connection (`net::connection`), not in the handlers: it changes
//! the connection's state (TLS wraps the socket, a SASL exchange decides which requests may
//! follow), and nothing but ApiVersions and the SASL requests may be dispatched before it
//! succeeds. Handlers see the result as [`RequestContext::principal`](crate::handlers::RequestContext).
//!
//! Authorization ([`authorizer`]: Kafka's StandardAuthorizer rules over the ACLs of the
//! metadata image) is applied by [`checks`], which `handlers::handle` calls around every
//! handler when `authorizer.class.name` is set: request-wide denials are answered there,
//! per-topic ones are taken out of the request and put back into the response as
//! *_AUTHORIZATION_FAILED entries, so handlers need no authorization code of their own.

pub mod authorizer;
pub mod bootstrap;
pub mod checks;
pub mod client;
pub mod sasl;
pub mod scram;
pub mod tls;

use std::sync::Arc;

use anyhow::Context;
use klamm_config::security::SaslSettings;
use klamm_config::{BrokerConfig, SecurityProtocol};

/// The principal of a connection that has not authenticated (PLAINTEXT, or TLS without a
/// client certificate), as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// What one listener needs at run time: its TLS acceptor and SASL settings.
#[derive(Debug, Clone)]
pub struct ListenerSecurity {
    pub protocol: SecurityProtocol,
    pub tls: Option<tls::TlsListener>,
    pub sasl: Option<Arc<SaslSettings>>,
}

impl ListenerSecurity {
    /// A plaintext listener: no TLS, no SASL.
    pub fn plaintext() -> ListenerSecurity {
        ListenerSecurity { protocol: SecurityProtocol::Plaintext, tls: None, sasl: None }
    }

    /// Builds `listener`'s security from the configuration, reading its PEM files; an error
    /// stops start-up with a message naming the listener.
    pub fn for_listener(config: &BrokerConfig, listener: &str) -> anyhow::Result<ListenerSecurity> {
        let Some(settings) = config.listener_security.get(listener) else {
            return Ok(ListenerSecurity::plaintext());
        };
        let tls = match &settings.ssl {
            Some(ssl) => Some(tls::listener_tls(listener, ssl).with_context(|| format!("TLS of listener {listener}"))?),
            None => None,
        };
        Ok(ListenerSecurity { protocol: settings.protocol, tls, sasl: settings.sasl.clone().map(Arc::new) })
    }
}
