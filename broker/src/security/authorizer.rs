//! Authorization: Kafka's StandardAuthorizer rules over the ACLs of the metadata image.
//!
//! On when `authorizer.class.name` names the StandardAuthorizer. A request is allowed when
//! its principal is a super user, or when an ALLOW ACL matches and no DENY ACL does (DENY
//! wins). An ACL matches a resource by type and name (LITERAL: equal, or the wildcard `*`;
//! PREFIXED: a prefix of the name), a principal (equal or `User:*`) and a host (the client's
//! IP or `*`), and an operation: the same one, ALL, or one that implies it (READ, WRITE,
//! DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS). A resource that
//! no ACL names at all is allowed only with `allow.everyone.if.no.acl.found`.

use std::net::IpAddr;

use klamm_config::BrokerConfig;
use klamm_raft::{AclBinding, MetadataImage};

/// Kafka's `ResourceType` codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka's `PatternType` codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclOperation` codes.
pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Operations that may be reported in `*_authorized_operations` for each resource type
/// (Kafka's `AclEntry.supportedOperations`).
pub fn supported_operations(resource_type: i8) -> &'static [i8] {
    match resource_type {
        resource::TOPIC => &[op::READ, op::WRITE, op::CREATE, op::DESCRIBE, op::DELETE, op::ALTER, op::DESCRIBE_CONFIGS, op::ALTER_CONFIGS],
        resource::GROUP => &[op::READ, op::DESCRIBE, op::DELETE],
        resource::CLUSTER => &[op::CREATE, op::CLUSTER_ACTION, op::DESCRIBE_CONFIGS, op::ALTER_CONFIGS, op::IDEMPOTENT_WRITE, op::ALTER, op::DESCRIBE],
        resource::TRANSACTIONAL_ID => &[op::DESCRIBE, op::WRITE],
        _ => &[],
    }
}

/// The authorizer settings of this broker.
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
}

impl Authorizer {
    pub fn from_config(config: &BrokerConfig) -> Authorizer {
        Authorizer {
            enabled: config.authorizer_enabled,
            super_users: config.super_users.clone(),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|u| u == principal)
    }

    /// Whether `principal` connecting from `host` may do `operation` on the resource.
    pub fn authorize(&self, acls: &MetadataImage, principal: &str, host: IpAddr, operation: i8, resource_type: i8, name: &str) -> bool {
        if !self.enabled || self.is_super_user(principal) {
            return true;
        }
        let host = host.to_string();
        let mut resource_named = false;
        let mut allowed = false;
        for acl in acls.acls.iter().filter(|a| a.resource_type == resource_type && resource_matches(a, name)) {
            resource_named = true;
            if !(acl.principal == principal || acl.principal == "User:*") || !(acl.host == "*" || acl.host == host) {
                continue;
            }
            match acl.permission_type {
                permission::DENY if acl.operation == op::ALL || acl.operation == operation => return false,
                permission::ALLOW if allow_implies(acl.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!resource_named && self.allow_if_no_acl)
    }

    /// KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic, lets a producer be
    /// idempotent.
    pub fn may_write_idempotently(&self, image: &MetadataImage, principal: &str, host: IpAddr) -> bool {
        self.authorize(image, principal, host, op::IDEMPOTENT_WRITE, resource::CLUSTER, CLUSTER_NAME)
            || image.topics.keys().any(|t| self.authorize(image, principal, host, op::WRITE, resource::TOPIC, t))
    }

    /// The `*_authorized_operations` bit field of a resource (bit n = operation code n).
    pub fn authorized_operations(&self, image: &MetadataImage, principal: &str, host: IpAddr, resource_type: i8, name: &str) -> i32 {
        supported_operations(resource_type)
            .iter()
            .filter(|&&o| self.authorize(image, principal, host, o, resource_type, name))
            .fold(0, |bits, &o| bits | (1 << o))
    }
}

fn resource_matches(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        pattern::LITERAL => acl.resource_name == name || acl.resource_name == "*",
        pattern::PREFIXED => name.starts_with(&acl.resource_name),
        _ => false,
    }
}

/// Whether an ALLOW of `granted` covers `wanted` (Kafka's implied operations).
fn allow_implies(granted: i8, wanted: i8) -> bool {
    granted == wanted
        || granted == op::ALL
        || (wanted == op::DESCRIBE && matches!(granted, op::READ | op::WRITE | op::DELETE | op::ALTER))
        || (wanted == op::DESCRIBE_CONFIGS && granted == op::ALTER_CONFIGS)
}

/// A DescribeAcls / DeleteAcls filter (Kafka's `AclBindingFilter`): ANY / null fields match
/// everything; pattern MATCH matches the literal name, the wildcard and every prefix pattern
/// that covers the name.
pub struct AclFilter<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission_type: i8,
}

/// The [`AclFilter`] of a DescribeAclsRequest or a DeleteAclsFilter, whose fields share names.
#[macro_export]
macro_rules! acl_filter_of {
    ($f:expr) => {
        $crate::security::authorizer::AclFilter {
            resource_type: $f.resource_type_filter,
            resource_name: $f.resource_name_filter.as_deref(),
            pattern_type: $f.pattern_type_filter,
            principal: $f.principal_filter.as_deref(),
            host: $f.host_filter.as_deref(),
            operation: $f.operation,
            permission_type: $f.permission_type,
        }
    };
}

impl AclFilter<'_> {
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let type_ok = self.resource_type == resource::ANY || self.resource_type == acl.resource_type;
        let name_ok = match (self.pattern_type, self.resource_name) {
            (pattern::MATCH, Some(name)) => match acl.pattern_type {
                pattern::LITERAL => acl.resource_name == name || acl.resource_name == "*",
                pattern::PREFIXED => name.starts_with(&acl.resource_name),
                _ => false,
            },
            (p, name) => (p == pattern::ANY || p == pattern::MATCH || p == acl.pattern_type) && name.is_none_or(|n| n == acl.resource_name),
        };
        type_ok
            && name_ok
            && self.principal.is_none_or(|p| p == acl.principal)
            && self.host.is_none_or(|h| h == acl.host)
            && (self.operation == op::ANY || self.operation == acl.operation)
            && (self.permission_type == permission::ANY || self.permission_type == acl.permission_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, host: &str, operation: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission_type: perm,
        }
    }

    fn authorizer(allow_if_no_acl: bool) -> Authorizer {
        Authorizer { enabled: true, super_users: vec!["User:admin".into()], allow_if_no_acl }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn literal_prefixed_wildcard_deny_and_implied_operations() {
        let mut image = MetadataImage::default();
        image.acls.extend([
            acl(resource::TOPIC, "orders_raw", pattern::LITERAL, "User:orders", "*", op::WRITE, permission::ALLOW),
            acl(resource::TOPIC, "orders_", pattern::PREFIXED, "User:proc", "*", op::READ, permission::ALLOW),
            acl(resource::TOPIC, "orders_dlq", pattern::LITERAL, "User:proc", "*", op::READ, permission::DENY),
            acl(resource::TOPIC, "*", pattern::LITERAL, "User:*", "10.0.0.9", op::ALL, permission::ALLOW),
            acl(resource::TOPIC, "cfg", pattern::LITERAL, "User:ops", "*", op::ALTER_CONFIGS, permission::ALLOW),
        ]);
        let a = authorizer(false);
        let can = |p: &str, o: i8, t: &str| a.authorize(&image, p, LOCAL, o, resource::TOPIC, t);
        assert!(can("User:orders", op::WRITE, "orders_raw"));
        assert!(can("User:orders", op::DESCRIBE, "orders_raw"), "WRITE implies DESCRIBE");
        assert!(!can("User:orders", op::READ, "orders_raw"));
        assert!(can("User:proc", op::READ, "orders_processed"), "prefix");
        assert!(!can("User:proc", op::READ, "orders_dlq"), "DENY wins");
        assert!(can("User:ops", op::DESCRIBE_CONFIGS, "cfg"), "ALTER_CONFIGS implies DESCRIBE_CONFIGS");
        assert!(!can("User:ops", op::DESCRIBE, "cfg"));
        assert!(can("User:admin", op::DELETE, "anything"), "super user");
        assert!(!can("User:x", op::READ, "unnamed"), "no ACL and allow.everyone.if.no.acl.found=false");
        assert!(a.authorize(&image, "User:x", "10.0.0.9".parse().unwrap(), op::DELETE, resource::TOPIC, "t"), "host match");
        assert!(authorizer(true).authorize(&image, "User:x", LOCAL, op::READ, resource::GROUP, "g"), "no ACL names the group");
        assert!(!authorizer(true).authorize(&image, "User:x", LOCAL, op::READ, resource::TOPIC, "orders_raw"), "an ACL names the topic");
        assert!(a.may_write_idempotently(&image, "User:orders", LOCAL) == image.topics.contains_key("orders_raw"));
        let bits = a.authorized_operations(&image, "User:orders", LOCAL, resource::TOPIC, "orders_raw");
        assert_eq!(bits, (1 << op::WRITE) | (1 << op::DESCRIBE));
        let off = Authorizer { enabled: false, super_users: vec![], allow_if_no_acl: false };
        assert!(off.authorize(&image, "User:x", LOCAL, op::DELETE, resource::TOPIC, "orders_raw"));
    }

    #[allow(clippy::too_many_arguments)]
    fn filter_matches(a: &AclBinding, rt: i8, name: Option<&str>, pt: i8, principal: Option<&str>, host: Option<&str>, o: i8, perm: i8) -> bool {
        AclFilter { resource_type: rt, resource_name: name, pattern_type: pt, principal, host, operation: o, permission_type: perm }.matches(a)
    }

    #[test]
    fn filters() {
        let a = acl(resource::TOPIC, "orders_", pattern::PREFIXED, "User:p", "*", op::READ, permission::ALLOW);
        assert!(filter_matches(&a, resource::ANY, None, pattern::ANY, None, None, op::ANY, permission::ANY));
        assert!(filter_matches(&a, resource::TOPIC, Some("orders_raw"), pattern::MATCH, None, None, op::ANY, permission::ANY));
        assert!(!filter_matches(&a, resource::TOPIC, Some("orders_raw"), pattern::LITERAL, None, None, op::ANY, permission::ANY));
        assert!(filter_matches(&a, resource::TOPIC, Some("orders_"), pattern::PREFIXED, Some("User:p"), Some("*"), op::READ, permission::ALLOW));
        assert!(!filter_matches(&a, resource::GROUP, None, pattern::ANY, None, None, op::ANY, permission::ANY));
        assert!(!filter_matches(&a, resource::ANY, None, pattern::ANY, Some("User:q"), None, op::ANY, permission::ANY));
    }
}
