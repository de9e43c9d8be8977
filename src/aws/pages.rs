//! Paging through AWS list calls: the one loop that follows a list's next tokens (ECS, ECR) or markers (IAM) to
//! its last page, with the one guard against a service that repeats a token or pages without end.
//!
//! Every list call of the adapters goes through [`all_pages`], and so does [`super::EcsApi::task_definition_arns`]
//! for the controller. This file does not send requests: the caller's closure fetches one page (through `send`, so
//! each page is retried, rate-limited and counted like any request) and answers its items and the next token.

use std::collections::BTreeSet;
use std::future::Future;

use super::{AwsError, ErrorKind};

/// More pages than any account has: past this, a list is assumed to loop.
pub const MAX_PAGES: usize = 10_000;

/// Every item of a paged list: `page` fetches the page after a token (`None` for the first) and answers its items
/// and the next token (`None` or empty on the last page; for IAM, the marker only while `IsTruncated`). Stops with
/// a terminal error naming `service` and `operation` when the service repeats a token or pages without end,
/// instead of looping; a failed page fails the whole list.
pub async fn all_pages<T, F, Fut>(
    service: &'static str,
    operation: &'static str,
    mut page: F,
) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    let mut seen_tokens = BTreeSet::new();
    for _ in 0..MAX_PAGES {
        let (page_items, next) = page(token.take()).await?;
        items.extend(page_items);
        let Some(next) = next.filter(|t| !t.is_empty()) else {
            return Ok(items);
        };
        if !seen_tokens.insert(next.clone()) {
            return Err(AwsError::new(
                service,
                operation,
                ErrorKind::Other,
                "the service returned a next token it had returned before; stopping to avoid a loop",
            ));
        }
        token = Some(next);
    }
    Err(AwsError::new(
        service,
        operation,
        ErrorKind::Other,
        format!("more than {MAX_PAGES} pages"),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    type Page = (Vec<String>, Option<String>);

    /// A paged list that answers `pages` in order and records the tokens it was asked with.
    async fn list(pages: Vec<Page>) -> (Result<Vec<String>, AwsError>, Vec<Option<String>>) {
        let pages = Mutex::new(VecDeque::from(pages));
        let asked = Mutex::new(Vec::new());
        let result = all_pages("ecs", "ListServices", |token| {
            asked.lock().unwrap().push(token);
            let page = pages.lock().unwrap().pop_front();
            async move {
                page.ok_or_else(|| {
                    AwsError::new("ecs", "ListServices", ErrorKind::Other, "no page left")
                })
            }
        })
        .await;
        (result, asked.into_inner().unwrap())
    }

    fn page(items: &[&str], next: Option<&str>) -> Page {
        (
            items.iter().map(|s| s.to_string()).collect(),
            next.map(str::to_string),
        )
    }

    #[tokio::test]
    async fn pages_are_followed_by_their_tokens_until_the_last() {
        let (result, asked) = list(vec![
            page(&["a", "b"], Some("t1")),
            page(&["c"], Some("t2")),
            page(&[], None),
        ])
        .await;
        assert_eq!(result.unwrap(), vec!["a", "b", "c"]);
        assert_eq!(asked, vec![None, Some("t1".into()), Some("t2".into())]);
    }

    #[tokio::test]
    async fn an_empty_next_token_ends_the_list() {
        let (result, asked) = list(vec![page(&["a"], Some(""))]).await;
        assert_eq!(result.unwrap(), vec!["a"]);
        assert_eq!(asked.len(), 1);
    }

    #[tokio::test]
    async fn a_repeated_next_token_stops_with_an_error_instead_of_looping() {
        let (result, asked) = list(vec![
            page(&["a"], Some("t1")),
            page(&["b"], Some("t2")),
            page(&["a"], Some("t1")),
            page(&["b"], Some("t2")),
        ])
        .await;
        let err = result.unwrap_err();
        assert_eq!(err.operation, "ListServices");
        assert!(!err.is_retryable(), "{err}");
        assert!(err.message.contains("returned before"), "{err}");
        assert_eq!(asked.len(), 3);
    }

    #[tokio::test]
    async fn a_failed_page_fails_the_whole_list() {
        let (result, _) = list(vec![page(&["a"], Some("t1"))]).await;
        assert_eq!(result.unwrap_err().message, "no page left");
    }

    #[tokio::test]
    async fn a_list_that_pages_without_end_stops_at_the_guard() {
        let asked = Mutex::new(0usize);
        let result: Result<Vec<usize>, AwsError> = all_pages("iam", "ListRolePolicies", |_| {
            let n = {
                let mut asked = asked.lock().unwrap();
                *asked += 1;
                *asked
            };
            async move { Ok((vec![n], Some(format!("t{n}")))) }
        })
        .await;
        let err = result.unwrap_err();
        assert_eq!((err.service, err.operation), ("iam", "ListRolePolicies"));
        assert!(!err.is_retryable(), "{err}");
        assert_eq!(err.message, format!("more than {MAX_PAGES} pages"));
        assert_eq!(*asked.lock().unwrap(), MAX_PAGES);
    }
}
