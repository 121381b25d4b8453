//! ACLs against the secured broker (`KAFKA_SASL_BOOTSTRAP_SERVERS`, a
//! SASL_PLAINTEXT listener with PLAIN, an authorizer, and
//! `KAFKA_SASL_USERNAME` a super user there). Compiled only with the
//! `kafka_sasl` cfg (build.rs); the second-user test also needs
//! `KAFKA_SASL_USERNAME2`/`KAFKA_SASL_PASSWORD2`, a user with no rights.

use std::time::{Duration, Instant};

use kafka_blocking::admin::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, ConfigResource,
    NewTopic, PatternType, ResourceType,
};
use kafka_blocking::protocol::ErrorCode;

use crate::harness::unique_topic;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} must be set with KAFKA_SASL_BOOTSTRAP_SERVERS"))
}

/// An admin client on the SASL listener as `user`.
fn sasl_admin(user: &str, password: &str) -> AdminClient {
    AdminClient::builder()
        .bootstrap_servers(env("KAFKA_SASL_BOOTSTRAP_SERVERS"))
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism("PLAIN")
        .sasl_plain_username(user)
        .sasl_plain_password(password)
        .client_id("it-sasl-admin")
        .request_timeout_ms(15_000)
        .default_api_timeout_ms(10_000)
        .build()
        .expect("SASL admin client")
}

fn super_admin() -> AdminClient {
    sasl_admin(&env("KAFKA_SASL_USERNAME"), &env("KAFKA_SASL_PASSWORD"))
}

/// Waits (bounded) until `f` holds: ACLs reach every broker's cache a
/// moment after CreateAcls answers.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 15 s");
}

fn acl(
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: AclOperation,
) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: name.to_owned(),
        pattern_type,
        principal: principal.to_owned(),
        host: "*".into(),
        operation,
        permission_type: AclPermissionType::Allow,
    }
}

#[test]
fn sasl_acls_create_describe_with_filters_and_delete() {
    let a = super_admin();
    let name = unique_topic("sasl-acl");
    let principal = format!("User:{}", unique_topic("nobody"));
    let literal = acl(&name, PatternType::Literal, &principal, AclOperation::Read);
    let prefixed = acl(
        &name,
        PatternType::Prefixed,
        &principal,
        AclOperation::Write,
    );
    for (b, r) in a
        .create_acls([literal.clone(), prefixed.clone()])
        .expect("create_acls")
    {
        r.unwrap_or_else(|e| panic!("{b}: {e}"));
    }
    let by_principal = AclBindingFilter {
        principal: Some(principal.clone()),
        ..AclBindingFilter::any()
    };
    eventually("both ACLs described", || {
        a.describe_acls(&by_principal)
            .is_ok_and(|l| l.contains(&literal) && l.contains(&prefixed) && l.len() == 2)
    });
    // Filters: by pattern type, and by operation.
    let literal_only = AclBindingFilter {
        pattern_type: PatternType::Literal,
        ..by_principal.clone()
    };
    assert_eq!(
        a.describe_acls(&literal_only).expect("describe"),
        vec![literal.clone()]
    );
    let writes = AclBindingFilter {
        operation: AclOperation::Write,
        ..by_principal.clone()
    };
    assert_eq!(
        a.describe_acls(&writes).expect("describe"),
        vec![prefixed.clone()]
    );
    // Match: what applies to a topic named `<name>-x` is the prefixed ACL.
    let applies = AclBindingFilter {
        resource_type: ResourceType::Topic,
        resource_name: Some(format!("{name}-x")),
        pattern_type: PatternType::Match,
        ..by_principal.clone()
    };
    assert_eq!(
        a.describe_acls(&applies).expect("describe"),
        vec![prefixed.clone()]
    );

    let deleted = a.delete_acls([literal_only]).expect("delete_acls");
    let matched = deleted[0].1.as_ref().expect("deleted");
    assert_eq!(matched.len(), 1, "{matched:?}");
    assert!(
        matched[0].0 == literal && matched[0].1.is_ok(),
        "{matched:?}"
    );
    eventually("only the prefixed ACL left", || {
        a.describe_acls(&by_principal)
            .is_ok_and(|l| l == vec![prefixed.clone()])
    });
    let deleted = a.delete_acls([by_principal.clone()]).expect("delete_acls");
    assert_eq!(deleted[0].1.as_ref().expect("deleted").len(), 1);
}

#[test]
#[cfg_attr(
    not(kafka_sasl_user2),
    ignore = "needs a second SASL user with no rights: set KAFKA_SASL_USERNAME2 and KAFKA_SASL_PASSWORD2"
)]
fn sasl_a_user_without_rights_is_denied_until_an_acl_grants() {
    let a = super_admin();
    let user2 = env("KAFKA_SASL_USERNAME2");
    let b = sasl_admin(&user2, &env("KAFKA_SASL_PASSWORD2"));
    let topic = unique_topic("sasl-denied");
    a.create_topics([NewTopic::new(&topic, 1, 1)], false, None)
        .expect("create_topics")[0]
        .1
        .as_ref()
        .expect("created");

    // Denied: the typed authorization error, naming the topic.
    let r = b
        .describe_configs([ConfigResource::topic(&topic)], false, false)
        .expect("describe_configs answers per resource");
    let e = r[0]
        .1
        .as_ref()
        .expect_err("user2 has no rights on the topic");
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED),
        "{e}"
    );
    assert!(e.to_string().contains(&topic), "{e}");

    // Granted by an ACL the test creates: the same call succeeds.
    let grant = acl(
        &topic,
        PatternType::Literal,
        &format!("User:{user2}"),
        AclOperation::DescribeConfigs,
    );
    a.create_acls([grant.clone()]).expect("create_acls")[0]
        .1
        .as_ref()
        .expect("created");
    eventually("user2 may describe the topic's configs", || {
        b.describe_configs([ConfigResource::topic(&topic)], false, false)
            .is_ok_and(|r| r[0].1.is_ok())
    });
    a.delete_acls([grant.to_filter()]).expect("delete_acls");
    a.delete_topics([topic], None).expect("delete_topics");
}
