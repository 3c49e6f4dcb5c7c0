//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side of Kafka's SCRAM
//! exchange (KIP-84): client-first → server-first → client-final → server-final.
//!
//! Credentials are what Kafka stores (KIP-554): salt, iterations, StoredKey = H(ClientKey) and
//! ServerKey, computed from the salted password that AlterUserScramCredentials carries. Hashes,
//! HMAC and PBKDF2 come from the RustCrypto crates.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use klamm_config::security::SaslMechanism;
use klamm_raft::ScramCredential;
use sha2::{Digest, Sha256, Sha512};

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations` / KIP-554's maximum).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

fn hmac(mechanism: SaslMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    match mechanism {
        SaslMechanism::ScramSha512 => {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn hash(mechanism: SaslMechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        SaslMechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// Hi(password, salt, i) of RFC 5802: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(mechanism: SaslMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    match mechanism {
        SaslMechanism::ScramSha512 => pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec(),
        _ => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
    }
}

/// The stored credential for a salted password (what AlterUserScramCredentials upserts).
pub fn credential_from_salted(mechanism: SaslMechanism, salt: &[u8], salted: &[u8], iterations: i32) -> ScramCredential {
    let client_key = hmac(mechanism, salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mechanism, &client_key),
        server_key: hmac(mechanism, salted, b"Server Key"),
        iterations,
    }
}

/// The credential for a clear password with a fresh random salt (bootstrap `--add-scram`).
pub fn credential_from_password(mechanism: SaslMechanism, password: &str, iterations: i32) -> ScramCredential {
    let salt: [u8; 32] = rand::random();
    let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations as u32);
    credential_from_salted(mechanism, &salt, &salted, iterations)
}

/// Constant-time equality: how much of a proof matched must not leak through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `saslname` of RFC 5802: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i + 1..i + 3)?;
        out.push(match esc {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Where the server is in one SCRAM exchange.
enum State {
    /// Waiting for client-first.
    Start,
    /// Sent server-first; waiting for client-final.
    SentFirst { user: String, credential: ScramCredential, client_first_bare: String, server_first: String, nonce: String, gs2_header: String },
    /// Finished (successfully or not); any further message is an error.
    Done,
}

/// What one step of an exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge and wait for the next client message.
    Challenge(Vec<u8>),
    /// Authenticated as this user; send this last message.
    Success { user: String, last: Vec<u8> },
    /// Authentication failed with this message (sent to the client as SASL_AUTHENTICATION_FAILED).
    Failed(String),
}

/// The server side of one SCRAM exchange; `lookup` finds a user's credential.
pub struct ScramServer {
    mechanism: SaslMechanism,
    state: State,
}

impl ScramServer {
    pub fn new(mechanism: SaslMechanism) -> ScramServer {
        ScramServer { mechanism, state: State::Start }
    }

    pub fn step(&mut self, message: &[u8], lookup: impl FnOnce(&str) -> Option<ScramCredential>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Done);
        let Ok(text) = std::str::from_utf8(message) else {
            return Step::Failed("Authentication failed: SCRAM message is not UTF-8".into());
        };
        match state {
            State::Start => self.client_first(text, lookup),
            State::SentFirst { user, credential, client_first_bare, server_first, nonce, gs2_header } => {
                self.client_final(text, user, credential, &client_first_bare, &server_first, &nonce, &gs2_header)
            }
            State::Done => Step::Failed("Authentication failed: unexpected SCRAM message after the exchange ended".into()),
        }
    }

    fn client_first(&mut self, text: &str, lookup: impl FnOnce(&str) -> Option<ScramCredential>) -> Step {
        let malformed = || Step::Failed("Authentication failed: invalid SCRAM client-first message".into());
        // gs2-header: "n,," or "n,a=<authzid>,"; channel binding ("p=") is not offered.
        let Some(rest) = text.strip_prefix("n,").or_else(|| text.strip_prefix("y,")) else {
            return malformed();
        };
        let Some((authzid, bare)) = rest.split_once(',') else { return malformed() };
        let gs2_header = &text[..text.len() - bare.len()];
        let mut user = None;
        let mut client_nonce = None;
        for (i, attr) in bare.split(',').enumerate() {
            match (i, attr.split_once('=')) {
                (0, Some(("n", v))) => user = decode_saslname(v),
                (1, Some(("r", v))) if !v.is_empty() => client_nonce = Some(v.to_string()),
                (0 | 1, _) => return malformed(),
                _ => {} // extensions (e.g. tokenauth=false) carry nothing Klamm acts on
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else { return malformed() };
        if let Some(a) = authzid.strip_prefix("a=") {
            if decode_saslname(a).as_deref() != Some(user.as_str()) {
                return Step::Failed("Authentication failed: authorization id differs from the user name".into());
            }
        } else if !authzid.is_empty() {
            return malformed();
        }
        let Some(credential) = lookup(&user) else {
            return Step::Failed("Authentication failed during authentication due to invalid credentials with SASL mechanism ".to_string() + self.mechanism.name());
        };
        // Alphanumeric, as Kafka's own nonces: librdkafka 2.0 mishandles '/' and '+' here.
        let server_nonce: String = rand::Rng::sample_iter(rand::thread_rng(), rand::distributions::Alphanumeric).take(32).map(char::from).collect();
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        self.state = State::SentFirst {
            user,
            credential,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            gs2_header: gs2_header.to_string(),
        };
        Step::Challenge(server_first.into_bytes())
    }

    #[allow(clippy::too_many_arguments)]
    fn client_final(
        &self,
        text: &str,
        user: String,
        credential: ScramCredential,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
        gs2_header: &str,
    ) -> Step {
        let malformed = || Step::Failed("Authentication failed: invalid SCRAM client-final message".into());
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else { return malformed() };
        let mut attrs = without_proof.split(',');
        let (Some(channel), Some(client_nonce)) = (attrs.next().and_then(|a| a.strip_prefix("c=")), attrs.next().and_then(|a| a.strip_prefix("r="))) else {
            return malformed();
        };
        if B64.decode(channel).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Step::Failed("Authentication failed: SCRAM channel binding does not match".into());
        }
        // Kafka accepts a final nonce that ends with the server's one (its ScramSaslServer
        // checks `endsWith`): librdkafka before 2.1 sends the client nonce twice.
        if !client_nonce.ends_with(nonce) {
            return Step::Failed("Authentication failed: SCRAM nonce does not match".into());
        }
        let Ok(proof) = B64.decode(proof) else { return malformed() };
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(self.mechanism, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Step::Failed("Authentication failed: invalid SCRAM client proof".into());
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&hash(self.mechanism, &client_key), &credential.stored_key) {
            return Step::Failed("Authentication failed during authentication due to invalid credentials with SASL mechanism ".to_string() + self.mechanism.name());
        }
        let server_signature = hmac(self.mechanism, &credential.server_key, auth_message.as_bytes());
        Step::Success { user, last: format!("v={}", B64.encode(server_signature)).into_bytes() }
    }
}

/// The client side of a SCRAM exchange, for brokers logging in to other brokers
/// (`sasl.mechanism.inter.broker.protocol`).
pub struct ScramClient {
    mechanism: SaslMechanism,
    password: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange as `user`; [`ScramClient::first_message`] is sent first.
    pub fn new(mechanism: SaslMechanism, user: &str, password: &str) -> ScramClient {
        let nonce: String = rand::Rng::sample_iter(rand::thread_rng(), rand::distributions::Alphanumeric).take(32).map(char::from).collect();
        let name = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient { mechanism, password: password.to_string(), client_first_bare: format!("n={name},r={nonce}"), expected_server_signature: None }
    }

    pub fn first_message(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message for the server's first message.
    pub fn final_message(&mut self, server_first: &str) -> Result<String, String> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("invalid SCRAM server-first message {server_first:?}"));
        };
        let client_nonce = &self.client_first_bare[self.client_first_bare.find(",r=").map_or(0, |i| i + 3)..];
        if !nonce.starts_with(client_nonce) || !(MIN_ITERATIONS as u32..=MAX_ITERATIONS as u32).contains(&iterations) {
            return Err("SCRAM server-first message has a foreign nonce or bad iterations".into());
        }
        let salted = salted_password(self.mechanism, self.password.as_bytes(), &salt, iterations);
        let client_key = hmac(self.mechanism, &salted, b"Client Key");
        let stored_key = hash(self.mechanism, &client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(self.mechanism, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = hmac(self.mechanism, &salted, b"Server Key");
        self.expected_server_signature = Some(hmac(self.mechanism, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server-final message: the server proved it knows the credential.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), String> {
        let signature = server_final.strip_prefix("v=").and_then(|v| B64.decode(v).ok());
        match (&self.expected_server_signature, signature) {
            (Some(expected), Some(got)) if constant_time_eq(expected, &got) => Ok(()),
            _ => Err(format!("SCRAM server signature does not verify ({server_final:?})")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The client-final message (and expected server-final) for `password`, from a client
    /// whose first message was `n,,<client_first_bare>`.
    pub(crate) fn client_final(mechanism: SaslMechanism, password: &str, client_first_bare: &str, server_first: &str) -> (String, Vec<u8>) {
        let mut client = ScramClient::new(mechanism, "unused", password);
        client.client_first_bare = client_first_bare.to_string();
        let message = client.final_message(server_first).unwrap();
        let expected = format!("v={}", B64.encode(client.expected_server_signature.as_ref().unwrap()));
        (message, expected.into_bytes())
    }

    fn exchange(mechanism: SaslMechanism, stored_password: &str, password: &str) -> Step {
        let credential = credential_from_password(mechanism, stored_password, MIN_ITERATIONS);
        let mut server = ScramServer::new(mechanism);
        let bare = "n=al=3Dice,r=fyko+d2lbbFgONRv9qkxdawL";
        let Step::Challenge(first) = server.step(format!("n,,{bare}").as_bytes(), |u| (u == "al=ice").then(|| credential.clone())) else {
            panic!("expected a challenge")
        };
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
        let (final_message, expected) = client_final(mechanism, password, bare, &first);
        let step = server.step(final_message.as_bytes(), |_| unreachable!());
        if let Step::Success { last, .. } = &step {
            assert_eq!(last, &expected, "server signature");
        }
        step
    }

    #[test]
    fn both_mechanisms_authenticate_the_right_password_only() {
        for m in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            assert!(matches!(exchange(m, "pencil", "pencil"), Step::Success { ref user, .. } if user == "al=ice"), "{m:?}");
            assert!(matches!(exchange(m, "pencil", "pen"), Step::Failed(_)), "{m:?}");
        }
    }

    #[test]
    fn client_and_server_agree_and_a_forged_server_is_caught() {
        for m in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            let credential = credential_from_password(m, "s3cret", MIN_ITERATIONS);
            let mut client = ScramClient::new(m, "broker,1", "s3cret");
            let mut server = ScramServer::new(m);
            let Step::Challenge(first) = server.step(client.first_message().as_bytes(), |u| (u == "broker,1").then(|| credential.clone())) else {
                panic!("expected a challenge")
            };
            let last = client.final_message(std::str::from_utf8(&first).unwrap()).unwrap();
            let Step::Success { last: server_final, .. } = server.step(last.as_bytes(), |_| None) else { panic!("expected success") };
            client.verify_server_final(std::str::from_utf8(&server_final).unwrap()).unwrap();
            assert!(client.verify_server_final("v=AAAA").is_err());
            assert!(ScramClient::new(m, "u", "p").final_message("r=other,s=AAAA,i=4096").is_err());
        }
    }

    #[test]
    fn rfc7677_test_vector_salted_password() {
        // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(SaslMechanism::ScramSha256, b"pencil", &salt, 4096);
        let c = credential_from_salted(SaslMechanism::ScramSha256, &salt, &salted, 4096);
        let mut server = ScramServer { mechanism: SaslMechanism::ScramSha256, state: State::Start };
        // Replay the RFC's exchange with its server nonce.
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        server.state = State::SentFirst {
            user: "user".into(),
            credential: c,
            client_first_bare: bare.into(),
            server_first: server_first.into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            gs2_header: "n,,".into(),
        };
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            server.step(client_final.as_bytes(), |_| None),
            Step::Success { user: "user".into(), last: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec() }
        );
    }

    #[test]
    fn garbage_and_unknown_users_fail_without_panicking() {
        for m in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            for bad in [&b""[..], b"\xff\xfe", b"n,,", b"n,,n=", b"p=tls,,n=a,r=b", b"n,x,n=a,r=b", b"n,,r=a,n=b", b"n,,n=a=ZZ,r=b"] {
                let mut s = ScramServer::new(m);
                assert!(matches!(s.step(bad, |_| None), Step::Failed(_)), "{bad:?}");
            }
            let mut s = ScramServer::new(m);
            assert!(matches!(s.step(b"n,,n=nobody,r=abc", |_| None), Step::Failed(_)));
            let c = credential_from_password(m, "pw", MIN_ITERATIONS);
            for bad in [&b"c=biws"[..], b"c=biws,r=abc,p=!!", b"c=xx,r=abc,p=AAAA", b"c=biws,r=other,p=AAAA"] {
                let mut s = ScramServer::new(m);
                assert!(matches!(s.step(b"n,,n=u,r=abc", |_| Some(c.clone())), Step::Challenge(_)));
                assert!(matches!(s.step(bad, |_| None), Step::Failed(_)), "{bad:?}");
                assert!(matches!(s.step(b"more", |_| None), Step::Failed(_)), "a finished exchange takes no more messages");
            }
        }
    }
}
