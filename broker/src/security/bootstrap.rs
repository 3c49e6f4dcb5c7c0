//! The first SCRAM credentials, given on the command line (`klamm --add-scram
//! 'SCRAM-SHA-512=[name=admin,password=admin-secret]'`), in the form of Kafka's
//! `kafka-storage format --add-scram`. Without one no client could log in over SCRAM to
//! create the others. A credential that already exists in the metadata log is left as it is,
//! so the flag may stay in a service definition across restarts.

use klamm_config::security::SaslMechanism;
use klamm_raft::{CommandOutcome, MetadataCommand};

use super::scram::{credential_from_password, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::server::Broker;

/// One `--add-scram` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramBootstrap {
    pub mechanism: SaslMechanism,
    pub user: String,
    pub password: String,
    pub iterations: i32,
}

impl ScramBootstrap {
    /// Parses `MECHANISM=[name=USER,password=PASSWORD(,iterations=N)]`; values may be
    /// double-quoted (then they may hold `,` and `]`).
    pub fn parse(spec: &str) -> Result<ScramBootstrap, String> {
        let (mechanism, rest) = spec.split_once('=').ok_or("expected MECHANISM=[name=...,password=...]")?;
        let mechanism = match SaslMechanism::parse(mechanism)? {
            SaslMechanism::Plain => return Err("--add-scram takes SCRAM-SHA-256 or SCRAM-SHA-512".into()),
            m => m,
        };
        let body = rest
            .trim()
            .strip_prefix('[')
            .and_then(|b| b.strip_suffix(']'))
            .ok_or("the credential must be written in brackets: [name=...,password=...]")?;
        let (mut user, mut password, mut iterations) = (None, None, MIN_ITERATIONS);
        let mut rest = body;
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=').ok_or_else(|| format!("expected key=value at {rest:?}"))?;
            let (value, after) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"').ok_or("unterminated quoted value")?;
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_at(after.find(',').unwrap_or(after.len())),
            };
            match key.trim() {
                "name" => user = Some(value.to_string()),
                "password" => password = Some(value.to_string()),
                "iterations" => {
                    iterations = value.parse().map_err(|_| format!("iterations {value:?} is not a number"))?;
                    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                        return Err(format!("iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"));
                    }
                }
                other => return Err(format!("unknown key {other:?} (name, password, iterations)")),
            }
            rest = after.strip_prefix(',').unwrap_or(after);
            if !after.is_empty() && !after.starts_with(',') {
                return Err(format!("expected ',' at {after:?}"));
            }
        }
        let user = user.filter(|u| !u.is_empty()).ok_or("name= is required")?;
        let password = password.filter(|p| !p.is_empty()).ok_or("password= is required")?;
        Ok(ScramBootstrap { mechanism, user, password, iterations })
    }
}

/// Stores every credential that the metadata log does not hold yet.
pub async fn add_missing(broker: &Broker, credentials: &[ScramBootstrap]) -> anyhow::Result<()> {
    let image = broker.metadata.image();
    let upsertions: Vec<_> = credentials
        .iter()
        .filter(|c| image.scram_credential(&c.user, c.mechanism.name()).is_none())
        .map(|c| (c.user.clone(), c.mechanism.name().to_string(), credential_from_password(c.mechanism, &c.password, c.iterations)))
        .collect();
    if upsertions.is_empty() {
        return Ok(());
    }
    let added: Vec<String> = upsertions.iter().map(|(u, m, _)| format!("{m} for {u}")).collect();
    match broker.metadata.propose(MetadataCommand::AlterScramCredentials { upsertions, deletions: Vec::new() }).await? {
        CommandOutcome::Applied(_) => {
            tracing::info!(credentials = %added.join(", "), "added bootstrap SCRAM credentials");
            Ok(())
        }
        CommandOutcome::Rejected(r) => anyhow::bail!("bootstrap SCRAM credentials rejected: {}", r.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_storage_format_syntax() {
        let b = ScramBootstrap::parse("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap();
        assert_eq!((b.mechanism, b.user.as_str(), b.password.as_str(), b.iterations), (SaslMechanism::ScramSha512, "admin", "admin-secret", 4096));
        let b = ScramBootstrap::parse("SCRAM-SHA-256=[name=\"a,b\",password=\"p]w,\",iterations=8192]").unwrap();
        assert_eq!((b.user.as_str(), b.password.as_str(), b.iterations), ("a,b", "p]w,", 8192));
        for bad in ["PLAIN=[name=a,password=b]", "SCRAM-SHA-512=name=a", "SCRAM-SHA-512=[name=a]", "SCRAM-SHA-512=[name=a,password=b,iterations=1]", "SCRAM-SHA-1=[name=a,password=b]", "SCRAM-SHA-512=[name=a,pw=b]", "SCRAM-SHA-512=[name=\"a\"x,password=b]"] {
            assert!(ScramBootstrap::parse(bad).is_err(), "{bad}");
        }
    }
}
