//! AlterUserScramCredentials (key 51) and DescribeUserScramCredentials (key 50), KIP-554: the
//! credentials SCRAM logins are checked against, kept in the metadata log
//! (`MetadataCommand::AlterScramCredentials`), so every broker sees the same ones and they
//! survive restarts. Clients send the salted password; the broker stores StoredKey/ServerKey.

use std::collections::{BTreeMap, BTreeSet};

use klamm_config::security::SaslMechanism;
use klamm_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use klamm_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use klamm_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use klamm_protocol::ErrorCode;
use klamm_raft::{CommandOutcome, MetadataCommand, ScramCredential};

use super::RequestContext;
use crate::security::scram::{credential_from_salted, MAX_ITERATIONS, MIN_ITERATIONS};

/// Kafka's `ScramMechanism` type bytes.
fn mechanism_of(kind: i8) -> Option<SaslMechanism> {
    match kind {
        1 => Some(SaslMechanism::ScramSha256),
        2 => Some(SaslMechanism::ScramSha512),
        _ => None,
    }
}

fn mechanism_type(name: &str) -> i8 {
    match name {
        "SCRAM-SHA-256" => 1,
        "SCRAM-SHA-512" => 2,
        _ => 0,
    }
}

type Failure = (ErrorCode, String);

pub async fn alter(ctx: &RequestContext, request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    let image = ctx.broker.metadata.image();
    // Changes grouped by user, in first-seen order; a user whose changes fail is left alone.
    let mut users: Vec<String> = Vec::new();
    let mut failed: BTreeMap<String, Failure> = BTreeMap::new();
    let mut seen: BTreeSet<(String, i8)> = BTreeSet::new();
    let mut upsertions = Vec::new();
    let mut deletions = Vec::new();
    let fail = |failed: &mut BTreeMap<String, Failure>, user: &str, code: ErrorCode, message: &str| {
        failed.entry(user.to_string()).or_insert((code, message.to_string()));
    };
    let changes = request
        .deletions
        .iter()
        .map(|d| (&d.name, d.mechanism, None))
        .chain(request.upsertions.iter().map(|u| (&u.name, u.mechanism, Some(u))));
    for (user, kind, upsert) in changes {
        if !users.contains(user) {
            users.push(user.clone());
        }
        if user.is_empty() {
            fail(&mut failed, user, ErrorCode::UNACCEPTABLE_CREDENTIAL, "Username must not be empty");
            continue;
        }
        if !seen.insert((user.clone(), kind)) {
            fail(&mut failed, user, ErrorCode::DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request");
            continue;
        }
        let Some(mechanism) = mechanism_of(kind) else {
            fail(&mut failed, user, ErrorCode::UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism");
            continue;
        };
        match upsert {
            None => {
                if image.scram_credential(user, mechanism.name()).is_none() {
                    fail(&mut failed, user, ErrorCode::RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist");
                    continue;
                }
                deletions.push((user.clone(), mechanism.name().to_string()));
            }
            Some(u) => {
                if u.iterations < MIN_ITERATIONS {
                    fail(&mut failed, user, ErrorCode::UNACCEPTABLE_CREDENTIAL, &format!("Too few iterations (minimum {MIN_ITERATIONS})"));
                    continue;
                }
                if u.iterations > MAX_ITERATIONS {
                    fail(&mut failed, user, ErrorCode::UNACCEPTABLE_CREDENTIAL, &format!("Too many iterations (maximum {MAX_ITERATIONS})"));
                    continue;
                }
                if u.salt.is_empty() || u.salted_password.is_empty() {
                    fail(&mut failed, user, ErrorCode::UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty");
                    continue;
                }
                let credential: ScramCredential = credential_from_salted(mechanism, &u.salt, &u.salted_password, u.iterations);
                upsertions.push((user.clone(), mechanism.name().to_string(), credential));
            }
        }
    }
    upsertions.retain(|(u, _, _)| !failed.contains_key(u));
    deletions.retain(|(u, _)| !failed.contains_key(u));
    let mut outcome: Option<Failure> = None;
    if !upsertions.is_empty() || !deletions.is_empty() {
        let command = MetadataCommand::AlterScramCredentials { upsertions, deletions };
        outcome = match ctx.broker.metadata.propose(command).await {
            Ok(CommandOutcome::Applied(info)) => {
                ctx.broker.reconciler.caught_up(info.log_index).await;
                None
            }
            Ok(CommandOutcome::Rejected(r)) => Some((ErrorCode::UNACCEPTABLE_CREDENTIAL, r.message)),
            Err(e) => Some((ErrorCode::REQUEST_TIMED_OUT, format!("metadata log unavailable: {e}"))),
        };
    }
    let results = users
        .into_iter()
        .map(|user| {
            let (code, message) = match failed.get(&user).or(outcome.as_ref()) {
                Some((code, message)) => (*code, Some(message.clone())),
                None => (ErrorCode::NONE, None),
            };
            AlterUserScramCredentialsResult { user, error_code: code.code(), error_message: message, ..Default::default() }
        })
        .collect();
    AlterUserScramCredentialsResponse { results, ..Default::default() }
}

pub fn describe(ctx: &RequestContext, request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let image = ctx.broker.metadata.image();
    let describe_user = |user: &str| -> DescribeUserScramCredentialsResult {
        match image.scram_credentials.get(user) {
            Some(by_mechanism) => DescribeUserScramCredentialsResult {
                user: user.to_string(),
                credential_infos: by_mechanism
                    .iter()
                    .map(|(m, c)| CredentialInfo { mechanism: mechanism_type(m), iterations: c.iterations, ..Default::default() })
                    .collect(),
                ..Default::default()
            },
            None => DescribeUserScramCredentialsResult {
                user: user.to_string(),
                error_code: ErrorCode::RESOURCE_NOT_FOUND.code(),
                error_message: Some(format!("Attempt to describe a user credential that does not exist: {user}")),
                ..Default::default()
            },
        }
    };
    let results = match request.users {
        // Null or empty: every user that has a credential.
        None => image.scram_credentials.keys().map(|u| describe_user(u)).collect(),
        Some(names) if names.is_empty() => image.scram_credentials.keys().map(|u| describe_user(u)).collect(),
        Some(names) => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for n in &names {
                *counts.entry(n.name.as_str()).or_default() += 1;
            }
            let mut done = BTreeSet::new();
            names
                .iter()
                .filter(|n| done.insert(n.name.as_str()))
                .map(|n| {
                    if counts[n.name.as_str()] > 1 {
                        DescribeUserScramCredentialsResult {
                            user: n.name.clone(),
                            error_code: ErrorCode::DUPLICATE_RESOURCE.code(),
                            error_message: Some(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {}", n.name)),
                            ..Default::default()
                        }
                    } else {
                        describe_user(&n.name)
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse { results, ..Default::default() }
}
