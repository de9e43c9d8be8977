//! Event-driven convergence, the pure half: what one queued event asks of the controller. Each message is an
//! EventBridge envelope (`detail-type: AWS API Call via CloudTrail`) of a CloudTrail record; [`effects_of`] maps it
//! to [`EventEffect`]s: sweep an account's Region after a task definition changed (naming the execution role when
//! the record does), or reconcile one role after someone else changed it in IAM.
//!
//! This module owns the event shapes we read and the rules that map them; it does not receive or delete messages
//! (the `EventQueue` of the AWS shell does), decide when a sweep or reconcile runs (the controller), or trust an event as
//! the state of the world: an effect only says where to look, and reconcile reads the world afresh. The periodic
//! resync remains the backstop for events that are lost, late or ignored. It is pure and synchronous.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Arn, RoleKey, is_account_id, is_region};

/// The SDK app name the controller sends with every request; the SDK puts it in the user agent as `app/execrole`,
/// which CloudTrail records in `userAgent`.
pub const APP_NAME: &str = "execrole";

/// The token in a CloudTrail `userAgent` that marks a request made by this controller.
pub const USER_AGENT_MARKER: &str = "app/execrole";

/// The `detail-type` of an EventBridge envelope around a CloudTrail API-call record.
pub const API_CALL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The ECS API calls that change which task definitions exist, and so what an execution role needs.
pub const ECS_EVENT_NAMES: [&str; 3] = [
    "RegisterTaskDefinition",
    "DeregisterTaskDefinition",
    "DeleteTaskDefinitions",
];

/// The IAM API calls that change an execution role's state as reconcile reads it.
pub const IAM_EVENT_NAMES: [&str; 11] = [
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "CreateRole",
    "DeleteRole",
    "TagRole",
    "UntagRole",
];

/// The largest message body read: EventBridge events are at most 256 KiB (SQS messages may be larger, but none
/// that EventBridge delivers). Parsing deeply nested JSON allocates up to a hundred times the text's size.
pub const MAX_EVENT_BYTES: usize = 256 << 10;

/// What one event asks of the controller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventEffect {
    /// Task definitions changed in `account`'s `region`: list and describe them again. `role` is the execution role
    /// the changed task definition names, when the record says and the role is in the same account; reconcile it
    /// even if no task definition names it any more (a deregistered revision's role may now need less).
    Sweep {
        /// The 12-digit account the task definitions live in.
        account: String,
        /// The Region the task definitions live in.
        region: String,
        /// The execution role the changed task definition names, when known.
        role: Option<RoleKey>,
    },
    /// Someone changed this role in IAM: reconcile it.
    Role(RoleKey),
}

/// How to recognise the controller's own writes, whose events need no reaction (they would only echo back).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnWrites {
    /// The `sts:AssumeRole` session names the controller uses in target accounts: an event made by an assumed-role
    /// session (`arn:P:sts::A:assumed-role/ROLE/SESSION`) with one of these names is ours.
    pub session_names: Vec<String>,
    /// A token of the SDK user agent the controller sends ([`USER_AGENT_MARKER`]): an event whose `userAgent`
    /// holds it as a whole token is ours. Empty matches nothing.
    pub user_agent_marker: String,
}

impl OwnWrites {
    /// Whether the request recorded in `detail` was made by the controller.
    fn is_own(&self, detail: &Detail) -> bool {
        let by_agent = detail
            .user_agent
            .as_deref()
            .is_some_and(|agent| contains_token(agent, &self.user_agent_marker));
        let by_session = detail
            .user_identity
            .as_ref()
            .and_then(|identity| identity.arn.as_deref())
            .and_then(assumed_role_session)
            .is_some_and(|session| self.session_names.contains(&session));
        by_agent || by_session
    }
}

/// Why a message is not an event we can read. Every variant is about the message, never about AWS: the caller
/// logs it, counts it by [`EventError::reason`], and drops the message (retrying cannot make it readable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is larger than any EventBridge event (see [`MAX_EVENT_BYTES`]).
    #[error(
        "the message is {0} bytes; an EventBridge event is at most {limit} KiB",
        limit = MAX_EVENT_BYTES >> 10
    )]
    TooLarge(usize),
    /// The body is not JSON.
    #[error("the message is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an EventBridge envelope of a CloudTrail API call.
    #[error(
        "the message is not an EventBridge envelope of a CloudTrail API call (expected `detail-type: {API_CALL_DETAIL_TYPE}` and a `detail` object): {0}"
    )]
    NotAnApiCall(String),
    /// A field the mapping needs is absent.
    #[error("the event has no `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong type or a value that cannot be what it names.
    #[error("the event's `{field}` is invalid: {message}")]
    InvalidField {
        /// The field's path in the envelope (`detail.requestParameters.roleName`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl EventError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::TooLarge(_) => "too_large",
            EventError::NotJson(_) => "not_json",
            EventError::NotAnApiCall(_) => "not_an_api_call",
            EventError::MissingField(_) => "missing_field",
            EventError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// The effects of one queued message: `Ok(vec![])` when it is a valid event that needs nothing (another service's
/// or an ignored API call, a call that failed with an `errorCode`, or one of the controller's own writes), an
/// error when the message is not an event we can read. Effects come sorted and without duplicates.
pub fn effects_of(body: &str, own: &OwnWrites) -> Result<Vec<EventEffect>, EventError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(body.len()));
    }
    let value: Value =
        serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let (envelope, detail) = api_call(&value)?;
    let service = match envelope.source.as_deref() {
        Some("aws.ecs") => Service::Ecs,
        Some("aws.iam") => Service::Iam,
        Some(_) => return Ok(Vec::new()),
        None => return Err(EventError::MissingField("source")),
    };
    let event_name = detail
        .event_name
        .as_deref()
        .ok_or(EventError::MissingField("detail.eventName"))?;
    let wanted = match service {
        Service::Ecs => ECS_EVENT_NAMES.contains(&event_name),
        Service::Iam => IAM_EVENT_NAMES.contains(&event_name),
    };
    if !wanted || detail.error_code.as_deref().is_some_and(|c| !c.is_empty()) || own.is_own(&detail)
    {
        return Ok(Vec::new());
    }

    let account = envelope
        .account
        .or_else(|| detail.recipient_account_id.clone())
        .ok_or(EventError::MissingField("account"))?;
    if !is_account_id(&account) {
        return Err(invalid("account", &account, "not a 12-digit account id"));
    }
    match service {
        Service::Ecs => ecs_effects(envelope.region, &detail, account),
        Service::Iam => iam_effects(&detail, account),
    }
}

/// The envelope and its CloudTrail record, when `value` is an EventBridge envelope of an API call.
fn api_call(value: &Value) -> Result<(Envelope, Detail), EventError> {
    let Some(object) = value.as_object() else {
        return Err(EventError::NotAnApiCall(format!(
            "the body is a JSON {}, not an object",
            json_kind(value)
        )));
    };
    if object.get("Type").and_then(Value::as_str) == Some("Notification") {
        return Err(EventError::NotAnApiCall(
            "it is an SNS notification: the queue must be an EventBridge rule's target".into(),
        ));
    }
    let mut envelope: Envelope = typed(value, "")?;
    match (envelope.detail_type.as_deref(), envelope.detail.take()) {
        (Some(API_CALL_DETAIL_TYPE), Some(detail)) => Ok((envelope, detail)),
        (Some(API_CALL_DETAIL_TYPE), None) => {
            Err(EventError::NotAnApiCall("it has no `detail`".into()))
        }
        (Some(other), _) => Err(EventError::NotAnApiCall(format!(
            "its detail-type is `{}`",
            excerpt(other)
        ))),
        (None, _) => Err(EventError::NotAnApiCall("it has no `detail-type`".into())),
    }
}

/// The sweeps an ECS task-definition call asks for: its Region (from the envelope, else the record) and the
/// execution roles it names.
fn ecs_effects(
    region: Option<String>,
    detail: &Detail,
    account: String,
) -> Result<Vec<EventEffect>, EventError> {
    let region = region
        .or_else(|| detail.aws_region.clone())
        .ok_or(EventError::MissingField("region"))?;
    if !is_region(&region) {
        return Err(invalid("region", &region, "not a Region name"));
    }
    let roles = ecs_execution_roles(detail, &account)?;
    Ok(sweeps(account, region, roles))
}

/// The reconcile an IAM role call asks for: the role it names.
fn iam_effects(detail: &Detail, account: String) -> Result<Vec<EventEffect>, EventError> {
    let params: IamRequest = match &detail.request_parameters {
        Some(value) => typed(value, "detail.requestParameters.")?,
        None => return Err(EventError::MissingField("detail.requestParameters")),
    };
    let name = params.role_name.ok_or(EventError::MissingField(
        "detail.requestParameters.roleName",
    ))?;
    if !is_role_name(&name) {
        return Err(invalid(
            "detail.requestParameters.roleName",
            &name,
            "not an IAM role name",
        ));
    }
    Ok(vec![EventEffect::Role(RoleKey { account, name })])
}

/// The services whose events we map.
#[derive(Debug, Clone, Copy)]
enum Service {
    Ecs,
    Iam,
}

/// The EventBridge envelope: only the fields we read.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    source: Option<String>,
    account: Option<String>,
    region: Option<String>,
    detail: Option<Detail>,
}

/// The CloudTrail record in `detail`. The request and response stay JSON until we know which call it was, so an
/// ignored call's shapes cannot make the message unreadable.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    event_name: Option<String>,
    aws_region: Option<String>,
    recipient_account_id: Option<String>,
    error_code: Option<String>,
    user_agent: Option<String>,
    user_identity: Option<UserIdentity>,
    request_parameters: Option<Value>,
    response_elements: Option<Value>,
}

/// `detail.userIdentity`: only the caller's ARN (absent for AWS service principals).
#[derive(Debug, Deserialize)]
struct UserIdentity {
    arn: Option<String>,
}

/// `requestParameters` of the IAM role calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IamRequest {
    role_name: Option<String>,
}

/// `requestParameters` of `RegisterTaskDefinition`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsRequest {
    execution_role_arn: Option<String>,
}

/// `responseElements` of the ECS task-definition calls: one task definition (register, deregister) or several
/// (`DeleteTaskDefinitions`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsResponse {
    task_definition: Option<EcsTaskDefinition>,
    task_definitions: Option<Vec<EcsTaskDefinition>>,
}

/// A task definition in an ECS response: only its execution role.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsTaskDefinition {
    execution_role_arn: Option<String>,
}

/// The execution roles in `account` that an ECS record names: from the response when it has them, else (for
/// `RegisterTaskDefinition`) from the request. ARNs that are not role ARNs, or name a role in another account, are
/// left out: the sweep still runs and reports them.
fn ecs_execution_roles(detail: &Detail, account: &str) -> Result<BTreeSet<RoleKey>, EventError> {
    let response: Option<EcsResponse> = match &detail.response_elements {
        Some(value) if !value.is_null() => Some(typed(value, "detail.responseElements.")?),
        _ => None,
    };
    let mut arns: Vec<String> = Vec::new();
    if let Some(response) = response {
        arns.extend(
            response
                .task_definition
                .and_then(|td| td.execution_role_arn),
        );
        arns.extend(
            response
                .task_definitions
                .into_iter()
                .flatten()
                .filter_map(|td| td.execution_role_arn),
        );
    }
    if arns.is_empty()
        && detail.event_name.as_deref() == Some("RegisterTaskDefinition")
        && let Some(value) = detail.request_parameters.as_ref().filter(|v| !v.is_null())
    {
        let request: EcsRequest = typed(value, "detail.requestParameters.")?;
        arns.extend(request.execution_role_arn);
    }
    Ok(arns
        .iter()
        .filter_map(|arn| RoleKey::from_role_arn(arn))
        .filter(|key| key.account == account)
        .collect())
}

/// One sweep per distinct role, or one without a role when the record names none.
fn sweeps(account: String, region: String, roles: BTreeSet<RoleKey>) -> Vec<EventEffect> {
    if roles.is_empty() {
        return vec![EventEffect::Sweep {
            account,
            region,
            role: None,
        }];
    }
    roles
        .into_iter()
        .map(|role| EventEffect::Sweep {
            account: account.clone(),
            region: region.clone(),
            role: Some(role),
        })
        .collect()
}

/// Deserialize `value` as `T`, naming the offending field's path (under `prefix`) when a type is wrong.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        EventError::InvalidField {
            field: if path == "." {
                prefix.trim_end_matches('.').to_string()
            } else {
                format!("{prefix}{path}")
            },
            message: err.into_inner().to_string(),
        }
    })
}

fn invalid(field: &str, value: &str, what: &str) -> EventError {
    EventError::InvalidField {
        field: field.to_string(),
        message: format!("`{}` is {what}", excerpt(value)),
    }
}

/// The session name of an assumed-role ARN (`arn:P:sts::A:assumed-role/ROLE/SESSION`), `None` for other ARNs.
fn assumed_role_session(arn: &str) -> Option<String> {
    let parsed = Arn::parse(arn).ok()?;
    if parsed.service != "sts" {
        return None;
    }
    let rest = parsed.resource.strip_prefix("assumed-role/")?;
    let (_role, session) = rest.split_once('/')?;
    (!session.is_empty()).then(|| session.to_string())
}

/// Whether `token` occurs in `text` as a whole user-agent token: not inside a longer name (`app/execrole-test`).
fn contains_token(text: &str, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    text.match_indices(token).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + token.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Whether `text` can be an IAM role name: 1 to 64 of letters, digits and `+=,.@_-`.
fn is_role_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// At most 100 characters of an input value, for error messages.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
