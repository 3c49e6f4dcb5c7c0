//! CreateAcls (30), DescribeAcls (29), DeleteAcls (31): the ACLs the authorizer enforces,
//! kept in the metadata log (`MetadataCommand::CreateAcls` / `DeleteAcls`). As in Kafka,
//! they need ALTER (create, delete) or DESCRIBE (describe) on the cluster, and answer
//! SECURITY_DISABLED when no authorizer is configured.

use std::collections::BTreeMap;

use klamm_protocol::messages::create_acls_response::AclCreationResult;
use klamm_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use klamm_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use klamm_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse,
};
use klamm_protocol::ErrorCode;
use klamm_raft::{AclBinding, CommandOutcome, MetadataCommand};

use super::RequestContext;
use crate::acl_filter_of;
use crate::security::authorizer::{op, pattern, permission, resource, CLUSTER_NAME};

type Failure = (ErrorCode, String);

fn security_disabled() -> Failure {
    (ErrorCode::SECURITY_DISABLED, "No Authorizer is configured on the broker".into())
}

/// SECURITY_DISABLED without an authorizer, CLUSTER_AUTHORIZATION_FAILED without `operation`
/// on the cluster.
fn check(ctx: &RequestContext, operation: i8) -> Result<(), Failure> {
    if !ctx.broker.authorizer.enabled {
        return Err(security_disabled());
    }
    if !ctx.authorized(operation, resource::CLUSTER, CLUSTER_NAME) {
        return Err((ErrorCode::CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.".into()));
    }
    Ok(())
}

/// Checks a new binding as Kafka's `AclControlManager.validateNewAcl` does.
fn validate(acl: &AclBinding) -> Result<(), String> {
    if !matches!(acl.resource_type, resource::TOPIC | resource::GROUP | resource::CLUSTER | resource::TRANSACTIONAL_ID) {
        return Err(format!("Invalid resourceType {}", acl.resource_type));
    }
    if !matches!(acl.pattern_type, pattern::LITERAL | pattern::PREFIXED) {
        return Err(format!("Invalid patternType {}", acl.pattern_type));
    }
    if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&acl.operation) {
        return Err(format!("Invalid operation {}", acl.operation));
    }
    if !matches!(acl.permission_type, permission::DENY | permission::ALLOW) {
        return Err(format!("Invalid permissionType {}", acl.permission_type));
    }
    if acl.resource_name.is_empty() {
        return Err("Resource name should not be empty".into());
    }
    if acl.resource_type == resource::CLUSTER && acl.resource_name != CLUSTER_NAME {
        return Err(format!("The only valid name for the CLUSTER resource is {CLUSTER_NAME}"));
    }
    match acl.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Err(format!("Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)", acl.principal)),
    }
    if acl.host.is_empty() {
        return Err("Invalid empty host".into());
    }
    Ok(())
}

async fn propose(ctx: &RequestContext, command: MetadataCommand) -> Result<(), Failure> {
    match ctx.broker.metadata.propose(command).await {
        Ok(CommandOutcome::Applied(info)) => {
            ctx.broker.reconciler.caught_up(info.log_index).await;
            Ok(())
        }
        Ok(CommandOutcome::Rejected(r)) => Err((ErrorCode::INVALID_REQUEST, r.message)),
        Err(e) => Err((ErrorCode::REQUEST_TIMED_OUT, format!("metadata log unavailable: {e}"))),
    }
}

pub async fn create(ctx: &RequestContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let fail_all = |(code, message): Failure| CreateAclsResponse {
        results: request
            .creations
            .iter()
            .map(|_| AclCreationResult { error_code: code.code(), error_message: Some(message.clone()), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    if let Err(f) = check(ctx, op::ALTER) {
        return fail_all(f);
    }
    let bindings: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            let acl = AclBinding {
                resource_type: c.resource_type,
                resource_name: c.resource_name.clone(),
                // CreateAcls v0 has no pattern type: LITERAL.
                pattern_type: if ctx.api_version == 0 { pattern::LITERAL } else { c.resource_pattern_type },
                principal: c.principal.clone(),
                host: c.host.clone(),
                operation: c.operation,
                permission_type: c.permission_type,
            };
            validate(&acl).map(|()| acl)
        })
        .collect();
    let valid: Vec<AclBinding> = bindings.iter().filter_map(|b| b.as_ref().ok().cloned()).collect();
    let outcome = if valid.is_empty() { Ok(()) } else { propose(ctx, MetadataCommand::CreateAcls { acls: valid }).await };
    let results = bindings
        .into_iter()
        .map(|b| {
            let (code, message) = match (b, &outcome) {
                (Err(m), _) => (ErrorCode::INVALID_REQUEST, Some(m)),
                (Ok(_), Err((code, m))) => (*code, Some(m.clone())),
                (Ok(_), Ok(())) => (ErrorCode::NONE, None),
            };
            AclCreationResult { error_code: code.code(), error_message: message, ..Default::default() }
        })
        .collect();
    CreateAclsResponse { results, ..Default::default() }
}

pub fn describe(ctx: &RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    if let Err((code, message)) = check(ctx, op::DESCRIBE) {
        return DescribeAclsResponse { error_code: code.code(), error_message: Some(message), ..Default::default() };
    }
    let image = ctx.broker.metadata.image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    let filter = acl_filter_of!(request);
    for acl in image.acls.iter().filter(|a| filter.matches(a)) {
        by_resource.entry((acl.resource_type, acl.resource_name.clone(), acl.pattern_type)).or_default().push(AclDescription {
            principal: acl.principal.clone(),
            host: acl.host.clone(),
            operation: acl.operation,
            permission_type: acl.permission_type,
            ..Default::default()
        });
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, resource_name, pattern_type), acls)| DescribeAclsResource {
            resource_type,
            resource_name,
            pattern_type,
            acls,
            ..Default::default()
        })
        .collect();
    DescribeAclsResponse { resources, ..Default::default() }
}

pub async fn delete(ctx: &RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    if let Err((code, message)) = check(ctx, op::ALTER) {
        let filter_results = request
            .filters
            .iter()
            .map(|_| DeleteAclsFilterResult { error_code: code.code(), error_message: Some(message.clone()), ..Default::default() })
            .collect();
        return DeleteAclsResponse { filter_results, ..Default::default() };
    }
    let image = ctx.broker.metadata.image();
    let matched: Vec<Vec<AclBinding>> = request
        .filters
        .iter()
        .map(|f| {
            let filter = acl_filter_of!(f);
            image.acls.iter().filter(|a| filter.matches(a)).cloned().collect()
        })
        .collect();
    let all: Vec<AclBinding> = matched.iter().flatten().cloned().collect();
    let outcome = if all.is_empty() { Ok(()) } else { propose(ctx, MetadataCommand::DeleteAcls { acls: all }).await };
    let filter_results = matched
        .into_iter()
        .map(|acls| match &outcome {
            Err((code, message)) => DeleteAclsFilterResult { error_code: code.code(), error_message: Some(message.clone()), ..Default::default() },
            Ok(()) => DeleteAclsFilterResult {
                matching_acls: acls
                    .into_iter()
                    .map(|a| DeleteAclsMatchingAcl {
                        resource_type: a.resource_type,
                        resource_name: a.resource_name,
                        pattern_type: a.pattern_type,
                        principal: a.principal,
                        host: a.host,
                        operation: a.operation,
                        permission_type: a.permission_type,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        })
        .collect();
    DeleteAclsResponse { filter_results, ..Default::default() }
}
