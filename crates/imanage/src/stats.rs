//! Counters of what the client did, per client and per customer, for "API calls made" reports.

use crate::retry::RetryCause;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Retries, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryCounts {
    /// 429 answers.
    pub rate_limited: u64,
    /// 502 answers.
    pub bad_gateway: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// 504 answers.
    pub gateway_timeout: u64,
    /// Attempts without a complete answer in time.
    pub timeout: u64,
    /// Connections refused, reset or closed early.
    pub connection: u64,
    /// Repeats after a 401 and a token renewal.
    pub unauthorized: u64,
    /// Repeats after a body that was not JSON.
    pub malformed: u64,
}

impl RetryCounts {
    fn add(&mut self, cause: RetryCause) {
        let slot = match cause {
            RetryCause::RateLimited => &mut self.rate_limited,
            RetryCause::BadGateway => &mut self.bad_gateway,
            RetryCause::Unavailable => &mut self.unavailable,
            RetryCause::GatewayTimeout => &mut self.gateway_timeout,
            RetryCause::Timeout => &mut self.timeout,
            RetryCause::Connection => &mut self.connection,
            RetryCause::Unauthorized => &mut self.unauthorized,
            RetryCause::Malformed => &mut self.malformed,
        };
        *slot += 1;
    }

    /// Retries of every cause.
    pub fn total(&self) -> u64 {
        self.rate_limited
            + self.bad_gateway
            + self.unavailable
            + self.gateway_timeout
            + self.timeout
            + self.connection
            + self.unauthorized
            + self.malformed
    }
}

/// API calls of one customer (or of all of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP attempts against the API (every retry is one more), token endpoint excluded.
    pub calls: u64,
    /// Retries, by cause.
    pub retries: RetryCounts,
    /// Reads made to learn the outcome of a write whose answer was lost.
    pub write_checks: u64,
}

/// A snapshot of [`crate::Client::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// All customers together.
    pub total: CallStats,
    /// The same counters per customer (database).
    pub per_customer: BTreeMap<String, CallStats>,
    /// HTTP requests to the token endpoint (retries included).
    pub token_requests: u64,
    /// Access tokens received.
    pub tokens_issued: u64,
    /// Tokens received to replace one the client had (expiry, a 401), a subset of
    /// `tokens_issued`.
    pub renewals: u64,
    /// The most HTTP exchanges that were in flight at once.
    pub max_in_flight: usize,
}

/// The live counters behind [`ClientStats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    inner: Mutex<ClientStats>,
    in_flight: AtomicUsize,
}

impl Stats {
    fn with<R>(&self, f: impl FnOnce(&mut ClientStats) -> R) -> R {
        // Counters stay usable after a panic elsewhere: they are plain numbers.
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    fn customer<'a>(s: &'a mut ClientStats, customer: &str) -> &'a mut CallStats {
        if !s.per_customer.contains_key(customer) {
            s.per_customer
                .insert(customer.to_string(), CallStats::default());
        }
        s.per_customer
            .get_mut(customer)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Counts a call; `customer` empty for calls about no one database (v2 discovery), which
    /// count in the totals only.
    pub(crate) fn call(&self, customer: &str) {
        self.with(|s| {
            s.total.calls += 1;
            if !customer.is_empty() {
                Self::customer(s, customer).calls += 1;
            }
        });
    }

    pub(crate) fn retry(&self, customer: &str, cause: RetryCause) {
        self.with(|s| {
            s.total.retries.add(cause);
            if !customer.is_empty() {
                Self::customer(s, customer).retries.add(cause);
            }
        });
    }

    pub(crate) fn write_check(&self, customer: &str) {
        self.with(|s| {
            s.total.write_checks += 1;
            Self::customer(s, customer).write_checks += 1;
        });
    }

    pub(crate) fn token_request(&self) {
        self.with(|s| s.token_requests += 1);
    }

    pub(crate) fn token_issued(&self, renewal: bool) {
        self.with(|s| {
            s.tokens_issued += 1;
            if renewal {
                s.renewals += 1;
            }
        });
    }

    /// Marks one exchange in flight until the guard drops.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.with(|s| s.max_in_flight = s.max_in_flight.max(now));
        InFlight(self)
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        self.with(|s| s.clone())
    }
}

pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_customer_and_in_total() {
        let s = Stats::default();
        s.call("a");
        s.call("a");
        s.call("b");
        s.call("");
        s.retry("", RetryCause::Timeout);
        s.retry("a", RetryCause::RateLimited);
        s.retry("b", RetryCause::Timeout);
        s.write_check("b");
        s.token_request();
        s.token_issued(false);
        s.token_issued(true);
        {
            let _one = s.in_flight();
            let _two = s.in_flight();
        }
        let _three = s.in_flight();
        let snap = s.snapshot();
        assert_eq!(snap.total.calls, 4);
        assert!(
            !snap.per_customer.contains_key(""),
            "discovery is no customer"
        );
        assert_eq!(snap.per_customer["a"].calls, 2);
        assert_eq!(snap.per_customer["a"].retries.rate_limited, 1);
        assert_eq!(snap.per_customer["b"].retries.timeout, 1);
        assert_eq!(snap.total.retries.total(), 3);
        assert_eq!(snap.total.write_checks, 1);
        assert_eq!(
            (snap.token_requests, snap.tokens_issued, snap.renewals),
            (1, 2, 1)
        );
        assert_eq!(snap.max_in_flight, 2);
    }
}
