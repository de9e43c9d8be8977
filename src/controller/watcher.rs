//! The watcher: lists task definition ARNs (every page) in each target account and Region, keeps the in-scope
//! families, and describes each revision once per process lifetime (revisions are immutable, so the cache is keyed
//! by ARN and never goes stale; entries leave the cache when their ARN stops counting).
//!
//! Which revisions count: every ACTIVE one; with `task_definitions.include_inactive_in_use`, also INACTIVE ones
//! that a service still runs or deploys; and, for `task_definitions.prune_grace_period` after it stopped
//! counting (deregistered, no longer used by a service), a revision that counted before, so that the permissions
//! only it needed are pruned after the grace period and not at once. The grace period is remembered in memory (a
//! restart forgets it) and, with `coordination`, also in the lease table, so a take-over keeps it.
//!
//! It only observes; it does not derive or decide anything about roles.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::time::Instant;

use crate::aws::{AwsError, EcsApi};
use crate::config::{Config, Target};
use crate::metrics::Metrics;
use crate::model::{Arn, PackedTaskDefinition, TaskDefinition, TaskDefinitionError};

/// A guard against a service that keeps returning a next token: more pages than this is an error.
const MAX_PAGES: usize = 10_000;

/// Why part of an account could not be observed. Each keeps its kind (and the AWS error, when there is one)
/// until the pass report and the log line; the text says where.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObserveError {
    /// Listing a Region's task definitions failed.
    #[error("{region}: {source}")]
    ListFailed { region: String, source: AwsError },
    /// Listing the task definitions a Region's services use failed.
    #[error("{region}: {source}")]
    InUseListFailed { region: String, source: AwsError },
    /// ECS listed an ARN that is not a task definition's.
    #[error("{region}: unexpected task definition ARN `{arn}`")]
    UnexpectedArn { region: String, arn: String },
    /// The credentials reach another account than the target names: never acted on.
    #[error("{region}: task definition `{arn}` is not in the target account {account}")]
    ForeignAccount {
        region: String,
        arn: String,
        account: String,
    },
    /// Describing one revision failed.
    #[error("{arn}: {source}")]
    DescribeFailed { arn: String, source: AwsError },
}

impl ObserveError {
    /// Whether a sweep soon may see it (a retryable AWS error); the others need a change in the world.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            ObserveError::ListFailed { source, .. }
            | ObserveError::InUseListFailed { source, .. }
            | ObserveError::DescribeFailed { source, .. } => source.is_retryable(),
            ObserveError::UnexpectedArn { .. } | ObserveError::ForeignAccount { .. } => false,
        }
    }
}

/// A described revision as the cache keeps it: its ARN and the execution role it names (to order and group
/// revisions without unpacking them), and the rest of the task definition packed into one allocation (parsed, it
/// takes about thirty; the cache keeps every revision for as long as it is watched). A sweep unpacks the revisions
/// of one role at a time.
#[derive(Debug)]
pub(crate) struct Revision {
    /// `taskDefinitionArn`: the ARN it was listed and described by (the same allocation as the cache's key and
    /// the grace bookkeeping's).
    pub arn: Arc<str>,
    /// `executionRoleArn`.
    pub execution_role_arn: Option<String>,
    /// The rest of the task definition (its ARN and execution role are the fields above, not kept twice).
    packed: PackedTaskDefinition,
}

impl Revision {
    /// The revision listed as `arn` and described as `td`.
    fn new(arn: Arc<str>, td: &TaskDefinition) -> Revision {
        let rest = TaskDefinition {
            arn: None,
            execution_role_arn: None,
            ..td.clone()
        };
        Revision {
            arn,
            execution_role_arn: td.execution_role_arn.clone(),
            packed: PackedTaskDefinition::pack(&rest),
        }
    }

    /// The task definition again, with the ARN it was listed by as `taskDefinitionArn`.
    pub fn unpack(&self) -> Result<TaskDefinition, TaskDefinitionError> {
        let mut td = self.packed.unpack()?;
        td.arn = Some(self.arn.to_string());
        td.execution_role_arn = self.execution_role_arn.clone();
        Ok(td)
    }
}

/// What one pass saw in one account.
#[derive(Debug, Default)]
pub(crate) struct AccountView {
    /// In-scope revisions, described, ordered by ARN.
    pub task_definitions: Vec<Arc<Revision>>,
    /// Errors that make the view incomplete (a Region not listed, a revision not described).
    pub errors: Vec<ObserveError>,
    /// Revisions that no longer count but are kept for the grace period.
    pub in_grace: usize,
}

impl AccountView {
    /// Whether every in-scope revision of the account was seen.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The describe cache: ARN → revision.
#[derive(Default)]
pub(crate) struct Watcher {
    cache: Mutex<HashMap<Arc<str>, Arc<Revision>>>,
    /// Every revision that has counted (listed ACTIVE, or in use by a service): `None` while it counts, and the
    /// time a sweep first found it no longer counting.
    known: Mutex<HashMap<Arc<str>, Option<Instant>>>,
}

/// A task definition reference from a service (`family:revision` or an ARN) as an ARN of `account` in `region`.
fn as_arn(reference: &str, partition: &str, region: &str, account: &str) -> String {
    if reference.starts_with("arn:") {
        reference.to_string()
    } else {
        format!("arn:{partition}:ecs:{region}:{account}:task-definition/{reference}")
    }
}

/// The family of a task definition ARN (`…:task-definition/<family>:<revision>`).
pub(crate) fn family_of(arn: &str) -> Option<String> {
    let parsed = Arn::parse(arn).ok()?;
    let rest = parsed.resource.strip_prefix("task-definition/")?;
    let (family, revision) = rest.rsplit_once(':')?;
    revision.parse::<u64>().ok()?;
    Some(family.to_string())
}

/// Every ARN of every page.
pub(crate) async fn list_all(ecs: &dyn EcsApi) -> Result<Vec<String>, AwsError> {
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    let mut seen_tokens = BTreeSet::new();
    for _ in 0..MAX_PAGES {
        let page = ecs.list_task_definitions_page(token.take()).await?;
        arns.extend(page.arns);
        match page.next_token {
            None => return Ok(arns),
            Some(next) => {
                if !seen_tokens.insert(next.clone()) {
                    return Err(AwsError::new(
                        "ecs",
                        "ListTaskDefinitions",
                        crate::aws::ErrorKind::Other,
                        "the service returned a next token it had returned before; stopping to avoid a loop",
                    ));
                }
                token = Some(next);
            }
        }
    }
    Err(AwsError::new(
        "ecs",
        "ListTaskDefinitions",
        crate::aws::ErrorKind::Other,
        format!("more than {MAX_PAGES} pages"),
    ))
}

/// List every Region of a target (and, when configured, the revisions its services use), by Region; a Region
/// that cannot be listed is left out and noted in `view`.
async fn list_target(
    config: &Config,
    target: &Target,
    regions: &[(String, Arc<dyn EcsApi>)],
    view: &mut AccountView,
) -> BTreeMap<String, Vec<String>> {
    let mut listed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (region, ecs) in regions {
        match list_all(ecs.as_ref()).await {
            Ok(arns) => {
                listed.insert(region.clone(), arns);
            }
            Err(err) => {
                tracing::warn!(account = %target.account, %region, error = %err, retryable = err.is_retryable(), "listing task definitions failed");
                view.errors.push(ObserveError::ListFailed {
                    region: region.clone(),
                    source: err,
                });
            }
        }
    }
    if config.include_inactive_in_use {
        for (region, arns) in listed.iter_mut() {
            let Some((_, ecs)) = regions.iter().find(|(r, _)| r == region) else {
                continue;
            };
            match ecs.task_definitions_in_use().await {
                Ok(in_use) => {
                    let partition = crate::model::partition_for_region(region);
                    let known: BTreeSet<String> = arns.iter().cloned().collect();
                    arns.extend(
                        in_use
                            .iter()
                            .map(|r| as_arn(r, partition, region, &target.account))
                            .filter(|arn| !known.contains(arn))
                            .collect::<BTreeSet<_>>(),
                    );
                }
                Err(err) => {
                    tracing::warn!(account = %target.account, %region, error = %err, retryable = err.is_retryable(), "listing the task definitions services use failed");
                    view.errors.push(ObserveError::InUseListFailed {
                        region: region.clone(),
                        source: err,
                    });
                }
            }
        }
    }
    listed
}

/// The listed revisions to describe: in scope by family, and in the target's account; anything else that looks
/// wrong is noted in `view`.
fn in_scope<'a>(
    config: &Config,
    target: &Target,
    regions: &'a [(String, Arc<dyn EcsApi>)],
    listed: &'a BTreeMap<String, Vec<String>>,
    view: &mut AccountView,
) -> Vec<(&'a str, &'a Arc<dyn EcsApi>)> {
    let mut wanted = Vec::new();
    for (region, arns) in listed {
        let Some((_, ecs)) = regions.iter().find(|(r, _)| r == region) else {
            continue;
        };
        for arn in arns {
            let Some(family) = family_of(arn) else {
                view.errors.push(ObserveError::UnexpectedArn {
                    region: region.clone(),
                    arn: arn.clone(),
                });
                continue;
            };
            if !config.scope.contains_family(&family) {
                continue;
            }
            match Arn::parse(arn) {
                Ok(parsed) if parsed.account == target.account => wanted.push((arn.as_str(), ecs)),
                _ => {
                    // The credentials reach another account than the target names: never act on it.
                    view.errors.push(ObserveError::ForeignAccount {
                        region: region.clone(),
                        arn: arn.clone(),
                        account: target.account.clone(),
                    });
                }
            }
        }
    }
    wanted
}

impl Watcher {
    /// List, filter and describe the in-scope task definitions of one target.
    pub(crate) async fn observe_target(
        &self,
        config: &Config,
        target: &Target,
        regions: &[(String, Arc<dyn EcsApi>)],
        metrics: &Metrics,
    ) -> AccountView {
        let mut view = AccountView::default();
        let mut listed = list_target(config, target, regions, &mut view).await;
        self.keep_for_grace(config, target, &mut listed, &mut view);
        let wanted = in_scope(config, target, regions, &listed, &mut view);
        let misses = self.take_cached(&wanted, &mut view, metrics);
        // The futures are made before they enter the stream (not by a `Stream::map` closure), so the whole
        // sweep future stays `Send` (rust-lang/rust#102211). Only revisions not cached yet are described.
        let describes: Vec<_> = misses
            .into_iter()
            .map(|(arn, ecs)| self.describe_listed(arn.to_string(), ecs.clone(), metrics))
            .collect();
        let described = futures::stream::iter(describes)
            .buffer_unordered(config.concurrency)
            .collect::<Vec<_>>()
            .await;
        for (arn, result) in described {
            match result {
                Ok(td) => view.task_definitions.push(td),
                Err(err) => {
                    tracing::warn!(%arn, error = %err, retryable = err.is_retryable(), "describing a task definition failed");
                    view.errors
                        .push(ObserveError::DescribeFailed { arn, source: err });
                }
            }
        }
        view.task_definitions.sort_by(|a, b| a.arn.cmp(&b.arn));
        let seen: HashSet<&str> = wanted.iter().map(|(arn, _)| *arn).collect();
        self.forget_unlisted(target, &listed, &seen);
        view
    }

    /// Put the cached revisions of `wanted` in `view` (one lock for all of them); returns the others.
    fn take_cached<'a>(
        &self,
        wanted: &[(&'a str, &'a Arc<dyn EcsApi>)],
        view: &mut AccountView,
        metrics: &Metrics,
    ) -> Vec<(&'a str, &'a Arc<dyn EcsApi>)> {
        let Ok(cache) = self.cache.lock() else {
            return wanted.to_vec();
        };
        let mut misses = Vec::new();
        for &(arn, ecs) in wanted {
            match cache.get(arn) {
                Some(td) => view.task_definitions.push(td.clone()),
                None => misses.push((arn, ecs)),
            }
        }
        metrics
            .cache_hits
            .inc_by((wanted.len() - misses.len()) as u64);
        misses
    }

    /// Note which revisions count, and add back those that stopped counting less than the grace period ago (in
    /// Regions that were listed; elsewhere nothing is known). The grace period runs from the first sweep that
    /// found the revision no longer counting, however long ago it was last seen.
    fn keep_for_grace(
        &self,
        config: &Config,
        target: &Target,
        listed: &mut BTreeMap<String, Vec<String>>,
        view: &mut AccountView,
    ) {
        let now = Instant::now();
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let counted: HashSet<&str> = listed.values().flatten().map(String::as_str).collect();
        for arn in &counted {
            if let Some(missing_since) = known.get_mut(*arn) {
                *missing_since = None;
            } else {
                known.insert(Arc::from(*arn), None);
            }
        }
        let mut kept: Vec<(String, String)> = Vec::new();
        known.retain(|arn, missing_since| {
            let Ok(parsed) = Arn::parse(arn) else {
                return false;
            };
            if parsed.account != target.account || counted.contains(&**arn) {
                return true;
            }
            if !listed.contains_key(&parsed.region) {
                return true;
            }
            let since = *missing_since.get_or_insert(now);
            let in_scope = family_of(arn).is_some_and(|f| config.scope.contains_family(&f));
            if in_scope && now.duration_since(since) < config.prune_grace_period {
                kept.push((parsed.region, arn.to_string()));
                true
            } else {
                if in_scope {
                    tracing::info!(%arn, grace = %humantime::format_duration(config.prune_grace_period), "a revision stopped counting over the grace period ago; the permissions only it needed are pruned");
                }
                false
            }
        });
        view.in_grace += kept.len();
        for (region, arn) in kept {
            listed.entry(region).or_default().push(arn);
        }
    }

    /// The revisions of `account` that stopped counting, with when a sweep first found them so (the grace
    /// bookkeeping that `coordination` keeps in the lease table).
    pub(crate) fn missing_since(&self, account: &str) -> BTreeMap<String, Instant> {
        let Ok(known) = self.known.lock() else {
            return BTreeMap::new();
        };
        known
            .iter()
            .filter(|(arn, _)| Arn::parse(arn).is_ok_and(|a| a.account == account))
            .filter_map(|(arn, since)| Some((arn.to_string(), (*since)?)))
            .collect()
    }

    /// Take in revisions an earlier holder of the account found no longer counting; what this process already
    /// knows of a revision wins.
    pub(crate) fn restore_missing_since(&self, since: BTreeMap<String, Instant>) {
        if let Ok(mut known) = self.known.lock() {
            for (arn, at) in since {
                known.entry(Arc::from(arn)).or_insert(Some(at));
            }
        }
    }

    /// Forget what is known of accounts and Regions no longer watched (after a reload).
    pub(crate) fn retain_targets(&self, watched: &BTreeSet<(String, String)>) {
        let keep = |arn: &str| {
            Arn::parse(arn).is_ok_and(|a| watched.contains(&(a.account.clone(), a.region.clone())))
        };
        if let Ok(mut known) = self.known.lock() {
            known.retain(|arn, _| keep(arn));
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|arn, _| keep(arn));
        }
    }

    /// [`Watcher::describe`] for one listed ARN, paired with it. A named function rather than an async closure, so
    /// the futures of the describe fan-out stay `Send`.
    async fn describe_listed(
        &self,
        arn: String,
        ecs: Arc<dyn EcsApi>,
        metrics: &Metrics,
    ) -> (String, Result<Arc<Revision>, AwsError>) {
        let result = self.describe(ecs.as_ref(), &arn, metrics).await;
        (arn, result)
    }

    /// Describe a revision that is not cached yet, and cache it.
    async fn describe(
        &self,
        ecs: &dyn EcsApi,
        arn: &str,
        metrics: &Metrics,
    ) -> Result<Arc<Revision>, AwsError> {
        metrics.cache_misses.inc();
        let mut td = ecs.describe_task_definition(arn).await?;
        // The revision is the one listed as `arn`, whatever the description says (ECS gives the same ARN).
        td.arn = Some(arn.to_string());
        let revision = Arc::new(Revision::new(self.shared_arn(arn), &td));
        // Checked once here, so that a sweep never meets a revision it cannot read back: one that does not survive
        // packing is not cached and counts as not described (the view is incomplete, and removals wait).
        if revision.unpack().as_ref() != Ok(&td) {
            return Err(AwsError::new(
                "ecs",
                "DescribeTaskDefinition",
                crate::aws::ErrorKind::Other,
                "the task definition does not read back as described once packed for the cache",
            ));
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(revision.arn.clone(), revision.clone());
        }
        Ok(revision)
    }

    /// `arn` in the allocation the grace bookkeeping already holds (every described revision is listed first).
    fn shared_arn(&self, arn: &str) -> Arc<str> {
        self.known
            .lock()
            .ok()
            .and_then(|known| known.get_key_value(arn).map(|(k, _)| k.clone()))
            .unwrap_or_else(|| Arc::from(arn))
    }

    /// Drop cache entries of Regions that were listed but no longer list (or no longer scope) them.
    fn forget_unlisted(
        &self,
        target: &Target,
        listed: &BTreeMap<String, Vec<String>>,
        seen: &HashSet<&str>,
    ) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        cache.retain(|arn, _| {
            let Ok(parsed) = Arn::parse(arn) else {
                return false;
            };
            let listed_here =
                parsed.account == target.account && listed.contains_key(&parsed.region);
            !listed_here || seen.contains(&**arn)
        });
    }

    /// How many revisions are cached.
    pub(crate) fn cached_count(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::aws::TaskDefinitionPage;

    /// A fake ECS that serves `pages` in order, keyed by token.
    struct PagedEcs {
        pages: Vec<Vec<String>>,
        calls: AtomicUsize,
        loop_token: bool,
    }

    #[async_trait]
    impl EcsApi for PagedEcs {
        async fn list_task_definitions_page(
            &self,
            token: Option<String>,
        ) -> Result<TaskDefinitionPage, AwsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let index: usize = token.as_deref().map(|t| t.parse().unwrap()).unwrap_or(0);
            let next = if self.loop_token {
                Some("1".to_string())
            } else if index + 1 < self.pages.len() {
                Some((index + 1).to_string())
            } else {
                None
            };
            Ok(TaskDefinitionPage {
                arns: self.pages[index].clone(),
                next_token: next,
            })
        }

        async fn describe_task_definition(&self, _arn: &str) -> Result<TaskDefinition, AwsError> {
            unreachable!("not used")
        }
    }

    #[tokio::test]
    async fn listing_follows_every_page_in_order() {
        let ecs = PagedEcs {
            pages: vec![
                vec!["a".into(), "b".into()],
                vec!["c".into()],
                vec![],
                vec!["d".into()],
            ],
            calls: AtomicUsize::new(0),
            loop_token: false,
        };
        assert_eq!(list_all(&ecs).await.unwrap(), vec!["a", "b", "c", "d"]);
        assert_eq!(ecs.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_repeating_next_token_is_an_error_not_a_hang() {
        let ecs = PagedEcs {
            pages: vec![vec!["a".into()], vec!["b".into()]],
            calls: AtomicUsize::new(0),
            loop_token: true,
        };
        let err = list_all(&ecs).await.unwrap_err();
        assert!(err.message.contains("next token"), "{err}");
    }

    #[test]
    fn a_revision_keeps_its_arn_and_role_once_and_reads_back_whole() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3";
        let role = "arn:aws:iam::123456789012:role/web-exec";
        let td = TaskDefinition::from_json(&format!(
            r#"{{"taskDefinitionArn": "{arn}", "family": "web", "revision": 3,
                "executionRoleArn": "{role}",
                "containerDefinitions": [{{"name": "app", "image": "nginx"}}]}}"#
        ))
        .unwrap();
        let revision = Revision::new(Arc::from(arn), &td);
        assert_eq!(revision.unpack(), Ok(td));
        assert_eq!(revision.execution_role_arn.as_deref(), Some(role));
        let packed = format!("{:?}", revision.packed);
        assert!(!packed.contains(arn) && !packed.contains(role), "{packed}");
    }

    #[test]
    fn family_comes_from_the_arn() {
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3").as_deref(),
            Some("web")
        );
        assert_eq!(
            family_of("arn:aws:ecs:us-east-1:123456789012:task-definition/web"),
            None
        );
        assert_eq!(family_of("nonsense"), None);
    }
}
