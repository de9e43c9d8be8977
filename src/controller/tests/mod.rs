//! Controller tests against in-memory fakes of ECS and IAM. This module holds the fakes; the tests are by topic:
//! `pass` (writes, outcomes, safety), `observe` (listing, scope, held-back removals), `grace` (revisions that stop
//! counting) and `daemon` (the run loop on a paused clock).
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

/// A managed policy in `FakeIam` (customer managed, or AWS managed by its ARN): one version (`v1`), its path, tags
/// and the roles it is attached to.
#[derive(Debug, Clone, Default)]
struct FakeManaged {
    /// The policy id (`ANPA…`): a policy deleted and created again under the same ARN gets a new one.
    id: String,
    name: String,
    path: String,
    document: String,
    tags: Vec<(String, String)>,
    attached_to: BTreeSet<String>,
}

/// One account's IAM: role → inline policies (name → document text as put), what else a role has, and managed
/// policies by ARN. `GetAccountAuthorizationDetails` answers only when `bulk_page_size` is set.
#[derive(Default)]
struct FakeIam {
    roles: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    managed: Mutex<BTreeMap<String, FakeManaged>>,
    calls: Mutex<Vec<Call>>,
    errors: Mutex<BTreeMap<(&'static str, String), AwsError>>,
    /// Path, tags, trust policy and boundary, for the roles that have them.
    extras: Mutex<BTreeMap<String, RoleExtras>>,
    /// Items per `GetAccountAuthorizationDetails` page; `None`: the call is not supported.
    bulk_page_size: Option<usize>,
    /// How long each `GetRole` takes (an account throttled or far away).
    get_role_delay: std::time::Duration,
}

/// What a fake role has besides its inline policies and attachments.
#[derive(Debug, Clone, Default)]
struct RoleExtras {
    path: String,
    tags: Vec<(String, String)>,
    trust: Option<String>,
    boundary: Option<String>,
}

/// A document as IAM returns it: URL-encoded.
fn url_encoded(document: &str) -> String {
    percent_encoding::utf8_percent_encode(document, percent_encoding::NON_ALPHANUMERIC).to_string()
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

    /// Answer `GetAccountAuthorizationDetails` with `page_size` items a page.
    fn bulk(mut self, page_size: usize) -> Self {
        self.bulk_page_size = Some(page_size);
        self
    }

    fn extras(self, role: &str, extras: RoleExtras) -> Self {
        self.extras.lock().unwrap().insert(role.to_string(), extras);
        self
    }

    /// Add a managed policy (customer managed in this account, or AWS managed) by ARN.
    fn managed(self, arn: &str, policy: FakeManaged) -> Self {
        self.managed.lock().unwrap().insert(arn.to_string(), policy);
        self
    }

    /// The role as `GetRole` answers it.
    fn info(&self, role: &str) -> RoleInfo {
        let extras = self.extras.lock().unwrap().get(role).cloned();
        let extras = extras.unwrap_or_default();
        RoleInfo {
            arn: role_arn(role),
            assume_role_policy: extras.trust.as_deref().map(url_encoded),
            permissions_boundary: extras.boundary,
            path: extras.path,
            tags: extras.tags,
        }
    }

    /// The ARNs of the role's attached policies, in `ListAttachedRolePolicies` order.
    fn attached(&self, role: &str) -> Vec<String> {
        let managed = self.managed.lock().unwrap();
        managed
            .iter()
            .filter(|(_, m)| m.attached_to.contains(role))
            .map(|(arn, _)| arn.clone())
            .collect()
    }

    /// Every role and this account's managed policies, in the order the bulk read pages them.
    fn authorization_items(&self) -> Vec<crate::aws::AuthorizationItem> {
        use crate::aws::{AuthorizationItem, LocalPolicy, LocalPolicyVersion, RoleDetail};
        let roles = self.roles.lock().unwrap().clone();
        let mut items: Vec<AuthorizationItem> = roles
            .iter()
            .map(|(name, inline)| {
                AuthorizationItem::Role(RoleDetail {
                    name: name.clone(),
                    info: self.info(name),
                    inline_policies: inline
                        .iter()
                        .map(|(n, d)| (n.clone(), url_encoded(d)))
                        .collect(),
                    attached_policies: self.attached(name),
                })
            })
            .collect();
        let managed = self.managed.lock().unwrap();
        for (arn, policy) in managed.iter().filter(|(arn, _)| arn.contains(ACCOUNT)) {
            items.push(AuthorizationItem::Policy(LocalPolicy {
                arn: arn.clone(),
                name: policy.name.clone(),
                path: policy.path.clone(),
                policy_id: policy.id.clone(),
                default_version_id: "v1".into(),
                attachment_count: policy.attached_to.len(),
                versions: vec![LocalPolicyVersion {
                    version_id: "v1".into(),
                    is_default: true,
                    document: Some(url_encoded(&policy.document)),
                }],
            }));
        }
        items
    }

    /// Calls of these operations (the per-role reads, for instance).
    fn count_of(&self, operations: &[&str]) -> usize {
        operations.iter().map(|op| self.count(op)).sum()
    }

    fn fail(self, operation: &'static str, role: &str, error: AwsError) -> Self {
        self.errors
            .lock()
            .unwrap()
            .insert((operation, role.to_string()), error);
        self
    }

    /// Stop failing `operation` for `role`.
    fn heal(&self, operation: &'static str, role: &str) {
        self.errors
            .lock()
            .unwrap()
            .remove(&(operation, role.to_string()));
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
        if !self.get_role_delay.is_zero() {
            tokio::time::sleep(self.get_role_delay).await;
        }
        self.enter("GetRole", role, None)?;
        let exists = self.roles.lock().unwrap().contains_key(role);
        Ok(exists.then(|| self.info(role)))
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
        Ok(policies.get(policy).map(|d| url_encoded(d)))
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
        if !self.roles.lock().unwrap().contains_key(role) {
            return Err(Self::no_such_role("ListAttachedRolePolicies", role));
        }
        Ok(self.attached(role))
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), AwsError> {
        self.enter("AttachRolePolicy", role, Some(policy_arn))?;
        if let Some(m) = self.managed.lock().unwrap().get_mut(policy_arn) {
            m.attached_to.insert(role.to_string());
        }
        Ok(())
    }

    async fn update_assume_role_policy(&self, role: &str, _document: &str) -> Result<(), AwsError> {
        self.enter("UpdateAssumeRolePolicy", role, None)
    }

    /// The call is recorded with the path as its policy.
    async fn list_local_policies(
        &self,
        path_prefix: &str,
    ) -> Result<Vec<crate::aws::ListedPolicy>, AwsError> {
        self.enter("ListPolicies", "", Some(path_prefix))?;
        let managed = self.managed.lock().unwrap();
        Ok(managed
            .iter()
            .filter(|(_, m)| m.path.starts_with(path_prefix))
            .map(|(arn, m)| crate::aws::ListedPolicy {
                name: m.name.clone(),
                arn: arn.clone(),
                path: m.path.clone(),
            })
            .collect())
    }

    async fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        self.enter("CreatePolicy", "", Some(name))?;
        let mut managed = self.managed.lock().unwrap();
        if managed.values().any(|m| m.name == name) {
            let error = format!("A policy called {name} already exists.");
            return Err(AwsError::new(
                "iam",
                "CreatePolicy",
                ErrorKind::InvalidInput,
                error,
            ));
        }
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy{path}{name}");
        let policy = FakeManaged {
            id: format!("ANPA{}", managed.len() + 1),
            name: name.to_string(),
            path: path.to_string(),
            document: document.to_string(),
            tags: tags.to_vec(),
            attached_to: BTreeSet::new(),
        };
        managed.insert(arn.clone(), policy);
        Ok(arn)
    }

    async fn get_policy(
        &self,
        arn: &str,
    ) -> Result<Option<crate::aws::ManagedPolicyInfo>, AwsError> {
        self.enter("GetPolicy", "", Some(arn))?;
        Ok(self
            .managed
            .lock()
            .unwrap()
            .get(arn)
            .map(|m| crate::aws::ManagedPolicyInfo {
                arn: arn.to_string(),
                id: m.id.clone(),
                attachment_count: u32::try_from(m.attached_to.len()).ok(),
                default_version_id: "v1".into(),
                tags: m.tags.clone(),
            }))
    }

    async fn list_policy_versions(
        &self,
        arn: &str,
    ) -> Result<Vec<crate::aws::PolicyVersionInfo>, AwsError> {
        self.enter("ListPolicyVersions", "", Some(arn))?;
        Ok(vec![crate::aws::PolicyVersionInfo {
            version_id: "v1".into(),
            is_default: true,
        }])
    }

    async fn get_policy_version(
        &self,
        arn: &str,
        _version_id: &str,
    ) -> Result<Option<String>, AwsError> {
        self.enter("GetPolicyVersion", "", Some(arn))?;
        Ok(self
            .managed
            .lock()
            .unwrap()
            .get(arn)
            .map(|m| url_encoded(&m.document)))
    }

    async fn account_authorization_page(
        &self,
        marker: Option<String>,
    ) -> Result<crate::aws::AuthorizationPage, AwsError> {
        self.enter("GetAccountAuthorizationDetails", "", marker.as_deref())?;
        let Some(size) = self.bulk_page_size else {
            return Err(AwsError::new(
                "iam",
                "GetAccountAuthorizationDetails",
                ErrorKind::Other,
                "not supported by this fake",
            ));
        };
        let items = self.authorization_items();
        let page: usize = marker
            .map(|m| {
                m.strip_prefix("m-")
                    .and_then(|n| n.parse().ok())
                    .expect("a marker of this fake")
            })
            .unwrap_or(0);
        let start = (page * size).min(items.len());
        let end = (start + size).min(items.len());
        Ok(crate::aws::AuthorizationPage {
            items: items[start..end].to_vec(),
            marker: (end < items.len()).then(|| format!("m-{}", page + 1)),
        })
    }
}

/// Look-ups in an account where no parameter or key exists, and no secret unless `secrets_exist` (then every
/// secret exists, under the default key); its registry has `rules`. Every secret and rules look-up is counted.
#[derive(Default)]
pub(super) struct FakeFacts {
    pub(super) rules: Vec<PullThroughRule>,
    pub(super) rule_calls: AtomicUsize,
    pub(super) secrets_exist: bool,
    pub(super) secret_calls: AtomicUsize,
}

#[async_trait]
impl FactsApi for FakeFacts {
    async fn describe_secret(&self, _: &str, id: &str) -> Result<Option<SecretFacts>, AwsError> {
        self.secret_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.secrets_exist.then(|| SecretFacts {
            arn: id.to_string(),
            kms_key_id: None,
        }))
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

mod accounts;
mod bulk;
mod coordination;
mod daemon;
mod grace;
mod observe;
mod owned_spill;
mod pass;
