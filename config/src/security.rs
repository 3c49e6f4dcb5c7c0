//! Per-listener security settings: the `ssl.*` and `sasl.*` keys, each looked up first as
//! `listener.name.<listener>.<key>` (listener name lower-cased, as Kafka does) and then as the
//! plain `<key>`; SASL JAAS configs also as `listener.name.<listener>.<mechanism>.sasl.jaas.config`.
//!
//! This module only parses and validates text: reading PEM files and building TLS contexts is the
//! broker's job (`broker/src/security/`), so the crate still reads no file but the one it loads.
//! What Klamm does not build is refused here with a message naming the listener and the key:
//! JKS keystores and truststores, SASL mechanisms other than PLAIN and SCRAM-SHA-256/512.

use std::collections::BTreeMap;

use crate::types::SecurityProtocol;
use crate::ConfigError;

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `none`: no client certificate is asked for.
    None,
    /// `requested`: a certificate is asked for; a client without one is still served.
    Requested,
    /// `required`: a client without a valid certificate is refused (mTLS).
    Required,
}

/// A TLS protocol version of `ssl.enabled.protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLSv1.2`
    Tls12,
    /// `TLSv1.3`
    Tls13,
}

/// Where a PEM document comes from: a file (`*.location`) or the property's value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file path (`ssl.keystore.location`, `ssl.truststore.location`).
    File(String),
    /// PEM text given inline (`ssl.keystore.key`, `ssl.keystore.certificate.chain`,
    /// `ssl.truststore.certificates`).
    Inline(String),
}

/// The truststore: the CA certificates a peer's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truststore {
    /// `ssl.truststore.type=PEM`: `ssl.truststore.location` or `ssl.truststore.certificates`.
    Pem(PemSource),
    /// `ssl.truststore.type=PKCS12`: every certificate entry of the file at
    /// `ssl.truststore.location`, opened with `ssl.truststore.password`.
    Pkcs12 {
        /// The file's path.
        path: String,
        /// `ssl.truststore.password` (empty when not given).
        password: String,
    },
}

/// The keystore: the private key and certificate chain of the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keystore {
    /// `ssl.keystore.location`: one PEM file holding the key and the chain.
    File(String),
    /// `ssl.keystore.type=PKCS12`: `ssl.keystore.location` is a PKCS#12 file whose first
    /// private-key entry, with its chain, is the listener's; `ssl.keystore.password` opens it.
    Pkcs12 {
        /// The file's path.
        path: String,
        /// `ssl.keystore.password` (empty when not given).
        password: String,
    },
    /// `ssl.keystore.key` + `ssl.keystore.certificate.chain`.
    Inline {
        /// PEM private key (PKCS#8, possibly encrypted).
        key: String,
        /// PEM certificate chain, leaf first.
        chain: String,
    },
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRule {
    /// `DEFAULT`: the subject DN as it is.
    Default,
    /// `RULE:pattern/replacement/[LU]`.
    Rule {
        /// A regular expression matched against the whole DN.
        pattern: String,
        /// The replacement, `$1`-style group references.
        replacement: String,
        /// `L` / `U` suffix: lower- or upper-case the result.
        case: Option<Case>,
    },
}

/// Case conversion of a principal rule's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `/L`
    Lower,
    /// `/U`
    Upper,
}

/// The TLS settings of one listener (SSL or SASL_SSL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    /// The listener's key and certificate chain.
    pub keystore: Keystore,
    /// `ssl.key.password`: the password of an encrypted PKCS#8 key.
    pub key_password: Option<String>,
    /// Trusted CA certificates for client certificates (`ssl.truststore.*`).
    pub truststore: Option<Truststore>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`.
    pub enabled_protocols: Vec<TlsVersion>,
    /// `ssl.principal.mapping.rules`.
    pub principal_mapping_rules: Vec<PrincipalRule>,
}

/// A SASL mechanism Klamm serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    /// Parses a mechanism name; anything Klamm does not serve is refused with a message.
    pub fn parse(name: &str) -> Result<SaslMechanism, String> {
        match name.trim() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            other => Err(format!(
                "SASL mechanism {other:?} is not supported by Klamm (supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
            )),
        }
    }

    /// Kafka's (IANA) name.
    pub fn name(&self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A parsed JAAS configuration entry (`sasl.jaas.config`): the login module and its options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JaasConfig {
    /// The login module class, e.g. `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub login_module: String,
    /// `key="value"` options (`username`, `password`, `user_<name>`).
    pub options: BTreeMap<String, String>,
}

impl JaasConfig {
    /// Parses `<LoginModule> <flag> key="value" ... ;` (Kafka's single-entry form).
    pub fn parse(text: &str) -> Result<JaasConfig, String> {
        let text = text.trim();
        let body = text
            .strip_suffix(';')
            .ok_or("a JAAS config must end with ';'")?
            .trim();
        let mut rest = body;
        let mut word = || -> Option<String> {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (w, r) = rest.split_at(end);
            rest = r;
            (!w.is_empty()).then(|| w.to_string())
        };
        let login_module = word().ok_or("a JAAS config must name a login module")?;
        let flag = word().ok_or("a JAAS config must give a control flag (required)")?;
        if !matches!(flag.as_str(), "required" | "requisite" | "sufficient" | "optional") {
            return Err(format!("unknown JAAS control flag {flag:?}"));
        }
        let mut options = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let eq = rest.find('=').ok_or_else(|| format!("JAAS option without '=' near {rest:?}"))?;
            let key = rest[..eq].trim().to_string();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("bad JAAS option name near {rest:?}"));
            }
            let after = rest[eq + 1..].trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let close = quoted.find('"').ok_or_else(|| format!("unterminated quoted value of JAAS option {key}"))?;
                (quoted[..close].to_string(), &quoted[close + 1..])
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            options.insert(key, value);
            rest = remaining;
        }
        Ok(JaasConfig { login_module, options })
    }

    /// PLAIN's users: every `user_<name>="<password>"` option.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v.clone())))
            .collect()
    }
}

/// The SASL settings of one listener (SASL_PLAINTEXT or SASL_SSL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`.
    pub enabled_mechanisms: Vec<SaslMechanism>,
    /// JAAS config per mechanism: `listener.name.<l>.<mech>.sasl.jaas.config`, else
    /// `listener.name.<l>.sasl.jaas.config`, else `sasl.jaas.config`.
    pub jaas: BTreeMap<SaslMechanism, JaasConfig>,
}

impl SaslSettings {
    /// The JAAS config for a mechanism, if any.
    pub fn jaas_for(&self, mechanism: SaslMechanism) -> Option<&JaasConfig> {
        self.jaas.get(&mechanism)
    }
}

/// Everything about one listener's security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSecurity {
    /// The listener's protocol from `listener.security.protocol.map`.
    pub protocol: SecurityProtocol,
    /// TLS settings (SSL, SASL_SSL).
    pub ssl: Option<SslSettings>,
    /// SASL settings (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: Option<SaslSettings>,
}

/// Keys that may be given per listener (`listener.name.<l>.<key>`) and take effect.
pub(crate) const LISTENER_KEYS: &[&str] = &[
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.principal.mapping.rules",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
];

/// True for `listener.name.<l>.<key>` (or `listener.name.<l>.<mech>.sasl.jaas.config`) where
/// `<key>` is one Klamm acts on.
pub(crate) fn is_effective_listener_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("listener.name.") else {
        return false;
    };
    let Some((_, suffix)) = rest.split_once('.') else {
        return false;
    };
    if LISTENER_KEYS.contains(&suffix) {
        return true;
    }
    suffix
        .split_once('.')
        .is_some_and(|(mech, k)| k == "sasl.jaas.config" && SaslMechanism::parse(&mech.to_ascii_uppercase()).is_ok())
}

/// Reads the keys of one listener from the merged properties.
struct Scoped<'a> {
    map: &'a BTreeMap<String, String>,
    prefix: String,
    listener: &'a str,
}

impl Scoped<'_> {
    /// The per-listener value, else the global one, else `default`; empty strings count as unset.
    fn get(&self, key: &str) -> Option<&str> {
        self.map
            .get(&format!("{}{key}", self.prefix))
            .or_else(|| self.map.get(key))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn err(&self, key: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::Inconsistent(format!("listener {}: {key}: {message}", self.listener))
    }
}

/// Builds the security settings of `listener`; `map` holds the merged properties.
pub(crate) fn listener_security(
    map: &BTreeMap<String, String>,
    listener: &str,
    protocol: SecurityProtocol,
) -> Result<ListenerSecurity, ConfigError> {
    let s = Scoped { map, prefix: format!("listener.name.{}.", listener.to_ascii_lowercase()), listener };
    let ssl = match protocol {
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => Some(ssl_settings(&s)?),
        _ => None,
    };
    let sasl = match protocol {
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => Some(sasl_settings(&s)?),
        _ => None,
    };
    Ok(ListenerSecurity { protocol, ssl, sasl })
}

/// The `ssl.*` settings read as `<prefix>ssl.<key>`, else `ssl.<key>` (the schema registry's
/// `klamm.schema.registry.ssl.*`); errors name `label`.
pub(crate) fn ssl_settings_with_prefix(map: &BTreeMap<String, String>, prefix: &str, label: &str) -> Result<SslSettings, ConfigError> {
    ssl_settings(&Scoped { map, prefix: prefix.to_string(), listener: label })
}

/// The `ssl.*` keys of [`LISTENER_KEYS`].
pub(crate) fn listener_keys_ssl() -> impl Iterator<Item = &'static str> {
    LISTENER_KEYS.iter().copied().filter(|k| k.starts_with("ssl."))
}

fn ssl_settings(s: &Scoped<'_>) -> Result<SslSettings, ConfigError> {
    // Kafka's default store type is JKS, a Java-only format: Klamm reads PEM and PKCS12, so
    // the type must say which.
    let keystore_type = s.get("ssl.keystore.type").unwrap_or("JKS").to_ascii_uppercase();
    let keystore = match keystore_type.as_str() {
        "PEM" => match (s.get("ssl.keystore.location"), s.get("ssl.keystore.key"), s.get("ssl.keystore.certificate.chain")) {
            (Some(path), None, None) => Keystore::File(path.to_string()),
            (None, Some(key), Some(chain)) => Keystore::Inline { key: key.to_string(), chain: chain.to_string() },
            (None, None, None) => {
                return Err(s.err("ssl.keystore.location", "a TLS listener needs ssl.keystore.location or ssl.keystore.key + ssl.keystore.certificate.chain"))
            }
            (Some(_), _, _) => {
                return Err(s.err("ssl.keystore.location", "give either ssl.keystore.location or ssl.keystore.key + ssl.keystore.certificate.chain, not both"))
            }
            _ => return Err(s.err("ssl.keystore.key", "ssl.keystore.key and ssl.keystore.certificate.chain must be given together")),
        },
        "PKCS12" => match (s.get("ssl.keystore.location"), s.get("ssl.keystore.key").or(s.get("ssl.keystore.certificate.chain"))) {
            (Some(path), None) => Keystore::Pkcs12 { path: path.to_string(), password: s.get("ssl.keystore.password").unwrap_or("").to_string() },
            (None, _) => return Err(s.err("ssl.keystore.location", "a PKCS12 keystore needs ssl.keystore.location")),
            (Some(_), Some(_)) => {
                return Err(s.err("ssl.keystore.key", "ssl.keystore.key and ssl.keystore.certificate.chain are PEM keys; with ssl.keystore.type=PKCS12 give ssl.keystore.location only"))
            }
        },
        other => {
            return Err(s.err(
                "ssl.keystore.type",
                format!("{other} keystores are not supported by Klamm; use PKCS12 (keytool -importkeystore -deststoretype PKCS12) or PEM"),
            ))
        }
    };
    let truststore_type = s.get("ssl.truststore.type").unwrap_or("JKS").to_ascii_uppercase();
    let truststore = match (s.get("ssl.truststore.location"), s.get("ssl.truststore.certificates")) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(s.err("ssl.truststore.location", "give either ssl.truststore.location or ssl.truststore.certificates, not both"))
        }
        (location, certificates) => Some(match (truststore_type.as_str(), location, certificates) {
            ("PEM", Some(path), _) => Truststore::Pem(PemSource::File(path.to_string())),
            ("PEM", None, Some(pem)) => Truststore::Pem(PemSource::Inline(pem.to_string())),
            ("PKCS12", Some(path), _) => {
                Truststore::Pkcs12 { path: path.to_string(), password: s.get("ssl.truststore.password").unwrap_or("").to_string() }
            }
            ("PKCS12", None, _) => return Err(s.err("ssl.truststore.certificates", "ssl.truststore.certificates is PEM text; set ssl.truststore.type=PEM")),
            (other, _, _) => {
                return Err(s.err("ssl.truststore.type", format!("{other} truststores are not supported by Klamm; use PKCS12 or PEM")))
            }
        }),
    };
    let client_auth = match s.get("ssl.client.auth").unwrap_or("none").to_ascii_lowercase().as_str() {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        other => return Err(s.err("ssl.client.auth", format!("{other:?} is not one of none, requested, required"))),
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(s.err("ssl.client.auth", "client certificates need a truststore (ssl.truststore.location or ssl.truststore.certificates)"));
    }
    let mut enabled_protocols = Vec::new();
    for p in s.get("ssl.enabled.protocols").unwrap_or("TLSv1.2,TLSv1.3").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = match p {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            other => return Err(s.err("ssl.enabled.protocols", format!("{other} is not supported (TLSv1.2, TLSv1.3)"))),
        };
        if !enabled_protocols.contains(&v) {
            enabled_protocols.push(v);
        }
    }
    if enabled_protocols.is_empty() {
        return Err(s.err("ssl.enabled.protocols", "no protocol enabled"));
    }
    let principal_mapping_rules = parse_principal_rules(s.get("ssl.principal.mapping.rules").unwrap_or("DEFAULT"))
        .map_err(|m| s.err("ssl.principal.mapping.rules", m))?;
    Ok(SslSettings {
        keystore,
        key_password: s.get("ssl.key.password").map(str::to_string),
        truststore,
        client_auth,
        enabled_protocols,
        principal_mapping_rules,
    })
}

fn sasl_settings(s: &Scoped<'_>) -> Result<SaslSettings, ConfigError> {
    let mut enabled_mechanisms = Vec::new();
    for m in s.get("sasl.enabled.mechanisms").unwrap_or("GSSAPI").split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let m = SaslMechanism::parse(m).map_err(|e| s.err("sasl.enabled.mechanisms", e))?;
        if !enabled_mechanisms.contains(&m) {
            enabled_mechanisms.push(m);
        }
    }
    if enabled_mechanisms.is_empty() {
        return Err(s.err("sasl.enabled.mechanisms", "no mechanism enabled"));
    }
    let mut jaas = BTreeMap::new();
    for &m in &enabled_mechanisms {
        let per_mech = format!("{}{}.sasl.jaas.config", s.prefix, m.name().to_ascii_lowercase());
        let text = s.map.get(&per_mech).map(String::as_str).or_else(|| s.get("sasl.jaas.config"));
        if let Some(text) = text {
            let parsed = JaasConfig::parse(text).map_err(|e| s.err("sasl.jaas.config", e))?;
            jaas.insert(m, parsed);
        }
    }
    Ok(SaslSettings { enabled_mechanisms, jaas })
}

/// Parses `ssl.principal.mapping.rules`: comma-separated `DEFAULT` and
/// `RULE:pattern/replacement/[LU]` entries (commas inside a rule's pattern are allowed, so the
/// text is scanned rule by rule rather than split).
pub fn parse_principal_rules(text: &str) -> Result<Vec<PrincipalRule>, String> {
    let mut rules = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("DEFAULT") {
            rules.push(PrincipalRule::Default);
            rest = after.trim_start();
        } else if let Some(after) = rest.strip_prefix("RULE:") {
            let (pattern, after) = after.split_once('/').ok_or("a RULE needs pattern/replacement/")?;
            let (replacement, after) = after.split_once('/').ok_or("a RULE needs pattern/replacement/")?;
            let (case, after) = match after.chars().next() {
                Some('L') => (Some(Case::Lower), &after[1..]),
                Some('U') => (Some(Case::Upper), &after[1..]),
                _ => (None, after),
            };
            rules.push(PrincipalRule::Rule { pattern: pattern.to_string(), replacement: replacement.to_string(), case });
            rest = after.trim_start();
        } else {
            return Err(format!("expected DEFAULT or RULE:pattern/replacement/ at {rest:?}"));
        }
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(format!("expected ',' between rules at {rest:?}")),
        };
    }
    if rules.is_empty() {
        return Err("no rule given".into());
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_properties as map;

    #[test]
    fn per_listener_keys_win_over_global_ones() {
        let m = map(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/global.pem"),
            ("listener.name.external.ssl.keystore.location", "/external.pem"),
        ]);
        let ext = listener_security(&m, "EXTERNAL", SecurityProtocol::Ssl).unwrap();
        assert_eq!(ext.ssl.unwrap().keystore, Keystore::File("/external.pem".into()));
        let other = listener_security(&m, "INTERNAL", SecurityProtocol::Ssl).unwrap();
        assert_eq!(other.ssl.unwrap().keystore, Keystore::File("/global.pem".into()));
    }

    #[test]
    fn jks_and_missing_keystores_are_refused_naming_the_listener() {
        let e = listener_security(&map(&[("ssl.keystore.location", "/k.jks")]), "SSL", SecurityProtocol::Ssl).unwrap_err();
        assert!(e.to_string().contains("listener SSL") && e.to_string().contains("JKS"), "{e}");
        let e = listener_security(&map(&[("ssl.keystore.type", "PEM")]), "SSL", SecurityProtocol::Ssl).unwrap_err();
        assert!(e.to_string().contains("ssl.keystore.location"), "{e}");
        let e = listener_security(
            &map(&[("ssl.keystore.type", "PEM"), ("ssl.keystore.location", "/k"), ("ssl.client.auth", "required")]),
            "SSL",
            SecurityProtocol::Ssl,
        )
        .unwrap_err();
        assert!(e.to_string().contains("truststore"), "{e}");
    }

    #[test]
    fn pkcs12_stores_take_their_passwords() {
        let m = map(&[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", "/k.p12"),
            ("ssl.keystore.password", "ks-secret"),
            ("ssl.truststore.type", "pkcs12"),
            ("ssl.truststore.location", "/t.p12"),
            ("ssl.truststore.password", "ts-secret"),
            ("ssl.client.auth", "required"),
        ]);
        let ssl = listener_security(&m, "SSL", SecurityProtocol::Ssl).unwrap().ssl.unwrap();
        assert_eq!(ssl.keystore, Keystore::Pkcs12 { path: "/k.p12".into(), password: "ks-secret".into() });
        assert_eq!(ssl.truststore, Some(Truststore::Pkcs12 { path: "/t.p12".into(), password: "ts-secret".into() }));
        // Inline PEM text cannot be a PKCS12 store.
        let e = listener_security(
            &map(&[("ssl.keystore.type", "PKCS12"), ("ssl.keystore.location", "/k.p12"), ("ssl.keystore.key", "-----BEGIN")]),
            "SSL",
            SecurityProtocol::Ssl,
        )
        .unwrap_err();
        assert!(e.to_string().contains("PEM"), "{e}");
        let e = listener_security(
            &map(&[("ssl.keystore.type", "PEM"), ("ssl.keystore.location", "/k"), ("ssl.truststore.location", "/t.jks")]),
            "SSL",
            SecurityProtocol::Ssl,
        )
        .unwrap_err();
        assert!(e.to_string().contains("JKS truststores"), "{e}");
    }

    #[test]
    fn sasl_mechanisms_other_than_plain_and_scram_are_refused() {
        let e = listener_security(&map(&[]), "SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext).unwrap_err();
        assert!(e.to_string().contains("GSSAPI"), "{e}");
        let e = listener_security(&map(&[("sasl.enabled.mechanisms", "PLAIN,OAUTHBEARER")]), "X", SecurityProtocol::SaslPlaintext)
            .unwrap_err();
        assert!(e.to_string().contains("OAUTHBEARER"), "{e}");
    }

    #[test]
    fn jaas_per_mechanism_and_users() {
        let m = map(&[
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"a s\" user_admin=\"a s\" user_alice=\"pw\";",
            ),
            ("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"b\" password=\"c\";"),
        ]);
        let s = listener_security(&m, "SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext).unwrap().sasl.unwrap();
        let plain = s.jaas_for(SaslMechanism::Plain).unwrap();
        assert_eq!(plain.options["password"], "a s");
        assert_eq!(plain.plain_users().get("alice").map(String::as_str), Some("pw"));
        assert_eq!(s.jaas_for(SaslMechanism::ScramSha512).unwrap().options["username"], "b");
        assert!(JaasConfig::parse("Module required user=\"x\"").is_err());
        assert!(JaasConfig::parse("Module maybe;").is_err());
        assert!(JaasConfig::parse("Module required user=\"x;").is_err());
    }

    #[test]
    fn principal_rules_parse() {
        let rules = parse_principal_rules("RULE:^CN=(.*?),OU=(.*?)$/$1@$2/L, RULE:^cn=([^,]*).*$/$1/,DEFAULT").unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0],
            PrincipalRule::Rule { pattern: "^CN=(.*?),OU=(.*?)$".into(), replacement: "$1@$2".into(), case: Some(Case::Lower) }
        );
        assert_eq!(rules[2], PrincipalRule::Default);
        assert!(parse_principal_rules("RULE:abc").is_err());
        assert!(parse_principal_rules("NOPE").is_err());
    }

    #[test]
    fn effective_listener_keys() {
        assert!(is_effective_listener_key("listener.name.external.ssl.keystore.location"));
        assert!(is_effective_listener_key("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"));
        assert!(!is_effective_listener_key("listener.name.external.ssl.cipher.suites"));
    }
}
