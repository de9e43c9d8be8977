//! Table tests for [`effects_of`] over CloudTrail records in EventBridge envelopes, modelled on the real shapes
//! (trimmed of fields nobody reads), and a property test that no message can make it panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const ACCOUNT: &str = "123456789012";

/// `RegisterTaskDefinition` by a deploy pipeline's assumed-role session, as EventBridge delivers it.
fn register() -> Value {
    json!({
        "version": "0",
        "id": "6f1c2b7e-1d5a-4f0b-9c7e-2b6a0f1e8d3a",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": "2025-03-04T10:15:30Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLEID00000001:deploy-pipeline",
                "arn": "arn:aws:sts::123456789012:assumed-role/Deployer/deploy-pipeline",
                "accountId": ACCOUNT,
                "accessKeyId": "ASIAEXAMPLE000000001",
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": "AROAEXAMPLEID00000001",
                        "arn": "arn:aws:iam::123456789012:role/Deployer",
                        "accountId": ACCOUNT,
                        "userName": "Deployer"
                    },
                    "webIdFederationData": {},
                    "attributes": {"creationDate": "2025-03-04T10:10:00Z", "mfaAuthenticated": "false"}
                }
            },
            "eventTime": "2025-03-04T10:15:30Z",
            "eventSource": "ecs.amazonaws.com",
            "eventName": "RegisterTaskDefinition",
            "awsRegion": "eu-west-1",
            "sourceIPAddress": "203.0.113.10",
            "userAgent": "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe command/ecs.register-task-definition",
            "requestParameters": {
                "family": "web",
                "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec",
                "networkMode": "awsvpc",
                "requiresCompatibilities": ["FARGATE"],
                "cpu": "256",
                "memory": "512",
                "containerDefinitions": [{
                    "name": "web",
                    "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1.4.2",
                    "essential": true,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {"awslogs-group": "/ecs/web", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "web"}
                    }
                }]
            },
            "responseElements": {
                "taskDefinition": {
                    "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7",
                    "family": "web",
                    "revision": 7,
                    "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec",
                    "networkMode": "awsvpc",
                    "status": "ACTIVE",
                    "compatibilities": ["EC2", "FARGATE"],
                    "requiresCompatibilities": ["FARGATE"],
                    "cpu": "256",
                    "memory": "512",
                    "containerDefinitions": [{"name": "web", "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1.4.2"}],
                    "registeredAt": "Mar 4, 2025, 10:15:30 AM",
                    "registeredBy": "arn:aws:sts::123456789012:assumed-role/Deployer/deploy-pipeline"
                },
                "tags": []
            },
            "requestID": "0c6d2f44-7a5b-4f3e-9d0c-1e2f3a4b5c6d",
            "eventID": "8b1f0e2d-3c4b-4a5f-8e6d-7c8b9a0f1e2d",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ecs.eu-west-1.amazonaws.com"}
        }
    })
}

/// `DeregisterTaskDefinition` of `web:6`: the response carries the revision, now INACTIVE.
fn deregister() -> Value {
    let mut event = register();
    edit(
        &mut event,
        "/detail/eventName",
        json!("DeregisterTaskDefinition"),
    );
    edit(
        &mut event,
        "/detail/requestParameters",
        json!({"taskDefinition": "web:6"}),
    );
    edit(
        &mut event,
        "/detail/responseElements",
        json!({"taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:6",
            "family": "web",
            "revision": 6,
            "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec-old",
            "status": "INACTIVE",
            "deregisteredAt": "Mar 4, 2025, 10:20:00 AM"
        }}),
    );
    event
}

/// `DeleteTaskDefinitions` of several INACTIVE revisions: the response lists them, with a failure.
fn delete(roles: &[Option<&str>]) -> Value {
    let mut event = register();
    edit(
        &mut event,
        "/detail/eventName",
        json!("DeleteTaskDefinitions"),
    );
    edit(
        &mut event,
        "/detail/requestParameters",
        json!({"taskDefinitions": ["web:1", "web:2", "worker:3", "gone:9"]}),
    );
    let definitions: Vec<Value> = roles
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let mut td = json!({
                "taskDefinitionArn": format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:{}", i + 1),
                "status": "DELETE_IN_PROGRESS"
            });
            if let Some(role) = role {
                td["executionRoleArn"] = json!(role);
            }
            td
        })
        .collect();
    edit(
        &mut event,
        "/detail/responseElements",
        json!({"taskDefinitions": definitions, "failures": [{"arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/gone:9", "reason": "TASK_DEFINITION_NOT_FOUND"}]}),
    );
    event
}

/// `PutRolePolicy` by a console user: IAM records arrive through us-east-1.
fn put_role_policy() -> Value {
    json!({
        "version": "0",
        "id": "1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": ACCOUNT,
        "time": "2025-03-04T11:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE000000001",
                "arn": "arn:aws:iam::123456789012:user/alice",
                "accountId": ACCOUNT,
                "accessKeyId": "ASIAEXAMPLE000000002",
                "userName": "alice",
                "sessionContext": {"attributes": {"creationDate": "2025-03-04T09:00:00Z", "mfaAuthenticated": "true"}}
            },
            "eventTime": "2025-03-04T11:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "PutRolePolicy",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "AWS Internal",
            "userAgent": "AWS Internal",
            "requestParameters": {
                "roleName": "web-exec",
                "policyName": "extra",
                "policyDocument": "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}]\n}"
            },
            "responseElements": null,
            "requestID": "9f8e7d6c-5b4a-4321-8fed-cba987654321",
            "eventID": "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
            "sessionCredentialFromConsole": "true"
        }
    })
}

/// The controller's own `PutRolePolicy` through the Rust SDK from an assumed-role session named `execrole`.
fn own_put_role_policy() -> Value {
    let mut event = put_role_policy();
    edit(
        &mut event,
        "/detail/userIdentity",
        json!({
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEID00000002:execrole",
            "arn": "arn:aws:sts::123456789012:assumed-role/execrole-target/execrole",
            "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::123456789012:role/execrole-target"}}
        }),
    );
    edit(
        &mut event,
        "/detail/userAgent",
        json!(
            "aws-sdk-rust/1.3.9 ua/2.1 api/iam/1.133.0 os/linux lang/rust/1.95.0 m/E,b app/execrole"
        ),
    );
    event
}

fn own() -> OwnWrites {
    OwnWrites {
        session_names: vec!["execrole".into()],
        user_agent_marker: USER_AGENT_MARKER.into(),
    }
}

/// Set the value at a JSON pointer, creating nothing: the pointer's parent must exist.
fn edit(event: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    let target = if parent.is_empty() {
        event
    } else {
        event.pointer_mut(parent).expect("the parent exists")
    };
    target
        .as_object_mut()
        .expect("the parent is an object")
        .insert(key.to_string(), value);
}

/// Remove the value at a JSON pointer.
fn remove(event: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
    let target = if parent.is_empty() {
        event
    } else {
        event.pointer_mut(parent).expect("the parent exists")
    };
    target
        .as_object_mut()
        .expect("the parent is an object")
        .remove(key);
}

fn effects(event: &Value, own: &OwnWrites) -> Result<Vec<EventEffect>, EventError> {
    effects_of(&event.to_string(), own)
}

fn role(name: &str) -> RoleKey {
    RoleKey {
        account: ACCOUNT.into(),
        name: name.into(),
    }
}

fn sweep(region: &str, role_name: Option<&str>) -> EventEffect {
    EventEffect::Sweep {
        account: ACCOUNT.into(),
        region: region.into(),
        role: role_name.map(role),
    }
}

#[test]
fn task_definition_calls_sweep_the_region_and_name_the_execution_role() {
    let register_without_response = {
        let mut event = register();
        edit(&mut event, "/detail/responseElements", Value::Null);
        event
    };
    let register_without_any_role = {
        let mut event = register();
        remove(
            &mut event,
            "/detail/responseElements/taskDefinition/executionRoleArn",
        );
        remove(&mut event, "/detail/requestParameters/executionRoleArn");
        event
    };
    let deregister_without_response = {
        let mut event = deregister();
        remove(&mut event, "/detail/responseElements");
        event
    };
    let cases: Vec<(&str, Value, Vec<EventEffect>)> = vec![
        (
            "register names the response's role",
            register(),
            vec![sweep("eu-west-1", Some("web-exec"))],
        ),
        (
            "register without a response falls back to the request's role",
            register_without_response,
            vec![sweep("eu-west-1", Some("web-exec"))],
        ),
        (
            "register without a role sweeps without one",
            register_without_any_role,
            vec![sweep("eu-west-1", None)],
        ),
        (
            "deregister names the revision's role",
            deregister(),
            vec![sweep("eu-west-1", Some("web-exec-old"))],
        ),
        (
            "deregister without a response sweeps without a role (the request names no role)",
            deregister_without_response,
            vec![sweep("eu-west-1", None)],
        ),
        (
            "delete yields one sweep per distinct role, sorted",
            delete(&[
                Some("arn:aws:iam::123456789012:role/worker-exec"),
                Some("arn:aws:iam::123456789012:role/ecs/web-exec"),
                Some("arn:aws:iam::123456789012:role/worker-exec"),
                None,
            ]),
            vec![
                sweep("eu-west-1", Some("web-exec")),
                sweep("eu-west-1", Some("worker-exec")),
            ],
        ),
        (
            "delete of revisions without roles sweeps without one",
            delete(&[None, None]),
            vec![sweep("eu-west-1", None)],
        ),
        (
            "delete with an empty response sweeps without a role",
            delete(&[]),
            vec![sweep("eu-west-1", None)],
        ),
    ];
    for (name, event, want) in cases {
        assert_eq!(effects(&event, &own()), Ok(want), "{name}");
    }
}

#[test]
fn roles_in_other_accounts_or_that_are_not_role_arns_are_left_out_of_the_sweep() {
    let cases = [
        "arn:aws:iam::210987654321:role/web-exec",
        "web-exec",
        "arn:aws:iam::123456789012:user/web-exec",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:sts::123456789012:assumed-role/web-exec/x",
        "",
    ];
    for arn in cases {
        let mut event = register();
        edit(
            &mut event,
            "/detail/responseElements/taskDefinition/executionRoleArn",
            json!(arn),
        );
        edit(
            &mut event,
            "/detail/requestParameters/executionRoleArn",
            json!(arn),
        );
        assert_eq!(
            effects(&event, &own()),
            Ok(vec![sweep("eu-west-1", None)]),
            "{arn}"
        );
    }
    let mixed = delete(&[
        Some("arn:aws:iam::210987654321:role/foreign-exec"),
        Some("arn:aws:iam::123456789012:role/web-exec"),
    ]);
    assert_eq!(
        effects(&mixed, &own()),
        Ok(vec![sweep("eu-west-1", Some("web-exec"))])
    );
}

#[test]
fn roles_in_other_partitions_keep_their_account_and_name() {
    let mut event = register();
    edit(&mut event, "/region", json!("cn-north-1"));
    edit(
        &mut event,
        "/detail/responseElements/taskDefinition/executionRoleArn",
        json!("arn:aws-cn:iam::123456789012:role/web-exec"),
    );
    assert_eq!(
        effects(&event, &own()),
        Ok(vec![sweep("cn-north-1", Some("web-exec"))])
    );
}

#[test]
fn account_and_region_fall_back_to_the_cloudtrail_record() {
    let mut event = register();
    remove(&mut event, "/account");
    remove(&mut event, "/region");
    edit(&mut event, "/detail/awsRegion", json!("ap-southeast-2"));
    assert_eq!(
        effects(&event, &own()),
        Ok(vec![sweep("ap-southeast-2", Some("web-exec"))])
    );

    // The envelope wins over the record when both are there.
    let mut event = register();
    edit(&mut event, "/detail/awsRegion", json!("us-west-2"));
    assert_eq!(
        effects(&event, &own()),
        Ok(vec![sweep("eu-west-1", Some("web-exec"))])
    );
}

#[test]
fn iam_role_calls_by_another_principal_reconcile_the_role() {
    for event_name in IAM_EVENT_NAMES {
        let mut event = put_role_policy();
        edit(&mut event, "/detail/eventName", json!(event_name));
        assert_eq!(
            effects(&event, &own()),
            Ok(vec![EventEffect::Role(role("web-exec"))]),
            "{event_name}"
        );
    }
    // An IAM call forwarded from another account names a role in that account.
    let mut event = put_role_policy();
    edit(&mut event, "/account", json!("210987654321"));
    assert_eq!(
        effects(&event, &own()),
        Ok(vec![EventEffect::Role(RoleKey {
            account: "210987654321".into(),
            name: "web-exec".into()
        })])
    );
}

#[test]
fn the_controllers_own_writes_are_ignored() {
    let by_agent_only = {
        let mut event = own_put_role_policy();
        edit(
            &mut event,
            "/detail/userIdentity/arn",
            json!("arn:aws:sts::123456789012:assumed-role/execrole-task/3f2a9c1e0b"),
        );
        event
    };
    let by_session_only = {
        let mut event = own_put_role_policy();
        edit(
            &mut event,
            "/detail/userAgent",
            json!("aws-sdk-rust/1.3.9 ua/2.1 api/iam/1.133.0 os/linux lang/rust/1.95.0"),
        );
        event
    };
    let agent_in_brackets = {
        let mut event = put_role_policy();
        edit(
            &mut event,
            "/detail/userAgent",
            json!("[aws-sdk-rust/1.3.9 api/iam/1.133.0 app/execrole]"),
        );
        event
    };
    let own_register = {
        let mut event = register();
        edit(
            &mut event,
            "/detail/userAgent",
            json!("aws-sdk-rust/1.3.9 api/ecs/1.157.0 app/execrole"),
        );
        event
    };
    let cases = [
        ("user agent and session", own_put_role_policy()),
        (
            "user agent alone (the controller's task role, no assumed session)",
            by_agent_only,
        ),
        ("session name alone", by_session_only),
        ("user agent token in brackets", agent_in_brackets),
        ("an ECS call with our user agent", own_register),
    ];
    for (name, event) in cases {
        assert_eq!(effects(&event, &own()), Ok(vec![]), "{name}");
    }
}

#[test]
fn near_misses_of_our_own_writes_are_not_ignored() {
    let with_agent = |agent: &str| {
        let mut event = put_role_policy();
        edit(&mut event, "/detail/userAgent", json!(agent));
        event
    };
    let with_arn = |arn: &str| {
        let mut event = put_role_policy();
        edit(&mut event, "/detail/userIdentity/arn", json!(arn));
        event
    };
    let without_identity = {
        let mut event = put_role_policy();
        remove(&mut event, "/detail/userIdentity");
        remove(&mut event, "/detail/userAgent");
        event
    };
    let cases = [
        (
            "a longer app name",
            with_agent("aws-sdk-rust/1.3.9 app/execrole-test"),
            own(),
        ),
        (
            "the marker inside another token",
            with_agent("aws-sdk-rust/1.3.9 myapp/execrole"),
            own(),
        ),
        (
            "another session name",
            with_arn("arn:aws:sts::123456789012:assumed-role/execrole-target/alice"),
            own(),
        ),
        (
            "our session name as a role name",
            with_arn("arn:aws:sts::123456789012:assumed-role/execrole/alice"),
            own(),
        ),
        (
            "an IAM user named like our session",
            with_arn("arn:aws:iam::123456789012:user/execrole"),
            own(),
        ),
        ("no identity and no user agent", without_identity, own()),
        (
            "an empty marker matches nothing",
            with_agent("anything"),
            OwnWrites::default(),
        ),
    ];
    for (name, event, own) in cases {
        assert_eq!(
            effects(&event, &own),
            Ok(vec![EventEffect::Role(role("web-exec"))]),
            "{name}"
        );
    }
}

#[test]
fn failed_calls_are_ignored() {
    let mut register_failed = register();
    edit(
        &mut register_failed,
        "/detail/errorCode",
        json!("ClientException"),
    );
    edit(
        &mut register_failed,
        "/detail/errorMessage",
        json!("Role is not valid"),
    );
    edit(
        &mut register_failed,
        "/detail/responseElements",
        Value::Null,
    );
    let mut put_denied = put_role_policy();
    edit(&mut put_denied, "/detail/errorCode", json!("AccessDenied"));
    edit(
        &mut put_denied,
        "/detail/errorMessage",
        json!(
            "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: iam:PutRolePolicy"
        ),
    );
    // A failed call may lack what a successful one always has.
    remove(&mut put_denied, "/detail/requestParameters");
    for event in [register_failed, put_denied] {
        assert_eq!(effects(&event, &own()), Ok(vec![]), "{event}");
    }
}

#[test]
fn calls_and_services_we_do_not_watch_are_ignored() {
    let with = |base: Value, pointer: &str, value: Value| {
        let mut event = base;
        edit(&mut event, pointer, value);
        event
    };
    let cases = [
        with(
            register(),
            "/detail/eventName",
            json!("DescribeTaskDefinition"),
        ),
        with(register(), "/detail/eventName", json!("UpdateService")),
        with(
            put_role_policy(),
            "/detail/eventName",
            json!("CreatePolicyVersion"),
        ),
        with(
            put_role_policy(),
            "/detail/eventName",
            json!("DeletePolicy"),
        ),
        with(
            put_role_policy(),
            "/detail/eventName",
            json!("PutUserPolicy"),
        ),
        with(register(), "/source", json!("aws.s3")),
        with(register(), "/source", json!("com.example.custom")),
    ];
    for event in cases {
        assert_eq!(effects(&event, &own()), Ok(vec![]), "{event}");
    }
}

#[test]
fn messages_that_are_not_readable_api_call_events_are_errors_with_a_bounded_reason() {
    let edited = |base: Value, pointer: &str, value: Value| {
        let mut event = base;
        edit(&mut event, pointer, value);
        event.to_string()
    };
    let removed = |base: Value, pointer: &str| {
        let mut event = base;
        remove(&mut event, pointer);
        event.to_string()
    };
    let sns = json!({
        "Type": "Notification",
        "MessageId": "c1d2e3f4-0000-4000-8000-000000000000",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:events",
        "Message": register().to_string()
    })
    .to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty body", String::new(), "not_json"),
        (
            "truncated JSON",
            register().to_string()[..200].to_string(),
            "not_json",
        ),
        ("plain text", "hello".into(), "not_json"),
        ("a JSON array", "[1,2]".into(), "not_an_api_call"),
        ("a JSON string", r#""aws.ecs""#.into(), "not_an_api_call"),
        ("an SNS notification", sns, "not_an_api_call"),
        ("an empty object", "{}".into(), "not_an_api_call"),
        (
            "another detail-type",
            edited(register(), "/detail-type", json!("ECS Task State Change")),
            "not_an_api_call",
        ),
        (
            "no detail",
            removed(register(), "/detail"),
            "not_an_api_call",
        ),
        (
            "a null detail",
            edited(register(), "/detail", Value::Null),
            "not_an_api_call",
        ),
        ("no source", removed(register(), "/source"), "missing_field"),
        (
            "no event name",
            removed(register(), "/detail/eventName"),
            "missing_field",
        ),
        (
            "no account anywhere",
            removed(
                removed_value(register(), "/detail/recipientAccountId"),
                "/account",
            ),
            "missing_field",
        ),
        (
            "no role name",
            removed(put_role_policy(), "/detail/requestParameters/roleName"),
            "missing_field",
        ),
        (
            "no request parameters",
            removed(put_role_policy(), "/detail/requestParameters"),
            "missing_field",
        ),
        (
            "an account that is not 12 digits",
            edited(register(), "/account", json!("12345")),
            "invalid_field",
        ),
        (
            "a region that is not a Region",
            edited(register(), "/region", json!("EU West")),
            "invalid_field",
        ),
        (
            "an empty region",
            edited(register(), "/region", json!("")),
            "invalid_field",
        ),
        (
            "a role name IAM cannot hold",
            edited(
                put_role_policy(),
                "/detail/requestParameters/roleName",
                json!("web/exec"),
            ),
            "invalid_field",
        ),
        (
            "a numeric account",
            edited(register(), "/account", json!(123456789012_u64)),
            "invalid_field",
        ),
        (
            "a user agent that is not a string",
            edited(register(), "/detail/userAgent", json!(["x"])),
            "invalid_field",
        ),
        (
            "a task definition that is not an object",
            edited(
                register(),
                "/detail/responseElements/taskDefinition",
                json!("web:7"),
            ),
            "invalid_field",
        ),
        (
            "a role name that is not a string",
            edited(
                put_role_policy(),
                "/detail/requestParameters/roleName",
                json!(7),
            ),
            "invalid_field",
        ),
    ];
    for (name, body, reason) in cases {
        match effects_of(&body, &own()) {
            Err(err) => assert_eq!(err.reason(), reason, "{name}: {err}"),
            Ok(effects) => panic!("{name}: expected {reason}, got {effects:?}"),
        }
    }
}

#[test]
fn a_body_larger_than_any_eventbridge_event_is_refused_before_parsing() {
    // Found by the fuzzing harness: 2 MiB of deeply nested JSON became 192 MiB of parsed values.
    let body = register().to_string();
    let at_limit = format!("{body}{}", " ".repeat(MAX_EVENT_BYTES - body.len()));
    assert!(effects_of(&at_limit, &own()).is_ok());

    let over = format!("{at_limit} ");
    let err = effects_of(&over, &own()).unwrap_err();
    assert_eq!(err, EventError::TooLarge(MAX_EVENT_BYTES + 1));
    assert_eq!(err.reason(), "too_large");
    assert_eq!(
        err.to_string(),
        format!(
            "the message is {} bytes; an EventBridge event is at most 256 KiB",
            MAX_EVENT_BYTES + 1
        )
    );
}

fn removed_value(base: Value, pointer: &str) -> Value {
    let mut event = base;
    remove(&mut event, pointer);
    event
}

#[test]
fn errors_name_the_field_that_is_wrong() {
    let mut event = register();
    edit(
        &mut event,
        "/detail/responseElements/taskDefinition/executionRoleArn",
        json!(42),
    );
    let err = effects(&event, &own()).unwrap_err();
    assert_eq!(
        err,
        EventError::InvalidField {
            field: "detail.responseElements.taskDefinition.executionRoleArn".into(),
            message: "invalid type: integer `42`, expected a string".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "the event's `detail.responseElements.taskDefinition.executionRoleArn` is invalid: invalid type: integer `42`, expected a string"
    );

    let mut event = put_role_policy();
    edit(
        &mut event,
        "/detail/requestParameters/roleName",
        json!("x".repeat(300)),
    );
    let text = effects(&event, &own()).unwrap_err().to_string();
    assert!(text.len() < 250, "long values are cut in messages: {text}");
}

#[test]
fn effects_sort_by_kind_then_key() {
    let mut effects = vec![
        EventEffect::Role(role("b")),
        sweep("us-east-1", Some("a")),
        sweep("eu-west-1", None),
        EventEffect::Role(role("a")),
    ];
    effects.sort();
    assert_eq!(
        effects,
        vec![
            sweep("eu-west-1", None),
            sweep("us-east-1", Some("a")),
            EventEffect::Role(role("a")),
            EventEffect::Role(role("b")),
        ]
    );
}

proptest! {
    #[test]
    fn effects_of_never_panics_on_arbitrary_text(body in any::<String>()) {
        let _ = effects_of(&body, &own());
    }

    #[test]
    fn effects_of_never_panics_on_envelopes_with_arbitrary_values(
        account in prop_oneof![Just(ACCOUNT.to_string()), "[0-9]{12}", any::<String>()],
        region in prop_oneof![Just("eu-west-1".to_string()), "[a-z0-9-]{0,40}", any::<String>()],
        event_name in prop::sample::select(vec![
            "RegisterTaskDefinition", "DeregisterTaskDefinition", "DeleteTaskDefinitions", "PutRolePolicy", "TagRole", "Other",
        ]),
        source in prop::sample::select(vec!["aws.ecs", "aws.iam", "aws.s3"]),
        role_text in prop_oneof![
            "arn:aws:iam::[0-9]{12}:role/[a-z/]{0,20}",
            "[a-zA-Z0-9+=,.@_/-]{0,70}",
            any::<String>(),
        ],
        user_agent in prop_oneof!["[a-z /.-]{0,10}app/execrole[a-z /.-]{0,10}", any::<String>()],
        identity_arn in prop_oneof![
            "arn:aws:sts::[0-9]{12}:assumed-role/[a-z]{1,8}/(execrole|[a-z/]{0,8})",
            any::<String>(),
        ],
    ) {
        let mut event = register();
        edit(&mut event, "/account", json!(account));
        edit(&mut event, "/region", json!(region));
        edit(&mut event, "/source", json!(source));
        edit(&mut event, "/detail/eventName", json!(event_name));
        edit(&mut event, "/detail/userAgent", json!(user_agent));
        edit(&mut event, "/detail/userIdentity/arn", json!(identity_arn));
        edit(&mut event, "/detail/requestParameters/roleName", json!(role_text.clone()));
        edit(&mut event, "/detail/responseElements/taskDefinition/executionRoleArn", json!(role_text));
        if let Ok(effects) = effects(&event, &own()) {
            for effect in effects {
                let account = match &effect {
                    EventEffect::Sweep { account, role, .. } => {
                        prop_assert!(role.as_ref().is_none_or(|r| &r.account == account));
                        account
                    }
                    EventEffect::Role(key) => &key.account,
                };
                prop_assert!(is_account_id(account));
            }
        }
    }
}
