//! The SASL state of one connection on a SASL listener (KIP-43, KIP-152, KIP-368), sans-IO:
//! the connection feeds it SaslHandshake / SaslAuthenticate requests (or, after a v0
//! handshake, raw tokens) and sends what it returns.
//!
//! Kafka's rules kept here:
//! - before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are allowed
//!   (the connection closes on anything else, as Kafka does);
//! - SaslHandshake names a mechanism; one not enabled gets UNSUPPORTED_SASL_MECHANISM with the
//!   enabled list; a handshake out of turn gets ILLEGAL_SASL_STATE;
//! - handshake v0 means the tokens that follow are raw size-prefixed frames, v1 means they come
//!   in SaslAuthenticate requests;
//! - a failed login is answered SASL_AUTHENTICATION_FAILED with a message (after
//!   `connection.failed.authentication.delay.ms`) and the connection is closed;
//! - with `connections.max.reauth.ms` set, SaslAuthenticate v1+ reports the session lifetime;
//!   the client re-authenticates with a new handshake on the same connection before it ends,
//!   and must keep the same principal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm_config::security::{SaslMechanism, SaslSettings};
use klamm_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
use klamm_protocol::ErrorCode;
use klamm_raft::ScramCredential;

use super::scram::{self, ScramServer};

/// The largest SASL token accepted. Kafka bounds frames before authentication to 512 KiB
/// (`SaslServerAuthenticator.MAX_RECEIVE_SIZE`); PLAIN and SCRAM messages are far smaller.
pub const MAX_TOKEN_BYTES: usize = 512 * 1024;

enum Exchange {
    Plain,
    Scram(Box<ScramServer>),
}

enum State {
    /// Waiting for SaslHandshake (a new connection, or re-authentication).
    Handshake,
    /// A mechanism was chosen; waiting for the client's tokens.
    Authenticating { mechanism: SaslMechanism, exchange: Exchange, raw: bool },
    /// Failed; the connection closes.
    Failed,
}

/// What the connection should do with a SASL request's answer.
pub enum Reply<T> {
    /// Send it and go on.
    Send(T),
    /// Send it after the failed-authentication delay, then close.
    SendAndClose(T),
}

/// One connection's SASL session.
pub struct SaslSession {
    settings: std::sync::Arc<SaslSettings>,
    plain_users: BTreeMap<String, String>,
    reauth_ms: i64,
    state: State,
    /// The authenticated user and when the session expires (None: never).
    user: Option<(String, Option<Instant>)>,
}

impl SaslSession {
    pub fn new(settings: std::sync::Arc<SaslSettings>, reauth_ms: i64) -> SaslSession {
        let plain_users = settings.jaas_for(SaslMechanism::Plain).map(|j| j.plain_users()).unwrap_or_default();
        SaslSession { settings, plain_users, reauth_ms, state: State::Handshake, user: None }
    }

    /// The principal once authenticated (`User:<name>`).
    pub fn principal(&self) -> Option<String> {
        self.user.as_ref().map(|(u, _)| format!("User:{u}"))
    }

    /// True while requests other than ApiVersions / SASL must be refused: not yet
    /// authenticated, or the session expired without re-authentication (KIP-368).
    pub fn blocks_requests(&self, now: Instant) -> bool {
        match &self.user {
            None => true,
            Some((_, Some(expiry))) => now >= *expiry,
            Some((_, None)) => false,
        }
    }

    /// The mechanism of an exchange in progress (None before a handshake, after success or
    /// failure), for the authentication counters of `/metrics`.
    pub fn mechanism_in_progress(&self) -> Option<&'static str> {
        match &self.state {
            State::Authenticating { mechanism, .. } => Some(mechanism.name()),
            _ => None,
        }
    }

    /// True when the next frame is a raw SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Authenticating { raw: true, .. })
    }

    pub fn handshake(&mut self, version: i16, mechanism: &str) -> Reply<SaslHandshakeResponse> {
        let mechanisms: Vec<String> = self.settings.enabled_mechanisms.iter().map(|m| m.name().to_string()).collect();
        let answer = |code: ErrorCode| SaslHandshakeResponse { error_code: code.code(), mechanisms: mechanisms.clone(), ..Default::default() };
        // A handshake is allowed first, and again to re-authenticate (v1+ only, KIP-368).
        let allowed = matches!(self.state, State::Handshake) && (self.user.is_none() || version >= 1);
        if !allowed {
            self.state = State::Failed;
            return Reply::SendAndClose(answer(ErrorCode::ILLEGAL_SASL_STATE));
        }
        let chosen = SaslMechanism::parse(mechanism).ok().filter(|m| self.settings.enabled_mechanisms.contains(m));
        let Some(chosen) = chosen else {
            self.state = State::Failed;
            return Reply::SendAndClose(answer(ErrorCode::UNSUPPORTED_SASL_MECHANISM));
        };
        let exchange = match chosen {
            SaslMechanism::Plain => Exchange::Plain,
            m => Exchange::Scram(Box::new(ScramServer::new(m))),
        };
        self.state = State::Authenticating { mechanism: chosen, exchange, raw: version == 0 };
        Reply::Send(answer(ErrorCode::NONE))
    }

    /// One client token. `credential` looks up a SCRAM credential (user, mechanism name).
    pub fn authenticate(
        &mut self,
        version: i16,
        token: &[u8],
        credential: impl FnOnce(&str, &str) -> Option<ScramCredential>,
    ) -> Reply<SaslAuthenticateResponse> {
        let failed = |message: String| SaslAuthenticateResponse {
            error_code: ErrorCode::SASL_AUTHENTICATION_FAILED.code(),
            error_message: Some(message),
            ..Default::default()
        };
        let State::Authenticating { mechanism, exchange, .. } = &mut self.state else {
            self.state = State::Failed;
            return Reply::SendAndClose(SaslAuthenticateResponse {
                error_code: ErrorCode::ILLEGAL_SASL_STATE.code(),
                error_message: Some("SaslAuthenticate out of turn: no SaslHandshake v1 preceded it".into()),
                ..Default::default()
            });
        };
        let mechanism = *mechanism;
        if token.len() > MAX_TOKEN_BYTES {
            self.state = State::Failed;
            return Reply::SendAndClose(failed(format!("SASL token of {} bytes exceeds the limit of {MAX_TOKEN_BYTES}", token.len())));
        }
        let outcome = match exchange {
            Exchange::Plain => match self.check_plain(token) {
                Ok(user) => scram::Step::Success { user, last: Vec::new() },
                Err(message) => scram::Step::Failed(message),
            },
            Exchange::Scram(server) => server.step(token, |user| credential(user, mechanism.name())),
        };
        match outcome {
            scram::Step::Challenge(bytes) => Reply::Send(SaslAuthenticateResponse { auth_bytes: Bytes::from(bytes), ..Default::default() }),
            scram::Step::Failed(message) => {
                self.state = State::Failed;
                Reply::SendAndClose(failed(message))
            }
            scram::Step::Success { user, last } => {
                // KIP-368: re-authentication must not change who the connection is.
                if let Some((previous, _)) = &self.user {
                    if *previous != user {
                        self.state = State::Failed;
                        return Reply::SendAndClose(failed(format!("Cannot change principals during re-authentication from User:{previous} to User:{user}")));
                    }
                }
                let lifetime = (self.reauth_ms > 0).then(|| Duration::from_millis(self.reauth_ms as u64));
                self.user = Some((user, lifetime.map(|l| Instant::now() + l)));
                self.state = State::Handshake;
                Reply::Send(SaslAuthenticateResponse {
                    auth_bytes: Bytes::from(last),
                    session_lifetime_ms: if version >= 1 { self.reauth_ms } else { 0 },
                    ..Default::default()
                })
            }
        }
    }

    /// RFC 4616: `authzid NUL authcid NUL passwd`; Kafka accepts an authzid only if it equals
    /// the user name.
    fn check_plain(&self, token: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(token).map_err(|_| "Authentication failed: PLAIN message is not UTF-8".to_string())?;
        let parts: Vec<&str> = text.split('\0').collect();
        let [authzid, user, password] = parts[..] else {
            return Err("Authentication failed: invalid SASL/PLAIN response: expected 3 tokens".into());
        };
        if user.is_empty() {
            return Err("Authentication failed: username not specified".into());
        }
        if password.is_empty() {
            return Err("Authentication failed: password not specified".into());
        }
        if !authzid.is_empty() && authzid != user {
            return Err("Authentication failed: Client requested an authorization id that is different from username".into());
        }
        match self.plain_users.get(user) {
            Some(expected) if scram::constant_time_eq(expected.as_bytes(), password.as_bytes()) => Ok(user.to_string()),
            _ => Err("Authentication failed: Invalid username or password".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_config::security::JaasConfig;
    use std::sync::Arc;

    fn session(reauth_ms: i64) -> SaslSession {
        let jaas = JaasConfig::parse("org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-pw\";").unwrap();
        let settings = SaslSettings {
            enabled_mechanisms: vec![SaslMechanism::Plain, SaslMechanism::ScramSha256],
            jaas: [(SaslMechanism::Plain, jaas)].into_iter().collect(),
        };
        SaslSession::new(Arc::new(settings), reauth_ms)
    }

    fn sent<T>(r: Reply<T>) -> T {
        match r {
            Reply::Send(t) => t,
            Reply::SendAndClose(_) => panic!("expected the session to go on"),
        }
    }

    fn closed<T>(r: Reply<T>) -> T {
        match r {
            Reply::SendAndClose(t) => t,
            Reply::Send(_) => panic!("expected the session to close"),
        }
    }

    #[test]
    fn plain_login_and_reauthentication() {
        let mut s = session(60_000);
        assert!(s.blocks_requests(Instant::now()));
        assert_eq!(sent(s.handshake(1, "PLAIN")).error_code, 0);
        let r = sent(s.authenticate(2, b"\0alice\0alice-pw", |_, _| None));
        assert_eq!((r.error_code, r.session_lifetime_ms), (0, 60_000));
        assert_eq!(s.principal().as_deref(), Some("User:alice"));
        assert!(!s.blocks_requests(Instant::now()));
        assert!(s.blocks_requests(Instant::now() + Duration::from_secs(61)), "an expired session blocks requests");
        // Re-authentication as the same user, then as another one.
        assert_eq!(sent(s.handshake(1, "PLAIN")).error_code, 0);
        assert_eq!(sent(s.authenticate(2, b"alice\0alice\0alice-pw", |_, _| None)).error_code, 0);
        assert_eq!(sent(s.handshake(1, "PLAIN")).error_code, 0);
        let r = closed(s.authenticate(2, b"\0bob\0x", |_, _| None));
        assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.code());
    }

    #[test]
    fn failures_get_kafkas_errors() {
        let mut s = session(0);
        let r = closed(s.handshake(1, "GSSAPI"));
        assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_SASL_MECHANISM.code());
        assert_eq!(r.mechanisms, vec!["PLAIN".to_string(), "SCRAM-SHA-256".to_string()]);

        let mut s = session(0);
        assert_eq!(closed(s.authenticate(2, b"x", |_, _| None)).error_code, ErrorCode::ILLEGAL_SASL_STATE.code());

        for bad in [&b"\0alice\0wrong"[..], b"\0nobody\0pw", b"garbage", b"\0\0", b"bob\0alice\0alice-pw", b"\xff\0\xfe\0x"] {
            let mut s = session(0);
            sent(s.handshake(1, "PLAIN"));
            let r = closed(s.authenticate(2, bad, |_, _| None));
            assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.code(), "{bad:?}");
            assert!(r.error_message.is_some());
            assert!(s.principal().is_none());
        }
        let mut s = session(0);
        sent(s.handshake(1, "PLAIN"));
        let r = closed(s.authenticate(2, &vec![b'a'; MAX_TOKEN_BYTES + 1], |_, _| None));
        assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.code());
    }

    #[test]
    fn v0_handshake_switches_to_raw_tokens_and_scram_uses_the_lookup() {
        let mut s = session(0);
        sent(s.handshake(0, "SCRAM-SHA-256"));
        assert!(s.expects_raw_token());
        let credential = scram::credential_from_password(SaslMechanism::ScramSha256, "pw", scram::MIN_ITERATIONS);
        let r = sent(s.authenticate(0, b"n,,n=carol,r=abc", |user, mech| {
            assert_eq!((user, mech), ("carol", "SCRAM-SHA-256"));
            Some(credential.clone())
        }));
        let first = String::from_utf8(r.auth_bytes.to_vec()).unwrap();
        let (last, _) = scram::tests::client_final(SaslMechanism::ScramSha256, "pw", "n=carol,r=abc", &first);
        assert_eq!(sent(s.authenticate(0, last.as_bytes(), |_, _| None)).error_code, 0);
        assert_eq!(s.principal().as_deref(), Some("User:carol"));
        assert!(!s.expects_raw_token());
    }

    proptest::proptest! {
        /// Fuzzes the SASL exchange: any mechanism name and any sequence of client tokens
        /// (including garbage, oversized and out-of-turn ones) gets an answer and never
        /// panics; only a valid login authenticates.
        #[test]
        fn arbitrary_exchanges_never_panic(
            mechanism in proptest::sample::select(vec!["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", ""]),
            version in 0i16..3,
            tokens in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..200), 0..5),
        ) {
            let mut s = session(0);
            let credential = scram::credential_from_password(SaslMechanism::ScramSha256, "pw", scram::MIN_ITERATIONS);
            let _ = s.handshake(version.min(1), mechanism);
            for t in &tokens {
                let _ = s.authenticate(version, t, |_, _| Some(credential.clone()));
            }
            proptest::prop_assert!(s.principal().is_none() || s.principal().as_deref() == Some("User:alice"));
        }
    }
}
