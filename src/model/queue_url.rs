//! SQS queue URLs (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`): the Region and the account they name, read
//! in one place for the config (the queue's Region) and the client factory (the queue's account).

use super::{is_account_id, is_region};

/// The Region of an SQS queue URL (`https://sqs.eu-west-1.amazonaws.com/…`, also `.amazonaws.com.cn`), `None` for
/// another form (a local endpoint, a VPC endpoint name, no scheme).
pub fn queue_region(url: &str) -> Option<&str> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let region = host.strip_prefix("sqs.")?.split('.').next()?;
    is_region(region).then_some(region)
}

/// The account that owns a queue, from its URL's first path segment (`…/ACCOUNT/NAME`; without a scheme the text
/// is read as host and path), `None` when that is not a 12-digit account id.
pub fn queue_account(url: &str) -> Option<&str> {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    path.split('/')
        .nth(1)
        .filter(|account| is_account_id(account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_url_names_its_account() {
        let cases = [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/execrole-events",
                Some("123456789012"),
            ),
            (
                "http://127.0.0.1:5000/111111111111/execrole-events",
                Some("111111111111"),
            ),
            ("https://sqs.eu-west-1.amazonaws.com/execrole-events", None),
            ("https://sqs.eu-west-1.amazonaws.com/12345/q", None),
            ("not a url", None),
            ("", None),
        ];
        for (url, account) in cases {
            assert_eq!(queue_account(url), account, "{url:?}");
        }
    }

    #[test]
    fn a_queue_url_names_its_region_when_it_is_an_sqs_endpoint() {
        let cases = [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/execrole-events",
                Some("eu-west-1"),
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
                Some("cn-north-1"),
            ),
            ("http://127.0.0.1:5000/111111111111/execrole-events", None),
            ("sqs.eu-west-1.amazonaws.com/123456789012/q", None),
            ("https://sqs.nowhere.amazonaws.com/123456789012/q", None),
            ("", None),
        ];
        for (url, region) in cases {
            assert_eq!(queue_region(url), region, "{url:?}");
        }
    }
}
