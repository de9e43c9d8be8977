//! AWS errors sorted at the seam: every SDK error becomes an [`AwsError`] with a bounded [`ErrorKind`] that says
//! whether retrying can help. The kind, not the message, drives backoff and metric labels.

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::metrics::AwsOutcome;

/// What went wrong with an AWS request, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The service throttled the request (retryable).
    Throttling,
    /// A 5xx or a service-side failure (retryable).
    Server,
    /// The request timed out (retryable).
    Timeout,
    /// The connection failed (retryable).
    Connection,
    /// Credentials are missing, expired or not allowed (terminal).
    AccessDenied,
    /// The resource does not exist (terminal).
    NotFound,
    /// The request is invalid, e.g. a malformed policy (terminal).
    InvalidInput,
    /// An IAM quota or size limit was hit (terminal).
    LimitExceeded,
    /// Anything else (terminal).
    Other,
}

impl ErrorKind {
    /// Whether retrying the same request later can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttling | ErrorKind::Server | ErrorKind::Timeout | ErrorKind::Connection
        )
    }

    /// A bounded label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttling => "throttling",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Other => "other",
        }
    }
}

/// A failed AWS request: which one, what kind of failure, and the service's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    /// The service (`ecs`, `iam`).
    pub service: &'static str,
    /// The operation (`ListTaskDefinitions`).
    pub operation: &'static str,
    /// The kind of failure.
    pub kind: ErrorKind,
    /// The error code, when the service sent one.
    pub code: Option<String>,
    /// The message, for humans only.
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed ({}",
            self.service,
            self.operation,
            self.kind.as_str()
        )?;
        if let Some(code) = &self.code {
            write!(f, ", {code}")?;
        }
        write!(f, "): {}", self.message)
    }
}

impl AwsError {
    /// Build an error by hand (fakes, and errors found in a response that the SDK accepted).
    pub fn new(
        service: &'static str,
        operation: &'static str,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        AwsError {
            service,
            operation,
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// Whether retrying can help.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        self.kind.as_str()
    }

    /// How the attempt that failed with this error is counted (`outcome` of `execrole_aws_requests_total`):
    /// throttles apart from other errors, and a missing role or policy, an answer for reads, apart from failures.
    pub fn outcome(&self) -> AwsOutcome {
        match self.kind {
            ErrorKind::Throttling => AwsOutcome::Throttled,
            ErrorKind::NotFound => AwsOutcome::NotFound,
            _ => AwsOutcome::Error,
        }
    }

    /// Classify an SDK error.
    pub(crate) fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let (kind, code) = match &err {
            SdkError::TimeoutError(_) => (ErrorKind::Timeout, None),
            SdkError::DispatchFailure(failure) => {
                if failure.is_timeout() {
                    (ErrorKind::Timeout, None)
                } else if failure.is_user() {
                    (ErrorKind::InvalidInput, None)
                } else {
                    (ErrorKind::Connection, None)
                }
            }
            SdkError::ResponseError(response) => {
                (kind_from_status(response.raw().status().as_u16()), None)
            }
            SdkError::ServiceError(service_error) => {
                let code = service_error.err().code().map(str::to_string);
                let status = service_error.raw().status().as_u16();
                let kind = code
                    .as_deref()
                    .and_then(kind_from_code)
                    .unwrap_or_else(|| kind_from_status(status));
                (kind, code)
            }
            SdkError::ConstructionFailure(_) => (ErrorKind::InvalidInput, None),
            _ => (ErrorKind::Other, None),
        };
        AwsError {
            service,
            operation,
            kind,
            code,
            message: error_chain(&err),
        }
    }
}

/// The message of an error and its sources, joined: the SDK's top-level message alone is often just "service error".
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The kind an AWS error code means, when it is one we know.
pub(crate) fn kind_from_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "PriorRequestNotComplete"
        | "EC2ThrottledException"
        | "ConcurrentModification"
        | "ConcurrentModificationException" => ErrorKind::Throttling,
        "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "ServerException"
        | "ServiceFailure"
        | "ServiceFailureException" => ErrorKind::Server,
        "RequestTimeout" | "RequestTimeoutException" => ErrorKind::Timeout,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken" => ErrorKind::AccessDenied,
        "NoSuchEntity"
        | "NoSuchEntityException"
        | "ResourceNotFoundException"
        | "NotFoundException"
        | "ClusterNotFoundException"
        | "ParameterNotFound"
        | "QueueDoesNotExist"
        | "AWS.SimpleQueueService.NonExistentQueue" => ErrorKind::NotFound,
        "MalformedPolicyDocument"
        | "MalformedPolicyDocumentException"
        | "InvalidInput"
        | "InvalidInputException"
        | "ValidationError"
        | "ValidationException"
        | "InvalidParameterException"
        | "ClientException" => ErrorKind::InvalidInput,
        "LimitExceeded" | "LimitExceededException" => ErrorKind::LimitExceeded,
        _ => return None,
    })
}

fn kind_from_status(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::Throttling,
        408 => ErrorKind::Timeout,
        401 | 403 => ErrorKind::AccessDenied,
        404 => ErrorKind::NotFound,
        400..=499 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_sort_into_retryable_and_terminal() {
        let cases = [
            ("Throttling", true),
            ("ThrottlingException", true),
            ("RequestLimitExceeded", true),
            ("ServiceUnavailable", true),
            ("InternalFailure", true),
            ("AccessDenied", false),
            ("AccessDeniedException", false),
            ("NoSuchEntity", false),
            ("AWS.SimpleQueueService.NonExistentQueue", false),
            ("ClusterNotFoundException", false),
            ("MalformedPolicyDocument", false),
            ("LimitExceeded", false),
        ];
        for (code, retryable) in cases {
            assert_eq!(
                kind_from_code(code).unwrap().is_retryable(),
                retryable,
                "{code}"
            );
        }
        assert_eq!(
            kind_from_code("ClusterNotFoundException"),
            Some(ErrorKind::NotFound),
            "a cluster deleted between two requests is an absence, not a failure"
        );
        assert_eq!(kind_from_code("SomethingNew"), None);
    }

    #[test]
    fn statuses_without_a_known_code_are_sorted_too() {
        assert!(kind_from_status(500).is_retryable());
        assert!(kind_from_status(503).is_retryable());
        assert!(kind_from_status(429).is_retryable());
        assert!(!kind_from_status(400).is_retryable());
        assert!(!kind_from_status(403).is_retryable());
    }

    #[test]
    fn throttles_are_counted_apart_from_other_errors() {
        let metrics = crate::metrics::Metrics::new();
        let throttled = AwsError::new("ecs", "ListTaskDefinitions", ErrorKind::Throttling, "x");
        let denied = AwsError::new("ecs", "ListTaskDefinitions", ErrorKind::AccessDenied, "x");
        let zero = std::time::Duration::ZERO;
        metrics.observe_aws_request("ecs", "ListTaskDefinitions", throttled.outcome(), zero);
        metrics.observe_aws_request("ecs", "ListTaskDefinitions", denied.outcome(), zero);
        assert_eq!(
            metrics.aws_requests("ecs", "ListTaskDefinitions", "throttled"),
            1
        );
        assert_eq!(
            metrics.aws_requests("ecs", "ListTaskDefinitions", "error"),
            1
        );
        let missing = AwsError::new("iam", "GetRole", ErrorKind::NotFound, "x");
        assert_eq!(missing.outcome(), AwsOutcome::NotFound);
    }

    #[test]
    fn errors_say_which_request_failed() {
        let err = AwsError::new(
            "iam",
            "PutRolePolicy",
            ErrorKind::AccessDenied,
            "not allowed",
        );
        assert_eq!(
            err.to_string(),
            "iam PutRolePolicy failed (access_denied): not allowed"
        );
        assert_eq!(err.reason(), "access_denied");
    }
}
