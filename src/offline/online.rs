//! `execrole derive --online`: derive the inputs with the read-only look-ups answered from AWS (`DescribeSecret`,
//! `DescribeParameters`, `DescribeKey`, `DescribePullThroughCacheRules`, never a secret value), through the same
//! [`FactsApi`](crate::aws::FactsApi) adapter and look-up loop the controller uses, with the standard SDK credential
//! chain. Task definitions are looked up per account (the account their ARN, `--account` or execution role names),
//! since parameters and cache rules can only be described from their own account.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{FileReport, Input, parse_inputs};
use crate::aws::ClientFactory;
use crate::config::Target;
use crate::controller::lookups::{FactCache, LookupTarget, derive_with_lookups, note_lookups};
use crate::derive::{self, DeriveContext, DeriveOptions};
use crate::metrics::Metrics;
use crate::model::{Arn, TaskDefinition, is_account_id};

/// How many look-ups run at once.
const CONCURRENCY: usize = 8;

/// Derive every input with its look-ups answered through `factory`'s credentials. Unreadable inputs are reported
/// as in [`super::derive_files`]; failed look-ups stay as `unresolved_lookup` findings, one each.
pub async fn derive_files_online(
    inputs: &[Input],
    ctx: &DeriveContext,
    options: &DeriveOptions,
    factory: &ClientFactory,
    metrics: &Metrics,
) -> Vec<FileReport> {
    let parsed = parse_inputs(inputs);
    let mut by_account: BTreeMap<String, Vec<(usize, &TaskDefinition)>> = BTreeMap::new();
    for (index, (_, td)) in parsed.iter().enumerate() {
        if let Ok(td) = td {
            by_account
                .entry(home_account(td, ctx))
                .or_default()
                .push((index, td));
        }
    }
    let mut derived = BTreeMap::new();
    for (account, tds) in by_account {
        let (_, _, api) = factory.clients(&target(&account)).await;
        let cache = FactCache::new(Duration::from_secs(60));
        let lookup_target = LookupTarget {
            account: &account,
            api: api.as_ref(),
            concurrency: CONCURRENCY,
        };
        let derivations = derive_with_lookups(&cache, lookup_target, metrics, |facts, asked| {
            let derived: Vec<_> = tds
                .iter()
                .map(|(_, td)| derive::required_permissions(td, ctx, options, facts))
                .collect();
            derived.iter().for_each(|d| note_lookups(d, asked));
            derived
        })
        .await;
        derived.extend(tds.iter().map(|(i, _)| *i).zip(derivations));
    }
    parsed
        .into_iter()
        .enumerate()
        .map(|(index, (file, td))| {
            let derivation = td.and_then(|_| {
                derived
                    .remove(&index)
                    .ok_or_else(|| "no derivation was made".to_string())
            });
            FileReport::new(file, derivation, Vec::new())
        })
        .collect()
}

/// The account whose credentials describe a task definition's secrets and parameters: the one in its ARN, else
/// `--account`, else its execution role's (empty when none is known).
fn home_account(td: &TaskDefinition, ctx: &DeriveContext) -> String {
    let role_account = || {
        td.execution_role_arn
            .as_deref()
            .and_then(|a| Arn::parse(a).ok())
            .map(|a| a.account)
    };
    td.parsed_arn()
        .map(|a| a.account)
        .filter(|a| is_account_id(a))
        .or_else(|| ctx.account.clone())
        .or_else(role_account)
        .unwrap_or_default()
}

/// The account as a target of the caller's own credentials (no role assumed). Its Regions stay empty: the
/// look-ups build their clients in the Region of each fact.
fn target(account: &str) -> Target {
    Target {
        account: account.to_string(),
        regions: Vec::new(),
        assume_role_arn: None,
        external_id: None,
        session_name: "execrole-derive".to_string(),
    }
}
