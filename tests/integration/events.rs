//! Event-driven convergence against the emulator: the SQS adapter receives and deletes (in chunks of ten), and an
//! EventBridge rule with the documented patterns (deploy/events.md) routes CloudTrail-shaped API-call events to
//! the queue, where `events::effects_of` maps them. moto emits no CloudTrail events for ECS or IAM calls, so the
//! tests put them on the bus with `PutEvents`, as the workload accounts' forwarding rules would.

use std::sync::Arc;
use std::time::Duration;

use execrole::aws::{EventQueue, QueueMessage};
use execrole::events::{self, EventEffect, OwnWrites};
use execrole::metrics::Metrics;
use execrole::model::RoleKey;
use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(1);

pub(crate) async fn sqs(moto: &Moto) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&moto.sdk_config().await)
}

pub(crate) async fn eventbridge(moto: &Moto) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&moto.sdk_config().await)
}

/// Create a queue; returns its URL and ARN.
pub(crate) async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_string();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("get queue attributes");
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue arn")
        .clone();
    (url, arn)
}

/// Messages visible plus in flight, as the queue counts them.
async fn messages_left(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("get queue attributes");
    let attributes = out.attributes().expect("attributes");
    [
        Name::ApproximateNumberOfMessages,
        Name::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|name| {
        attributes
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .expect("a count")
    })
    .sum()
}

/// Receive until `count` messages arrived (each long poll waits at most [`WAIT`]), or ten polls passed.
async fn receive_at_least(queue: &dyn EventQueue, count: usize) -> Vec<QueueMessage> {
    let mut messages = Vec::new();
    for _poll in 0..10 {
        if messages.len() >= count {
            break;
        }
        messages.extend(queue.receive(WAIT, 10).await.expect("receive"));
    }
    messages
}

#[tokio::test]
async fn the_queue_adapter_receives_and_deletes_messages_in_chunks_of_ten() {
    let moto = Moto::start();
    let sqs = sqs(&moto).await;
    let (url, _) = create_queue(&sqs, "execrole-events").await;
    let bodies: Vec<String> = (0..12).map(|i| format!("{{\"n\":{i}}}")).collect();
    for body in &bodies {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .expect("send message");
    }

    let metrics = Arc::new(Metrics::new());
    let queue = moto
        .factory(metrics.clone())
        .await
        .event_queue(&url, REGION);
    let messages = receive_at_least(queue.as_ref(), bodies.len()).await;
    let mut got: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
    got.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(messages.iter().all(|m| !m.receipt_handle.is_empty()));

    let handles: Vec<String> = messages.iter().map(|m| m.receipt_handle.clone()).collect();
    queue.delete(&handles).await.expect("delete");
    assert_eq!(
        metrics.aws_requests("sqs", "DeleteMessageBatch", "success"),
        2
    );
    assert_eq!(messages_left(&sqs, &url).await, 0);
    assert_eq!(queue.receive(Duration::ZERO, 10).await, Ok(vec![]));
    // Nothing to delete sends nothing.
    queue.delete(&[]).await.expect("delete nothing");
    assert_eq!(
        metrics.aws_requests("sqs", "DeleteMessageBatch", "success"),
        2
    );
}

#[tokio::test]
async fn refused_receipts_are_reported_together_after_every_chunk_was_tried() {
    let moto = Moto::start();
    let sqs = sqs(&moto).await;
    let (url, _) = create_queue(&sqs, "execrole-events").await;
    for i in 0..11 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .expect("send message");
    }
    let metrics = Arc::new(Metrics::new());
    let queue = moto
        .factory(metrics.clone())
        .await
        .event_queue(&url, REGION);
    let mut handles: Vec<String> = receive_at_least(queue.as_ref(), 11)
        .await
        .into_iter()
        .map(|m| m.receipt_handle)
        .collect();
    assert_eq!(handles.len(), 11);
    handles.insert(3, "not-a-receipt-handle".into());

    let err = queue
        .delete(&handles)
        .await
        .expect_err("one handle is refused");
    assert_eq!(err.kind, execrole::aws::ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.code.as_deref(), Some("ReceiptHandleIsInvalid"), "{err}");
    assert!(
        err.message
            .starts_with("1 of 12 messages were not deleted: #3: ReceiptHandleIsInvalid"),
        "{err}"
    );
    // The rest of the first chunk and the whole second chunk were deleted.
    assert_eq!(
        metrics.aws_requests("sqs", "DeleteMessageBatch", "success"),
        2
    );
    assert_eq!(messages_left(&sqs, &url).await, 0);
}

#[tokio::test]
async fn receiving_from_a_missing_queue_is_a_terminal_not_found_error() {
    let moto = Moto::start();
    let metrics = Arc::new(Metrics::new());
    let queue = moto.factory(metrics.clone()).await.event_queue(
        &format!("{}/{ACCOUNT}/no-such-queue", moto.endpoint),
        REGION,
    );
    let err = queue.receive(WAIT, 10).await.expect_err("no such queue");
    assert_eq!(err.kind, execrole::aws::ErrorKind::NotFound, "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.service, "sqs");
    assert_eq!(err.operation, "ReceiveMessage");
}

/// A CloudTrail record of an API call as `detail` of an EventBridge event.
pub(crate) fn cloudtrail_record(
    event_source: &str,
    event_name: &str,
    user_agent: &str,
    request: Value,
    response: Value,
) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEID00000001:deploy-pipeline",
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/deploy-pipeline"),
            "accountId": ACCOUNT
        },
        "eventTime": "2025-03-04T10:15:30Z",
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": response,
        "requestID": "0c6d2f44-7a5b-4f3e-9d0c-1e2f3a4b5c6d",
        "eventID": "8b1f0e2d-3c4b-4a5f-8e6d-7c8b9a0f1e2d",
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
}

pub(crate) fn entry(
    source: &str,
    detail: &Value,
) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(source)
        .detail_type(events::API_CALL_DETAIL_TYPE)
        .detail(detail.to_string())
        .build()
}

/// The rule pattern of deploy/events.md and of both CloudFormation templates: the API calls `effects_of` maps,
/// successful ones only.
/// The ops account's rule of deploy/events.md: the API calls `effects_of` maps, to the queue.
pub(crate) async fn route_api_calls(bus: &aws_sdk_eventbridge::Client, queue_arn: &str) {
    bus.put_rule()
        .name("execrole-api-calls")
        .event_pattern(api_call_pattern())
        .send()
        .await
        .expect("put rule");
    bus.put_targets()
        .rule("execrole-api-calls")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("execrole-events")
                .arn(queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");
}

pub(crate) fn api_call_pattern() -> String {
    let names: Vec<&str> = events::ECS_EVENT_NAMES
        .iter()
        .chain(events::IAM_EVENT_NAMES.iter())
        .copied()
        .collect();
    json!({
        "source": ["aws.ecs", "aws.iam"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["ecs.amazonaws.com", "iam.amazonaws.com"],
            "eventName": names,
            "errorCode": [{"exists": false}]
        }
    })
    .to_string()
}

#[test]
fn the_templates_rules_match_every_api_call_that_events_map() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for template in [
        "deploy/cloudformation/controller.yaml",
        "deploy/cloudformation/workload-role.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(template)).expect("read the template");
        for name in events::ECS_EVENT_NAMES
            .iter()
            .chain(events::IAM_EVENT_NAMES.iter())
        {
            assert!(
                text.contains(&format!("            - {name}\n")),
                "{template} does not match {name}"
            );
        }
        for line in [
            "source: [aws.ecs, aws.iam]",
            "detail-type: [AWS API Call via CloudTrail]",
            "eventSource: [ecs.amazonaws.com, iam.amazonaws.com]",
            "errorCode: [{ exists: false }]",
        ] {
            assert!(text.contains(line), "{template} lacks {line}");
        }
    }
}

#[tokio::test]
async fn eventbridge_routes_matching_api_calls_to_the_queue_and_they_map_to_effects() {
    let moto = Moto::start();
    let sqs = sqs(&moto).await;
    let bus = eventbridge(&moto).await;
    let (url, queue_arn) = create_queue(&sqs, "execrole-events").await;
    route_api_calls(&bus, &queue_arn).await;

    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/web-exec");
    let cli = "aws-cli/2.15.30 ua/2.0 os/linux#6.1.0 lang/python#3.11.8 command/ecs.register-task-definition";
    let register = cloudtrail_record(
        "ecs.amazonaws.com",
        "RegisterTaskDefinition",
        cli,
        json!({"family": "web", "executionRoleArn": role_arn, "containerDefinitions": [{"name": "web", "image": "nginx"}]}),
        json!({"taskDefinition": {
            "taskDefinitionArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"),
            "family": "web",
            "revision": 7,
            "executionRoleArn": role_arn,
            "status": "ACTIVE"
        }}),
    );
    let describe = cloudtrail_record(
        "ecs.amazonaws.com",
        "DescribeTaskDefinition",
        cli,
        json!({"taskDefinition": "web:7"}),
        Value::Null,
    );
    let mut register_failed = register.clone();
    register_failed["errorCode"] = json!("ClientException");
    register_failed["errorMessage"] = json!("Container.image should not be null or empty.");
    register_failed["responseElements"] = Value::Null;
    let put_by_alice = cloudtrail_record(
        "iam.amazonaws.com",
        "PutRolePolicy",
        "AWS Internal",
        json!({"roleName": "web-exec", "policyName": "extra", "policyDocument": "{}"}),
        Value::Null,
    );
    let put_by_us = cloudtrail_record(
        "iam.amazonaws.com",
        "PutRolePolicy",
        "aws-sdk-rust/1.3.9 ua/2.1 api/iam/1.133.0 os/linux lang/rust/1.95.0 app/execrole",
        json!({"roleName": "web-exec", "policyName": "execrole", "policyDocument": "{}"}),
        Value::Null,
    );
    let out = bus
        .put_events()
        .entries(entry("aws.ecs", &register))
        .entries(entry("aws.ecs", &describe))
        .entries(entry("aws.ecs", &register_failed))
        .entries(entry("aws.iam", &put_by_alice))
        .entries(entry("aws.iam", &put_by_us))
        .send()
        .await
        .expect("put events (moto accepts the aws.* sources that AWS reserves)");
    assert_eq!(out.failed_entry_count(), 0, "{out:?}");

    let metrics = Arc::new(Metrics::new());
    let queue = moto.factory(metrics).await.event_queue(&url, REGION);
    // DescribeTaskDefinition and the failed call do not match the rule: three messages arrive, and no more.
    let messages = receive_at_least(queue.as_ref(), 3).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(queue.receive(Duration::ZERO, 10).await, Ok(vec![]));

    // What arrives is the envelope around the detail we put. moto 5.2.5 leaves out `account` (AWS sends it):
    // effects_of falls back to the record's `recipientAccountId`, which this test therefore covers.
    let envelope: Value = serde_json::from_str(&messages[0].body).expect("a JSON envelope");
    for field in [
        "version",
        "id",
        "detail-type",
        "source",
        "time",
        "region",
        "resources",
        "detail",
    ] {
        assert!(
            envelope.get(field).is_some(),
            "{field} in {}",
            messages[0].body
        );
    }

    let own = OwnWrites {
        session_names: vec!["execrole".into()],
        user_agent_marker: events::USER_AGENT_MARKER.into(),
    };
    let mut effects: Vec<EventEffect> = Vec::new();
    for message in &messages {
        effects.extend(events::effects_of(&message.body, &own).expect("a readable event"));
    }
    effects.sort();
    let web_exec = RoleKey {
        account: ACCOUNT.into(),
        name: "web-exec".into(),
    };
    assert_eq!(
        effects,
        vec![
            EventEffect::Sweep {
                account: ACCOUNT.into(),
                region: REGION.into(),
                role: Some(web_exec.clone()),
            },
            // Alice's write; ours arrived too, and maps to nothing.
            EventEffect::Role(web_exec),
        ]
    );

    let handles: Vec<String> = messages.iter().map(|m| m.receipt_handle.clone()).collect();
    queue.delete(&handles).await.expect("delete");
    assert_eq!(messages_left(&sqs, &url).await, 0);
}

#[tokio::test]
async fn the_controllers_requests_carry_the_user_agent_marker_that_events_ignore() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A loopback listener that records one request's head and answers 400, so the request fails at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0_u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let _ = stream
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        String::from_utf8_lossy(&head).to_lowercase()
    });

    let retry = execrole::aws::BackoffSettings {
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(10),
        max_elapsed: Duration::from_millis(10),
    };
    let factory = execrole::aws::ClientFactory::for_local_endpoint(
        &endpoint,
        REGION,
        Arc::new(Metrics::new()),
        retry,
    )
    .await;
    let queue = factory.event_queue(&format!("{endpoint}/{ACCOUNT}/execrole-events"), REGION);
    let _ = queue.receive(Duration::ZERO, 1).await;
    let head = server.await.expect("the listener saw a request");
    let user_agent = head
        .lines()
        .find_map(|line| line.strip_prefix("user-agent:"))
        .unwrap_or_default();
    assert!(
        user_agent
            .split_whitespace()
            .any(|t| t == events::USER_AGENT_MARKER),
        "{head}"
    );
}
