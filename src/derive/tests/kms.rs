//! "When kms:Decrypt is needed", and the secret look-up that settles an ambiguous id: table tests with facts.

use super::*;

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-bbbb-3333-cccc4444dddd";

/// Facts given to a derivation.
type Known = Vec<(Lookup, Fact)>;

fn secret_lookup(arn: &str) -> Lookup {
    let a = Arn::parse(arn).unwrap();
    Lookup::Secret {
        region: a.region,
        account: a.account,
        secret_id: arn.to_string(),
    }
}

fn key_lookup(region: &str, account: &str, key_id: &str) -> Lookup {
    Lookup::Key {
        region: region.into(),
        account: account.into(),
        key_id: key_id.into(),
    }
}

fn secret_fact(arn: &str, kms_key_id: Option<&str>) -> Fact {
    Fact::Secret(SecretFacts {
        arn: arn.into(),
        kms_key_id: kms_key_id.map(str::to_string),
    })
}

fn key_fact(arn: &str, customer_managed: bool) -> Fact {
    Fact::Key(KeyFacts {
        arn: arn.into(),
        customer_managed,
    })
}

fn derive_secret(value_from: &str, facts: &[(Lookup, Fact)]) -> Derivation {
    derive_facts(
        &task(&format!(
            r#"[{{"name":"app","image":"nginx","secrets":[{{"name":"S","valueFrom":"{value_from}"}}]}}]"#
        )),
        facts,
    )
}

fn derive_facts(td: &TaskDefinition, facts: &[(Lookup, Fact)]) -> Derivation {
    let mut known = Facts::new();
    for (lookup, fact) in facts {
        known.insert(lookup.clone(), fact.clone());
    }
    derive_with(td, &DeriveOptions::default(), &known)
}

fn decrypt(d: &Derivation) -> Option<&Permission> {
    d.requirements
        .iter()
        .map(|r| &r.permission)
        .find(|p| p.action == "kms:Decrypt")
}

fn via(p: &Permission) -> Vec<String> {
    p.conditions["StringEquals"]["kms:ViaService"].clone()
}

#[test]
fn secrets_under_the_aws_managed_key_need_no_decrypt() {
    let cases = [
        vec![(secret_lookup(SECRET), secret_fact(SECRET, None))],
        vec![(
            secret_lookup(SECRET),
            secret_fact(SECRET, Some("alias/aws/secretsmanager")),
        )],
        vec![(
            secret_lookup(SECRET),
            secret_fact(
                SECRET,
                Some("arn:aws:kms:us-east-1:123456789012:alias/aws/secretsmanager"),
            ),
        )],
        // A key that DescribeKey reports as AWS managed.
        vec![
            (secret_lookup(SECRET), secret_fact(SECRET, Some(KEY))),
            (
                key_lookup("us-east-1", "123456789012", KEY),
                key_fact(KEY, false),
            ),
        ],
    ];
    for facts in cases {
        let d = derive_secret(SECRET, &facts);
        assert_eq!(
            other_grants(&d),
            vec![pair("secretsmanager:GetSecretValue", SECRET)],
            "{facts:?}"
        );
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert!(d.lookups.is_empty(), "{:?}", d.lookups);
    }
}

#[test]
fn a_customer_managed_key_needs_decrypt_on_the_key_arn_via_the_service() {
    // The key as an ARN, and as an alias resolved in the secret's Region and account.
    for key_id in [
        KEY,
        "alias/app-secrets",
        "1111aaaa-2222-bbbb-3333-cccc4444dddd",
    ] {
        let d = derive_secret(
            &format!("{SECRET}:password::"),
            &[
                (secret_lookup(SECRET), secret_fact(SECRET, Some(key_id))),
                (
                    key_lookup("us-east-1", "123456789012", key_id),
                    key_fact(KEY, true),
                ),
            ],
        );
        let p = decrypt(&d).expect("kms:Decrypt");
        assert_eq!(p.resource, KEY);
        assert_eq!(
            via(p),
            vec!["secretsmanager.us-east-1.amazonaws.com".to_string()]
        );
        assert!(d.findings.is_empty(), "{key_id}: {:?}", d.findings);
        assert_eq!(
            requirement(&d, "kms:Decrypt")
                .reasons
                .first()
                .unwrap()
                .field
                .to_string(),
            "containerDefinitions[0].secrets[0].valueFrom"
        );
    }
}

#[test]
fn secure_string_parameters_need_decrypt_only_under_a_customer_managed_key() {
    let parameter = Lookup::Parameter {
        region: "us-east-1".into(),
        account: "123456789012".into(),
        name: "/app/db".into(),
    };
    let param = |kind: &str, key: Option<&str>| {
        Fact::Parameter(ParameterFacts {
            kind: kind.into(),
            key_id: key.map(str::to_string),
        })
    };
    let cases = [
        (param("String", None), None),
        (param("StringList", None), None),
        (param("SecureString", None), None),
        (param("SecureString", Some("alias/aws/ssm")), None),
        (
            param("SecureString", Some(KEY)),
            Some("ssm.us-east-1.amazonaws.com"),
        ),
    ];
    for (fact, want) in cases {
        let d = derive_secret(
            "/app/db",
            &[
                (parameter.clone(), fact.clone()),
                (
                    key_lookup("us-east-1", "123456789012", KEY),
                    key_fact(KEY, true),
                ),
            ],
        );
        match want {
            None => assert!(decrypt(&d).is_none(), "{fact:?}"),
            Some(service) => {
                let p = decrypt(&d).expect("kms:Decrypt");
                assert_eq!(
                    (p.resource.as_str(), via(p)),
                    (KEY, vec![service.to_string()])
                );
            }
        }
        assert!(d.findings.is_empty(), "{fact:?}: {:?}", d.findings);
    }
}

#[test]
fn china_and_govcloud_keys_use_their_partition_and_service_domain() {
    let cases = [
        (
            "cn-north-1",
            "aws-cn",
            "secretsmanager.cn-north-1.amazonaws.com.cn",
        ),
        (
            "us-gov-west-1",
            "aws-us-gov",
            "secretsmanager.us-gov-west-1.amazonaws.com",
        ),
    ];
    for (region, partition, service) in cases {
        let secret =
            format!("arn:{partition}:secretsmanager:{region}:123456789012:secret:db-AbCdEf");
        let key = format!("arn:{partition}:kms:{region}:123456789012:key/k1");
        let td = task_in(
            region,
            "",
            &format!(
                r#"[{{"name":"app","image":"nginx","secrets":[{{"name":"S","valueFrom":"{secret}"}}]}}]"#
            ),
        );
        let d = derive_facts(
            &td,
            &[
                (
                    secret_lookup(&secret),
                    secret_fact(&secret, Some("alias/app")),
                ),
                (
                    key_lookup(region, "123456789012", "alias/app"),
                    key_fact(&key, true),
                ),
            ],
        );
        let p = decrypt(&d).expect("kms:Decrypt");
        assert_eq!(
            (p.resource.clone(), via(p)),
            (key, vec![service.to_string()])
        );
    }
}

#[test]
fn failed_missing_and_unknown_lookups_are_findings_and_never_decrypt() {
    let cases: Vec<(Known, Vec<FindingKind>)> = vec![
        // Offline: nothing known about the secret.
        (vec![], vec![FindingKind::UnresolvedLookup]),
        (
            vec![(
                secret_lookup(SECRET),
                Fact::Failed {
                    reason: "AccessDenied".into(),
                },
            )],
            vec![FindingKind::UnresolvedLookup],
        ),
        (
            vec![(secret_lookup(SECRET), Fact::NotFound)],
            vec![FindingKind::ReferenceNotFound],
        ),
        // The secret is known, its key is not (yet) looked up, or its look-up failed, or the key is gone.
        (
            vec![(secret_lookup(SECRET), secret_fact(SECRET, Some(KEY)))],
            vec![FindingKind::UnresolvedLookup],
        ),
        (
            vec![
                (secret_lookup(SECRET), secret_fact(SECRET, Some(KEY))),
                (
                    key_lookup("us-east-1", "123456789012", KEY),
                    Fact::Failed {
                        reason: "denied".into(),
                    },
                ),
            ],
            vec![FindingKind::UnresolvedLookup],
        ),
        (
            vec![
                (secret_lookup(SECRET), secret_fact(SECRET, Some(KEY))),
                (key_lookup("us-east-1", "123456789012", KEY), Fact::NotFound),
            ],
            vec![FindingKind::ReferenceNotFound],
        ),
        // A look-up answered with the wrong kind of fact.
        (
            vec![(
                secret_lookup(SECRET),
                Fact::PullThroughCacheRules { rules: vec![] },
            )],
            vec![FindingKind::UnresolvedLookup],
        ),
    ];
    for (facts, want) in cases {
        let d = derive_secret(SECRET, &facts);
        assert!(decrypt(&d).is_none(), "{facts:?}");
        assert_eq!(
            other_grants(&d),
            vec![pair("secretsmanager:GetSecretValue", SECRET)],
            "{facts:?}"
        );
        assert_eq!(kinds(&d), want, "{facts:?}: {:?}", d.findings);
    }
    let failed = derive_secret(
        SECRET,
        &[(
            secret_lookup(SECRET),
            Fact::Failed {
                reason: "AccessDenied".into(),
            },
        )],
    );
    assert!(failed.findings[0].message.contains("AccessDenied"));
    // What is not known is asked for.
    let offline = derive_secret(SECRET, &[]);
    assert_eq!(offline.lookups, vec![secret_lookup(SECRET)]);
    let half = derive_secret(
        SECRET,
        &[(
            secret_lookup(SECRET),
            secret_fact(SECRET, Some("alias/app")),
        )],
    );
    assert_eq!(
        half.lookups,
        vec![key_lookup("us-east-1", "123456789012", "alias/app")]
    );
}

#[test]
fn a_cross_account_customer_managed_key_is_granted_and_reported() {
    let key = "arn:aws:kms:us-east-1:999999999999:key/shared";
    let d = derive_secret(
        SECRET,
        &[
            (secret_lookup(SECRET), secret_fact(SECRET, Some(key))),
            (
                key_lookup("us-east-1", "999999999999", key),
                key_fact(key, true),
            ),
        ],
    );
    assert_eq!(decrypt(&d).unwrap().resource, key);
    assert_eq!(kinds(&d), vec![FindingKind::CrossAccountResource]);
    assert!(d.findings[0].message.contains("key policy"));
}

#[test]
fn a_lookup_that_returns_no_key_arn_grants_nothing() {
    let d = derive_secret(
        SECRET,
        &[
            (
                secret_lookup(SECRET),
                secret_fact(SECRET, Some("alias/app")),
            ),
            (
                key_lookup("us-east-1", "123456789012", "alias/app"),
                key_fact("*", true),
            ),
        ],
    );
    assert!(decrypt(&d).is_none());
    assert_eq!(kinds(&d), vec![FindingKind::UnresolvedLookup]);
}

#[test]
fn an_id_that_ends_like_a_suffix_is_settled_by_the_secret_lookup() {
    let written = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-config";
    let ambiguous = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbC12d";
    let cases = [
        // Offline: a mixed-case ending is taken as the random suffix (the common case).
        (ambiguous, vec![], ambiguous.to_string()),
        // The look-up says it is the full ARN.
        (
            ambiguous,
            vec![(secret_lookup(ambiguous), secret_fact(ambiguous, None))],
            ambiguous.to_string(),
        ),
        // The look-up says it is a name that itself ends like a suffix.
        (
            ambiguous,
            vec![(
                secret_lookup(ambiguous),
                secret_fact(&format!("{ambiguous}-XyZ123"), None),
            )],
            format!("{ambiguous}-??????"),
        ),
        // A name without a suffix stays `-??????` whatever the look-up says (stable if the secret is recreated).
        (
            written,
            vec![(
                secret_lookup(written),
                secret_fact(&format!("{written}-XyZ123"), None),
            )],
            format!("{written}-??????"),
        ),
        // A nonsensical answer never widens the resource.
        (
            ambiguous,
            vec![(secret_lookup(ambiguous), secret_fact("*", None))],
            ambiguous.to_string(),
        ),
    ];
    for (value_from, facts, resource) in cases {
        let d = derive_secret(value_from, &facts);
        assert_eq!(
            other_grants(&d),
            vec![pair("secretsmanager:GetSecretValue", &resource)],
            "{facts:?}"
        );
    }
}

#[test]
fn one_lookup_serves_a_secret_referenced_several_ways() {
    let d = derive(&task(&format!(
        r#"[{{"name":"a","image":"nginx","secrets":[{{"name":"A","valueFrom":"{SECRET}"}},
              {{"name":"B","valueFrom":"{SECRET}:user::"}}],
            "repositoryCredentials":{{"credentialsParameter":"{SECRET}"}}}}]"#
    )));
    assert_eq!(d.lookups, vec![secret_lookup(SECRET)]);
    assert_eq!(
        requirement(&d, "secretsmanager:GetSecretValue")
            .reasons
            .len(),
        3
    );
}

#[test]
fn only_a_look_up_not_made_is_listed_as_not_looked_up() {
    let offline = derive_secret(SECRET, &[]);
    assert_eq!(offline.not_looked_up.len(), 1);
    assert!(offline.findings.contains(&offline.not_looked_up[0]));
    assert_eq!(offline.not_looked_up[0].kind, FindingKind::UnresolvedLookup);

    let failed = derive_secret(
        SECRET,
        &[(
            secret_lookup(SECRET),
            Fact::Failed {
                reason: "AccessDenied".into(),
            },
        )],
    );
    assert!(
        failed
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::UnresolvedLookup)
    );
    assert!(failed.not_looked_up.is_empty());
}

#[test]
fn each_unresolved_fact_names_what_it_holds_back() {
    let failed = || Fact::Failed {
        reason: "AccessDenied".into(),
    };
    let holds = |d: &Derivation| -> Vec<Option<HoldScope>> {
        d.findings
            .iter()
            .filter(|f| f.kind == FindingKind::UnresolvedLookup)
            .map(|f| f.holds.clone())
            .collect()
    };
    // A secret: its own grant (by full ARN or name) and kms:Decrypt on keys of its Region.
    let d = derive_secret(SECRET, &[(secret_lookup(SECRET), failed())]);
    let secret = HoldScope::Secret {
        arn: SECRET.into(),
        region: "us-east-1".into(),
    };
    assert_eq!(holds(&d), vec![Some(secret.clone())]);
    // Not looked up at all (offline): the same scope.
    assert_eq!(holds(&derive_secret(SECRET, &[])), vec![Some(secret)]);
    // A key: kms:Decrypt on keys of its Region and account.
    let d = derive_secret(
        SECRET,
        &[
            (
                secret_lookup(SECRET),
                secret_fact(SECRET, Some("alias/app")),
            ),
            (
                key_lookup("us-east-1", "123456789012", "alias/app"),
                failed(),
            ),
        ],
    );
    assert_eq!(
        holds(&d),
        vec![Some(HoldScope::Decrypt {
            region: "us-east-1".into(),
            account: Some("123456789012".into())
        })]
    );
    // A parameter: kms:Decrypt on keys of its Region, whatever the account.
    let parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/app/token";
    let lookup = Lookup::Parameter {
        region: "us-east-1".into(),
        account: "123456789012".into(),
        name: "app/token".into(),
    };
    let d = derive_secret(parameter, &[(lookup, failed())]);
    assert_eq!(
        holds(&d),
        vec![Some(HoldScope::Decrypt {
            region: "us-east-1".into(),
            account: None
        })]
    );
}

#[test]
fn a_secret_holds_back_its_grant_in_every_valuefrom_form_and_decrypt_in_its_region() {
    // A full or partial ARN, with or without a `:json-key:version-stage:version-id` suffix, holds the secret's
    // own ARN (both forms) and kms:Decrypt on keys of the secret's Region, wherever the task runs.
    let partial = "arn:aws:secretsmanager:eu-west-1:222222222222:secret:db";
    let cases = [
        (
            format!("{SECRET}:password:AWSCURRENT:"),
            SECRET,
            "us-east-1",
        ),
        (format!("{partial}:password::"), partial, "eu-west-1"),
        (partial.to_string(), partial, "eu-west-1"),
    ];
    for (value_from, arn, region) in cases {
        let d = derive_secret(&value_from, &[]);
        let holds: Vec<_> = d.findings.iter().filter_map(|f| f.holds.clone()).collect();
        let scope = HoldScope::Secret {
            arn: arn.into(),
            region: region.into(),
        };
        assert_eq!(holds, vec![scope.clone()], "{value_from}");
        for resource in [arn.to_string(), format!("{arn}-??????")] {
            let get = Permission::new("secretsmanager:GetSecretValue", resource);
            assert!(scope.covers(&get), "{value_from}: {get:?}");
        }
        let key = format!("arn:aws:kms:{region}:333333333333:key/k");
        assert!(scope.covers(&Permission::new("kms:Decrypt", key)));
    }
}
