//! Several replicas (`coordination:`): the DynamoDB lease table adapter against the emulator, and real
//! `execrole run` processes sharing one estate through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use execrole::aws::LeaseItem;
use execrole::metrics::Metrics;

use crate::support::Moto;

/// The lease table the tests use.
pub const TABLE: &str = "execrole-leases";

/// Create the lease table (partition key `lease`, a string, on demand) as the CloudFormation stack does.
pub async fn create_table(moto: &Moto) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("lease")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("lease")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create the lease table");
}

fn coordination() -> execrole::config::Coordination {
    execrole::config::Coordination {
        dynamodb_table: TABLE.into(),
        region: None,
        // Long, so a slow emulator under a full test run never times a request out: timing is not tested here.
        lease_duration: std::time::Duration::from_secs(30),
        shards: 4,
        replica_id: "test".into(),
        clock_skew_margin: std::time::Duration::from_secs(6),
    }
}

fn lease(holder: &str, expires_ms: u64, counter: u64) -> LeaseItem {
    LeaseItem {
        key: "shard#0".into(),
        holder: holder.into(),
        expires_ms,
        counter,
    }
}

#[tokio::test]
async fn the_dynamodb_lease_table_writes_only_when_its_conditions_hold() {
    let moto = Moto::start();
    create_table(&moto).await;
    let metrics = Arc::new(Metrics::new());
    let table = moto
        .factory(metrics.clone())
        .await
        .lease_table(&coordination());

    assert!(
        table
            .acquire(&lease("a", 10_000, 1), 5_000, None)
            .await
            .unwrap()
    );
    assert!(
        !table
            .acquire(&lease("b", 20_000, 1), 5_000, None)
            .await
            .unwrap(),
        "taken"
    );
    assert!(
        !table
            .acquire(&lease("b", 20_000, 2), 9_000, Some(1))
            .await
            .unwrap(),
        "not ended yet at 9 s"
    );
    assert!(table.renew("shard#0", "a", 1, 9_000, 12_000).await.unwrap());
    assert!(
        !table.renew("shard#0", "b", 1, 9_000, 12_000).await.unwrap(),
        "not b's"
    );
    assert!(
        !table.renew("shard#0", "a", 2, 9_000, 12_000).await.unwrap(),
        "not this term"
    );
    assert!(
        !table
            .renew("shard#0", "a", 1, 12_001, 15_000)
            .await
            .unwrap(),
        "a renewal after the end writes nothing"
    );
    assert!(
        !table
            .acquire(&lease("b", 20_000, 2), 12_001, Some(0))
            .await
            .unwrap(),
        "another counter was seen"
    );
    assert!(
        table
            .acquire(&lease("b", 20_000, 2), 12_001, Some(1))
            .await
            .unwrap()
    );
    assert!(
        !table.release("shard#0", "a", 1).await.unwrap(),
        "a no longer holds it"
    );
    assert!(table.release("shard#0", "b", 2).await.unwrap());

    table.heartbeat("a", 30_000).await.unwrap();
    let mut items = table.scan().await.unwrap();
    items.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        items,
        vec![
            LeaseItem {
                key: "replica#a".into(),
                holder: "a".into(),
                expires_ms: 30_000,
                counter: 0
            },
            lease("b", 0, 2),
        ],
        "a release keeps the counter"
    );
    table.retire("a").await.unwrap();
    assert_eq!(table.scan().await.unwrap().len(), 1);

    assert!(table.grace("111111111111").await.unwrap().is_empty());
    let grace = BTreeMap::from([(
        "arn:aws:ecs:us-east-1:111111111111:task-definition/a:1".to_string(),
        42,
    )]);
    table.store_grace("111111111111", &grace).await.unwrap();
    assert_eq!(table.grace("111111111111").await.unwrap(), grace);
    assert_eq!(
        table.scan().await.unwrap().len(),
        1,
        "grace items are not leases"
    );
    assert!(metrics.aws_requests("dynamodb", "UpdateItem", "success") >= 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Three real replicas
// ---------------------------------------------------------------------------------------------------------------

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{REGION, container, create_role, get_policy, put_policy, register};

/// The shards of the estate and the lease of the replicas: short, so the test takes seconds.
const SHARDS: u32 = 4;
const LEASE: Duration = Duration::from_secs(3);

/// An owned policy changed by hand, to be repaired.
const HAND_MADE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameters","Resource":"arn:aws:ssm:us-east-1:123456789012:parameter/by-hand"}]}"#;

/// Two accounts per shard, found by the hash the replicas use.
fn estate_accounts() -> Vec<String> {
    let mut accounts = Vec::new();
    for shard in 0..SHARDS {
        accounts.extend(
            (0..)
                .map(|n: u64| format!("{:012}", 210_000_000_000 + n))
                .filter(|a| execrole::coordination::shard::shard_of(a, SHARDS) == shard)
                .take(2),
        );
    }
    accounts
}

/// In each account, a role `app-exec` named by one task definition.
async fn seed_estate(moto: &Moto, accounts: &[String]) {
    for account in accounts {
        let config = moto.sdk_config_in(account).await;
        let iam = aws_sdk_iam::Client::new(&config);
        let ecs = aws_sdk_ecs::Client::new(&config);
        let role = create_role(&iam, "app-exec").await;
        let image = format!("{account}.dkr.ecr.{REGION}.amazonaws.com/app:1");
        register(&ecs, "app", &role, vec![container("app", &image, None)]).await;
    }
}

/// The config of replica `id`: every account, enforce, JSON logs at info, coordination with `lease`.
fn replica_config(dir: &Path, id: &str, accounts: &[String], lease: Duration) -> PathBuf {
    let mut text = String::from("mode: enforce\ntargets:\n");
    for account in accounts {
        text.push_str(&format!(
            "  - account: \"{account}\"\n    regions: [{REGION}]\n    assume_role_arn: arn:aws:iam::{account}:role/execrole-target\n"
        ));
    }
    text.push_str(&format!(
        "logging:\n  format: json\n  level: info\nreload:\n  watch_file: false\nlookups:\n  pull_through_cache: false\n\
         backoff:\n  initial_interval: 50ms\n  max_interval: 500ms\n  max_elapsed: 5s\n\
         settle_window: 1s\n\
         coordination:\n  dynamodb_table: {TABLE}\n  lease_duration: {}s\n  shards: {SHARDS}\n  replica_id: {id}\n",
        lease.as_secs()
    ));
    let path = dir.join(format!("{id}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running replica: its process, metrics port and log.
struct Replica {
    id: String,
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_replica(
    moto: &Moto,
    dir: &Path,
    id: &str,
    accounts: &[String],
    lease: Duration,
) -> Replica {
    let config = replica_config(dir, id, accounts, lease);
    let port = free_port();
    let log = dir.join(format!("{id}.log"));
    let child = moto
        .execrole()
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("start execrole run");
    Replica {
        id: id.to_string(),
        child,
        port,
        log,
    }
}

/// A gauge or counter from the replica's `/metrics`, or None when it does not answer.
async fn metric(replica: &Replica, line_prefix: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{}/metrics", replica.port);
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(line_prefix) && l[line_prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn leases_held(replica: &Replica) -> Option<u64> {
    metric(replica, "execrole_shard_leases_held")
        .await
        .map(|v| v as u64)
}

/// The shards held now, by holder, from the table itself (leases not yet ended).
async fn holders(moto: &Moto) -> Vec<(u32, String)> {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let items = client.scan().table_name(TABLE).send().await.unwrap();
    let mut held = Vec::new();
    for item in items.items() {
        let key = item["lease"].as_s().unwrap();
        let Some(shard) = key.strip_prefix("shard#") else {
            continue;
        };
        let expires: u64 = item["expires"].as_n().unwrap().parse().unwrap();
        if expires > now {
            held.push((
                shard.parse().unwrap(),
                item["holder"].as_s().unwrap().clone(),
            ));
        }
    }
    held.sort();
    held
}

/// Wait until `check` holds, at most `limit`; how long it took.
async fn wait_for<F, Fut>(what: &str, limit: Duration, logs: &[&Replica], mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            let logs: Vec<String> = logs
                .iter()
                .map(|r| {
                    format!(
                        "--- {} ---\n{}",
                        r.id,
                        std::fs::read_to_string(&r.log).unwrap_or_default()
                    )
                })
                .collect();
            panic!("{what}: not within {limit:?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every account's role has an owned policy that is not the hand-made one.
async fn all_converged(moto: &Moto, accounts: &[String]) -> bool {
    for account in accounts {
        let iam = aws_sdk_iam::Client::new(&moto.sdk_config_in(account).await);
        match get_policy(&iam, "app-exec", "execrole").await {
            Some(doc) if !doc.contains("by-hand") => {}
            _ => return false,
        }
    }
    true
}

/// Every "IAM write under lease" line of the logs: (replica, shard, fencing counter, account, role or policy).
fn fenced_writes(logs: &[PathBuf]) -> Vec<(String, u64, u64, String, String)> {
    let mut writes = Vec::new();
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event["message"] == "IAM write" {
                // The write's own line carries the term it was reconciled under, in its span.
                let span = &event["span"];
                assert!(
                    span["shard"].is_u64() && span["fencing_counter"].is_u64(),
                    "an IAM write without its lease term: {line}"
                );
            }
            if event["message"] != "IAM write under lease" {
                continue;
            }
            writes.push((
                event["replica"].as_str().unwrap().to_string(),
                event["shard"].as_u64().unwrap(),
                event["fencing_counter"].as_u64().unwrap(),
                event["account"].as_str().unwrap().to_string(),
                event["resource"].as_str().unwrap().to_string(),
            ));
        }
    }
    writes
}

/// Every DynamoDB request attempt the replica made (all operations and outcomes).
async fn dynamodb_requests(replica: &Replica) -> f64 {
    let url = format!("http://127.0.0.1:{}/metrics", replica.port);
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("execrole_aws_requests_total{") && l.contains("service=\"dynamodb\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sigterm(replica: &Replica) {
    let sent = Command::new("kill")
        .args(["-TERM", &replica.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn three_replicas_share_the_shards_take_over_after_a_kill_and_hand_over_on_sigterm() {
    let moto = Moto::start();
    create_table(&moto).await;
    let accounts = estate_accounts();
    seed_estate(&moto, &accounts).await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| start_replica(&moto, dir.path(), id, &accounts, LEASE))
        .collect();
    let logs: Vec<PathBuf> = replicas.iter().map(|r| r.log.clone()).collect();

    // Every shard held by exactly one replica, no replica over ceil(4 / 3) = 2, and the estate converged.
    let all: Vec<&Replica> = replicas.iter().collect();
    wait_for("shards spread", Duration::from_secs(30), &all, || async {
        let held = holders(&moto).await;
        let shards: BTreeSet<u32> = held.iter().map(|(s, _)| *s).collect();
        let mut per_replica = 0;
        for r in &replicas {
            let n = leases_held(r).await.unwrap_or(99);
            per_replica = per_replica.max(n);
        }
        let mut sum = 0;
        for r in &replicas {
            sum += leases_held(r).await.unwrap_or(0);
        }
        held.len() == SHARDS as usize
            && shards.len() == SHARDS as usize
            && per_replica <= 2
            && sum == 4
    })
    .await;
    wait_for("converged", Duration::from_secs(60), &all, || {
        all_converged(&moto, &accounts)
    })
    .await;

    // kill -9 the busiest replica, then change by hand a role in one of its shards.
    let mut busiest = 0;
    let mut most = 0;
    for (i, r) in replicas.iter().enumerate() {
        let n = leases_held(r).await.unwrap();
        if n > most {
            (busiest, most) = (i, n);
        }
    }
    let mut killed = replicas.remove(busiest);
    let its_shard = holders(&moto)
        .await
        .into_iter()
        .find(|(_, h)| *h == killed.id)
        .map(|(s, _)| s)
        .expect("the busiest holds a shard");
    killed.child.kill().unwrap();
    let killed_at = Instant::now();
    killed.child.wait().unwrap();
    let account = accounts
        .iter()
        .find(|a| execrole::coordination::shard::shard_of(a, SHARDS) == its_shard)
        .unwrap();
    let iam = aws_sdk_iam::Client::new(&moto.sdk_config_in(account).await);
    put_policy(&iam, "app-exec", "execrole", HAND_MADE).await;

    let survivors: Vec<&Replica> = replicas.iter().collect();
    wait_for(
        "take-over",
        LEASE + Duration::from_secs(4),
        &survivors,
        || async {
            let held = holders(&moto).await;
            held.len() == SHARDS as usize && held.iter().all(|(_, h)| *h != killed.id)
        },
    )
    .await;
    let take_over = killed_at.elapsed();
    wait_for(
        "hand-made change repaired",
        Duration::from_secs(30),
        &survivors,
        || async {
            get_policy(&iam, "app-exec", "execrole")
                .await
                .is_some_and(|d| !d.contains("by-hand"))
        },
    )
    .await;
    let repaired = killed_at.elapsed();

    // SIGTERM the one of the two survivors holding more: the other holds everything in under 2 s.
    let (leaving, staying) = if leases_held(&replicas[0]).await >= leases_held(&replicas[1]).await {
        (0, 1)
    } else {
        (1, 0)
    };
    assert!(leases_held(&replicas[leaving]).await.unwrap() > 0);
    sigterm(&replicas[leaving]);
    let stay = &replicas[staying];
    let hand_over = wait_for(
        "hand-over on SIGTERM",
        Duration::from_secs(2),
        &survivors,
        || async { leases_held(stay).await == Some(SHARDS as u64) },
    )
    .await;
    let requests = dynamodb_requests(stay).await;
    let per_minute = requests * 60.0 / started.elapsed().as_secs_f64();
    sigterm(stay);
    for r in &mut replicas {
        let status = r.child.wait().unwrap();
        assert!(status.success(), "{}: {status:?}", r.id);
    }

    // No shard's term (fencing counter) ever wrote from two replicas, so no role was written by two replicas in
    // the same term; and every write went out under a lease.
    let writes = fenced_writes(&logs);
    assert!(!writes.is_empty());
    let mut writers: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
    for (replica, shard, counter, account, _) in &writes {
        assert_eq!(
            execrole::coordination::shard::shard_of(account, SHARDS) as u64,
            *shard
        );
        writers
            .entry((*shard, *counter))
            .or_default()
            .insert(replica.clone());
    }
    for (term, replicas) in &writers {
        assert_eq!(replicas.len(), 1, "term {term:?} written by {replicas:?}");
    }
    println!(
        "replicas: take-over {take_over:?} after kill -9 (lease {LEASE:?}), hand-made change repaired after {repaired:?}, \
         SIGTERM hand-over {hand_over:?}; {} fenced writes in {} terms; the last replica made {requests} DynamoDB requests, {per_minute:.0} a minute",
        writes.len(),
        writers.len()
    );
}

/// The cost of coordination for BENCHMARKS.md: two replicas with the default lease (15 s) and 4 shards on a small
/// estate for `EXECROLE_COST_SECONDS` (default 120), then the DynamoDB requests each made per minute.
/// `cargo test --test integration coordination_cost -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement for BENCHMARKS.md, minutes long"]
async fn coordination_cost() {
    let seconds: u64 = std::env::var("EXECROLE_COST_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let moto = Moto::start();
    create_table(&moto).await;
    let accounts = estate_accounts();
    seed_estate(&moto, &accounts).await;
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = ["c1", "c2"]
        .iter()
        .map(|id| start_replica(&moto, dir.path(), id, &accounts, Duration::from_secs(15)))
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    for r in &replicas {
        let held = leases_held(r).await;
        println!(
            "coordination cost: {} held {held:?} shards, {:.1} DynamoDB requests a minute over {minutes:.1} min",
            r.id,
            dynamodb_requests(r).await / minutes
        );
    }
    for r in &mut replicas {
        sigterm(r);
        assert!(r.child.wait().unwrap().success());
    }
}
