//! Answering derivation's look-ups through [`FactsApi`], with a cache whose entries live for `lookups.cache_ttl`
//! (facts under a revision can change: a secret's key, a registry's cache rules). Failed look-ups are not cached:
//! they are retried next pass, and meanwhile the requirement is reported unresolved, never guessed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::aws::{AwsError, FactsApi};
use crate::derive::{Derivation, Fact, Facts, Lookup};
use crate::metrics::Metrics;

/// How many times derivation runs at most: a secret's key is only asked for once the secret is described.
const MAX_ROUNDS: usize = 4;

/// Where the look-ups are answered: the target account, its [`FactsApi`], and how many look-ups run at once.
pub(crate) struct LookupTarget<'a> {
    pub(crate) account: &'a str,
    pub(crate) api: &'a dyn FactsApi,
    pub(crate) concurrency: usize,
}

/// What a round's derivations asked for: the look-ups the facts did not answer, and those they did.
#[derive(Default)]
pub(crate) struct Asked {
    missing: BTreeSet<Lookup>,
    answered: BTreeSet<Lookup>,
}

/// Derive (with `derive`, given the facts known so far), answer the look-ups derivation asked for, and derive
/// again, until no new look-up is asked or [`MAX_ROUNDS`] is reached. The first round starts from the account's
/// fresh cached facts, so a steady sweep derives once. `derive` notes what each derivation asked for
/// ([`note_lookups`]) and returns what it made of the revisions (the caller's fold: a list, or roles being
/// merged), so a round never has to hold every revision's derivation at once. Shared by the controller and
/// `execrole derive --online`.
pub(crate) async fn derive_with_lookups<R>(
    cache: &FactCache,
    target: LookupTarget<'_>,
    metrics: &Metrics,
    derive: impl Fn(&Facts, &mut Asked) -> R,
) -> R {
    let (mut facts, seeded) = cache.seed(target.account);
    let mut round = 0;
    loop {
        let mut asked = Asked::default();
        let derived = derive(&facts, &mut asked);
        round += 1;
        if asked.missing.is_empty() || round >= MAX_ROUNDS {
            count_cached(metrics, asked.answered.intersection(&seeded));
            return derived;
        }
        drop(derived);
        cache
            .answer(
                target.account,
                asked.missing.into_iter().collect(),
                target.api,
                &mut facts,
                target.concurrency,
                metrics,
            )
            .await;
    }
}

/// Count look-ups answered from the cache without a call.
fn count_cached<'a>(metrics: &Metrics, lookups: impl Iterator<Item = &'a Lookup>) {
    for lookup in lookups {
        metrics
            .lookups
            .with_label_values(&[lookup.kind(), "cached"])
            .inc();
    }
}

/// What `derivation` asked for, added to `asked` (for the `derive` closure of [`derive_with_lookups`]).
pub(crate) fn note_lookups(derivation: &Derivation, asked: &mut Asked) {
    asked.missing.extend(derivation.lookups.iter().cloned());
    asked.answered.extend(derivation.answered.iter().cloned());
}

/// Looked-up facts by (target account, look-up), each with the time it was fetched.
pub(crate) struct FactCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, Lookup), (Fact, Instant)>>,
}

impl FactCache {
    pub(crate) fn new(ttl: Duration) -> FactCache {
        FactCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Every fresh fact of `account`, and their look-ups (to count those derivation reads as cached).
    fn seed(&self, account: &str) -> (Facts, BTreeSet<Lookup>) {
        let mut facts = Facts::new();
        let mut seeded = BTreeSet::new();
        if let Ok(entries) = self.entries.lock() {
            for ((owner, lookup), (fact, at)) in entries.iter() {
                if owner == account && at.elapsed() < self.ttl {
                    facts.insert(lookup.clone(), fact.clone());
                    seeded.insert(lookup.clone());
                }
            }
        }
        (facts, seeded)
    }

    fn fresh(&self, account: &str, lookup: &Lookup) -> Option<Fact> {
        let entries = self.entries.lock().ok()?;
        let (fact, at) = entries.get(&(account.to_string(), lookup.clone()))?;
        (at.elapsed() < self.ttl).then(|| fact.clone())
    }

    fn store(&self, account: &str, lookup: &Lookup, fact: &Fact) {
        if matches!(fact, Fact::Failed { .. }) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
            entries.insert(
                (account.to_string(), lookup.clone()),
                (fact.clone(), Instant::now()),
            );
        }
    }

    /// Answer every look-up into `facts`, from the cache or through `api` (with bounded concurrency).
    pub(crate) async fn answer(
        &self,
        account: &str,
        lookups: Vec<Lookup>,
        api: &dyn FactsApi,
        facts: &mut Facts,
        concurrency: usize,
        metrics: &Metrics,
    ) {
        let mut to_fetch = Vec::new();
        for lookup in lookups {
            match self.fresh(account, &lookup) {
                Some(fact) => {
                    count_cached(metrics, std::iter::once(&lookup));
                    facts.insert(lookup, fact);
                }
                None => to_fetch.push(lookup),
            }
        }
        let fetched: Vec<(Lookup, Fact)> = futures::stream::iter(to_fetch)
            .map(|lookup| async move {
                let fact = fetch(account, &lookup, api).await;
                (lookup, fact)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (lookup, fact) in fetched {
            let result = match &fact {
                Fact::NotFound => "not_found",
                Fact::Failed { reason } => {
                    tracing::warn!(lookup = ?lookup, reason = %reason, "look-up failed; the requirement stays unresolved");
                    "failed"
                }
                _ => "found",
            };
            metrics
                .lookups
                .with_label_values(&[lookup.kind(), result])
                .inc();
            self.store(account, &lookup, &fact);
            facts.insert(lookup, fact);
        }
    }
}

fn failed(err: AwsError) -> Fact {
    Fact::Failed {
        reason: err.to_string(),
    }
}

/// One look-up. Parameters and cache rules of another account cannot be described with this account's
/// credentials; secrets and keys can, when their resource policies allow it. (Derivation does not ask for another
/// account's cache rules when it knows the task's account; the guard below is for when it does not.)
async fn fetch(account: &str, lookup: &Lookup, api: &dyn FactsApi) -> Fact {
    match lookup {
        Lookup::Secret {
            region, secret_id, ..
        } => match api.describe_secret(region, secret_id).await {
            Ok(Some(facts)) => Fact::Secret(facts),
            Ok(None) => Fact::NotFound,
            Err(err) => failed(err),
        },
        Lookup::Key { region, key_id, .. } => match api.describe_key(region, key_id).await {
            Ok(Some(facts)) => Fact::Key(facts),
            Ok(None) => Fact::NotFound,
            Err(err) => failed(err),
        },
        Lookup::Parameter {
            region,
            account: owner,
            name,
        } => {
            if owner != account {
                return Fact::Failed {
                    reason: format!(
                        "parameter {name} is in account {owner}; it cannot be described from {account}"
                    ),
                };
            }
            match api.describe_parameter(region, name).await {
                Ok(Some(facts)) => Fact::Parameter(facts),
                Ok(None) => Fact::NotFound,
                Err(err) => failed(err),
            }
        }
        Lookup::PullThroughCacheRules {
            region,
            account: owner,
        } => {
            if owner != account {
                return Fact::Failed {
                    reason: format!(
                        "the registry of account {owner} cannot be described from {account}"
                    ),
                };
            }
            match api.pull_through_cache_rules(region).await {
                Ok(rules) => Fact::PullThroughCacheRules { rules },
                Err(err) => failed(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::controller::tests::FakeFacts;
    use crate::derive::{DeriveContext, DeriveOptions, SecretFacts};
    use crate::model::TaskDefinition;

    const ACCOUNT: &str = "123456789012";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";

    /// Look-ups where every secret exists.
    fn secrets() -> FakeFacts {
        FakeFacts {
            secrets_exist: true,
            ..FakeFacts::default()
        }
    }

    /// How many rounds a sweep over one revision with a secret takes, and whether its last round had the answer.
    async fn sweep(cache: &FactCache, api: &FakeFacts, metrics: &Metrics) -> (usize, bool) {
        let td = TaskDefinition::from_json(&format!(
            r#"{{"family":"app","revision":1,"executionRoleArn":"arn:aws:iam::{ACCOUNT}:role/app-exec",
                "containerDefinitions":[{{"name":"app","image":"nginx","secrets":[{{"name":"S","valueFrom":"{SECRET}"}}]}}]}}"#
        ))
        .unwrap();
        let rounds = AtomicUsize::new(0);
        let target = LookupTarget {
            account: ACCOUNT,
            api,
            concurrency: 2,
        };
        let settled = derive_with_lookups(cache, target, metrics, |facts, asked| {
            rounds.fetch_add(1, Ordering::SeqCst);
            let derivation = crate::derive::required_permissions(
                &td,
                &DeriveContext::default(),
                &DeriveOptions::default(),
                facts,
            );
            note_lookups(&derivation, asked);
            derivation.lookups.is_empty()
        })
        .await;
        (rounds.into_inner(), settled)
    }

    /// A cache with `ttl`, look-ups where every secret exists, and fresh metrics.
    fn world(ttl: Duration) -> (FactCache, FakeFacts, Metrics) {
        (FactCache::new(ttl), secrets(), Metrics::new())
    }

    fn counted(metrics: &Metrics, result: &str) -> u64 {
        metrics.lookups.with_label_values(&["secret", result]).get()
    }

    #[tokio::test]
    async fn a_sweep_starts_from_the_cached_facts_and_derives_once() {
        let (cache, api, metrics) = world(Duration::from_secs(600));
        assert_eq!(
            sweep(&cache, &api, &metrics).await,
            (2, true),
            "cold: derive, look up, derive"
        );
        assert_eq!(
            (counted(&metrics, "found"), counted(&metrics, "cached")),
            (1, 0)
        );
        assert_eq!(
            sweep(&cache, &api, &metrics).await,
            (1, true),
            "warm: one round"
        );
        assert_eq!(sweep(&cache, &api, &metrics).await, (1, true));
        assert_eq!(api.secret_calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            (counted(&metrics, "found"), counted(&metrics, "cached")),
            (1, 2),
            "each warm sweep counts the fact it read from the cache"
        );
    }

    #[tokio::test]
    async fn without_a_cache_every_sweep_looks_up_again() {
        let (cache, api, metrics) = world(Duration::ZERO);
        assert_eq!(sweep(&cache, &api, &metrics).await, (2, true));
        assert_eq!(sweep(&cache, &api, &metrics).await, (2, true));
        assert_eq!(api.secret_calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            (counted(&metrics, "found"), counted(&metrics, "cached")),
            (2, 0)
        );
    }

    #[tokio::test]
    async fn cached_facts_of_another_account_are_not_used() {
        let (cache, api, metrics) = world(Duration::from_secs(600));
        let lookup = Lookup::Secret {
            region: "us-east-1".into(),
            account: ACCOUNT.into(),
            secret_id: SECRET.into(),
        };
        let fact = Fact::Secret(SecretFacts {
            arn: SECRET.into(),
            kms_key_id: None,
        });
        cache.store("210987654321", &lookup, &fact);
        assert_eq!(sweep(&cache, &api, &metrics).await, (2, true));
        assert_eq!(api.secret_calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            (counted(&metrics, "found"), counted(&metrics, "cached")),
            (1, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fact_older_than_the_ttl_is_looked_up_again() {
        let ttl = Duration::from_secs(600);
        let (cache, api, metrics) = world(ttl);
        assert_eq!(sweep(&cache, &api, &metrics).await, (2, true));
        tokio::time::advance(ttl - Duration::from_secs(1)).await;
        assert_eq!(
            sweep(&cache, &api, &metrics).await,
            (1, true),
            "still fresh"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            sweep(&cache, &api, &metrics).await,
            (2, true),
            "expired: derive, look up, derive"
        );
        assert_eq!(api.secret_calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            (counted(&metrics, "found"), counted(&metrics, "cached")),
            (2, 1)
        );
    }
}
