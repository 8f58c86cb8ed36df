//! Backoff, `Retry-After`, and the causes a call is retried for.

use crate::config::RetryPolicy;
use rand::Rng;
use std::time::{Duration, SystemTime};

/// Why an attempt was repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetryCause {
    /// 429.
    RateLimited,
    /// 502.
    BadGateway,
    /// 503.
    Unavailable,
    /// 504.
    GatewayTimeout,
    /// No complete answer within the request timeout.
    Timeout,
    /// Connection refused, reset or closed early.
    Connection,
    /// 401: the token was renewed and the call repeated.
    Unauthorized,
    /// A success whose body was not JSON (cut short or garbled on the way).
    Malformed,
}

impl RetryCause {
    /// The cause for a retryable status.
    pub(crate) fn from_status(status: u16) -> Option<Self> {
        Some(match status {
            429 => RetryCause::RateLimited,
            502 => RetryCause::BadGateway,
            503 => RetryCause::Unavailable,
            504 => RetryCause::GatewayTimeout,
            _ => return None,
        })
    }

    /// True when the server may have processed the request before the failure: a write must
    /// then be checked before it is repeated. 429 and 503 are refusals before processing; a
    /// connection that could not be opened never carried the request (that case is reported as
    /// [`RetryCause::Connection`] with `sent == false` by the caller).
    pub(crate) fn outcome_unknown(self) -> bool {
        matches!(
            self,
            RetryCause::BadGateway
                | RetryCause::GatewayTimeout
                | RetryCause::Timeout
                | RetryCause::Connection
        )
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::RateLimited => "rate_limited",
            RetryCause::BadGateway => "bad_gateway",
            RetryCause::Unavailable => "unavailable",
            RetryCause::GatewayTimeout => "gateway_timeout",
            RetryCause::Timeout => "timeout",
            RetryCause::Connection => "connection",
            RetryCause::Unauthorized => "unauthorized",
            RetryCause::Malformed => "malformed",
        }
    }
}

/// The wait before retry number `retry` (0 for the first retry).
///
/// A `Retry-After` from the server is honoured as given (it knows best when it will accept
/// calls again); otherwise full jitter: a uniform draw from zero to `base * 2^retry`. Either way
/// no wait exceeds `max_delay`.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after.min(policy.max_delay);
    }
    let factor = 2u32.saturating_pow(retry.min(31));
    let ceiling = policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3).
/// A date in the past means "now"; anything unparseable is ignored.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn backoff_is_jittered_exponential_and_capped() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for retry in 0..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(2u32.saturating_pow(retry.min(31)))
                .min(Duration::from_secs(1));
            for _ in 0..20 {
                let d = backoff(&policy, retry, None);
                assert!(d <= ceiling, "retry {retry}: {d:?} > {ceiling:?}");
            }
        }
        // Full jitter spreads: 200 draws below 800ms are not all equal.
        let draws: std::collections::HashSet<Duration> =
            (0..200).map(|_| backoff(&policy, 3, None)).collect();
        assert!(draws.len() > 100);
        assert_eq!(
            backoff(&policy, 0, Some(Duration::from_secs(60))),
            Duration::from_secs(1),
            "Retry-After is capped by max_delay"
        );
        assert_eq!(
            backoff(&policy, 5, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn unknown_outcomes_are_the_ones_after_sending() {
        assert!(!RetryCause::RateLimited.outcome_unknown());
        assert!(!RetryCause::Unavailable.outcome_unknown());
        assert!(RetryCause::BadGateway.outcome_unknown());
        assert!(RetryCause::GatewayTimeout.outcome_unknown());
        assert!(RetryCause::Timeout.outcome_unknown());
        assert_eq!(RetryCause::from_status(503), Some(RetryCause::Unavailable));
        assert_eq!(RetryCause::from_status(500), None);
    }
}
