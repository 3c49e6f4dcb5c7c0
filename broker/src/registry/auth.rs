//! HTTP basic auth of the schema registry (`klamm.schema.registry.authentication`), against
//! the broker's own users: the SASL/PLAIN users of the listeners' JAAS configs and the SCRAM
//! credentials of the metadata image, so one user list serves Kafka clients and registry
//! clients alike (as Confluent's registry does with its JAAS login modules).
//!
//! - PLAIN users: the password is compared in constant time.
//! - SCRAM users: the stored credential keeps no password, only salt, iterations and
//!   StoredKey = H(HMAC(SaltedPassword, "Client Key")). The password of the request is salted
//!   with the stored salt and iterations (PBKDF2, [`scram::salted_password`]) and its StoredKey
//!   compared in constant time, which is exactly the check a SCRAM exchange makes.
//! - PBKDF2 costs thousands of HMACs by design, and every registry request carries the
//!   header, so a successful check is remembered: per (user, mechanism), an HMAC of the
//!   password under a key drawn at start-up and the StoredKey it matched. A later request
//!   with the same password costs one HMAC; a changed or deleted credential no longer matches
//!   the remembered StoredKey and is checked afresh. No password is stored or logged.
//!
//! Authorization: any authenticated user may read and write the registry (Kafka ACLs are
//! not consulted; `super.users` need nothing more than authentication). This is the rule
//! documented in docs/schema-registry.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Hmac, Mac};
use klamm_config::security::SaslMechanism;
use klamm_config::BrokerConfig;
use klamm_raft::ScramCredential;
use sha2::Sha256;

use crate::security::scram;

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "Klamm Schema Registry";

/// The longest `Authorization` header value looked at (a user name and password fit easily);
/// a longer one is refused without decoding it.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// Successful SCRAM checks remembered at most; the cache is emptied when full.
const MAX_REMEMBERED: usize = 1024;

/// Finds the SCRAM credential of (user, mechanism name).
pub type CredentialLookup = Arc<dyn Fn(&str, &str) -> Option<ScramCredential> + Send + Sync>;

/// Why a request is refused (the message of the 401 body; never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub &'static str);

struct Remembered {
    /// HMAC of the password under `BasicAuth::cache_key`.
    tag: Vec<u8>,
    /// The StoredKey the password matched.
    stored_key: Vec<u8>,
}

/// The basic-auth check of one registry listener.
pub struct BasicAuth {
    plain_users: BTreeMap<String, String>,
    scram: CredentialLookup,
    cache_key: [u8; 32],
    remembered: Mutex<HashMap<(String, SaslMechanism), Remembered>>,
}

impl BasicAuth {
    /// The users of every SASL listener's PLAIN JAAS config, and SCRAM credentials from `scram`.
    pub fn new(config: &BrokerConfig, scram: CredentialLookup) -> BasicAuth {
        let mut plain_users = BTreeMap::new();
        for listener in config.listener_security.values() {
            if let Some(jaas) = listener.sasl.as_ref().and_then(|s| s.jaas_for(SaslMechanism::Plain)) {
                plain_users.extend(jaas.plain_users());
            }
        }
        BasicAuth::with_users(plain_users, scram)
    }

    pub fn with_users(plain_users: BTreeMap<String, String>, scram: CredentialLookup) -> BasicAuth {
        BasicAuth { plain_users, scram, cache_key: rand::random(), remembered: Mutex::new(HashMap::new()) }
    }

    /// The principal (`User:<name>`) of a request's `Authorization` header, or why not.
    pub async fn authenticate(self: &Arc<Self>, headers: &http::HeaderMap) -> Result<String, Denied> {
        let (user, password) = credentials(headers)?;
        let this = self.clone();
        let user_for_check = user.clone();
        // PBKDF2 is CPU-bound: off the async workers.
        let ok = tokio::task::spawn_blocking(move || this.check(&user_for_check, &password)).await.unwrap_or(false);
        if ok {
            Ok(format!("User:{user}"))
        } else {
            Err(Denied("Unauthorized: invalid username or password"))
        }
    }

    /// Whether `password` is `user`'s, as a PLAIN user or by a SCRAM credential.
    pub fn check(&self, user: &str, password: &str) -> bool {
        if let Some(expected) = self.plain_users.get(user) {
            if scram::constant_time_eq(expected.as_bytes(), password.as_bytes()) {
                return true;
            }
        }
        [SaslMechanism::ScramSha512, SaslMechanism::ScramSha256].into_iter().any(|m| self.check_scram(m, user, password))
    }

    fn check_scram(&self, mechanism: SaslMechanism, user: &str, password: &str) -> bool {
        let Some(credential) = (self.scram)(user, mechanism.name()) else {
            return false;
        };
        let tag = self.tag(mechanism, user, password);
        let key = (user.to_string(), mechanism);
        {
            let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = remembered.get(&key) {
                if scram::constant_time_eq(&r.tag, &tag) && r.stored_key == credential.stored_key {
                    return true;
                }
            }
        }
        let Ok(iterations) = u32::try_from(credential.iterations) else {
            return false;
        };
        let salted = scram::salted_password(mechanism, password.as_bytes(), &credential.salt, iterations);
        let derived = scram::credential_from_salted(mechanism, &credential.salt, &salted, credential.iterations);
        if !scram::constant_time_eq(&derived.stored_key, &credential.stored_key) {
            return false;
        }
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(key, Remembered { tag, stored_key: credential.stored_key });
        true
    }

    fn tag(&self, mechanism: SaslMechanism, user: &str, password: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key).expect("HMAC takes keys of any length");
        // Lengths first, so no two (user, password) pairs feed the same bytes.
        for part in [mechanism.name().as_bytes(), user.as_bytes(), password.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
}

/// The user and password of an `Authorization: Basic base64(user:password)` header (RFC 7617).
pub fn credentials(headers: &http::HeaderMap) -> Result<(String, String), Denied> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denied("Unauthorized: basic authentication credentials are required"));
    };
    if values.next().is_some() {
        return Err(Denied("Unauthorized: more than one Authorization header"));
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Denied("Unauthorized: the Authorization header is too long"));
    }
    let malformed = Denied("Unauthorized: malformed basic authentication credentials");
    let text = value.to_str().map_err(|_| malformed.clone())?.trim();
    let (scheme, encoded) = text.split_once(' ').ok_or_else(|| malformed.clone())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Denied("Unauthorized: only the Basic authentication scheme is supported"));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed.clone())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed.clone())?;
    let (user, password) = decoded.split_once(':').ok_or_else(|| malformed.clone())?;
    if user.is_empty() {
        return Err(malformed);
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_password: &str) -> http::HeaderMap {
        header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password)))
    }

    fn auth(scram_users: Vec<(&str, SaslMechanism, &str)>) -> Arc<BasicAuth> {
        let creds: HashMap<(String, String), ScramCredential> = scram_users
            .into_iter()
            .map(|(u, m, p)| ((u.to_string(), m.name().to_string()), scram::credential_from_password(m, p, scram::MIN_ITERATIONS)))
            .collect();
        let lookup: CredentialLookup = Arc::new(move |u: &str, m: &str| creds.get(&(u.to_string(), m.to_string())).cloned());
        Arc::new(BasicAuth::with_users([("alice".to_string(), "alice-pw".to_string())].into_iter().collect(), lookup))
    }

    #[tokio::test]
    async fn plain_and_scram_users_authenticate() {
        let a = auth(vec![("carol", SaslMechanism::ScramSha512, "carol-pw"), ("dave", SaslMechanism::ScramSha256, "dave:pw")]);
        assert_eq!(a.authenticate(&basic("alice:alice-pw")).await, Ok("User:alice".into()));
        assert_eq!(a.authenticate(&basic("carol:carol-pw")).await, Ok("User:carol".into()));
        // Twice: the second check is answered from the remembered verification.
        assert_eq!(a.authenticate(&basic("carol:carol-pw")).await, Ok("User:carol".into()));
        // A password may contain ':' (only the first one separates).
        assert_eq!(a.authenticate(&basic("dave:dave:pw")).await, Ok("User:dave".into()));
        for bad in ["alice:wrong", "carol:wrong", "carol:", "nobody:alice-pw", "dave:dave"] {
            assert!(a.authenticate(&basic(bad)).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn a_changed_credential_is_checked_afresh() {
        let current = Arc::new(Mutex::new(scram::credential_from_password(SaslMechanism::ScramSha512, "old", scram::MIN_ITERATIONS)));
        let c = current.clone();
        let lookup: CredentialLookup = Arc::new(move |u: &str, m: &str| (u == "erin" && m == "SCRAM-SHA-512").then(|| c.lock().unwrap().clone()));
        let a = BasicAuth::with_users(BTreeMap::new(), lookup);
        assert!(a.check("erin", "old"));
        *current.lock().unwrap() = scram::credential_from_password(SaslMechanism::ScramSha512, "new", scram::MIN_ITERATIONS);
        assert!(!a.check("erin", "old"), "the remembered check must not outlive the credential");
        assert!(a.check("erin", "new"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert!(credentials(&http::HeaderMap::new()).unwrap_err().0.contains("required"));
        for bad in ["Basic", "Basic !!!", "Bearer abc", "Basic Og==", "Basic bm9jb2xvbg==", "Basic //79"] {
            assert!(credentials(&header(bad)).is_err(), "{bad}");
        }
        let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_BYTES));
        assert!(credentials(&header(&long)).unwrap_err().0.contains("too long"));
        let mut two = basic("a:b");
        two.append(http::header::AUTHORIZATION, http::HeaderValue::from_static("Basic YTpi"));
        assert!(credentials(&two).is_err());
        assert_eq!(credentials(&header("basic YTpi")), Ok(("a".into(), "b".into())));
    }
}
