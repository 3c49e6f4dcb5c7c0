//! TLS listeners: the rustls server context built from a listener's PEM keystore and
//! truststore (`ssl.*`), and the principal of a client certificate (`User:<subject DN>`,
//! mapped by `ssl.principal.mapping.rules`).
//!
//! rustls (ring provider) does the TLS; PEM sections are parsed by rustls-pki-types and the
//! subject DN by x509-parser. Nothing here is hand-written cryptography.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use klamm_config::security::{Case, ClientAuth, Keystore, PemSource, PrincipalRule, SslSettings, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The TLS side of one listener: the acceptor and how a client certificate becomes a principal.
#[derive(Clone)]
pub struct TlsListener {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub principal_rules: Arc<PrincipalMapper>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsListener")
    }
}

/// Reads a PEM source: a file's contents or the inline text.
pub(crate) fn read_pem(source: &PemSource, what: &str) -> anyhow::Result<Vec<u8>> {
    match source {
        PemSource::File(path) => std::fs::read(path).with_context(|| format!("read {what} {path}")),
        PemSource::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

pub(crate) fn certificates(pem: &[u8], what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{what}: bad PEM certificate: {e:?}"))?;
    if certs.is_empty() {
        bail!("{what}: no PEM certificate found");
    }
    Ok(certs)
}

pub(crate) fn private_key(pem: &[u8], what: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    // An encrypted PKCS#8 key needs PBES2 decryption, which no crate of the rustls family
    // offers; refuse it plainly rather than fail with "no key found".
    if std::str::from_utf8(pem).is_ok_and(|t| t.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
        bail!("{what}: encrypted private keys (ssl.key.password) are not supported; store the key unencrypted (openssl pkcs8 -nocrypt) and protect the file instead");
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| anyhow!("{what}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e:?}"))
}

/// Builds the TLS acceptor of `listener` from its settings; every file is read here, at
/// start-up, so a missing or malformed file stops the broker with a message naming it.
pub fn listener_tls(listener: &str, ssl: &SslSettings) -> anyhow::Result<TlsListener> {
    let what = format!("listener {listener}");
    let (certs, key) = match &ssl.keystore {
        Keystore::File(path) => {
            let pem = read_pem(&PemSource::File(path.clone()), "ssl.keystore.location")?;
            (certificates(&pem, &format!("{what} ssl.keystore.location {path}"))?, private_key(&pem, &format!("{what} ssl.keystore.location {path}"))?)
        }
        Keystore::Inline { key, chain } => (
            certificates(chain.as_bytes(), &format!("{what} ssl.keystore.certificate.chain"))?,
            private_key(key.as_bytes(), &format!("{what} ssl.keystore.key"))?,
        ),
    };
    // ring keeps the build free of aws-lc's C/CMake toolchain; rustls 0.23.48 marks its
    // provider deprecated only because ring lacks post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = ssl
        .enabled_protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .with_context(|| format!("{what}: ssl.enabled.protocols"))?;
    let builder = match (&ssl.truststore, ssl.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(trust), auth) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(&read_pem(trust, "ssl.truststore")?, &format!("{what} truststore"))? {
                roots.add(cert).with_context(|| format!("{what}: truststore certificate"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().with_context(|| format!("{what}: client certificate verifier"))?)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .with_context(|| format!("{what}: the private key does not match the certificate, or is unusable"))?;
    Ok(TlsListener {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        principal_rules: Arc::new(PrincipalMapper::new(&ssl.principal_mapping_rules).with_context(|| format!("{what}: ssl.principal.mapping.rules"))?),
    })
}

/// The subject of a DER certificate in RFC 2253 form, as Java's `X500Principal.getName()`
/// gives it to Kafka: RDNs in reverse order, `,` between them, `+` inside multi-valued RDNs,
/// special characters escaped with `\`.
pub fn subject_dn(der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("client certificate does not parse: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.9" => "STREET".to_string(),
                "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                _ => oid,
            };
            let value = attr.as_str().map_err(|e| anyhow!("subject attribute {key} is not a string: {e}"))?;
            parts.push(format!("{key}={}", escape_dn_value(value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `ssl.principal.mapping.rules`, compiled: the first rule whose pattern matches the whole DN
/// gives the principal name (Kafka's `SslPrincipalMapper`); no matching rule fails the login.
#[derive(Debug)]
pub struct PrincipalMapper {
    rules: Vec<CompiledRule>,
}

#[derive(Debug)]
enum CompiledRule {
    Default,
    Rule { pattern: regex::Regex, replacement: String, case: Option<Case> },
}

impl PrincipalMapper {
    pub fn new(rules: &[PrincipalRule]) -> anyhow::Result<PrincipalMapper> {
        let mut compiled = Vec::new();
        for rule in rules {
            compiled.push(match rule {
                PrincipalRule::Default => CompiledRule::Default,
                PrincipalRule::Rule { pattern, replacement, case } => CompiledRule::Rule {
                    // Java's Matcher.matches(): the whole DN must match.
                    pattern: regex::Regex::new(&format!("^(?:{pattern})$")).with_context(|| format!("pattern {pattern:?}"))?,
                    replacement: java_replacement(replacement),
                    case: *case,
                },
            });
        }
        Ok(PrincipalMapper { rules: compiled })
    }

    /// The principal name of `dn`, or None when no rule matches.
    pub fn map(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                CompiledRule::Default => return Some(dn.to_string()),
                CompiledRule::Rule { pattern, replacement, case } => {
                    if pattern.is_match(dn) {
                        let name = pattern.replace(dn, replacement.as_str()).into_owned();
                        return Some(match case {
                            Some(Case::Lower) => name.to_lowercase(),
                            Some(Case::Upper) => name.to_uppercase(),
                            None => name,
                        });
                    }
                }
            }
        }
        None
    }
}

/// Java writes group references as `$1`; the regex crate would read `$1abc` as a group named
/// `1abc`, so numbered references are braced.
fn java_replacement(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                out.push(d);
                chars.next();
            }
            out.push('}');
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use klamm_config::security::parse_principal_rules;

    #[test]
    fn mapping_rules_follow_kafkas_examples() {
        let m = PrincipalMapper::new(&parse_principal_rules("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L,RULE:^CN=([a-z]+)$/$1x/U,DEFAULT").unwrap()).unwrap();
        assert_eq!(m.map("CN=Duke,OU=ServiceUsers,O=Org").as_deref(), Some("duke@serviceusers"));
        assert_eq!(m.map("CN=abc").as_deref(), Some("ABCX"));
        assert_eq!(m.map("CN=Other,C=US").as_deref(), Some("CN=Other,C=US"));
        let strict = PrincipalMapper::new(&parse_principal_rules("RULE:^CN=(.*)$/$1/").unwrap()).unwrap();
        assert_eq!(strict.map("O=NoCn"), None);
    }

    #[test]
    fn subject_dn_is_rfc2253_ordered_and_escaped() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "US");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params.distinguished_name.push(rcgen::DnType::CommonName, "client-1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_dn(cert.der()).unwrap(), "CN=client-1,O=Acme\\, Inc,C=US");
    }

    #[test]
    fn bad_keystores_are_refused_with_a_message() {
        let settings = |key: &str, chain: &str| SslSettings {
            keystore: Keystore::Inline { key: key.into(), chain: chain.into() },
            key_password: None,
            truststore: None,
            client_auth: ClientAuth::None,
            enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            principal_mapping_rules: vec![PrincipalRule::Default],
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        assert!(listener_tls("SSL", &settings(&key.serialize_pem(), &cert.pem())).is_ok());
        let e = listener_tls("SSL", &settings("", &cert.pem())).unwrap_err().to_string();
        assert!(e.contains("listener SSL ssl.keystore.key"), "{e}");
        let e = listener_tls("SSL", &settings("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", &cert.pem()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("encrypted private keys"), "{e}");
        let other = rcgen::KeyPair::generate().unwrap();
        let e = listener_tls("SSL", &settings(&other.serialize_pem(), &cert.pem())).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }
}
