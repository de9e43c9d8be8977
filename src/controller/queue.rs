//! The work queue, keyed by execution role (kube-rs and client-go style): a key is waiting (with the time it may
//! run) or in flight, never both at the hand-out and never twice. Duplicates collapse, the earliest run time
//! wins; a key added while it is in flight waits until its worker calls [`WorkQueue::done`], so one key never
//! runs twice at once. A hold (the settle window after a write) pushes every later request for the key past the
//! hold's end. Concurrency is bounded by the number of workers that call [`WorkQueue::next`].
//!
//! [`WorkQueues`] keeps one queue per lane (the controller's lanes are accounts), so that each lane's workers take
//! only its keys and a slow lane never holds up the others.
//!
//! It knows nothing of roles, AWS or backoff policy: the controller decides when to add a key again. All time is
//! `tokio::time`, so tests pause and advance the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A keyed, deduplicating, delaying work queue.
#[derive(Debug)]
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    changed: Notify,
}

#[derive(Debug)]
struct State<K> {
    /// Keys waiting, with the earliest time each may run.
    waiting: BTreeMap<K, Instant>,
    /// Keys handed out and not yet done.
    in_flight: BTreeSet<K>,
    /// Keys that may not run before a time (settle windows).
    holds: BTreeMap<K, Instant>,
    closed: bool,
}

impl<K: Ord + Clone> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                waiting: BTreeMap::new(),
                in_flight: BTreeSet::new(),
                holds: BTreeMap::new(),
                closed: false,
            }),
            changed: Notify::new(),
        }
    }
}

impl<K: Ord + Clone> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> WorkQueue<K> {
        WorkQueue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // A worker that panicked while holding the lock leaves consistent maps behind (every update is one
        // insert or remove), so the poison is not worth spreading.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ask for `key` to run now (or as soon as its hold ends).
    pub fn add(&self, key: K) {
        self.add_at(key, Instant::now());
    }

    /// Ask for `key` to run at `at` (or as soon as its hold ends). When the key is already waiting, the earlier
    /// of the two times wins.
    pub fn add_at(&self, key: K, at: Instant) {
        {
            let mut state = self.lock();
            let now = Instant::now();
            state.holds.retain(|_, until| *until > now);
            let at = match state.holds.get(&key) {
                Some(until) => at.max(*until),
                None => at,
            };
            state
                .waiting
                .entry(key)
                .and_modify(|t| *t = (*t).min(at))
                .or_insert(at);
        }
        self.changed.notify_waiters();
    }

    /// Keep `key` from running before `until`; a waiting request is pushed back to it.
    pub fn hold_until(&self, key: K, until: Instant) {
        {
            let mut state = self.lock();
            if let Some(at) = state.waiting.get_mut(&key) {
                *at = (*at).max(until);
            }
            let hold = state.holds.entry(key).or_insert(until);
            *hold = (*hold).max(until);
        }
        self.changed.notify_waiters();
    }

    /// Forget a waiting request for `key` (the key no longer exists). A run in flight is not affected.
    pub fn remove(&self, key: &K) {
        let mut state = self.lock();
        state.waiting.remove(key);
        state.holds.remove(key);
    }

    /// The next key whose time has come and that is not in flight, marked in flight; waits for one. `None` once
    /// the queue is closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                let candidate = state
                    .waiting
                    .iter()
                    .filter(|(key, _)| !state.in_flight.contains(*key))
                    .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
                    .map(|(key, at)| (key.clone(), *at));
                match candidate {
                    Some((key, at)) if at <= Instant::now() => {
                        state.waiting.remove(&key);
                        state.in_flight.insert(key.clone());
                        return Some(key);
                    }
                    Some((_, at)) => Some(at),
                    None => None,
                }
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The worker is done with `key`: a request that came in meanwhile may now run.
    pub fn done(&self, key: &K) {
        self.lock().in_flight.remove(key);
        self.changed.notify_waiters();
    }

    /// Stop handing out keys: every [`WorkQueue::next`] returns `None` from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// How many keys are waiting (due or not), the queue depth.
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys are in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// When `key` is due, if it is waiting.
    pub fn due_at(&self, key: &K) -> Option<Instant> {
        self.lock().waiting.get(key).copied()
    }
}

/// One [`WorkQueue`] per lane, built on first use.
#[derive(Debug)]
pub struct WorkQueues<K> {
    lanes: Mutex<BTreeMap<String, std::sync::Arc<WorkQueue<K>>>>,
}

impl<K: Ord + Clone> Default for WorkQueues<K> {
    fn default() -> Self {
        WorkQueues {
            lanes: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<K: Ord + Clone> WorkQueues<K> {
    /// The queue of `lane`.
    pub fn of(&self, lane: &str) -> std::sync::Arc<WorkQueue<K>> {
        // Every update under this lock is one insert: a poisoned lock still holds consistent data.
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.entry(lane.to_string()).or_default().clone()
    }

    fn all(&self) -> Vec<std::sync::Arc<WorkQueue<K>>> {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.values().cloned().collect()
    }

    /// How many keys wait in every lane.
    pub fn len(&self) -> usize {
        self.all().iter().map(|q| q.len()).sum()
    }

    /// Whether no key waits in any lane.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many keys are in flight in every lane.
    pub fn in_flight(&self) -> usize {
        self.all().iter().map(|q| q.in_flight()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_keeps_the_earlier_run_time() {
        let queue = WorkQueue::new();
        let now = Instant::now();
        queue.add_at("a", now + Duration::from_secs(60));
        queue.add_at("a", now + Duration::from_secs(5));
        queue.add_at("a", now + Duration::from_secs(30));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.due_at(&"a"), Some(now + Duration::from_secs(5)));
        let key = queue.next().await;
        assert_eq!(key, Some("a"));
        assert_eq!(Instant::now(), now + Duration::from_secs(5));
        assert!(queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_come_out_in_run_time_order_and_not_before_their_time() {
        let queue = WorkQueue::new();
        let start = Instant::now();
        queue.add_at("late", start + Duration::from_secs(20));
        queue.add_at("soon", start + Duration::from_secs(10));
        queue.add("now");
        assert_eq!(queue.next().await, Some("now"));
        assert_eq!(Instant::now(), start);
        assert_eq!(queue.next().await, Some("soon"));
        assert_eq!(Instant::now(), start + Duration::from_secs(10));
        assert_eq!(queue.next().await, Some("late"));
        assert_eq!(Instant::now(), start + Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_added_while_in_flight_waits_until_it_is_done() {
        let queue = Arc::new(WorkQueue::new());
        queue.add("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.add("a");
        queue.add("b");
        // "a" is in flight: the next hand-out is "b", and then nothing until "a" is done.
        assert_eq!(queue.next().await, Some("b"));
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.next().await })
        };
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!waiter.is_finished(), "a key was handed out twice at once");
        queue.done(&"a");
        assert_eq!(waiter.await.unwrap(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_pushes_every_later_request_past_the_settle_window() {
        let queue = WorkQueue::new();
        let start = Instant::now();
        queue.hold_until("a", start + Duration::from_secs(30));
        queue.add("a");
        assert_eq!(queue.due_at(&"a"), Some(start + Duration::from_secs(30)));
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(Instant::now(), start + Duration::from_secs(30));
        queue.done(&"a");
        // The hold has ended: the next request runs at once.
        queue.add("a");
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(Instant::now(), start + Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_also_delays_a_request_already_waiting() {
        let queue = WorkQueue::new();
        let start = Instant::now();
        queue.add("a");
        queue.hold_until("a", start + Duration::from_secs(8));
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(Instant::now(), start + Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn workers_never_exceed_their_number_and_never_overlap_on_a_key() {
        const WORKERS: usize = 3;
        let queue = Arc::new(WorkQueue::new());
        for i in 0..20 {
            queue.add(i % 7);
        }
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let per_key: Arc<Mutex<BTreeSet<i32>>> = Arc::default();
        let handled = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            let (queue, running, peak, per_key, handled) = (
                queue.clone(),
                running.clone(),
                peak.clone(),
                per_key.clone(),
                handled.clone(),
            );
            workers.push(tokio::spawn(async move {
                while let Some(key) = queue.next().await {
                    assert!(
                        per_key.lock().unwrap().insert(key),
                        "key {key} ran twice at once"
                    );
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // Every third key asks to run again, as a reconcile that requeues does.
                    if handled.fetch_add(1, Ordering::SeqCst) % 3 == 0 {
                        queue.add(key);
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    per_key.lock().unwrap().remove(&key);
                    queue.done(&key);
                }
            }));
        }
        while !(queue.is_empty() && queue.in_flight() == 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        queue.close();
        for worker in workers {
            worker.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), WORKERS);
        // 7 distinct keys, each requeued a few times; duplicates collapsed.
        assert!(handled.load(Ordering::SeqCst) >= 7);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_wakes_every_waiting_worker() {
        let queue = Arc::new(WorkQueue::<u8>::new());
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.next().await })
        };
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_key_is_not_handed_out() {
        let queue = WorkQueue::new();
        queue.add_at("a", Instant::now() + Duration::from_secs(1));
        queue.add_at("b", Instant::now() + Duration::from_secs(2));
        queue.remove(&"a");
        assert_eq!(queue.next().await, Some("b"));
    }
}
