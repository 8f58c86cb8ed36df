//! The client's concurrency cap: at most `n` requests in flight, with waiting calls admitted in
//! **random order** rather than first come, first served.
//!
//! A harvest queues thousands of calls at once, and they cost very different amounts of CPU: a
//! workspace's security is a few hundred bytes, a page of users is 1,000 objects to decode. In
//! arrival order, each list's calls sit together in the queue (every security call of every
//! database, then the member pages, then whatever list's later pages came back last), so the
//! crawl went through a phase where the cap was full of cheap calls and the cores idled, and one
//! where it was full of expensive ones and every call waited for a core. Admitting a waiting
//! call at random serves each list in proportion to what it still has queued: the expensive
//! and cheap calls interleave for the whole crawl. Within one order (below), a call waiting
//! among `k` others is admitted at each release with probability `1/(k+1)`; a later order waits
//! only while an earlier one has calls waiting, and a harvest's calls are finite.
//!
//! Two orders go ahead of that draw:
//! - the **first page of a list** before anything else. It is the only call that makes more
//!   work (the rest of the list's pages, and for a list of groups or workspaces, a listing or a
//!   security call for each), so a first page admitted late starts a chain that runs on after
//!   everything else has drained: a crawl at C=64 ended with 0.2 s of one large group's pages
//!   alone in flight, its first page drawn among the last.
//! - then the **database** first seen first. Every database's calls have the same mix of cheap
//!   and expensive, so the draw within one keeps the interleaving; but the databases end one
//!   after another instead of all together at the end of the crawl, and each one's snapshot is
//!   assembled and committed while the others are still being crawled. Drawn across databases,
//!   ten databases' assembling and committing all waited for the last answer (0.4-0.7 s of a
//!   4 s crawl).
//!
//! Calls with the same order are drawn at random among themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

/// A counting semaphore whose waiters are admitted in random order.
pub(crate) struct Permits {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    /// Waiting calls by their order (lowest admitted first); drawn at random within one.
    waiting: BTreeMap<u64, Vec<oneshot::Sender<Permit>>>,
    /// The order of each database's calls that do not open a list: first seen, first served.
    databases: HashMap<String, u64>,
    rng: u64,
}

/// The right to have one request in flight; given back when dropped.
pub(crate) struct Permit {
    state: Option<Arc<Mutex<State>>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is a counter and a list: consistent after any panic elsewhere.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// The order of `database`'s calls that do not open a list: 1 for the first database seen,
    /// 2 for the next, ... (0 is for first pages).
    fn order_of(&mut self, database: &str) -> u64 {
        if let Some(&order) = self.databases.get(database) {
            return order;
        }
        let order = self.databases.len() as u64 + 1;
        self.databases.insert(database.to_string(), order);
        order
    }

    /// The next waiter to admit: the lowest order, at random within it.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Permit>> {
        let (&order, waiters) = self.waiting.iter().next()?;
        let n = waiters.len();
        let i = self.below(n);
        let waiters = self.waiting.get_mut(&order)?;
        let tx = waiters.swap_remove(i);
        if waiters.is_empty() {
            self.waiting.remove(&order);
        }
        Some(tx)
    }

    /// xorshift64*: enough to pick a waiter, and no lock on a shared generator.
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

impl Permits {
    /// `n` permits (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: n.max(1),
                waiting: BTreeMap::new(),
                databases: HashMap::new(),
                rng: rand::random::<u64>() | 1,
            })),
        }
    }

    /// Waits for a permit for a call to `database`; `opens_list` for the first page of a list.
    /// Cancel-safe: a permit handed to a waiter that has gone is passed on.
    pub(crate) async fn acquire(&self, database: &str, opens_list: bool) -> Permit {
        let rx = {
            let mut state = lock(&self.state);
            let order = state.order_of(database);
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Permit {
                    state: Some(self.state.clone()),
                };
            }
            let order = if opens_list { 0 } else { order };
            let (tx, rx) = oneshot::channel();
            state.waiting.entry(order).or_default().push(tx);
            rx
        };
        match rx.await {
            Ok(permit) => permit,
            // Senders are only dropped with the state, which `self` keeps alive.
            Err(_) => unreachable!("the permit pool went away while a call waited on it"),
        }
    }

    /// Permits free right now (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        lock(&self.state).free
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(shared) = self.state.take() else {
            return;
        };
        let mut state = lock(&shared);
        loop {
            let Some(tx) = state.next_waiter() else {
                state.free += 1;
                return;
            };
            if tx.is_closed() {
                continue;
            }
            let permit = Permit {
                state: Some(shared.clone()),
            };
            match tx.send(permit) {
                Ok(()) => return,
                // The waiter went between the check and the send: take the permit back
                // without running this drop again (the lock is held), and pick another.
                Err(mut back) => {
                    back.state = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn waiters(permits: &Permits) -> usize {
        lock(&permits.state).waiting.values().map(Vec::len).sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_n_in_flight_and_every_call_runs() {
        let permits = Arc::new(Permits::new(3));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (permits, in_flight, peak) = (permits.clone(), in_flight.clone(), peak.clone());
                tokio::spawn(async move {
                    let _permit = permits.acquire("db", false).await;
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(permits.available(), 3);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_permit() {
        let permits = Permits::new(1);
        let held = permits.acquire("db", false).await;
        // Two waiters queue; one is dropped before the permit comes back.
        let gone =
            tokio::time::timeout(Duration::from_millis(5), permits.acquire("db", false)).await;
        assert!(gone.is_err(), "the only permit is held");
        let waiter = permits.acquire("db", false);
        tokio::pin!(waiter);
        assert!(futures::poll!(&mut waiter).is_pending());
        drop(held);
        let second = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the live waiter gets the permit, not the one that left");
        assert_eq!(permits.available(), 0);
        drop(second);
        assert_eq!(permits.available(), 1);
    }

    #[test]
    fn a_permit_sent_to_a_dropped_receiver_comes_back() {
        let permits = Permits::new(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let held = rt.block_on(permits.acquire("db", false));
        // A waiter whose receiver is dropped after it queued: the release must skip it.
        let (tx, rx) = oneshot::channel();
        lock(&permits.state).waiting.entry(1).or_default().push(tx);
        drop(rx);
        drop(held);
        assert_eq!(permits.available(), 1);
        assert!(lock(&permits.state).waiting.is_empty());
    }

    /// Queues `calls` (database, opens_list) one after another behind `held`, the pool's only
    /// permit, then lets it go: the indexes of `calls` in the order they were admitted.
    async fn admission_order(
        permits: Arc<Permits>,
        held: Permit,
        calls: Vec<(&'static str, bool)>,
    ) -> Vec<usize> {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, (database, opens_list)) in calls.into_iter().enumerate() {
            let (pool, order) = (permits.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = pool.acquire(database, opens_list).await;
                order.lock().unwrap().push(i);
            }));
            // Let it queue before the next one.
            while waiters(&permits) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        order
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_are_admitted_out_of_arrival_order() {
        // 1 permit, 64 waiters queued in order: a first-come queue would admit 0, 1, 2, ...
        let permits = Arc::new(Permits::new(1));
        let held = permits.acquire("db", false).await;
        let order = admission_order(permits, held, vec![("db", false); 64]).await;
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..64).collect::<Vec<_>>(), "every waiter ran once");
        assert_ne!(order, sorted, "admitted at random, not in arrival order");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_pages_then_the_first_database_seen_go_first() {
        // 1 permit; queued in the worst order: the later database's calls (0..8), then the
        // earlier one's (8..16), then first pages of lists (16..24).
        let permits = Arc::new(Permits::new(1));
        // "early" is seen first, while the permit is still free.
        let held = permits.acquire("early", false).await;
        let calls = [("late", false); 8]
            .into_iter()
            .chain([("early", false); 8])
            .chain([("late", true); 8])
            .collect();
        let order = admission_order(permits, held, calls).await;
        let group = |i: &usize| i / 8;
        let groups: Vec<usize> = order.iter().map(group).collect();
        let expected: Vec<usize> = [2; 8].into_iter().chain([1; 8]).chain([0; 8]).collect();
        assert_eq!(groups, expected, "admitted: {order:?}");
    }
}
