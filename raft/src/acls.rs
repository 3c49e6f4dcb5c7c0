//! ACLs in the metadata image: Kafka's ACL bindings (resource pattern + access control
//! entry), kept as a set and replicated through the metadata log like every other change, so
//! every broker authorizes against the same ACLs and they survive restarts. Matching lives in
//! the broker (`broker/src/security/authorizer.rs`); this module only stores.

use serde::{Deserialize, Serialize};

use crate::command::{AppliedInfo, CommandOutcome};
use crate::image::MetadataImage;

/// One ACL binding with Kafka's wire codes (resource type, pattern type, operation,
/// permission type), so the admin APIs and the authorizer read it without translation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    /// `User:<name>` or `User:*`.
    pub principal: String,
    /// A client IP address or `*`.
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl MetadataImage {
    /// Adds bindings; one that exists already is left as it is (CreateAcls is idempotent).
    pub(crate) fn apply_create_acls(&mut self, index: u64, acls: &[AclBinding]) -> CommandOutcome {
        self.acls.extend(acls.iter().cloned());
        CommandOutcome::Applied(AppliedInfo { log_index: index, ..Default::default() })
    }

    /// Removes bindings; absent ones change nothing (the proposer matched them on an image
    /// that may since have changed).
    pub(crate) fn apply_delete_acls(&mut self, index: u64, acls: &[AclBinding]) -> CommandOutcome {
        for acl in acls {
            self.acls.remove(acl);
        }
        CommandOutcome::Applied(AppliedInfo { log_index: index, ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetadataCommand;

    fn acl(name: &str) -> AclBinding {
        AclBinding {
            resource_type: 2,
            resource_name: name.into(),
            pattern_type: 3,
            principal: "User:a".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        }
    }

    #[test]
    fn acls_are_created_once_deleted_and_survive_a_snapshot() {
        let mut img = MetadataImage::default();
        let create = MetadataCommand::CreateAcls { acls: vec![acl("a"), acl("b"), acl("a")] };
        assert!(matches!(img.apply(1, &create), CommandOutcome::Applied(_)));
        assert_eq!(img.acls.len(), 2);
        let json = serde_json::to_string(&img).unwrap();
        assert_eq!(serde_json::from_str::<MetadataImage>(&json).unwrap(), img);
        let delete = MetadataCommand::DeleteAcls { acls: vec![acl("a"), acl("zzz")] };
        assert!(matches!(img.apply(2, &delete), CommandOutcome::Applied(_)));
        assert_eq!(img.acls.iter().map(|a| a.resource_name.as_str()).collect::<Vec<_>>(), vec!["b"]);
    }
}
