//! The simulated latency of an API call, kept to a fraction of a millisecond.
//!
//! `tokio::time::sleep` rounds a deadline up to the next millisecond of its timer wheel and
//! fires when a worker next turns the wheel, so a 20 ms latency came out as 20.5 to 22 ms, more
//! on a busy machine: a simulator that is slower than it says makes a client look slower than
//! it is. Here one thread keeps the deadlines in a heap and sleeps on a condition variable until
//! the earliest (the kernel's timer, to tens of microseconds), then wakes the waiting calls.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Due {
    at: Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    due: BinaryHeap<Reverse<Due>>,
    seq: u64,
    started: bool,
    closed: bool,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Precise delays for the simulator's calls; the thread behind them starts on first use and
/// ends when this is dropped.
#[derive(Default)]
pub(crate) struct Delays {
    inner: Arc<Inner>,
}

impl Delays {
    /// Waits `latency` from now.
    pub(crate) async fn wait(&self, latency: Duration) {
        let (wake, woken) = oneshot::channel();
        if !self.enqueue(latency, wake) {
            // No thread to be had: the runtime's timer will do, less precisely.
            tokio::time::sleep(latency).await;
            return;
        }
        // A closed channel means the simulator is going away: nothing left to wait for.
        let _ = woken.await;
    }
}

impl Delays {
    /// Queues a wake-up `latency` from now; false when there is no thread to deliver it.
    fn enqueue(&self, latency: Duration, wake: oneshot::Sender<()>) -> bool {
        let mut q = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !q.started {
            let inner = Arc::clone(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("sim-latency".into())
                .spawn(move || run(&inner));
            if spawned.is_err() {
                return false;
            }
            q.started = true;
        }
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.due.peek().map(|Reverse(d)| d.at);
        let at = Instant::now() + latency;
        q.due.push(Reverse(Due { at, seq, wake }));
        if earliest.is_none_or(|e| at < e) {
            self.inner.changed.notify_one();
        }
        true
    }
}

impl Drop for Delays {
    fn drop(&mut self) {
        let mut q = self
            .inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        q.closed = true;
        q.due.clear();
        self.inner.changed.notify_one();
    }
}

fn run(inner: &Inner) {
    let mut q = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if q.closed {
            return;
        }
        let now = Instant::now();
        match q.due.peek().map(|Reverse(d)| d.at) {
            None => {
                q = inner
                    .changed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            Some(at) if at <= now => {
                while let Some(Reverse(d)) = q.due.peek() {
                    if d.at > now {
                        break;
                    }
                    if let Some(Reverse(d)) = q.due.pop() {
                        let _ = d.wake.send(());
                    }
                }
            }
            Some(at) => {
                q = inner
                    .changed
                    .wait_timeout(q, at - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_end_close_to_their_deadline_and_in_order() {
        let delays = Arc::new(Delays::default());
        let started = Instant::now();
        let waits = [30u64, 10, 20, 10].map(|ms| {
            let delays = Arc::clone(&delays);
            tokio::spawn(async move {
                delays.wait(Duration::from_millis(ms)).await;
                (ms, started.elapsed())
            })
        });
        for w in waits {
            let (ms, took) = w.await.expect("wait");
            let wanted = Duration::from_millis(ms);
            assert!(took >= wanted, "{ms} ms took {took:?}");
            // Generous for a loaded machine; the point is that none is early.
            assert!(
                took < wanted + Duration::from_millis(250),
                "{ms} ms took {took:?}"
            );
        }
    }
}
