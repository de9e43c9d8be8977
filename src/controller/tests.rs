//! Controller passes driven against in-memory fakes of ECS and IAM.
//!
//! `FakeEcs` serves one Region's task definitions by ARN (paged when asked), `FakeIam` one account's roles and
//! inline policies; both count every call and can be told to fail. `FakeFacts` answers every look-up with
//! "nothing there". `World` wires them into a controller.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::aws::{AwsError, EcsApi, ErrorKind, FactsApi, IamApi, RoleInfo, TaskDefinitionPage};
use crate::config::{Config, Mode, Target};
use crate::derive::{KeyFacts, ParameterFacts, PullThroughRule, SecretFacts};
use crate::metrics::Metrics;
use crate::model::TaskDefinition;
use crate::policy::{Conditions, Effect, Grant, PolicyDocument};

// ---------------------------------------------------------------------------------------------------------------
// Names and documents
// ---------------------------------------------------------------------------------------------------------------

const ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "999999999999";
const REGION: &str = "us-east-1";
const OWNED: &str = "execrole";

const CONFIG: &str = r#"
mode: enforce
targets:
  - account: "123456789012"
    regions: [us-east-1]
"#;

fn config(yaml: &str) -> Config {
    Config::from_yaml(Path::new("test.yaml"), yaml).expect("test config is valid")
}

fn td_arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

fn ecr_repo_arn(repo: &str) -> String {
    format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}")
}

fn log_group_arn(group: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*")
}

/// A container pulling `image`, logging to `log_group` with awslogs when given.
fn container(image: &str, log_group: Option<&str>) -> Value {
    let mut c = json!({ "name": "app", "image": image });
    if let Some(group) = log_group {
        c["logConfiguration"] = json!({
            "logDriver": "awslogs",
            "options": { "awslogs-group": group, "awslogs-region": REGION, "awslogs-stream-prefix": "app" }
        });
    }
    c
}

/// A container pulling `<account>.dkr.ecr…/<repo>:1` and logging to `/ecs/<repo>`.
fn ecr_container(repo: &str) -> Value {
    container(
        &format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}:1"),
        Some(&format!("/ecs/{repo}")),
    )
}

/// A Fargate task definition with ARN `arn` (family and revision taken from it) naming execution role `role`.
fn task_definition(arn: &str, role: &str, containers: Vec<Value>) -> TaskDefinition {
    let (family, revision) = arn
        .rsplit_once('/')
        .and_then(|(_, rest)| rest.rsplit_once(':'))
        .expect("a task definition ARN");
    let text = json!({
        "taskDefinitionArn": arn,
        "family": family,
        "revision": revision.parse::<i64>().unwrap(),
        "executionRoleArn": role_arn(role),
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": containers,
    })
    .to_string();
    TaskDefinition::from_json(&text).expect("test task definition parses")
}

/// What a task definition made of `ecr_container(repo)` needs: (action, resource).
fn needs_of(repo: &str) -> Vec<(String, String)> {
    let mut needs = vec![("ecr:GetAuthorizationToken".to_string(), "*".to_string())];
    for action in [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ] {
        needs.push((action.into(), ecr_repo_arn(repo)));
    }
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        needs.push((action.into(), log_group_arn(&format!("/ecs/{repo}"))));
    }
    needs
}

fn grant_set(pairs: &[(String, String)]) -> BTreeSet<Grant> {
    pairs
        .iter()
        .map(|(action, resource)| Grant::new(Effect::Allow, action, resource, &Conditions::new()))
        .collect()
}

/// A policy document with one statement per (action, resource).
fn policy_text(pairs: &[(String, String)]) -> String {
    let statements: Vec<Value> = pairs
        .iter()
        .map(|(a, r)| json!({ "Effect": "Allow", "Action": a, "Resource": r }))
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// The grants of a stored policy text.
fn grants_of(text: &str) -> BTreeSet<Grant> {
    crate::policy::grants(&PolicyDocument::parse(text).expect("stored policy parses"))
}

fn stale() -> (String, String) {
    ("ecr:BatchGetImage".to_string(), ecr_repo_arn("old"))
}

fn denied(service: &'static str, operation: &'static str) -> AwsError {
    AwsError::new(service, operation, ErrorKind::AccessDenied, "injected")
}

// ---------------------------------------------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------------------------------------------

/// One Region's ECS: task definitions by ARN, listed in ARN order, `page_size` per page (0: one page).
#[derive(Default)]
struct FakeEcs {
    task_definitions: Mutex<BTreeMap<String, TaskDefinition>>,
    page_size: usize,
    list_error: Mutex<Option<AwsError>>,
    describe_errors: Mutex<BTreeMap<String, AwsError>>,
    list_calls: AtomicUsize,
    list_times: Mutex<Vec<tokio::time::Instant>>,
    describe_calls: Mutex<BTreeMap<String, usize>>,
    /// Deregistered revisions: described, never listed.
    inactive: Mutex<BTreeMap<String, TaskDefinition>>,
    /// What services run (`family:revision` or ARNs).
    in_use: Mutex<Vec<String>>,
    /// How long each listing takes (a big account, rate limits): a sweep is not instantaneous.
    list_delay: Mutex<std::time::Duration>,
}

impl FakeEcs {
    fn with(self, td: TaskDefinition) -> Self {
        let arn = td.arn.clone().expect("fake task definitions have an ARN");
        self.task_definitions.lock().unwrap().insert(arn, td);
        self
    }

    /// Deregister a revision: no longer listed, still described.
    fn deregister(&self, arn: &str) {
        let td = self.task_definitions.lock().unwrap().remove(arn);
        if let Some(td) = td {
            self.inactive.lock().unwrap().insert(arn.to_string(), td);
        }
    }

    fn paged(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    fn fail_describe(&self, arn: &str) {
        self.describe_errors
            .lock()
            .unwrap()
            .insert(arn.to_string(), denied("ecs", "DescribeTaskDefinition"));
    }

    fn fail_listing(&self, error: Option<AwsError>) {
        *self.list_error.lock().unwrap() = error;
    }

    fn list_calls(&self) -> usize {
        self.list_calls.load(Ordering::SeqCst)
    }

    fn describe_calls(&self, arn: &str) -> usize {
        self.describe_calls
            .lock()
            .unwrap()
            .get(arn)
            .copied()
            .unwrap_or(0)
    }

    fn all_describe_calls(&self) -> usize {
        self.describe_calls.lock().unwrap().values().sum()
    }
}

#[async_trait]
impl EcsApi for FakeEcs {
    async fn list_task_definitions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<TaskDefinitionPage, AwsError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.list_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if next_token.is_none() {
            self.list_times
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
        }
        if let Some(error) = self.list_error.lock().unwrap().clone() {
            return Err(error);
        }
        let arns: Vec<String> = self
            .task_definitions
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        if self.page_size == 0 {
            return Ok(TaskDefinitionPage {
                arns,
                next_token: None,
            });
        }
        let page: usize = match next_token {
            None => 0,
            Some(token) => token
                .strip_prefix("page-")
                .and_then(|n| n.parse().ok())
                .expect("a token this fake handed out"),
        };
        let start = page * self.page_size;
        let end = (start + self.page_size).min(arns.len());
        Ok(TaskDefinitionPage {
            arns: arns[start.min(end)..end].to_vec(),
            next_token: (end < arns.len()).then(|| format!("page-{}", page + 1)),
        })
    }

    async fn describe_task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError> {
        *self
            .describe_calls
            .lock()
            .unwrap()
            .entry(arn.to_string())
            .or_default() += 1;
        if let Some(error) = self.describe_errors.lock().unwrap().get(arn) {
            return Err(error.clone());
        }
        let inactive = self.inactive.lock().unwrap().get(arn).cloned();
        self.task_definitions
            .lock()
            .unwrap()
            .get(arn)
            .cloned()
            .or(inactive)
            .ok_or_else(|| {
                AwsError::new(
                    "ecs",
                    "DescribeTaskDefinition",
                    ErrorKind::NotFound,
                    "no such",
                )
            })
    }

    async fn task_definitions_in_use(&self) -> Result<Vec<String>, AwsError> {
        Ok(self.in_use.lock().unwrap().clone())
    }
}

/// One IAM call as the fake saw it.
#[derive(Debug, Clone)]
struct Call {
    operation: &'static str,
    role: String,
    policy: Option<String>,
    /// When it was made (the test clock).
    at: tokio::time::Instant,
}

/// The IAM operations that change something.
const WRITES: [&str; 4] = [
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "UpdateAssumeRolePolicy",
];

/// One account's IAM: role → inline policies (name → document text as put).
#[derive(Default)]
struct FakeIam {
    roles: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    calls: Mutex<Vec<Call>>,
    errors: Mutex<BTreeMap<(&'static str, String), AwsError>>,
}

impl FakeIam {
    fn role(self, name: &str, policies: &[(&str, &str)]) -> Self {
        self.roles.lock().unwrap().insert(
            name.to_string(),
            policies
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
        );
        self
    }

    fn fail(self, operation: &'static str, role: &str, error: AwsError) -> Self {
        self.errors
            .lock()
            .unwrap()
            .insert((operation, role.to_string()), error);
        self
    }

    fn policy(&self, role: &str, name: &str) -> Option<String> {
        self.roles.lock().unwrap().get(role)?.get(name).cloned()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    fn calls_for(&self, role: &str) -> usize {
        self.calls().iter().filter(|c| c.role == role).count()
    }

    /// Every write, whatever it changes.
    fn writes(&self) -> usize {
        WRITES.iter().map(|op| self.count(op)).sum()
    }

    /// Record the call and return the injected error for it, if any.
    fn enter(
        &self,
        operation: &'static str,
        role: &str,
        policy: Option<&str>,
    ) -> Result<(), AwsError> {
        self.calls.lock().unwrap().push(Call {
            operation,
            role: role.to_string(),
            policy: policy.map(str::to_string),
            at: tokio::time::Instant::now(),
        });
        match self
            .errors
            .lock()
            .unwrap()
            .get(&(operation, role.to_string()))
        {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn no_such_role(operation: &'static str, role: &str) -> AwsError {
        AwsError::new(
            "iam",
            operation,
            ErrorKind::NotFound,
            format!("role {role}"),
        )
    }
}

#[async_trait]
impl IamApi for FakeIam {
    async fn get_role(&self, role: &str) -> Result<Option<RoleInfo>, AwsError> {
        self.enter("GetRole", role, None)?;
        let exists = self.roles.lock().unwrap().contains_key(role);
        Ok(exists.then(|| RoleInfo {
            arn: role_arn(role),
            ..RoleInfo::default()
        }))
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        self.enter("ListRolePolicies", role, None)?;
        let roles = self.roles.lock().unwrap();
        let policies = roles
            .get(role)
            .ok_or_else(|| Self::no_such_role("ListRolePolicies", role))?;
        Ok(policies.keys().cloned().collect())
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError> {
        self.enter("GetRolePolicy", role, Some(policy))?;
        let roles = self.roles.lock().unwrap();
        let policies = roles
            .get(role)
            .ok_or_else(|| Self::no_such_role("GetRolePolicy", role))?;
        // IAM returns documents URL-encoded.
        Ok(policies.get(policy).map(|d| {
            percent_encoding::utf8_percent_encode(d, percent_encoding::NON_ALPHANUMERIC).to_string()
        }))
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.enter("PutRolePolicy", role, Some(policy))?;
        let mut roles = self.roles.lock().unwrap();
        let policies = roles
            .get_mut(role)
            .ok_or_else(|| Self::no_such_role("PutRolePolicy", role))?;
        policies.insert(policy.to_string(), document.to_string());
        Ok(())
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), AwsError> {
        self.enter("DeleteRolePolicy", role, Some(policy))?;
        let mut roles = self.roles.lock().unwrap();
        let policies = roles
            .get_mut(role)
            .ok_or_else(|| Self::no_such_role("DeleteRolePolicy", role))?;
        policies.remove(policy).map(|_| ()).ok_or_else(|| {
            AwsError::new(
                "iam",
                "DeleteRolePolicy",
                ErrorKind::NotFound,
                "no such policy",
            )
        })
    }

    async fn list_attached_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        self.enter("ListAttachedRolePolicies", role, None)?;
        match self.roles.lock().unwrap().contains_key(role) {
            true => Ok(Vec::new()),
            false => Err(Self::no_such_role("ListAttachedRolePolicies", role)),
        }
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), AwsError> {
        self.enter("AttachRolePolicy", role, Some(policy_arn))
    }

    async fn update_assume_role_policy(&self, role: &str, _document: &str) -> Result<(), AwsError> {
        self.enter("UpdateAssumeRolePolicy", role, None)
    }
}

/// Look-ups in an account where no secret, parameter or key exists; its registry has `rules`, and every
/// rules look-up is counted.
#[derive(Default)]
struct FakeFacts {
    rules: Vec<PullThroughRule>,
    rule_calls: AtomicUsize,
}

#[async_trait]
impl FactsApi for FakeFacts {
    async fn describe_secret(&self, _: &str, _: &str) -> Result<Option<SecretFacts>, AwsError> {
        Ok(None)
    }
    async fn describe_parameter(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<ParameterFacts>, AwsError> {
        Ok(None)
    }
    async fn describe_key(&self, _: &str, _: &str) -> Result<Option<KeyFacts>, AwsError> {
        Ok(None)
    }
    async fn pull_through_cache_rules(&self, _: &str) -> Result<Vec<PullThroughRule>, AwsError> {
        self.rule_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.rules.clone())
    }
}

/// Hands every target the same fakes: `ecs` for each of its Regions, `iam` and `FakeFacts` for its account.
struct FakeSource {
    ecs: Arc<FakeEcs>,
    iam: Arc<FakeIam>,
    facts: Arc<FakeFacts>,
    events: Arc<FakeQueue>,
}

/// An events queue: bodies pushed by the test, received in order; an empty receive waits its long poll out.
#[derive(Default)]
struct FakeQueue {
    bodies: Mutex<std::collections::VecDeque<String>>,
    deleted: AtomicUsize,
}

#[async_trait]
impl crate::aws::EventQueue for FakeQueue {
    async fn receive(
        &self,
        wait: std::time::Duration,
        max_messages: i32,
    ) -> Result<Vec<crate::aws::QueueMessage>, AwsError> {
        let take = |bodies: &mut std::collections::VecDeque<String>| -> Vec<_> {
            let n = bodies.len().min(max_messages.max(1) as usize);
            bodies
                .drain(..n)
                .enumerate()
                .map(|(i, body)| crate::aws::QueueMessage {
                    body,
                    receipt_handle: format!("handle-{i}"),
                })
                .collect()
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let messages = take(&mut self.bodies.lock().unwrap());
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(messages);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<(), AwsError> {
        self.deleted
            .fetch_add(receipt_handles.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl ClientSource for FakeSource {
    async fn clients(&self, target: &Target) -> TargetClients {
        TargetClients {
            ecs: target
                .regions
                .iter()
                .map(|r| (r.clone(), self.ecs.clone() as Arc<dyn EcsApi>))
                .collect(),
            iam: self.iam.clone(),
            facts: self.facts.clone(),
        }
    }

    fn event_queue(&self, _events: &crate::config::Events) -> Arc<dyn crate::aws::EventQueue> {
        self.events.clone()
    }
}

/// A controller wired to fakes, with its metrics and health.
struct World {
    source: Arc<FakeSource>,
    ecs: Arc<FakeEcs>,
    iam: Arc<FakeIam>,
    facts: Arc<FakeFacts>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    controller: Controller,
}

impl World {
    async fn new(yaml: &str, ecs: FakeEcs, iam: FakeIam) -> World {
        World::with_facts(yaml, ecs, iam, FakeFacts::default()).await
    }

    async fn with_facts(yaml: &str, ecs: FakeEcs, iam: FakeIam, facts: FakeFacts) -> World {
        World::with_config(config(yaml), ecs, iam, facts).await
    }

    async fn with_config(config: Config, ecs: FakeEcs, iam: FakeIam, facts: FakeFacts) -> World {
        let source = FakeSource {
            ecs: Arc::new(ecs),
            iam: Arc::new(iam),
            facts: Arc::new(facts),
            events: Arc::new(FakeQueue::default()),
        };
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let controller = Controller::new(config, &source, metrics.clone(), health.clone()).await;
        World {
            ecs: source.ecs.clone(),
            iam: source.iam.clone(),
            facts: source.facts.clone(),
            source: Arc::new(source),
            metrics,
            health,
            controller,
        }
    }

    async fn pass(&self, mode: Mode) -> PassReport {
        self.controller.pass(mode, &CancellationToken::new()).await
    }

    fn reconciles(&self, result: &str) -> u64 {
        self.metrics.reconciles.with_label_values(&[result]).get()
    }

    fn drift(&self, kind: &str) -> i64 {
        self.metrics.roles_in_drift.with_label_values(&[kind]).get()
    }
}

fn outcomes(pairs: &[(Outcome, usize)]) -> BTreeMap<Outcome, usize> {
    pairs.iter().copied().collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn enforce_writes_the_owned_policy_and_a_second_pass_writes_nothing() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("worker", 1),
            "app-exec",
            vec![ecr_container("worker")],
        ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;

    let first = w.pass(Mode::Enforce).await;
    assert!(first.is_success(), "{first:?}");
    assert_eq!(first.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(first.writes, 1);
    let puts: Vec<Call> = w
        .iam
        .calls()
        .into_iter()
        .filter(|c| c.operation == "PutRolePolicy")
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(
        (puts[0].role.as_str(), puts[0].policy.as_deref()),
        ("app-exec", Some(OWNED))
    );
    assert_eq!(w.iam.count("DeleteRolePolicy"), 0);
    let written = w
        .iam
        .policy("app-exec", OWNED)
        .expect("owned policy written");
    let mut wanted = needs_of("web");
    wanted.extend(needs_of("worker"));
    assert_eq!(grants_of(&written), grant_set(&wanted));
    assert_eq!(
        w.metrics
            .iam_writes
            .with_label_values(&["PutRolePolicy"])
            .get(),
        1
    );
    assert_eq!(w.ecs.all_describe_calls(), 2);

    let hits_before = w.metrics.cache_hits.get();
    let second = w.pass(Mode::Enforce).await;
    assert!(second.is_success(), "{second:?}");
    assert_eq!(second.outcomes, outcomes(&[(Outcome::InSync, 1)]));
    assert_eq!(second.writes, 0);
    assert_eq!(
        w.iam.writes(),
        1,
        "the second pass wrote: {:?}",
        w.iam.calls()
    );
    assert_eq!(
        w.ecs.all_describe_calls(),
        2,
        "revisions are described once"
    );
    assert_eq!(w.metrics.cache_hits.get(), hits_before + 2);
    assert!(!second.plan.has_changes());
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_pending() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;

    let report = w.pass(Mode::DryRun).await;

    assert_eq!(report.outcomes, outcomes(&[(Outcome::Pending, 1)]));
    assert!(report.plan.has_changes());
    assert!(matches!(
        report.plan.roles[0].change,
        crate::plan::Change::Create { .. }
    ));
    assert_eq!(report.writes, 0);
    assert_eq!(w.iam.writes(), 0);
    assert_eq!(w.iam.policy("app-exec", OWNED), None);
    assert_eq!(w.metrics.iam_writes_total(), 0);
    assert_eq!(w.drift("missing"), 1);
    assert_eq!(w.drift("excess"), 0);
    assert_eq!(w.reconciles("pending"), 1);
}

#[tokio::test]
async fn foreign_inline_policies_are_never_touched() {
    let foreign = "  {\"Version\": \"2012-10-17\",\n\t\"Statement\": [ {\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"} ] }\n  ";
    let mut owned = needs_of("web");
    owned.push(stale());
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let iam = FakeIam::default().role(
        "app-exec",
        &[("team-extra", foreign), (OWNED, &policy_text(&owned))],
    );
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(
        w.iam.policy("app-exec", "team-extra").as_deref(),
        Some(foreign)
    );
    let now = grants_of(&w.iam.policy("app-exec", OWNED).unwrap());
    assert_eq!(now, grant_set(&needs_of("web")));
    assert!(!now.contains(grant_set(&[stale()]).first().unwrap()));
    let touched_foreign: Vec<Call> = w
        .iam
        .calls()
        .into_iter()
        // Reading it is allowed (its size counts against the role's inline limit); writing is not.
        .filter(|c| c.policy.as_deref() == Some("team-extra") && c.operation != "GetRolePolicy")
        .collect();
    assert!(touched_foreign.is_empty(), "{touched_foreign:?}");
    assert_eq!(
        report.plan.roles[0].other_inline_policies,
        vec!["team-extra"]
    );
}

#[tokio::test]
async fn a_role_needing_nothing_loses_its_owned_policy() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![container("nginx:1.27", None)],
    ));
    let iam = FakeIam::default().role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))]);
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(report.plan.roles[0].change, crate::plan::Change::Delete);
    assert_eq!(w.iam.count("DeleteRolePolicy"), 1);
    assert_eq!(w.iam.count("PutRolePolicy"), 0);
    assert_eq!(w.iam.policy("app-exec", OWNED), None);
    assert_eq!(
        w.metrics
            .iam_writes
            .with_label_values(&["DeleteRolePolicy"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_failing_role_does_not_stop_the_others() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("a", 1),
            "role-a",
            vec![ecr_container("a")],
        ))
        .with(task_definition(
            &td_arn("b", 1),
            "role-b",
            vec![ecr_container("b")],
        ));
    let iam = FakeIam::default()
        .role("role-a", &[])
        .role("role-b", &[])
        .fail("GetRole", "role-a", denied("iam", "GetRole"));
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(
        report.outcomes,
        outcomes(&[(Outcome::Applied, 1), (Outcome::Error, 1)])
    );
    assert_eq!(
        grants_of(&w.iam.policy("role-b", OWNED).expect("role-b written")),
        grant_set(&needs_of("b"))
    );
    assert_eq!(w.iam.policy("role-a", OWNED), None);
    let failed: Vec<&str> = report
        .plan
        .errors
        .iter()
        .map(|(k, _)| k.name.as_str())
        .collect();
    assert_eq!(failed, vec!["role-a"]);
    assert!(
        report.plan.errors[0].1.contains("access_denied"),
        "{:?}",
        report.plan.errors
    );
    assert!(!report.is_success());
    assert_eq!(w.reconciles("error"), 1);
    assert_eq!(w.reconciles("applied"), 1);
    assert_eq!(w.metrics.passes.with_label_values(&["failure"]).get(), 1);
}

#[tokio::test]
async fn a_revision_that_cannot_be_described_blocks_removals_but_not_additions() {
    struct Case {
        name: &'static str,
        owned: Vec<(String, String)>,
        /// Whether the pass must write (`None`: either is acceptable, as long as nothing is removed).
        write: Option<bool>,
    }
    let web1 = needs_of("web");
    let without_logs: Vec<(String, String)> = web1
        .iter()
        .filter(|(a, _)| !a.starts_with("logs:"))
        .cloned()
        .collect();
    let with_stale = |mut v: Vec<(String, String)>| {
        v.push(stale());
        v
    };
    let cases = [
        Case {
            name: "only a removal",
            owned: with_stale(web1.clone()),
            write: Some(false),
        },
        Case {
            name: "only an addition",
            owned: without_logs.clone(),
            write: Some(true),
        },
        Case {
            name: "an addition and a removal",
            owned: with_stale(without_logs.clone()),
            write: None,
        },
    ];
    for case in cases {
        let ecs = FakeEcs::default()
            .with(task_definition(
                &td_arn("web", 1),
                "app-exec",
                vec![ecr_container("web")],
            ))
            .with(task_definition(
                &td_arn("web", 2),
                "app-exec",
                vec![ecr_container("web")],
            ));
        ecs.fail_describe(&td_arn("web", 2));
        let before = policy_text(&case.owned);
        let iam = FakeIam::default().role("app-exec", &[(OWNED, &before)]);
        let w = World::new(CONFIG, ecs, iam).await;

        let report = w.pass(Mode::Enforce).await;

        let name = case.name;
        assert!(!report.is_success(), "{name}: {report:?}");
        assert!(
            report
                .observe_errors
                .iter()
                .any(|e| e.contains(&td_arn("web", 2))),
            "{name}: {:?}",
            report.observe_errors
        );
        let after = w.iam.policy("app-exec", OWNED).expect("owned policy kept");
        let removed: Vec<Grant> = grants_of(&before)
            .difference(&grants_of(&after))
            .cloned()
            .collect();
        assert!(removed.is_empty(), "{name}: removed {removed:?}");
        match case.write {
            Some(false) => {
                assert_eq!(w.iam.writes(), 0, "{name}");
                assert_eq!(after, before, "{name}");
                assert_eq!(
                    report.outcomes,
                    outcomes(&[(Outcome::Pending, 1)]),
                    "{name}"
                );
                assert_eq!(w.drift("excess"), 1, "{name}");
            }
            Some(true) => {
                assert_eq!(w.iam.count("PutRolePolicy"), 1, "{name}");
                assert_eq!(grants_of(&after), grant_set(&web1), "{name}");
                assert_eq!(
                    report.outcomes,
                    outcomes(&[(Outcome::Applied, 1)]),
                    "{name}"
                );
            }
            None => {}
        }
        assert_eq!(
            w.metrics.passes.with_label_values(&["failure"]).get(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn out_of_scope_families_are_not_described_or_touched() {
    let yaml = format!("{CONFIG}task_definitions:\n  exclude_families: [\"legacy-*\"]\n");
    let legacy = td_arn("legacy-app", 3);
    let ecs = FakeEcs::default()
        .with(task_definition(
            &legacy,
            "legacy-exec",
            vec![ecr_container("legacy")],
        ))
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ));
    let stale_owned = policy_text(&[stale()]);
    let iam = FakeIam::default()
        .role("legacy-exec", &[(OWNED, &stale_owned)])
        .role("app-exec", &[]);
    let w = World::new(&yaml, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert!(report.is_success(), "{report:?}");
    assert_eq!(w.ecs.describe_calls(&legacy), 0);
    assert_eq!(w.ecs.describe_calls(&td_arn("web", 1)), 1);
    assert_eq!(w.iam.calls_for("legacy-exec"), 0, "{:?}", w.iam.calls());
    assert_eq!(w.iam.policy("legacy-exec", OWNED), Some(stale_owned));
    assert!(w.iam.policy("app-exec", OWNED).is_some());
    let roles: Vec<&str> = report
        .plan
        .roles
        .iter()
        .map(|r| r.key.name.as_str())
        .collect();
    assert_eq!(roles, vec!["app-exec"]);
    assert_eq!(w.metrics.task_definitions_watched.get(), 1);
}

#[tokio::test]
async fn a_task_definition_in_another_account_is_never_acted_on() {
    let foreign = format!("arn:aws:ecs:{REGION}:{OTHER_ACCOUNT}:task-definition/web:1");
    let ecs = FakeEcs::default().with(task_definition(
        &foreign,
        "foreign-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("foreign-exec", &[])).await;

    let report = w.pass(Mode::Enforce).await;

    assert!(!report.is_success());
    assert!(
        report
            .observe_errors
            .iter()
            .any(|e| e.contains(&foreign) && e.contains("not in the target account")),
        "{:?}",
        report.observe_errors
    );
    assert_eq!(w.ecs.describe_calls(&foreign), 0);
    assert_eq!(w.iam.calls_for("foreign-exec"), 0, "{:?}", w.iam.calls());
    assert_eq!(w.iam.policy("foreign-exec", OWNED), None);
    assert!(report.plan.roles.is_empty());
}

#[tokio::test]
async fn a_missing_role_is_reported_and_not_written() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "gone-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default()).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(report.plan.roles.len(), 1);
    let role = &report.plan.roles[0];
    assert_eq!(role.key.name, "gone-exec");
    assert!(!role.role_exists);
    assert_eq!(role.task_definitions, vec!["web:1"]);
    assert_eq!(w.iam.writes(), 0, "{:?}", w.iam.calls());
    assert_eq!(report.writes, 0);
    assert_eq!(w.iam.count("ListRolePolicies"), 0);
}

#[tokio::test]
async fn readiness_follows_the_last_pass() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;
    let ready = |w: &World| (w.health.is_ready(), w.metrics.ready.get());

    assert_eq!(ready(&w), (false, 0), "before the first pass");

    assert!(w.pass(Mode::Enforce).await.is_success());
    assert_eq!(ready(&w), (true, 1), "after a clean pass");

    w.ecs
        .fail_listing(Some(denied("ecs", "ListTaskDefinitions")));
    let failed = w.pass(Mode::Enforce).await;
    assert!(!failed.observe_errors.is_empty());
    assert_eq!(ready(&w), (false, 0), "after a pass that could not list");

    w.ecs.fail_listing(None);
    assert!(w.pass(Mode::Enforce).await.is_success());
    assert_eq!(ready(&w), (true, 1), "after listing recovers");
}

#[tokio::test]
async fn shutdown_before_a_pass_starts_no_role() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("api", 1),
            "api-exec",
            vec![ecr_container("api")],
        ));
    let stale_owned = policy_text(&[stale()]);
    let iam = FakeIam::default()
        .role("app-exec", &[(OWNED, &stale_owned)])
        .role("api-exec", &[]);
    let w = World::new(CONFIG, ecs, iam).await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();

    let report = w.controller.pass(Mode::Enforce, &shutdown).await;

    assert!(w.iam.calls().is_empty(), "{:?}", w.iam.calls());
    assert_eq!(report.writes, 0);
    assert!(report.outcomes.is_empty(), "{:?}", report.outcomes);
    assert_eq!(w.iam.policy("app-exec", OWNED), Some(stale_owned));
}

#[tokio::test]
async fn listing_follows_every_page_and_finds_revisions_on_each() {
    let families = ["a", "b", "c", "d", "e"];
    let mut ecs = FakeEcs::default().paged(2);
    for family in families {
        ecs = ecs.with(task_definition(
            &td_arn(family, 1),
            &format!("{family}-exec"),
            vec![ecr_container(family)],
        ));
    }
    let mut iam = FakeIam::default();
    for family in families {
        iam = iam.role(&format!("{family}-exec"), &[]);
    }
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert!(report.is_success(), "{report:?}");
    assert_eq!(w.ecs.list_calls(), 3, "5 revisions, 2 per page");
    for family in families {
        assert_eq!(w.ecs.describe_calls(&td_arn(family, 1)), 1, "{family}");
        let written = w.iam.policy(&format!("{family}-exec"), OWNED);
        assert_eq!(
            written.as_deref().map(grants_of),
            Some(grant_set(&needs_of(family))),
            "{family}"
        );
    }
    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 5)]));
    assert_eq!(w.metrics.task_definitions_watched.get(), 5);
}

#[tokio::test]
async fn a_pass_cut_short_by_shutdown_is_not_recorded_as_a_success() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();

    let report = w.controller.pass(Mode::Enforce, &shutdown).await;

    assert!(report.outcomes.is_empty(), "no role was reconciled");
    assert_eq!(w.metrics.passes.with_label_values(&["success"]).get(), 0);
    assert_eq!(w.metrics.last_success.get(), 0);
    // Readiness is about seeing the world: the listing itself completed.
    assert!(w.health.is_ready());
    assert_eq!(w.metrics.ready.get(), 1);
}

#[tokio::test]
async fn a_pull_through_cache_image_gets_the_import_actions_and_the_rules_are_cached() {
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:1.27";
    let plain = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:1";
    let container =
        |name: &str, image: &str| serde_json::json!({"name": name, "image": image}).to_string();
    let td = TaskDefinition::from_json(&format!(
        r#"{{"taskDefinitionArn":"{}","family":"web","revision":1,
            "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec",
            "containerDefinitions":[{},{}]}}"#,
        td_arn("web", 1),
        container("web", image),
        container("api", plain),
    ))
    .unwrap();
    let facts = FakeFacts {
        rules: vec![PullThroughRule {
            prefix: "docker-hub".into(),
        }],
        ..Default::default()
    };
    let w = World::with_facts(
        CONFIG,
        FakeEcs::default().with(td),
        FakeIam::default().role("app-exec", &[]),
        facts,
    )
    .await;
    let report = w.pass(Mode::Enforce).await;
    assert!(report.is_success(), "{report:?}");
    let written = w
        .iam
        .policy("app-exec", OWNED)
        .expect("owned policy written");
    let grants = grants_of(&written);
    let cache = "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/*";
    for action in ["ecr:batchimportupstreamimage", "ecr:createrepository"] {
        assert!(
            grants
                .iter()
                .any(|g| g.action == action && g.resource == cache),
            "{action} on {cache} missing: {grants:#?}"
        );
    }
    // The plain repository does not match the rule: no import actions on it.
    assert!(
        !grants
            .iter()
            .any(|g| g.action == "ecr:createrepository" && g.resource.contains("team/api"))
    );
    let calls = w.facts.rule_calls.load(Ordering::SeqCst);
    assert_eq!(calls, 1, "one look-up per registry");
    w.pass(Mode::Enforce).await;
    assert_eq!(
        w.facts.rule_calls.load(Ordering::SeqCst),
        1,
        "answered from the cache"
    );
    assert_eq!(w.iam.writes(), 1);
}

#[tokio::test]
async fn the_blast_radius_cap_limits_the_roles_written_per_pass() {
    let yaml = format!("{CONFIG}safety:\n  max_roles_written_per_pass: 2\n");
    let mut ecs = FakeEcs::default();
    let mut iam = FakeIam::default();
    for name in ["a", "b", "c"] {
        ecs = ecs.with(task_definition(
            &td_arn(name, 1),
            &format!("{name}-exec"),
            vec![ecr_container(name)],
        ));
        iam = iam.role(&format!("{name}-exec"), &[]);
    }
    let w = World::new(&yaml, ecs, iam).await;
    let first = w.pass(Mode::Enforce).await;
    assert_eq!(
        first.outcomes,
        outcomes(&[(Outcome::Applied, 2), (Outcome::Pending, 1)])
    );
    assert_eq!(w.iam.writes(), 2);
    assert_eq!(
        w.drift("missing"),
        1,
        "the role left for the next pass is still in drift"
    );
    let second = w.pass(Mode::Enforce).await;
    assert_eq!(
        second.outcomes,
        outcomes(&[(Outcome::Applied, 1), (Outcome::InSync, 2)])
    );
    assert_eq!(w.iam.writes(), 3);
}

#[test]
fn wildcard_and_never_grant_actions_are_forbidden() {
    let safety = crate::config::Safety::default();
    for action in [
        "*",
        "ecr:*",
        "s3:*",
        "iam:PassRole",
        "IAM:passrole",
        "sts:AssumeRole",
    ] {
        assert!(safety.is_forbidden(action), "{action}");
    }
    for action in [
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "ecr:Get*",
    ] {
        assert!(!safety.is_forbidden(action), "{action}");
    }
}

mod daemon;

/// `web:1` pulls `old` and `web:2` pulls `web`, both with `app-exec`: what only `web:1` needs is `old`.
fn web_revisions_old_and_new() -> FakeEcs {
    FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("old")],
        ))
        .with(task_definition(
            &td_arn("web", 2),
            "app-exec",
            vec![ecr_container("web")],
        ))
}

#[tokio::test(start_paused = true)]
async fn a_deregistered_revisions_exclusive_permissions_are_pruned_after_the_grace_period_not_before()
 {
    let yaml = format!("{CONFIG}task_definitions:\n  prune_grace_period: 10m\n");
    let ecs = web_revisions_old_and_new();
    let w = World::new(&yaml, ecs, FakeIam::default().role("app-exec", &[])).await;
    let both: Vec<(String, String)> = needs_of("old").into_iter().chain(needs_of("web")).collect();
    w.pass(Mode::Enforce).await;
    let granted = || w.iam.policy("app-exec", OWNED).as_deref().map(grants_of);
    assert_eq!(granted(), Some(grant_set(&both)));

    w.ecs.deregister(&td_arn("web", 1));
    tokio::time::advance(std::time::Duration::from_secs(9 * 60)).await;
    let report = w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&both)),
        "kept within the grace period"
    );
    assert_eq!(report.writes, 0);
    assert_eq!(w.metrics.task_definitions_in_grace.get(), 1);

    // The grace period runs from the pass that first found it gone (at 9 minutes).
    tokio::time::advance(std::time::Duration::from_secs(11 * 60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&needs_of("web"))),
        "pruned after it"
    );
    assert_eq!(
        w.ecs.describe_calls(&td_arn("web", 1)),
        1,
        "described once, ever"
    );
}

#[tokio::test(start_paused = true)]
async fn inactive_revisions_a_service_still_runs_count_when_configured() {
    let ecs = web_revisions_old_and_new();
    ecs.deregister(&td_arn("web", 1));
    // moto (and a hand-edited service) may name the revision without its ARN.
    ecs.in_use.lock().unwrap().push("web:1".into());
    let both: Vec<(String, String)> = needs_of("old").into_iter().chain(needs_of("web")).collect();

    let counted = format!(
        "{CONFIG}task_definitions:\n  include_inactive_in_use: true\n  prune_grace_period: 0s\n"
    );
    let w = World::new(&counted, ecs, FakeIam::default().role("app-exec", &[])).await;
    w.pass(Mode::Enforce).await;
    let granted = || w.iam.policy("app-exec", OWNED).as_deref().map(grants_of);
    assert_eq!(
        granted(),
        Some(grant_set(&both)),
        "the running INACTIVE revision counts"
    );

    // The service moves on: the revision stops counting (no grace here) and its permissions go.
    w.ecs.in_use.lock().unwrap().clear();
    w.pass(Mode::Enforce).await;
    assert_eq!(granted(), Some(grant_set(&needs_of("web"))));
}

#[tokio::test(start_paused = true)]
async fn inactive_revisions_do_not_count_unless_configured() {
    let ecs = web_revisions_old_and_new();
    ecs.deregister(&td_arn("web", 1));
    ecs.in_use.lock().unwrap().push(td_arn("web", 1));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        w.iam.policy("app-exec", OWNED).as_deref().map(grants_of),
        Some(grant_set(&needs_of("web")))
    );
    assert_eq!(w.ecs.describe_calls(&td_arn("web", 1)), 0);
}

/// Found in review: the grace period must run from when a revision stopped counting, not from when a sweep last
/// saw it (with a resync longer than the grace period, a revision deregistered a minute before a sweep was pruned
/// at once).
#[tokio::test(start_paused = true)]
async fn a_revision_deregistered_just_before_a_sweep_keeps_its_permissions_for_the_grace_period() {
    let yaml = format!("{CONFIG}task_definitions:\n  prune_grace_period: 30m\n");
    let w = World::new(
        &yaml,
        web_revisions_old_and_new(),
        FakeIam::default().role("app-exec", &[]),
    )
    .await;
    let both: Vec<(String, String)> = needs_of("old").into_iter().chain(needs_of("web")).collect();
    let granted = || w.iam.policy("app-exec", OWNED).as_deref().map(grants_of);
    w.pass(Mode::Enforce).await;
    assert_eq!(granted(), Some(grant_set(&both)));
    tokio::time::advance(std::time::Duration::from_secs(59 * 60)).await;
    w.ecs.deregister(&td_arn("web", 1));
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&both)),
        "one minute into a 30 minute grace period"
    );
    tokio::time::advance(std::time::Duration::from_secs(29 * 60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(granted(), Some(grant_set(&both)), "29 minutes into it");
    tokio::time::advance(std::time::Duration::from_secs(2 * 60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&needs_of("web"))),
        "pruned after it"
    );
}
