//! TLS listeners: the rustls server context built from a listener's PEM keystore and
//! truststore (`ssl.*`), and the principal of a client certificate (`User:<subject DN>`,
//! mapped by `ssl.principal.mapping.rules`).
//!
//! rustls (ring provider) does the TLS; PEM sections are parsed by rustls-pki-types and the
//! subject DN by x509-parser. Nothing here is hand-written cryptography.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use klamm_config::security::{Case, ClientAuth, Keystore, PemSource, PrincipalRule, SslSettings, TlsVersion, Truststore};
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

/// The private key of a PEM text: PKCS#8, PKCS#1 or SEC1, or an encrypted PKCS#8 key
/// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2) opened with `password` (`ssl.key.password`).
pub(crate) fn private_key(pem: &[u8], password: Option<&str>, what: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    let text = std::str::from_utf8(pem).unwrap_or("");
    if let Some(start) = text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else {
            bail!("{what}: the private key is encrypted; give its password as ssl.key.password");
        };
        let end_marker = "-----END ENCRYPTED PRIVATE KEY-----";
        let end = text[start..].find(end_marker).map(|e| start + e + end_marker.len()).ok_or_else(|| anyhow!("{what}: unterminated ENCRYPTED PRIVATE KEY"))?;
        let (label, doc) = pkcs8::SecretDocument::from_pem(&text[start..end]).map_err(|e| anyhow!("{what}: bad ENCRYPTED PRIVATE KEY: {e}"))?;
        debug_assert_eq!(label, "ENCRYPTED PRIVATE KEY");
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| anyhow!("{what}: bad ENCRYPTED PRIVATE KEY: {e}"))?;
        let plain = encrypted
            .decrypt(password)
            .map_err(|e| anyhow!("{what}: cannot decrypt the private key with ssl.key.password (wrong password or unsupported cipher): {e}"))?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| anyhow!("{what}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e:?}"))
}

/// Opens a PKCS#12 file.
fn pkcs12(path: &str, password: &str, what: &str) -> anyhow::Result<p12_keystore::KeyStore> {
    let data = std::fs::read(path).with_context(|| format!("read {what} {path}"))?;
    p12_keystore::KeyStore::from_pkcs12(&data, password)
        .map_err(|e| anyhow!("{what} {path}: cannot open the PKCS12 store (wrong password or damaged file): {e}"))
}

/// The certificate chain (leaf first) and private key of a keystore.
pub(crate) fn key_and_chain(
    keystore: &Keystore,
    key_password: Option<&str>,
    what: &str,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    match keystore {
        Keystore::File(path) => {
            let pem = read_pem(&PemSource::File(path.clone()), "ssl.keystore.location")?;
            let what = format!("{what} ssl.keystore.location {path}");
            Ok((certificates(&pem, &what)?, private_key(&pem, key_password, &what)?))
        }
        Keystore::Inline { key, chain } => Ok((
            certificates(chain.as_bytes(), &format!("{what} ssl.keystore.certificate.chain"))?,
            private_key(key.as_bytes(), key_password, &format!("{what} ssl.keystore.key"))?,
        )),
        Keystore::Pkcs12 { path, password } => {
            let what = format!("{what} ssl.keystore.location {path}");
            let store = pkcs12(path, password, &what)?;
            let (_, entry) = store.private_key_chain().ok_or_else(|| anyhow!("{what}: the PKCS12 keystore holds no private key entry"))?;
            let chain: Vec<CertificateDer<'static>> = entry.chain().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
            if chain.is_empty() {
                bail!("{what}: the PKCS12 key entry has no certificate");
            }
            Ok((chain, PrivateKeyDer::Pkcs8(entry.key().to_vec().into())))
        }
    }
}

/// The CA certificates of a truststore.
pub(crate) fn trusted_certificates(truststore: &Truststore, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    match truststore {
        Truststore::Pem(source) => certificates(&read_pem(source, "ssl.truststore")?, &format!("{what} truststore")),
        Truststore::Pkcs12 { path, password } => {
            let what = format!("{what} ssl.truststore.location {path}");
            let store = pkcs12(path, password, &what)?;
            // As Java's trust managers read a truststore: every trusted-certificate entry, and
            // the certificate of every key entry. A certificate bag without Java's
            // trusted-certificate attribute (what `openssl pkcs12 -export -nokeys` writes before
            // OpenSSL 3.2's `-jdktrust`) is not an entry, for Java as here.
            let mut certs = Vec::new();
            for (_, entry) in store.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => certs.push(CertificateDer::from(c.as_der().to_vec())),
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(k) => {
                        certs.extend(k.chain().first().map(|c| CertificateDer::from(c.as_der().to_vec())))
                    }
                }
            }
            if certs.is_empty() {
                bail!(
                    "{what}: the PKCS12 truststore holds no trusted certificate entry (make it with keytool -importcert, \
                     or openssl pkcs12 -export -nokeys -jdktrust anyExtendedKeyUsage from OpenSSL 3.2; or use ssl.truststore.type=PEM)"
                );
            }
            Ok(certs)
        }
    }
}

/// Builds the TLS acceptor of `listener` from its settings; every file is read here, at
/// start-up, so a missing or malformed file stops the broker with a message naming it.
pub fn listener_tls(listener: &str, ssl: &SslSettings) -> anyhow::Result<TlsListener> {
    let what = format!("listener {listener}");
    let (certs, key) = key_and_chain(&ssl.keystore, ssl.key_password.as_deref(), &what)?;
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
            for cert in trusted_certificates(trust, &what)? {
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

    fn settings_with(keystore: Keystore, key_password: Option<&str>) -> SslSettings {
        SslSettings {
            keystore,
            key_password: key_password.map(str::to_string),
            truststore: None,
            client_auth: ClientAuth::None,
            enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            principal_mapping_rules: vec![PrincipalRule::Default],
        }
    }

    #[test]
    fn encrypted_pkcs8_keys_open_with_ssl_key_password() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = key.serialize_der();
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        let encrypted = info.encrypt(rand::rngs::OsRng, b"key-secret").unwrap();
        let pem = encrypted.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF).unwrap().to_string();
        let inline = |pw| settings_with(Keystore::Inline { key: pem.clone(), chain: cert.pem() }, pw);
        assert!(listener_tls("SSL", &inline(Some("key-secret"))).is_ok());
        let e = listener_tls("SSL", &inline(Some("wrong"))).unwrap_err().to_string();
        assert!(e.contains("cannot decrypt"), "{e}");
        let e = listener_tls("SSL", &inline(None)).unwrap_err().to_string();
        assert!(e.contains("ssl.key.password"), "{e}");
    }

    #[test]
    fn pkcs12_keystores_and_truststores_open_with_their_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let mut store = p12_keystore::KeyStore::new();
        let chain = [p12_keystore::Certificate::from_der(cert.der()).unwrap()];
        store.add_entry("klamm", p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(key.serialize_der(), [1u8; 20], chain)));
        let path = dir.path().join("broker.p12");
        std::fs::write(&path, store.writer("store-secret").write().unwrap()).unwrap();
        let path = path.to_str().unwrap().to_string();
        let p12 = |pw: &str| Keystore::Pkcs12 { path: path.clone(), password: pw.to_string() };
        assert!(listener_tls("SSL", &settings_with(p12("store-secret"), None)).is_ok());
        let e = listener_tls("SSL", &settings_with(p12("wrong"), None)).unwrap_err().to_string();
        assert!(e.contains("cannot open the PKCS12 store"), "{e}");
        // A key entry's certificate is trusted (as Java's trust managers do), and so is a
        // trusted-certificate entry.
        let trusted = trusted_certificates(&Truststore::Pkcs12 { path: path.clone(), password: "store-secret".into() }, "t").unwrap();
        assert_eq!(trusted, vec![CertificateDer::from(cert.der().to_vec())]);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&ca_key).unwrap();
        let mut trust = p12_keystore::KeyStore::new();
        trust.add_entry("ca", p12_keystore::KeyStoreEntry::Certificate(p12_keystore::Certificate::from_der(ca.der()).unwrap()));
        let trust_path = dir.path().join("trust.p12");
        std::fs::write(&trust_path, trust.writer("trust-secret").write().unwrap()).unwrap();
        let trust_path = trust_path.to_str().unwrap().to_string();
        let trusted = trusted_certificates(&Truststore::Pkcs12 { path: trust_path, password: "trust-secret".into() }, "t").unwrap();
        assert_eq!(trusted, vec![CertificateDer::from(ca.der().to_vec())]);
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
        assert!(e.contains("encrypted; give its password as ssl.key.password"), "{e}");
        let other = rcgen::KeyPair::generate().unwrap();
        let e = listener_tls("SSL", &settings(&other.serialize_pem(), &cert.pem())).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
    }
}
