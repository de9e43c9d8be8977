//! Facts that derivation needs from AWS but cannot see in a task definition: a secret's full ARN and KMS key, an
//! SSM parameter's type and key, a KMS key's ARN and manager, a registry's pull-through-cache rules. Derivation
//! asks for them as [`Lookup`]s and reads the answers from [`Facts`]; the controller performs the look-ups (never
//! reading a secret value). Offline, `Facts` is empty and every needed look-up is reported as unresolved.

use std::collections::BTreeMap;

use serde::Serialize;

/// A fact to look up before a requirement can be decided.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "lookup", rename_all = "snake_case")]
pub enum Lookup {
    /// `secretsmanager:DescribeSecret`: the secret's full ARN and its KMS key id. `secret_id` is what
    /// DescribeSecret accepts (a full ARN, a partial ARN or a name), without any `:json-key:stage:id` suffix.
    Secret {
        /// Where the secret lives.
        region: String,
        /// The secret's account.
        account: String,
        /// Full ARN, partial ARN or name.
        secret_id: String,
    },
    /// `ssm:DescribeParameters` filtered by name: the parameter's type and KMS key id.
    Parameter {
        /// Where the parameter lives.
        region: String,
        /// The parameter's account.
        account: String,
        /// The parameter name, with its leading `/` when it has one.
        name: String,
    },
    /// `kms:DescribeKey`: the key ARN and whether it is customer managed. `key_id` is as the secret or parameter
    /// gives it (id, ARN or alias).
    Key {
        /// The key's Region.
        region: String,
        /// The account to ask in.
        account: String,
        /// Key id, key ARN, alias name or alias ARN.
        key_id: String,
    },
    /// `ecr:DescribePullThroughCacheRules` of one registry.
    PullThroughCacheRules {
        /// The registry's Region.
        region: String,
        /// The registry's account.
        account: String,
    },
}

impl Lookup {
    /// A bounded label for metrics and findings.
    pub fn kind(&self) -> &'static str {
        match self {
            Lookup::Secret { .. } => "secret",
            Lookup::Parameter { .. } => "parameter",
            Lookup::Key { .. } => "kms_key",
            Lookup::PullThroughCacheRules { .. } => "pull_through_cache_rules",
        }
    }
}

/// What `DescribeSecret` said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretFacts {
    /// The full ARN (with the six-character suffix).
    pub arn: String,
    /// `KmsKeyId` as given (id, ARN or alias); `None` means the AWS managed key `aws/secretsmanager`.
    pub kms_key_id: Option<String>,
}

/// What `DescribeParameters` said about one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterFacts {
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
    /// `KeyId` of a SecureString (`alias/aws/ssm` for the AWS managed key).
    pub key_id: Option<String>,
}

/// What `kms:DescribeKey` said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyFacts {
    /// The key ARN (never the alias).
    pub arn: String,
    /// Whether the key is customer managed (`KeyManager = CUSTOMER` and not an `alias/aws/*` key).
    pub customer_managed: bool,
}

/// One pull-through-cache rule of a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullThroughRule {
    /// `ecrRepositoryPrefix`, e.g. `docker-hub`.
    pub prefix: String,
}

/// The answer to a [`Lookup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// A secret's facts.
    Secret(SecretFacts),
    /// A parameter's facts.
    Parameter(ParameterFacts),
    /// A key's facts.
    Key(KeyFacts),
    /// A registry's rules.
    PullThroughCacheRules {
        /// The rules.
        rules: Vec<PullThroughRule>,
    },
    /// The thing does not exist (the task would fail to start).
    NotFound,
    /// The look-up failed or was denied; `reason` is for humans.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Looked-up facts, by look-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    known: BTreeMap<Lookup, Fact>,
}

impl Facts {
    /// No facts (offline).
    pub fn new() -> Facts {
        Facts::default()
    }

    /// The answer to a look-up, when known.
    pub fn get(&self, lookup: &Lookup) -> Option<&Fact> {
        self.known.get(lookup)
    }

    /// Record an answer.
    pub fn insert(&mut self, lookup: Lookup, fact: Fact) {
        self.known.insert(lookup, fact);
    }

    /// How many answers are known.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no answer is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}
