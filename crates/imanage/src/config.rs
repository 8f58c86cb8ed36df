//! Client configuration and its validation.

use crate::error::{Error, Result};
use secrecy::SecretString;
use std::time::Duration;

/// The largest `max_results` the API summary allows.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// How the client retries failed calls: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt of one request (a 401 renewal is not counted).
    pub max_retries: u32,
    /// The backoff before the first retry is drawn from `0..=base_delay`, doubling each retry.
    pub base_delay: Duration,
    /// No single wait is longer, whatever the backoff or a `Retry-After` header asks for.
    pub max_delay: Duration,
    /// The most time one request may spend waiting between attempts, all retries together. Once
    /// spent, the last error is returned even if `max_retries` is not reached.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
        }
    }
}

/// Which shape of the iManage Work API a deployment speaks. Chosen per deployment; everything
/// above the client sees the same [`crate::Directory`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApiProfile {
    /// The API summary's: `api/v1/customers/{customer_id}/...`, paged with `start_index` and
    /// `max_results`, the token in `Authorization: Bearer`. Workspace security is read where the
    /// server offers it (`.../workspaces`), and is "not offered" where it answers 404.
    #[default]
    V1,
    /// iManage Work's v2: `GET api` discovers the tenant's customer id and its libraries (the
    /// databases); the API lives at `work/api/v2/customers/{customerId}/libraries/{library}/...`,
    /// paged with `offset`, `limit` and `total=true`, the token in `X-Auth-Token`. The v2
    /// profile reads (users, groups, members, workspaces and their security); the write calls
    /// are v1 only and answer [`Error::Unsupported`].
    V2,
}

impl ApiProfile {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiProfile::V1 => "v1",
            ApiProfile::V2 => "v2",
        }
    }
}

impl std::fmt::Display for ApiProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a [`crate::Client`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The base of the deployment, e.g. `https://acme.imanage.work` or
    /// `https://cloudimanage.com`. The API lives below it (`api/v1/customers/...` or, in the v2
    /// profile, `work/api/v2/customers/...`) and the token endpoint at `auth/oauth2/token`; a
    /// path in the base (`https://host/imanage/`) is kept as a prefix.
    pub base_url: url::Url,
    /// The shape of the API the deployment speaks.
    pub api: ApiProfile,
    /// The OAuth2 client id registered in Control Center.
    pub client_id: String,
    /// The OAuth2 client secret (never printed).
    pub client_secret: SecretString,
    /// Scopes to request. Empty (the default) sends no `scope` parameter, so the token carries
    /// what the application is registered for in Control Center: least privilege is decided
    /// there, not guessed here.
    pub scopes: Vec<String>,
    /// `max_results` per page, 1 to 1000.
    pub page_size: u32,
    /// HTTP exchanges in flight at once, shared by every database this client crawls.
    pub max_concurrency: usize,
    /// An optional client-side cap on API calls per second (retries included).
    pub rate_limit_per_s: Option<u32>,
    /// How failed calls are retried.
    pub retry: RetryPolicy,
    /// Limit for one HTTP exchange, response body included.
    pub request_timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// A list is abandoned with [`Error::Pagination`] past this many records (a guard against a
    /// server that never ends a list; far above any real database).
    pub max_list_records: u64,
    /// The largest response body read, in bytes. A longer one is abandoned unread past this
    /// point and the call fails with [`Error::TooLarge`] (not retried): a page of 1000 users is
    /// well under a megabyte, so this only stops a server gone wrong from filling the memory.
    pub max_body_bytes: usize,
}

/// The default [`ClientConfig::max_body_bytes`]: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

impl Default for ClientConfig {
    /// The simulator's default address (`idgraph sim`), no credentials, and the documented
    /// defaults for everything else. Credentials must be set before [`crate::Client::new`].
    fn default() -> Self {
        Self {
            base_url: url::Url::parse("http://127.0.0.1:9000/")
                .unwrap_or_else(|_| unreachable!("a valid literal URL")),
            api: ApiProfile::V1,
            client_id: String::new(),
            client_secret: SecretString::from(""),
            scopes: Vec::new(),
            page_size: MAX_PAGE_SIZE,
            max_concurrency: 8,
            rate_limit_per_s: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_list_records: 10_000_000,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl ClientConfig {
    /// Checks every setting; [`crate::Client::new`] calls it.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(Error::Config(format!(
                "page_size must be 1 to {MAX_PAGE_SIZE}, not {}",
                self.page_size
            )));
        }
        if self.max_concurrency == 0 {
            return Err(Error::Config("max_concurrency must be at least 1".into()));
        }
        if self.rate_limit_per_s == Some(0) {
            return Err(Error::Config(
                "rate_limit_per_s must be at least 1 (or unset for no limit)".into(),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::Config("client_id is empty".into()));
        }
        if !matches!(self.base_url.scheme(), "http" | "https") || self.base_url.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "base_url must be an http(s) URL, not {}",
                self.base_url.scheme()
            )));
        }
        if self.base_url.query().is_some() || self.base_url.fragment().is_some() {
            return Err(Error::Config(
                "base_url must not carry a query or a fragment".into(),
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config("timeouts must be longer than zero".into()));
        }
        if self.retry.base_delay > self.retry.max_delay {
            return Err(Error::Config(
                "retry.base_delay must not exceed retry.max_delay".into(),
            ));
        }
        if self.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            return Err(Error::Config("a scope must be one non-empty word".into()));
        }
        if self.max_list_records == 0 {
            return Err(Error::Config("max_list_records must be at least 1".into()));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::Config("max_body_bytes must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ClientConfig {
        ClientConfig {
            client_id: "idgraph".into(),
            client_secret: SecretString::from("s3cret"),
            ..ClientConfig::default()
        }
    }

    #[test]
    fn defaults_are_valid_once_credentials_are_set() {
        assert!(valid().validate().is_ok());
        assert!(ClientConfig::default().validate().is_err(), "no client_id");
        let d = valid();
        assert_eq!(d.page_size, 1000);
        assert_eq!(d.max_concurrency, 8);
        assert!(d.scopes.is_empty());
        assert_eq!(d.retry.max_retries, 8);
        assert_eq!(d.retry.base_delay, Duration::from_millis(200));
        assert_eq!(d.retry.max_delay, Duration::from_secs(30));
        assert_eq!(d.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn page_size_outside_1_to_1000_is_a_config_error() {
        for bad in [0, 1001, u32::MAX] {
            let c = ClientConfig {
                page_size: bad,
                ..valid()
            };
            assert!(matches!(c.validate(), Err(Error::Config(_))), "{bad}");
        }
        for good in [1, 999, 1000] {
            let c = ClientConfig {
                page_size: good,
                ..valid()
            };
            assert!(c.validate().is_ok(), "{good}");
        }
    }

    #[test]
    fn other_bad_settings_are_config_errors() {
        let bad = [
            ClientConfig {
                max_concurrency: 0,
                ..valid()
            },
            ClientConfig {
                rate_limit_per_s: Some(0),
                ..valid()
            },
            ClientConfig {
                base_url: url::Url::parse("ftp://example.com/").expect("url"),
                ..valid()
            },
            ClientConfig {
                base_url: url::Url::parse("mailto:a@example.com").expect("url"),
                ..valid()
            },
            ClientConfig {
                scopes: vec!["admin user".into()],
                ..valid()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::Config(_))), "{c:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let text = format!("{:?}", valid());
        assert!(!text.contains("s3cret"), "{text}");
    }
}
