//! The lease logic against the in-memory table, on tokio's paused clock: acquire, renew, expiry, take-over
//! with a higher fencing counter, late renewals, release on shutdown, clock skew, and how shards spread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::clock::TokioClock;
use super::memory::MemoryTable;
use super::shard::{fair_share, lease_key};
use super::{Elector, LeaseSettings, Leases, Term};
use crate::metrics::{LeaseEvent, Metrics};

/// The wall clock at the start of every test (any fixed instant will do).
const START_MS: u64 = 1_800_000_000_000;

const SETTINGS: LeaseSettings = LeaseSettings {
    shards: 4,
    lease_duration: Duration::from_secs(3),
    clock_skew_margin: Duration::from_millis(600),
};

/// One replica: its leases, its elector, its metrics.
struct Replica {
    leases: Arc<Leases>,
    elector: Elector,
    metrics: Arc<Metrics>,
}

fn replica(table: &Arc<MemoryTable>, id: &str, skew_ms: i64, settings: LeaseSettings) -> Replica {
    let leases = Leases::new(id, settings.shards);
    let metrics = Arc::new(Metrics::new());
    let elector = Elector::new(
        table.clone(),
        // Every replica's wall clock starts with the table, whenever the replica is made.
        Arc::new(TokioClock::new(table.created, START_MS, skew_ms)),
        settings,
        leases.clone(),
        metrics.clone(),
    );
    Replica {
        leases,
        elector,
        metrics,
    }
}

/// Any account of `shard`.
fn account_in(shard: u32, shards: u32) -> String {
    (0..)
        .map(|n: u64| format!("{:012}", 500_000 + n))
        .find(|a| super::shard::shard_of(a, shards) == shard)
        .unwrap()
}

/// Let the paused clock run on by itself (timers fire in order), for tests with running loops.
async fn sleep(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn advance(ms: u64) {
    tokio::time::advance(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn a_lone_replica_acquires_every_shard_with_counter_one() {
    let table = Arc::new(MemoryTable::default());
    let a = replica(&table, "a", 0, SETTINGS);
    assert_eq!(a.leases.term_for(&account_in(0, 4)), None);
    a.elector.round().await;
    assert_eq!(a.leases.held().len(), 4);
    for shard in 0..4 {
        let item = table.item(&lease_key(shard)).unwrap();
        assert_eq!((item.holder.as_str(), item.counter), ("a", 1));
        assert_eq!(
            a.leases.term_for(&account_in(shard, 4)),
            Some(Term { shard, counter: 1 })
        );
    }
    assert_eq!(a.metrics.lease_events(LeaseEvent::Acquired), 4);
    assert_eq!(a.metrics.shard_leases_held.get(), 4);
    assert_eq!(a.metrics.replicas_seen.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn renewals_keep_the_lease_and_its_counter_far_beyond_one_duration() {
    let table = Arc::new(MemoryTable::default());
    let a = replica(&table, "a", 0, SETTINGS);
    let account = account_in(2, 4);
    for _ in 0..10 {
        a.elector.round().await;
        assert_eq!(
            a.leases.term_for(&account),
            Some(Term {
                shard: 2,
                counter: 1
            })
        );
        advance(1000).await;
    }
    assert_eq!(a.metrics.lease_events(LeaseEvent::Renewed), 4 * 9);
    assert_eq!(
        table.item(&lease_key(2)).unwrap().expires_ms,
        START_MS + 9000 + 3000
    );
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_cannot_renew_stops_writing_a_margin_before_its_lease_ends() {
    let table = Arc::new(MemoryTable::default());
    let a = replica(&table, "a", 0, SETTINGS);
    let account = account_in(1, 4);
    a.elector.round().await;
    table.unreachable.store(true, Ordering::SeqCst);
    advance(1000).await;
    a.elector.round().await;
    assert!(a.metrics.lease_events(LeaseEvent::Failure) >= 1);
    assert!(!a.leases.is_table_reachable());
    advance(1399).await;
    assert!(
        a.leases.holds_account(&account),
        "valid until 3 s less the 0.6 s margin"
    );
    advance(1).await;
    assert_eq!(
        a.leases.term_for(&account),
        None,
        "stops at 2.4 s, before the lease ends at 3 s"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_taken_over_with_a_higher_counter_and_the_old_holder_loses_it() {
    let table = Arc::new(MemoryTable::default());
    let a = replica(&table, "a", 0, SETTINGS);
    let b = replica(&table, "b", 0, SETTINGS);
    a.elector.round().await;
    // a stops (paused, partitioned): b sees the leases as taken until they end.
    b.elector.round().await;
    assert!(b.leases.held().is_empty());
    advance(3001).await;
    b.elector.round().await;
    assert_eq!(
        b.leases.held().len(),
        4,
        "a's heartbeat ended too: b is alone"
    );
    for shard in 0..4 {
        let item = table.item(&lease_key(shard)).unwrap();
        assert_eq!((item.holder.as_str(), item.counter), ("b", 2));
    }
    a.elector.round().await;
    assert_eq!(a.metrics.lease_events(LeaseEvent::Lost), 4);
    assert!(a.leases.held().is_empty());
    for shard in 0..4 {
        assert_eq!(table.item(&lease_key(shard)).unwrap().holder, "b");
    }
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_comes_after_the_lease_ended_writes_nothing() {
    let table = Arc::new(MemoryTable::default());
    let a = replica(&table, "a", 0, SETTINGS);
    a.elector.round().await;
    let before = table.item(&lease_key(0)).unwrap();
    let writes = table.writes.load(Ordering::SeqCst);
    // a's process stalls for longer than the lease: its next renewal is too late.
    advance(3500).await;
    assert_eq!(a.leases.term_for(&account_in(0, 4)), None);
    a.elector.round().await;
    assert_eq!(a.metrics.lease_events(LeaseEvent::Renewed), 0);
    assert_eq!(a.metrics.lease_events(LeaseEvent::Lost), 4);
    // The old term was never extended; a took the shard afresh, under a new term.
    let after = table.item(&lease_key(0)).unwrap();
    assert_eq!(after.counter, before.counter + 1);
    assert_eq!(
        table.writes.load(Ordering::SeqCst),
        writes + 4,
        "four new acquisitions, no renewal"
    );
}

#[tokio::test(start_paused = true)]
async fn a_renewal_answered_late_does_not_extend_writing_and_loses_to_a_take_over() {
    let table = Arc::new(MemoryTable::default());
    let one = LeaseSettings {
        shards: 1,
        ..SETTINGS
    };
    let a = Arc::new(replica(&table, "a", 0, one));
    let b = replica(&table, "b", 0, one);
    let account = account_in(0, 1);
    a.elector.round().await;
    advance(1000).await;
    // a's renewal, sent at 1 s, reaches the table only at 5 s; b takes the shard at 4.1 s in between.
    table.renew_delay_ms.store(4000, Ordering::SeqCst);
    let slow = tokio::spawn({
        let a = a.clone();
        async move { a.elector.round().await }
    });
    advance(1399).await;
    assert!(a.leases.holds_account(&account));
    advance(1).await;
    assert_eq!(
        a.leases.term_for(&account),
        None,
        "no writes after 2.4 s without a renewal"
    );
    advance(1700).await;
    b.elector.round().await;
    assert_eq!(
        b.leases.term_for(&account),
        Some(Term {
            shard: 0,
            counter: 2
        })
    );
    advance(1000).await;
    slow.await.unwrap();
    let item = table.item(&lease_key(0)).unwrap();
    assert_eq!((item.holder.as_str(), item.counter), ("b", 2));
    assert_eq!(a.leases.term_for(&account), None);
    assert_eq!(a.metrics.lease_events(LeaseEvent::Lost), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_every_lease_at_once_and_another_replica_takes_them_at_its_next_round() {
    let table = Arc::new(MemoryTable::default());
    let a = Arc::new(replica(&table, "a", 0, SETTINGS));
    let b = replica(&table, "b", 0, SETTINGS);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let (a, shutdown) = (a.clone(), shutdown.clone());
        async move { a.elector.run(shutdown).await }
    });
    advance(10).await;
    tokio::task::yield_now().await;
    assert_eq!(a.leases.held().len(), 4);
    shutdown.cancel();
    running.await.unwrap();
    assert!(a.leases.held().is_empty());
    assert_eq!(a.metrics.lease_events(LeaseEvent::Released), 4);
    assert_eq!(a.metrics.shard_leases_held.get(), 0);
    assert!(table.item("replica#a").is_none(), "the heartbeat is gone");
    b.elector.round().await;
    assert_eq!(b.leases.held().len(), 4, "no waiting for the leases to end");
    assert_eq!(table.item(&lease_key(3)).unwrap().counter, 2);
}

#[tokio::test(start_paused = true)]
async fn a_clock_ahead_by_less_than_the_margin_never_takes_a_shard_still_written() {
    let table = Arc::new(MemoryTable::default());
    let a = replica(&table, "a", 0, SETTINGS);
    let b = replica(&table, "b", 550, SETTINGS);
    let account = account_in(0, 4);
    a.elector.round().await;
    let mut taken = false;
    for _ in 0..40 {
        advance(100).await;
        b.elector.round().await;
        if b.leases.holds_account(&account) {
            taken = true;
            assert_eq!(a.leases.term_for(&account), None, "a still writes");
            break;
        }
    }
    assert!(taken);
}

/// Run rounds of every replica (in turn, a renewal interval apart) until nothing changes.
async fn settle(replicas: &[Replica]) {
    for _ in 0..12 {
        for r in replicas {
            r.elector.round().await;
        }
        advance(1000).await;
    }
}

/// Every shard held by exactly one replica, none over its fair share.
fn assert_spread(table: &MemoryTable, replicas: &[Replica], shards: u32) {
    let fair = fair_share(shards, replicas.len());
    for shard in 0..shards {
        let holders: Vec<&str> = replicas
            .iter()
            .filter(|r| r.leases.held().contains(&shard))
            .map(|r| r.leases.replica())
            .collect();
        assert_eq!(holders.len(), 1, "shard {shard}: {holders:?}");
        assert_eq!(table.item(&lease_key(shard)).unwrap().holder, holders[0]);
    }
    for r in replicas {
        assert!(
            r.leases.held().len() <= fair,
            "{} holds {:?}",
            r.leases.replica(),
            r.leases.held()
        );
        assert_eq!(r.metrics.replicas_seen.get(), replicas.len() as i64);
    }
}

#[tokio::test(start_paused = true)]
async fn shards_spread_over_one_to_four_replicas_and_move_back_as_replicas_join() {
    for shards in [4, 7] {
        let settings = LeaseSettings { shards, ..SETTINGS };
        let table = Arc::new(MemoryTable::default());
        let mut replicas = Vec::new();
        for n in 1..=4 {
            replicas.push(replica(&table, &format!("r{n}"), 0, settings));
            settle(&replicas).await;
            assert_spread(&table, &replicas, shards);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn when_a_replica_leaves_the_others_take_its_shards_within_a_lease() {
    let table = Arc::new(MemoryTable::default());
    let mut replicas: Vec<Replica> = (1..=3)
        .map(|n| replica(&table, &format!("r{n}"), 0, SETTINGS))
        .collect();
    settle(&replicas).await;
    assert_spread(&table, &replicas, 4);
    let busiest = (0..3)
        .max_by_key(|&i| replicas[i].leases.held().len())
        .unwrap();
    replicas.remove(busiest);
    settle(&replicas).await;
    assert_spread(&table, &replicas, 4);
}

#[tokio::test(start_paused = true)]
async fn a_running_replica_takes_shards_given_up_on_shutdown_within_half_a_second_whatever_the_lease()
 {
    let long = LeaseSettings {
        lease_duration: Duration::from_secs(15),
        clock_skew_margin: Duration::from_secs(3),
        ..SETTINGS
    };
    let table = Arc::new(MemoryTable::default());
    let a = Arc::new(replica(&table, "a", 0, long));
    let b = Arc::new(replica(&table, "b", 0, long));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let run = |r: &Arc<Replica>, stop: &CancellationToken| {
        let (r, stop) = (r.clone(), stop.clone());
        tokio::spawn(async move { r.elector.run(stop).await })
    };
    let running_a = run(&a, &stop_a);
    sleep(100).await;
    let running_b = run(&b, &stop_b);
    sleep(11_000).await;
    assert_eq!((a.leases.held().len(), b.leases.held().len()), (2, 2));

    // Well inside b's 5 s renewal interval, a stops: b takes a's shards at its next look, not its next round.
    sleep(1_200).await;
    stop_a.cancel();
    running_a.await.unwrap();
    sleep(500).await;
    assert_eq!(b.leases.held().len(), 4);
    stop_b.cancel();
    running_b.await.unwrap();
}
