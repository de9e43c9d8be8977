//! The single error type of the policy module, [`PolicyError`].
//!
//! Only parsing can fail; normalising, diffing and compiling are total. This
//! file owns the error's wording and its bounded metric labels, and
//! deliberately carries no recovery logic.

use std::str::Utf8Error;

/// Why a policy document could not be read, named after the step that failed.
///
/// Every message names the place in the document (the top-level key, or the
/// statement index and key) so an operator can find the offending text.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is larger than any policy IAM stores (see [`super::MAX_POLICY_TEXT_BYTES`]).
    #[error(
        "policy text is {bytes} bytes; at most {} KiB is read (IAM's largest policies are far smaller)",
        super::MAX_POLICY_TEXT_BYTES >> 10
    )]
    TooLarge {
        /// The size of the text.
        bytes: usize,
    },
    /// The text did not start with `{`, and percent-decoding it did not yield UTF-8.
    #[error("policy text is percent-encoded but does not decode to UTF-8: {source}")]
    DecodeText {
        /// The UTF-8 error from the decoded bytes.
        #[source]
        source: Utf8Error,
    },
    /// The (decoded) text is not JSON.
    #[error("policy text is not valid JSON: {source}")]
    ParseJson {
        /// The JSON parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is not a policy document: not an object, bad `Version`, missing
    /// `Statement`, or an unknown top-level key.
    #[error("policy document, key `{key}`: {problem}")]
    ReadDocument {
        /// The top-level key at fault (`(root)` when the document itself is wrong).
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// One statement is malformed.
    #[error("statement {index}, key `{key}`: {problem}")]
    ReadStatement {
        /// Zero-based index of the statement (0 when `Statement` is a single object).
        index: usize,
        /// The statement key at fault.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl PolicyError {
    /// A bounded, stable label for metrics, e.g. `"invalid_json"`.
    ///
    /// Messages carry user text and are unbounded; this never does.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::TooLarge { .. } => "too_large",
            PolicyError::DecodeText { .. } => "invalid_encoding",
            PolicyError::ParseJson { .. } => "invalid_json",
            PolicyError::ReadDocument { .. } => "invalid_document",
            PolicyError::ReadStatement { .. } => "invalid_statement",
        }
    }

    pub(crate) fn document(key: &str, problem: impl Into<String>) -> Self {
        PolicyError::ReadDocument {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn statement(index: usize, key: &str, problem: impl Into<String>) -> Self {
        PolicyError::ReadStatement {
            index,
            key: key.to_owned(),
            problem: problem.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_distinct_bounded_reason() {
        let json_error = match serde_json::from_str::<serde_json::Value>("{") {
            Err(e) => e,
            Ok(_) => return,
        };
        let utf8_error = match String::from_utf8(vec![0xff]) {
            Err(e) => e.utf8_error(),
            Ok(_) => return,
        };
        let cases = [
            (PolicyError::TooLarge { bytes: 1 << 30 }, "too_large"),
            (
                PolicyError::DecodeText { source: utf8_error },
                "invalid_encoding",
            ),
            (
                PolicyError::ParseJson { source: json_error },
                "invalid_json",
            ),
            (PolicyError::document("Version", "bad"), "invalid_document"),
            (
                PolicyError::statement(3, "Effect", "bad"),
                "invalid_statement",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason, "{error}");
        }
    }

    #[test]
    fn statement_error_message_names_index_and_key() {
        let message = PolicyError::statement(2, "Action", "expected a string").to_string();
        assert_eq!(message, "statement 2, key `Action`: expected a string");
    }
}
