//! SCRAM credentials in the metadata image (KIP-554): per user and mechanism the salt,
//! iterations, StoredKey and ServerKey — never the password — replicated through the metadata
//! log like every other change, so every broker authenticates against the same credentials and
//! they survive restarts.

use serde::{Deserialize, Serialize};

use crate::command::{AppliedInfo, CommandOutcome, RejectCode, Rejection};
use crate::image::MetadataImage;

/// One user's SCRAM credential for one mechanism (Kafka's `ScramCredential`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Mechanism names a credential may be stored under.
pub const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];

impl MetadataImage {
    /// The credential of `user` for `mechanism` (`SCRAM-SHA-256` / `SCRAM-SHA-512`).
    pub fn scram_credential(&self, user: &str, mechanism: &str) -> Option<&ScramCredential> {
        self.scram_credentials.get(user).and_then(|m| m.get(mechanism))
    }

    pub(crate) fn apply_alter_scram_credentials(
        &mut self,
        index: u64,
        upsertions: &[(String, String, ScramCredential)],
        deletions: &[(String, String)],
    ) -> CommandOutcome {
        let bad = upsertions.iter().map(|(u, m, _)| (u, m)).chain(deletions.iter().map(|(u, m)| (u, m)));
        for (user, mechanism) in bad {
            if user.is_empty() || !SCRAM_MECHANISMS.contains(&mechanism.as_str()) {
                return CommandOutcome::Rejected(Rejection {
                    code: RejectCode::InvalidRequest,
                    message: format!("invalid SCRAM credential change for user {user:?}, mechanism {mechanism:?}"),
                });
            }
        }
        for (user, mechanism) in deletions {
            if let Some(m) = self.scram_credentials.get_mut(user) {
                m.remove(mechanism);
                if m.is_empty() {
                    self.scram_credentials.remove(user);
                }
            }
        }
        for (user, mechanism, credential) in upsertions {
            self.scram_credentials.entry(user.clone()).or_default().insert(mechanism.clone(), credential.clone());
        }
        CommandOutcome::Applied(AppliedInfo { log_index: index, ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetadataCommand;

    fn cred(i: i32) -> ScramCredential {
        ScramCredential { salt: vec![1], stored_key: vec![2], server_key: vec![3], iterations: i }
    }

    #[test]
    fn credentials_are_upserted_deleted_and_survive_a_snapshot() {
        let mut img = MetadataImage::default();
        let up = MetadataCommand::AlterScramCredentials {
            upsertions: vec![("alice".into(), "SCRAM-SHA-512".into(), cred(4096)), ("bob".into(), "SCRAM-SHA-256".into(), cred(8192))],
            deletions: vec![],
        };
        assert!(matches!(img.apply(1, &up), CommandOutcome::Applied(_)));
        assert_eq!(img.scram_credential("alice", "SCRAM-SHA-512"), Some(&cred(4096)));
        assert_eq!(img.scram_credential("alice", "SCRAM-SHA-256"), None);
        let json = serde_json::to_string(&img).unwrap();
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), img);
        let del = MetadataCommand::AlterScramCredentials { upsertions: vec![], deletions: vec![("bob".into(), "SCRAM-SHA-256".into())] };
        assert!(matches!(img.apply(2, &del), CommandOutcome::Applied(_)));
        assert!(!img.scram_credentials.contains_key("bob"));
        let bad = MetadataCommand::AlterScramCredentials { upsertions: vec![("x".into(), "PLAIN".into(), cred(1))], deletions: vec![] };
        assert!(matches!(img.apply(3, &bad), CommandOutcome::Rejected(_)));
        assert!(!img.scram_credentials.contains_key("x"));
    }

    #[test]
    fn images_without_credentials_load() {
        let img = MetadataImage::default();
        let mut json: serde_json::Value = serde_json::to_value(&img).unwrap();
        assert!(json.as_object_mut().unwrap().remove("scram_credentials").is_some());
        assert_eq!(serde_json::from_value::<MetadataImage>(json).unwrap(), img);
    }
}
