//! Accounts in parallel: each target account is swept and reconciled at its own pace, by its own workers, so an
//! account whose IAM answers slowly (throttled, far away) never holds up the others, in the daemon or in a pass.

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

const TWO_ACCOUNTS: &str = r#"
mode: enforce
observe: per-role
concurrency: 1
targets:
  - account: "123456789012"
    regions: [us-east-1]
  - account: "999999999999"
    regions: [us-east-1]
resync_interval: 1000s
"#;

/// Clients per account: each target gets its own account's fakes.
struct Accounts {
    by_account: BTreeMap<String, (Arc<FakeEcs>, Arc<FakeIam>)>,
    facts: Arc<FakeFacts>,
    events: Arc<FakeQueue>,
}

#[async_trait]
impl ClientSource for Accounts {
    async fn clients(&self, target: &Target) -> TargetClients {
        let (ecs, iam) = self.by_account[&target.account].clone();
        TargetClients {
            ecs: target
                .regions
                .iter()
                .map(|r| (r.clone(), ecs.clone() as Arc<dyn EcsApi>))
                .collect(),
            iam,
            facts: self.facts.clone(),
        }
    }

    fn event_queue(&self, _events: &crate::config::Events) -> Arc<dyn crate::aws::EventQueue> {
        self.events.clone()
    }
}

/// An account with three roles in drift, each named by one task definition; its `GetRole` takes `delay`.
fn account(account: &str, delay: Duration) -> (Arc<FakeEcs>, Arc<FakeIam>) {
    let mut ecs = FakeEcs::default();
    let mut iam = FakeIam {
        get_role_delay: delay,
        ..FakeIam::default()
    };
    for i in 0..3 {
        let role = format!("role-{i}");
        let arn = format!("arn:aws:ecs:{REGION}:{account}:task-definition/web{i}:1");
        let text = json!({
            "taskDefinitionArn": arn,
            "family": format!("web{i}"),
            "revision": 1,
            "executionRoleArn": format!("arn:aws:iam::{account}:role/{role}"),
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [ecr_container("web")],
        });
        ecs = ecs.with(TaskDefinition::from_json(&text.to_string()).unwrap());
        iam = iam.role(&role, &[]);
    }
    (Arc::new(ecs), Arc::new(iam))
}

/// Two accounts: the first answers every `GetRole` after 100 s, the second at once.
async fn slow_and_fast() -> (Controller, Accounts) {
    let source = Accounts {
        by_account: BTreeMap::from([
            (
                ACCOUNT.to_string(),
                account(ACCOUNT, Duration::from_secs(100)),
            ),
            (
                OTHER_ACCOUNT.to_string(),
                account(OTHER_ACCOUNT, Duration::ZERO),
            ),
        ]),
        facts: Arc::default(),
        events: Arc::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let controller = Controller::new(config(TWO_ACCOUNTS), &source, metrics, Arc::default()).await;
    (controller, source)
}

fn put_times(source: &Accounts, account: &str) -> Vec<Instant> {
    source.by_account[account]
        .1
        .calls()
        .iter()
        .filter(|c| c.operation == "PutRolePolicy")
        .map(|c| c.at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn in_the_daemon_a_slow_account_does_not_hold_up_the_others() {
    let (controller, source) = slow_and_fast().await;
    let start = Instant::now();
    let shutdown = CancellationToken::new();
    let daemon = controller.run(shutdown.clone(), &source, Arc::new(Notify::new()));
    tokio::join!(daemon, async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        shutdown.cancel();
    });
    // One worker per account: the fast account's three roles are written at once, while the slow account's
    // first role is still waiting for its answer (the shutdown lets it finish: work in flight drains).
    assert_eq!(put_times(&source, OTHER_ACCOUNT), vec![start; 3]);
    let slow = put_times(&source, ACCOUNT);
    assert_eq!(slow, vec![start + Duration::from_secs(100)]);
}

#[tokio::test(start_paused = true)]
async fn in_a_pass_a_slow_account_does_not_hold_up_the_others() {
    let (controller, source) = slow_and_fast().await;
    let start = Instant::now();
    let report = controller
        .pass(Mode::Enforce, &CancellationToken::new())
        .await;
    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 6)]));
    assert_eq!(put_times(&source, OTHER_ACCOUNT), vec![start; 3]);
    // The slow account at its own pace: one role at a time, 100 s each.
    let slow: Vec<Duration> = put_times(&source, ACCOUNT)
        .iter()
        .map(|t| *t - start)
        .collect();
    let want: Vec<Duration> = [100, 200, 300].map(Duration::from_secs).to_vec();
    assert_eq!(slow, want);
}
