//! ACLs: create, describe, delete.

use std::fmt;

use super::{check, AdminClient, Answer};
use crate::error::{Error, Result};
use crate::protocol::messages::create_acls_request::AclCreation;
use crate::protocol::messages::delete_acls_request::DeleteAclsFilter;
use crate::protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $variant:ident = $v:literal, )* }) => {
        $(#[$m])*
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            /// A value this client does not know (or the broker could not
            /// parse).
            Unknown,
            $( $(#[$vm])* $variant, )*
        }

        impl $name {
            /// The wire value.
            pub fn as_i8(self) -> i8 {
                match self {
                    $name::Unknown => 0,
                    $( $name::$variant => $v, )*
                }
            }

            /// The value for a wire value ([`Unknown`]($name::Unknown) for
            /// values this client does not know).
            pub fn from_i8(v: i8) -> $name {
                match v {
                    $( $v => $name::$variant, )*
                    _ => $name::Unknown,
                }
            }
        }
    };
}

wire_enum! {
    /// What an ACL protects.
    ResourceType {
        /// Any type (filters only).
        Any = 1,
        /// A topic.
        Topic = 2,
        /// A consumer group.
        Group = 3,
        /// The cluster (the name is `kafka-cluster`).
        Cluster = 4,
        /// A transactional id.
        TransactionalId = 5,
        /// A delegation token.
        DelegationToken = 6,
        /// A user principal.
        User = 7,
    }
}

wire_enum! {
    /// How an ACL's resource name matches resources.
    PatternType {
        /// Any pattern type (filters only).
        Any = 1,
        /// Whatever would apply to the named resource: literal, prefixed
        /// and wildcard matches (filters only).
        Match = 2,
        /// The exact name (or `*` for every resource).
        Literal = 3,
        /// Every resource whose name starts with this one.
        Prefixed = 4,
    }
}

wire_enum! {
    /// What an ACL allows or denies.
    AclOperation {
        /// Any operation (filters only).
        Any = 1,
        /// Every operation.
        All = 2,
        /// Read.
        Read = 3,
        /// Write.
        Write = 4,
        /// Create.
        Create = 5,
        /// Delete.
        Delete = 6,
        /// Alter.
        Alter = 7,
        /// Describe.
        Describe = 8,
        /// Inter-broker cluster actions.
        ClusterAction = 9,
        /// Describe configs.
        DescribeConfigs = 10,
        /// Alter configs.
        AlterConfigs = 11,
        /// Idempotent produce.
        IdempotentWrite = 12,
        /// Create delegation tokens.
        CreateTokens = 13,
        /// Describe delegation tokens.
        DescribeTokens = 14,
    }
}

wire_enum! {
    /// Whether an ACL allows or denies.
    AclPermissionType {
        /// Either (filters only).
        Any = 1,
        /// Deny.
        Deny = 2,
        /// Allow.
        Allow = 3,
    }
}

/// One ACL: `principal` from `host` may (or may not) do `operation` on the
/// resources matched by `resource_type`/`resource_name`/`pattern_type`.
///
/// ```
/// use kafka_blocking::admin::{AclBinding, AclOperation, AclPermissionType, PatternType, ResourceType};
///
/// let acl = AclBinding {
///     resource_type: ResourceType::Topic,
///     resource_name: "orders".into(),
///     pattern_type: PatternType::Literal,
///     principal: "User:billing".into(),
///     host: "*".into(),
///     operation: AclOperation::Read,
///     permission_type: AclPermissionType::Allow,
/// };
/// // The filter that matches exactly this ACL (for describe/delete).
/// let filter = acl.to_filter();
/// # let _ = filter;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The resource name (or prefix, or `*`).
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// Who: `User:alice`, `User:*`.
    pub principal: String,
    /// From where: an IP address or `*`.
    pub host: String,
    /// What.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission_type: AclPermissionType,
}

impl AclBinding {
    /// The filter that matches exactly this binding.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission_type: self.permission_type,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| {
            Err(Error::invalid_argument(format!(
                "{self}: {what} must be a concrete value, not Any/Match/Unknown"
            )))
        };
        if matches!(
            self.resource_type,
            ResourceType::Any | ResourceType::Unknown
        ) {
            return bad("the resource type");
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return bad("the pattern type");
        }
        if matches!(self.operation, AclOperation::Any | AclOperation::Unknown) {
            return bad("the operation");
        }
        if !matches!(
            self.permission_type,
            AclPermissionType::Allow | AclPermissionType::Deny
        ) {
            return bad("the permission type");
        }
        Ok(())
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ACL ({:?} {:?} `{}`: {:?} {} from {} {:?})",
            self.pattern_type,
            self.resource_type,
            self.resource_name,
            self.permission_type,
            self.principal,
            self.host,
            self.operation
        )
    }
}

/// Which ACLs to describe or delete; `None` and the `Any` values match
/// everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBindingFilter {
    /// The kind of resource ([`ResourceType::Any`]: every kind).
    pub resource_type: ResourceType,
    /// The resource name (`None`: any).
    pub resource_name: Option<String>,
    /// How names match ([`PatternType::Any`] or [`PatternType::Match`]).
    pub pattern_type: PatternType,
    /// The principal (`None`: any).
    pub principal: Option<String>,
    /// The host (`None`: any).
    pub host: Option<String>,
    /// The operation ([`AclOperation::Any`]: any).
    pub operation: AclOperation,
    /// Allow or deny ([`AclPermissionType::Any`]: either).
    pub permission_type: AclPermissionType,
}

impl AclBindingFilter {
    /// Matches every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission_type: AclPermissionType::Any,
        }
    }

    /// Matches every ACL on the resource `resource_type`/`name` (literal
    /// name).
    pub fn for_resource(resource_type: ResourceType, name: impl Into<String>) -> AclBindingFilter {
        AclBindingFilter {
            resource_type,
            resource_name: Some(name.into()),
            pattern_type: PatternType::Literal,
            ..AclBindingFilter::any()
        }
    }
}

impl AdminClient {
    /// Creates ACLs, answering per binding (needs an authorizer on the
    /// brokers; `SECURITY_DISABLED` otherwise).
    pub fn create_acls(
        &self,
        acls: impl IntoIterator<Item = AclBinding>,
    ) -> Result<Vec<(AclBinding, Result<()>)>> {
        let acls: Vec<AclBinding> = acls.into_iter().collect();
        let dl = self.deadline(None);
        self.run_items(acls, &dl, &[], |pending| {
            let mut out = Vec::new();
            let mut sent = Vec::new();
            for a in pending {
                match a.validate() {
                    Ok(()) => sent.push(a.clone()),
                    Err(e) => out.push((a.clone(), Answer::Final(Err(e)))),
                }
            }
            if sent.is_empty() {
                return Ok(out);
            }
            let request = CreateAclsRequest {
                creations: sent
                    .iter()
                    .map(|a| AclCreation {
                        resource_type: a.resource_type.as_i8(),
                        resource_name: a.resource_name.clone(),
                        resource_pattern_type: a.pattern_type.as_i8(),
                        principal: a.principal.clone(),
                        host: a.host.clone(),
                        operation: a.operation.as_i8(),
                        permission_type: a.permission_type.as_i8(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let id = self.controller()?;
            let response = self.send_to(id, &request, dl.attempt_timeout())?;
            // Results come in the order of the creations.
            for (a, r) in sent.into_iter().zip(response.results) {
                let result = check(
                    r.error_code,
                    r.error_message.as_deref(),
                    format_args!("creating {a}"),
                );
                out.push((a, Answer::from_result(result, &[])));
            }
            Ok(out)
        })
    }

    /// The ACLs that match `filter`.
    pub fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let dl = self.deadline(None);
        let request = DescribeAclsRequest {
            resource_type_filter: filter.resource_type.as_i8(),
            resource_name_filter: filter.resource_name.clone(),
            pattern_type_filter: filter.pattern_type.as_i8(),
            principal_filter: filter.principal.clone(),
            host_filter: filter.host.clone(),
            operation: filter.operation.as_i8(),
            permission_type: filter.permission_type.as_i8(),
            ..Default::default()
        };
        let response = self.retry(&dl, &[], None, || {
            let id = self.any_broker()?;
            self.send_to(id, &request, dl.attempt_timeout())
        })?;
        check(
            response.error_code,
            response.error_message.as_deref(),
            format_args!("describing ACLs"),
        )?;
        let mut out = Vec::new();
        for r in response.resources {
            for a in r.acls {
                out.push(AclBinding {
                    resource_type: ResourceType::from_i8(r.resource_type),
                    resource_name: r.resource_name.clone(),
                    pattern_type: PatternType::from_i8(r.pattern_type),
                    principal: a.principal,
                    host: a.host,
                    operation: AclOperation::from_i8(a.operation),
                    permission_type: AclPermissionType::from_i8(a.permission_type),
                });
            }
        }
        Ok(out)
    }

    /// Deletes the ACLs matching each filter. Answers per filter with the
    /// ACLs it matched, each with its own result.
    #[allow(clippy::type_complexity)]
    pub fn delete_acls(
        &self,
        filters: impl IntoIterator<Item = AclBindingFilter>,
    ) -> Result<Vec<(AclBindingFilter, Result<Vec<(AclBinding, Result<()>)>>)>> {
        let filters: Vec<AclBindingFilter> = filters.into_iter().collect();
        let dl = self.deadline(None);
        self.run_items(filters, &dl, &[], |pending| {
            let request = DeleteAclsRequest {
                filters: pending
                    .iter()
                    .map(|f| DeleteAclsFilter {
                        resource_type_filter: f.resource_type.as_i8(),
                        resource_name_filter: f.resource_name.clone(),
                        pattern_type_filter: f.pattern_type.as_i8(),
                        principal_filter: f.principal.clone(),
                        host_filter: f.host.clone(),
                        operation: f.operation.as_i8(),
                        permission_type: f.permission_type.as_i8(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let id = self.controller()?;
            let response = self.send_to(id, &request, dl.attempt_timeout())?;
            // Results come in the order of the filters.
            Ok(pending
                .iter()
                .cloned()
                .zip(response.filter_results)
                .map(|(f, r)| {
                    let result = check(
                        r.error_code,
                        r.error_message.as_deref(),
                        format_args!("deleting ACLs"),
                    )
                    .map(|()| {
                        r.matching_acls
                            .into_iter()
                            .map(|m| {
                                let acl = AclBinding {
                                    resource_type: ResourceType::from_i8(m.resource_type),
                                    resource_name: m.resource_name,
                                    pattern_type: PatternType::from_i8(m.pattern_type),
                                    principal: m.principal,
                                    host: m.host,
                                    operation: AclOperation::from_i8(m.operation),
                                    permission_type: AclPermissionType::from_i8(m.permission_type),
                                };
                                let r = check(
                                    m.error_code,
                                    m.error_message.as_deref(),
                                    format_args!("deleting {acl}"),
                                );
                                (acl, r)
                            })
                            .collect()
                    });
                    (f, Answer::from_result(result, &[]))
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for v in 0..=8 {
            let t = ResourceType::from_i8(v);
            if t != ResourceType::Unknown {
                assert_eq!(t.as_i8(), v);
            }
        }
        assert_eq!(ResourceType::from_i8(99), ResourceType::Unknown);
        assert_eq!(PatternType::Prefixed.as_i8(), 4);
        assert_eq!(AclOperation::from_i8(12), AclOperation::IdempotentWrite);
        assert_eq!(AclPermissionType::Allow.as_i8(), 3);
    }

    #[test]
    fn bindings_must_be_concrete() {
        let mut a = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "t".into(),
            pattern_type: PatternType::Literal,
            principal: "User:a".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission_type: AclPermissionType::Allow,
        };
        assert!(a.validate().is_ok());
        a.pattern_type = PatternType::Match;
        assert!(a.validate().is_err());
        let f = AclBindingFilter::for_resource(ResourceType::Topic, "t");
        assert_eq!(f.resource_name.as_deref(), Some("t"));
        assert_eq!(f.operation, AclOperation::Any);
    }
}
