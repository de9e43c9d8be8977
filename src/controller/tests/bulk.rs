//! Bulk observation (`observe: auto | bulk | per-role`) against the fakes: bulk and per-role reads give the same
//! plan for the same IAM state, a bulk read follows every page and makes no per-role read, `auto` chooses by cost
//! and falls back to per-role reads when the call is denied, AWS managed policies are read once per ARN, and a
//! role written in a pass is never judged again from a snapshot read before its settle window ended.

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

/// The per-role reads that bulk observation replaces.
const PER_ROLE_READS: [&str; 4] = [
    "GetRole",
    "ListRolePolicies",
    "GetRolePolicy",
    "ListAttachedRolePolicies",
];

const BULK: &str = "GetAccountAuthorizationDetails";

fn local_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{name}")
}

const AWS_MANAGED: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn web() -> FakeEcs {
    FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ))
}

fn yaml(observe: &str, extra: &str) -> String {
    format!("{CONFIG}observe: {observe}\n{extra}")
}

/// A policy version document allowing (action, resource) pairs, or denying them with `effect: "Deny"`.
fn statement_text(effect: &str, pairs: &[(String, String)]) -> String {
    let statements: Vec<Value> = pairs
        .iter()
        .map(|(a, r)| json!({ "Effect": effect, "Action": a, "Resource": r }))
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// A managed policy at `arn` (its name and path are the ARN's) with one version, attached to `roles`.
fn policy(arn: &str, tags: &[(&str, &str)], document: &str, roles: &[&str]) -> FakeManaged {
    let (path, name) = arn
        .split_once(":policy")
        .and_then(|(_, rest)| rest.rsplit_once('/'))
        .expect("a policy ARN");
    FakeManaged {
        id: format!("ANPA{}", name.to_uppercase()),
        name: name.to_string(),
        path: format!("{path}/"),
        document: document.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        attached_to: roles.iter().map(|r| r.to_string()).collect(),
    }
}

/// One IAM state to observe both ways.
struct Case {
    name: &'static str,
    iam: fn() -> FakeIam,
    /// Config keys beyond `observe`.
    extra: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no such role",
            iam: FakeIam::default,
            extra: "",
        },
        Case {
            name: "owned policy in sync, a foreign inline policy, documents URL-encoded",
            iam: || {
                FakeIam::default().role(
                    "app-exec",
                    &[
                        (OWNED, &policy_text(&needs_of("web"))),
                        ("foreign", &policy_text(&[stale()])),
                    ],
                )
            },
            extra: "",
        },
        Case {
            name: "drift, attached customer and AWS managed policies, a boundary that denies",
            iam: || {
                let denied = vec![("logs:PutLogEvents".to_string(), "*".to_string())];
                let wholesale = vec![("logs:*".to_string(), "*".to_string())];
                FakeIam::default()
                    .role("app-exec", &[(OWNED, &policy_text(&[stale()]))])
                    .extras(
                        "app-exec",
                        RoleExtras {
                            path: "/".into(),
                            boundary: Some(local_arn("boundary")),
                            ..RoleExtras::default()
                        },
                    )
                    .managed(
                        &local_arn("boundary"),
                        policy(
                            &local_arn("boundary"),
                            &[],
                            &statement_text("Deny", &denied),
                            &[],
                        ),
                    )
                    .managed(
                        &local_arn("shared"),
                        policy(
                            &local_arn("shared"),
                            &[],
                            &policy_text(&needs_of("web")[..2]),
                            &["app-exec"],
                        ),
                    )
                    .managed(
                        AWS_MANAGED,
                        policy(AWS_MANAGED, &[], &policy_text(&wholesale), &["app-exec"]),
                    )
            },
            extra: "",
        },
        Case {
            name: "a spill policy of ours and one named like it that is not",
            iam: || {
                let ours = local_arn(&format!("{OWNED}-app-exec-1"));
                let theirs = local_arn(&format!("{OWNED}-app-exec-2"));
                let tag = [crate::plan::OWNER_TAG, (crate::plan::ROLE_TAG, "app-exec")];
                FakeIam::default()
                    .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")[..3]))])
                    .managed(
                        &ours,
                        policy(
                            &ours,
                            &tag,
                            &policy_text(&needs_of("web")[3..]),
                            &["app-exec"],
                        ),
                    )
                    .managed(
                        &theirs,
                        policy(&theirs, &[], &policy_text(&[stale()]), &["app-exec"]),
                    )
            },
            extra: "",
        },
        Case {
            name: "an unattached spill policy of ours under the spill path",
            iam: || {
                let orphan = format!("arn:aws:iam::{ACCOUNT}:policy/execrole/{OWNED}-app-exec-1");
                let tag = [crate::plan::OWNER_TAG, (crate::plan::ROLE_TAG, "app-exec")];
                FakeIam::default()
                    .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")[..3]))])
                    .managed(
                        &orphan,
                        policy(&orphan, &tag, &policy_text(&needs_of("web")[3..]), &[]),
                    )
            },
            extra: "",
        },
        Case {
            name: "a trust policy that is not the ECS one, managed",
            iam: || {
                let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
                FakeIam::default()
                    .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))])
                    .extras(
                        "app-exec",
                        RoleExtras {
                            trust: Some(trust.to_string()),
                            ..RoleExtras::default()
                        },
                    )
            },
            extra: "trust_policy:\n  manage: true\n",
        },
        Case {
            name: "selected by path and tags",
            iam: || {
                FakeIam::default().role("app-exec", &[]).extras(
                    "app-exec",
                    RoleExtras {
                        path: "/ecs/".into(),
                        tags: vec![("team".into(), "web".into())],
                        ..RoleExtras::default()
                    },
                )
            },
            extra: "safety:\n  role_selection:\n    path_prefixes: [/ecs/]\n    tags: {team: web}\n",
        },
        Case {
            name: "outside the selection by its tags",
            iam: || {
                FakeIam::default().role("app-exec", &[]).extras(
                    "app-exec",
                    RoleExtras {
                        path: "/ecs/".into(),
                        tags: vec![("team".into(), "api".into())],
                        ..RoleExtras::default()
                    },
                )
            },
            extra: "safety:\n  role_selection:\n    tags: {team: web}\n",
        },
    ]
}

#[tokio::test]
async fn bulk_and_per_role_observation_give_the_same_plan() {
    for case in cases() {
        let per_role = World::new(&yaml("per-role", case.extra), web(), (case.iam)()).await;
        let bulk = World::new(&yaml("bulk", case.extra), web(), (case.iam)().bulk(2)).await;
        let expected = per_role.pass(Mode::DryRun).await;
        let got = bulk.pass(Mode::DryRun).await;
        assert_eq!(got.plan, expected.plan, "{}", case.name);
        assert_eq!(got.outcomes, expected.outcomes, "{}", case.name);
        assert!(
            expected.plan.errors.is_empty(),
            "{}: {:?}",
            case.name,
            expected.plan.errors
        );
        assert_eq!(
            bulk.iam.count_of(&PER_ROLE_READS),
            0,
            "{}: {:?}",
            case.name,
            bulk.iam.calls()
        );
        assert!(per_role.iam.count("GetRole") > 0, "{}", case.name);
        assert_eq!(per_role.iam.count(BULK), 0, "{}", case.name);
    }
}

#[tokio::test]
async fn the_cases_cover_what_bulk_observation_must_read() {
    // The table above is only worth something if its plans show each thing read: drift, evaluation by effect,
    // spill policies, the trust policy and the selection.
    let mut seen = BTreeSet::new();
    for case in cases() {
        let w = World::new(&yaml("bulk", case.extra), web(), (case.iam)().bulk(1)).await;
        let report = w.pass(Mode::DryRun).await;
        for plan in &report.plan.roles {
            if !plan.removed.is_empty() {
                seen.insert("removed");
            }
            if !plan.blocked.is_empty() {
                seen.insert("blocked");
            }
            if !plan.over_granted.is_empty() {
                seen.insert("over_granted");
            }
            if plan.trust_update.is_some() {
                seen.insert("trust");
            }
            if !plan.managed.is_empty() || plan.added.len() < needs_of("web").len() {
                seen.insert("spill or attached");
            }
            // An unattached spill policy is found only through the spill path (listing or snapshot).
            let unattached = |c: &crate::plan::ManagedChange| {
                use crate::plan::ManagedChange::{Attach, Delete};
                matches!(
                    c,
                    Attach { .. }
                        | Delete {
                            is_attached: false,
                            ..
                        }
                )
            };
            if plan.managed.iter().any(unattached) {
                seen.insert("unattached spill found");
            }
        }
        if report.outcomes.contains_key(&Outcome::NotSelected) {
            seen.insert("not_selected");
        }
    }
    let want = [
        "unattached spill found",
        "blocked",
        "not_selected",
        "over_granted",
        "removed",
        "spill or attached",
        "trust",
    ];
    assert_eq!(seen, BTreeSet::from(want));
}

#[tokio::test]
async fn a_bulk_read_follows_every_page_and_makes_no_per_role_read() {
    let mut iam = FakeIam::default().bulk(2);
    let mut ecs = FakeEcs::default();
    for i in 0..5 {
        let role = format!("role-{i}");
        iam = iam.role(&role, &[(OWNED, &policy_text(&needs_of("web")))]);
        let family = format!("web{i}");
        ecs = ecs.with(task_definition(
            &td_arn(&family, 1),
            &role,
            vec![ecr_container("web")],
        ));
    }
    let unattached = format!("arn:aws:iam::{ACCOUNT}:policy/execrole/unattached");
    iam = iam.managed(&unattached, policy(&unattached, &[], "{}", &[]));
    let w = World::new(&yaml("bulk", ""), ecs, iam).await;
    let report = w.pass(Mode::DryRun).await;
    assert!(report.is_success(), "{:?}", report.plan.errors);
    assert_eq!(report.outcomes, outcomes(&[(Outcome::InSync, 5)]));
    // 6 items, 2 a page: three requests, each with the marker of the one before.
    let markers: Vec<Option<String>> = w
        .iam
        .calls()
        .iter()
        .filter(|c| c.operation == BULK)
        .map(|c| c.policy.clone())
        .collect();
    assert_eq!(markers, vec![None, Some("m-1".into()), Some("m-2".into())]);
    assert_eq!(w.iam.count_of(&PER_ROLE_READS), 0, "{:?}", w.iam.calls());
}

#[tokio::test]
async fn auto_falls_back_to_per_role_reads_once_when_the_bulk_read_is_denied() {
    let iam = FakeIam::default()
        .bulk(10)
        .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))])
        .fail(BULK, "", denied("iam", BULK));
    let w = World::new(&yaml("auto", ""), web(), iam).await;
    for _ in 0..3 {
        let report = w.pass(Mode::DryRun).await;
        assert!(report.is_success(), "{:?}", report.plan.errors);
        assert_eq!(report.outcomes, outcomes(&[(Outcome::InSync, 1)]));
    }
    assert_eq!(w.iam.count(BULK), 1, "denied once, not asked again");
    assert_eq!(w.iam.count("GetRole"), 3, "read per role every pass");
    let fallbacks = w
        .metrics
        .observe_fallbacks
        .with_label_values(&["access_denied"]);
    assert_eq!(fallbacks.get(), 1);
}

#[tokio::test]
async fn bulk_mode_does_not_fall_back_and_reports_the_denied_read() {
    let iam = FakeIam::default()
        .bulk(10)
        .role("app-exec", &[])
        .fail(BULK, "", denied("iam", BULK));
    let w = World::new(&yaml("bulk", ""), web(), iam).await;
    let report = w.pass(Mode::Enforce).await;
    assert_eq!(report.outcomes, outcomes(&[(Outcome::Error, 1)]));
    assert_eq!(report.plan.errors.len(), 1);
    assert!(
        report.plan.errors[0].1.contains("injected"),
        "{:?}",
        report.plan.errors
    );
    assert_eq!(w.iam.count_of(&PER_ROLE_READS), 0);
    assert_eq!(
        w.iam.count(BULK),
        1,
        "the role used the pass's failed read, not a read of its own"
    );
    assert_eq!(w.iam.writes(), 0);
}

#[tokio::test]
async fn auto_reads_in_bulk_only_while_it_costs_fewer_requests() {
    // Twelve items one a page: the first pass guesses one page and reads twelve; from then on reading one
    // role per role (four requests) is cheaper.
    let mut iam = FakeIam::default()
        .bulk(1)
        .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))]);
    for i in 0..11 {
        iam = iam.role(&format!("unrelated-{i}"), &[]);
    }
    let w = World::new(&yaml("auto", ""), web(), iam).await;
    w.pass(Mode::DryRun).await;
    assert_eq!((w.iam.count(BULK), w.iam.count("GetRole")), (12, 0));
    let report = w.pass(Mode::DryRun).await;
    assert_eq!(report.outcomes, outcomes(&[(Outcome::InSync, 1)]));
    assert_eq!((w.iam.count(BULK), w.iam.count("GetRole")), (12, 1));
}

#[tokio::test]
async fn aws_managed_policies_are_read_once_per_arn_not_once_per_role() {
    let roles = ["role-0", "role-1", "role-2", "role-3"];
    let mut iam = FakeIam::default().bulk(100).managed(
        AWS_MANAGED,
        policy(AWS_MANAGED, &[], &policy_text(&[stale()]), &roles),
    );
    let mut ecs = FakeEcs::default();
    for i in 0..4 {
        let role = format!("role-{i}");
        iam = iam.role(&role, &[]);
        ecs = ecs.with(task_definition(
            &td_arn(&format!("web{i}"), 1),
            &role,
            vec![ecr_container("web")],
        ));
    }
    let w = World::new(&yaml("bulk", ""), ecs, iam).await;
    w.pass(Mode::DryRun).await;
    w.pass(Mode::DryRun).await;
    // Two passes over four roles: one GetPolicy and one GetPolicyVersion in all (lookups.cache_ttl is 10m).
    assert_eq!(w.iam.count("GetPolicy"), 1, "{:?}", w.iam.calls());
    assert_eq!(w.iam.count("GetPolicyVersion"), 1);
    assert_eq!(w.iam.count(BULK), 2, "one bulk read per pass");
}

const DAEMON: &str = r#"
mode: enforce
observe: bulk
targets:
  - account: "123456789012"
    regions: [us-east-1]
resync_interval: 10s
resync_jitter: 0.0
settle_window: 30s
"#;

/// Run the daemon for `length` of the paused clock.
async fn run_daemon(w: &World, length: Duration) {
    let shutdown = CancellationToken::new();
    let daemon = w
        .controller
        .run(shutdown.clone(), w.source.as_ref(), Arc::new(Notify::new()));
    let script = async {
        tokio::time::sleep(length).await;
        shutdown.cancel();
    };
    tokio::join!(daemon, script);
}

fn times_of(w: &World, operation: &str) -> Vec<Instant> {
    w.iam
        .calls()
        .iter()
        .filter(|c| c.operation == operation)
        .map(|c| c.at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_written_role_is_not_judged_again_from_a_snapshot_read_before_its_settle_window_ended() {
    for observe in ["bulk", "auto"] {
        let yaml = DAEMON.replace("observe: bulk", &format!("observe: {observe}"));
        let w = World::new(
            &yaml,
            web(),
            FakeIam::default().bulk(10).role("app-exec", &[]),
        )
        .await;
        let start = Instant::now();
        run_daemon(&w, Duration::from_secs(35)).await;
        let puts = times_of(&w, "PutRolePolicy");
        assert_eq!(puts, vec![start], "{observe}: written once, at once");
        // Resyncs at 10 s and 20 s read the account again, inside the settle window: the role waits for the
        // window and is then judged from state read after it ended, never from those snapshots.
        let settled = start + Duration::from_secs(30);
        let reads = times_of(&w, BULK);
        assert!(
            reads.contains(&(start + Duration::from_secs(20))),
            "{observe}: {reads:?}"
        );
        let fresh = match observe {
            "bulk" => reads.contains(&settled),
            _ => times_of(&w, "GetRole") == vec![settled],
        };
        assert!(
            fresh,
            "{observe}: no read at the end of the settle window: {:?}",
            w.iam.calls()
        );
        assert_eq!(w.reconciles("applied"), 1, "{observe}");
        assert!(w.reconciles("in_sync") >= 1, "{observe}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_role_changed_after_the_snapshot_is_caught_by_its_event() {
    let yaml = format!(
        "{}events:\n  queue_url: https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/execrole-events\n",
        DAEMON
            .replace("observe: bulk", "observe: auto")
            .replace("resync_interval: 10s", "resync_interval: 1000s")
    );
    let iam = FakeIam::default()
        .bulk(10)
        .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))]);
    let w = World::new(&yaml, web(), iam).await;
    let event = json!({
        "source": "aws.iam",
        "detail-type": "AWS API Call via CloudTrail",
        "account": ACCOUNT,
        "detail": {
            "eventSource": "iam.amazonaws.com",
            "eventName": "PutRolePolicy",
            "userAgent": "aws-cli/2",
            "userIdentity": {"arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/admin/someone")},
            "requestParameters": {"roleName": "app-exec", "policyName": OWNED}
        }
    });
    let script = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Someone widens the owned policy after the snapshot; the event says so.
        let mut wider = needs_of("web");
        wider.push(stale());
        w.iam
            .roles
            .lock()
            .unwrap()
            .get_mut("app-exec")
            .unwrap()
            .insert(OWNED.into(), policy_text(&wider));
        w.source
            .events
            .bodies
            .lock()
            .unwrap()
            .push_back(event.to_string());
        tokio::time::sleep(Duration::from_secs(30)).await;
    };
    let shutdown = CancellationToken::new();
    let daemon = w
        .controller
        .run(shutdown.clone(), w.source.as_ref(), Arc::new(Notify::new()));
    tokio::join!(daemon, async {
        script.await;
        shutdown.cancel();
    });
    assert_eq!(w.iam.count(BULK), 1, "{:?}", w.iam.calls());
    assert_eq!(
        w.iam.count("GetRole"),
        1,
        "the event's reconcile read the role itself"
    );
    assert_eq!(w.iam.count("PutRolePolicy"), 1, "and repaired it");
    assert_eq!(
        w.iam.policy("app-exec", OWNED).as_deref().map(grants_of),
        Some(grant_set(&needs_of("web")))
    );
}

#[tokio::test]
async fn a_role_changed_after_the_snapshot_is_caught_at_the_next_pass() {
    let iam = FakeIam::default()
        .bulk(10)
        .role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))]);
    let w = World::new(&yaml("bulk", ""), web(), iam).await;
    assert_eq!(w.pass(Mode::Enforce).await.writes, 0);
    // Someone widens the owned policy after the first pass's snapshot; no event tells.
    let mut wider = needs_of("web");
    wider.push(stale());
    w.iam
        .roles
        .lock()
        .unwrap()
        .get_mut("app-exec")
        .unwrap()
        .insert(OWNED.into(), policy_text(&wider));
    let report = w.pass(Mode::Enforce).await;
    assert_eq!(
        report.writes, 1,
        "the next pass reads the account again and repairs it"
    );
    assert_eq!(w.iam.count(BULK), 2);
    assert_eq!(w.iam.count_of(&PER_ROLE_READS), 0);
    assert_eq!(
        w.iam.policy("app-exec", OWNED).as_deref().map(grants_of),
        Some(grant_set(&needs_of("web")))
    );
}

#[tokio::test(start_paused = true)]
async fn in_bulk_mode_a_throttled_read_is_retried_with_the_roles_backoff_not_at_the_next_resync() {
    let yaml = DAEMON.replace("resync_interval: 10s", "resync_interval: 1000s");
    let throttled = AwsError::new("iam", BULK, ErrorKind::Throttling, "Rate exceeded");
    let iam = FakeIam::default()
        .bulk(10)
        .role("app-exec", &[])
        .fail(BULK, "", throttled);
    let w = World::new(&yaml, web(), iam).await;
    let start = Instant::now();
    let script = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.iam.errors.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(60)).await;
    };
    let shutdown = CancellationToken::new();
    let daemon = w
        .controller
        .run(shutdown.clone(), w.source.as_ref(), Arc::new(Notify::new()));
    tokio::join!(daemon, async {
        script.await;
        shutdown.cancel();
    });
    let puts = times_of(&w, "PutRolePolicy");
    assert_eq!(puts.len(), 1, "{:?}", w.iam.calls());
    assert!(
        puts[0] - start < Duration::from_secs(60),
        "written after {:?}",
        puts[0] - start
    );
    assert!(w.iam.count(BULK) >= 2);
    assert_eq!(w.iam.count_of(&PER_ROLE_READS), 0);
}
