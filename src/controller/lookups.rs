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

/// Derive (with `derive`, given the facts known so far), answer the look-ups derivation asked for, and derive
/// again, until no new look-up is asked or [`MAX_ROUNDS`] is reached. `derive` adds the look-ups it could not
/// answer to the set it is given and returns what it made of the revisions (the caller's fold: a list, or roles
/// being merged), so a round never has to hold every revision's derivation at once. Shared by the controller and
/// `execrole derive --online`.
pub(crate) async fn derive_with_lookups<R>(
    cache: &FactCache,
    target: LookupTarget<'_>,
    metrics: &Metrics,
    derive: impl Fn(&Facts, &mut BTreeSet<Lookup>) -> R,
) -> R {
    let mut facts = Facts::new();
    let mut round = 0;
    loop {
        let mut missing = BTreeSet::new();
        let derived = derive(&facts, &mut missing);
        round += 1;
        if missing.is_empty() || round >= MAX_ROUNDS {
            return derived;
        }
        drop(derived);
        cache
            .answer(
                target.account,
                missing.into_iter().collect(),
                target.api,
                &mut facts,
                target.concurrency,
                metrics,
            )
            .await;
    }
}

/// The look-ups `derivation` asked for, added to `missing` (for the `derive` closure of
/// [`derive_with_lookups`]).
pub(crate) fn note_lookups(derivation: &Derivation, missing: &mut BTreeSet<Lookup>) {
    missing.extend(derivation.lookups.iter().cloned());
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
                    metrics
                        .lookups
                        .with_label_values(&[lookup.kind(), "cached"])
                        .inc();
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
