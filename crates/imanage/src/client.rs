//! The client: each HTTP exchange under the shared cap, retries with backoff, token renewal on a
//! 401, and the calls of the API summary on top.

use crate::auth::{Auth, Bearer, PendingAuthorization};
use crate::config::{ApiProfile, ClientConfig};
use crate::error::{short, Error, Result};
use crate::models::{
    decode_discovery, decode_one, decode_user, is_not_json, AddOutcome, Discovery, Group, Member,
    NewUser, Removal, User, UserPatch, Workspace, WorkspaceListing, WorkspaceSecurity,
};
use crate::pagination::{pages, Page};
use crate::permits::Permits;
use crate::retry::{backoff, parse_retry_after, RetryCause};
use crate::stats::{ClientStats, Stats};
use futures::{Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OnceCell;
use tracing::{debug, instrument, warn, Span};
use url::Url;

/// An iManage Work REST client. Cheap to clone: clones share the token, the concurrency cap,
/// the rate limit and the counters, so one client serves every database of a harvest.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url.as_str())
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    http: reqwest::Client,
    auth: Auth,
    permits: Permits,
    limiter: Option<DefaultDirectRateLimiter>,
    stats: Arc<Stats>,
    /// The v2 profile's discovery, made once on the first call that needs the customer id.
    discovery: OnceCell<Discovery>,
}

/// The header that carries the token in the v2 profile.
const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");

/// One API request, ready to be sent as often as needed.
pub(crate) struct Call {
    customer: String,
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    /// The first page of a list: admitted ahead of other waiting calls (see `permits`).
    pub(crate) opens_list: bool,
}

/// A complete answer.
pub(crate) struct Reply {
    status: StatusCode,
    retry_after: Option<Duration>,
    pub(crate) body: Vec<u8>,
}

/// Bodies at least this long are decoded off the runtime's worker threads ([`Client::read_decoded`]).
const DECODE_OFF_THREAD_BYTES: usize = 32 * 1024;

/// How long a request that renewed its own token may wait (rate limit, concurrency permit)
/// before sending it and still call a 401 to it a refusal of a freshly issued token.
const FRESH_TOKEN_WAIT: Duration = Duration::from_millis(100);

/// A failed attempt that may be retried.
pub(crate) struct Failure {
    cause: RetryCause,
    /// The server may have processed the request (502, 504, timeout, a connection lost after
    /// sending): a write must be checked before it is repeated.
    outcome_unknown: bool,
    retry_after: Option<Duration>,
    error: Error,
    /// Not worth another attempt: the call fails with `error` at once.
    fatal: bool,
}

impl Failure {
    /// A failure that a retry may heal.
    fn retry(cause: RetryCause, outcome_unknown: bool, error: Error) -> Self {
        Failure {
            cause,
            outcome_unknown,
            retry_after: None,
            error,
            fatal: false,
        }
    }
}

/// What [`Client::exchange`] ended with.
pub(crate) enum Sent {
    /// An answer that is not retried (success, or an error status such as 403, 404, 409).
    Reply(Reply),
    /// Only with [`OnUnknown::Report`]: the outcome is unknown and the caller must check.
    Unknown(Failure),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnUnknown {
    /// Reads and idempotent writes: retry.
    Retry,
    /// Writes that must not be repeated blindly: hand the failure to the caller.
    Report,
}

/// The attempts of one logical request, across write checks.
#[derive(Default)]
pub(crate) struct Attempts {
    /// HTTP attempts made.
    pub(crate) attempts: u32,
    retries: u32,
    waited: Duration,
    /// An earlier attempt's outcome was unknown.
    unknown: bool,
}

/// Rejects ids that would change the path (`.` and `..` segments are dropped by URL rules).
fn check_segment(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(Error::InvalidInput(format!(
            "{what} must not be empty, \".\" or \"..\""
        )));
    }
    Ok(())
}

/// The `(code, message)` of an error body: the API's `{"error": {"code", "message"}}`, the v2
/// profile's `{"error": {"code", "code_message", "messages": [...]}}`, an OAuth2-style
/// `{"error", "error_description"}`, or a bare `{"message"}`.
pub(crate) fn error_details(status: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let reason = || status.canonical_reason().unwrap_or("error").to_string();
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, reason());
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(short);
    match map.get("error") {
        Some(Value::Object(e)) => {
            let messages = e
                .get("messages")
                .and_then(Value::as_array)
                .map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .filter(|m| !m.is_empty())
                .map(|m| short(&m.join("; ")));
            (
                text(e.get("code")),
                text(e.get("message"))
                    .or(messages)
                    .or_else(|| text(e.get("code_message")))
                    .unwrap_or_else(reason),
            )
        }
        Some(Value::String(code)) => (
            Some(short(code)),
            text(map.get("error_description")).unwrap_or_else(reason),
        ),
        _ => (
            text(map.get("code")),
            text(map.get("message")).unwrap_or_else(reason),
        ),
    }
}

/// The error an unsuccessful answer stands for.
fn status_error(reply: &Reply, attempts: u32) -> Error {
    let (code, message) = error_details(reply.status, &reply.body);
    match reply.status.as_u16() {
        401 => Error::Auth { message },
        403 => Error::Forbidden { message },
        404 => Error::NotFound { message },
        409 => Error::Conflict { message },
        429 => Error::RateLimited { attempts },
        status => Error::Upstream {
            status,
            code,
            message,
        },
    }
}

/// The reply if it is a success, else its error.
fn success(reply: Reply, attempts: u32) -> Result<Reply> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(status_error(&reply, attempts))
    }
}

/// The header that carries `bearer` in the profile (`Authorization: Bearer` in v1,
/// `X-Auth-Token` in v2), marked sensitive so no Debug print shows it.
fn auth_header(bearer: &Bearer, api: ApiProfile) -> Result<(HeaderName, HeaderValue)> {
    let (name, text) = match api {
        ApiProfile::V1 => (AUTHORIZATION, bearer.header_value()),
        ApiProfile::V2 => (X_AUTH_TOKEN, bearer.token_value()),
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| Error::Auth {
        message: "the access token is not a valid header value".into(),
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// A reqwest error as text: it and its causes, without the URL.
fn transport_message(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    short(&message)
}

impl Client {
    /// Checks `config` and builds the client. No request is made until the first call.
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        let http = reqwest::Client::builder()
            // A redirect from the API or the token endpoint is not followed: it could carry
            // credentials somewhere the configuration did not name.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("idgraph-imanage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let stats = Arc::new(Stats::default());
        let auth = Auth::new(&config, http.clone(), stats.clone())?;
        let limiter = config
            .rate_limit_per_s
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_second(n)));
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Permits::new(config.max_concurrency),
                config,
                http,
                auth,
                limiter,
                stats,
                discovery: OnceCell::new(),
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Counters of calls, retries and token renewals so far.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Starts an authorization-code sign-in (PKCE S256, a random `state`): send the user's
    /// browser to the returned [`PendingAuthorization::url`]. `scopes` empty asks for none (the
    /// registration decides).
    pub fn begin_authorization(
        &self,
        redirect_url: &Url,
        scopes: &[String],
    ) -> Result<PendingAuthorization> {
        self.inner.auth.begin_authorization(redirect_url, scopes)
    }

    /// Finishes a sign-in with the `code` and `state` the authorize endpoint redirected with.
    /// From then on this client (and its clones) calls the API as the signed-in user and renews
    /// with the refresh token; a refused refresh ends the session with [`Error::Auth`].
    pub async fn complete_authorization(
        &self,
        pending: PendingAuthorization,
        code: &str,
        state: &str,
    ) -> Result<()> {
        self.inner
            .auth
            .complete_authorization(pending, code, state)
            .await
    }

    /// The API profile the client speaks.
    pub fn api(&self) -> ApiProfile {
        self.inner.config.api
    }

    /// `base_url` with `segments` appended.
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.inner.config.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config("base_url cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Builds a request to one database's `{segments...}?{query}`: below
    /// `api/v1/customers/{customer}` in the v1 profile, below
    /// `work/api/v2/customers/{customerId}/libraries/{customer}` in the v2 profile (whose
    /// customer id comes from discovery, made on first use).
    pub(crate) async fn call(
        &self,
        customer: &str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Call> {
        check_segment("customer_id", customer)?;
        for s in segments {
            check_segment("an id", s)?;
        }
        let mut url = match self.api() {
            ApiProfile::V1 => self.url(&["api", "v1", "customers", customer])?,
            ApiProfile::V2 => {
                let tenant = &self.discovered().await?.customer_id;
                check_segment("the discovered customer id", tenant)?;
                self.url(&[
                    "work",
                    "api",
                    "v2",
                    "customers",
                    tenant,
                    "libraries",
                    customer,
                ])?
            }
        };
        url.path_segments_mut()
            .map_err(|()| Error::Config("base_url cannot be a base".into()))?
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(Call {
            customer: customer.to_string(),
            method,
            url,
            body,
            opens_list: false,
        })
    }

    /// The discovery, made once and shared by every clone of this client.
    async fn discovered(&self) -> Result<&Discovery> {
        self.inner
            .discovery
            .get_or_try_init(|| self.fetch_discovery())
            .await
    }

    /// `GET api`: the tenant's customer id and libraries, as the signed-in caller sees them.
    #[instrument(level = "debug", skip(self))]
    async fn fetch_discovery(&self) -> Result<Discovery> {
        let call = Call {
            // Not any one database's call: counted in the totals only.
            customer: String::new(),
            method: Method::GET,
            url: self.url(&["api"])?,
            body: None,
            opens_list: false,
        };
        self.read_decoded(&call, &mut Attempts::default(), decode_discovery)
            .await
    }

    /// `GET api` (the v2 profile's discovery): the libraries (databases) the signed-in caller
    /// may use, by alias, in the server's order. Asks the server each time (and keeps the first
    /// answer's customer id for the v2 paths). A v1 server has no such call ([`Error::NotFound`]).
    pub async fn discover_libraries(&self) -> Result<Vec<String>> {
        let discovery = self.fetch_discovery().await?;
        // Only the first discovery sets the customer id: it does not change under a tenant.
        let _ = self.inner.discovery.set(discovery.clone());
        Ok(discovery.libraries)
    }

    /// The error for a call the configured profile does not offer.
    fn v1_only(&self, call: &'static str) -> Result<()> {
        match self.api() {
            ApiProfile::V1 => Ok(()),
            profile => Err(Error::Unsupported {
                call,
                profile: profile.as_str(),
            }),
        }
    }

    /// Sends `call` until it gets an answer worth returning: retries 429/502/503/504, timeouts
    /// and connection errors with backoff, and renews the token once on a 401.
    pub(crate) async fn exchange(
        &self,
        call: &Call,
        st: &mut Attempts,
        on_unknown: OnUnknown,
    ) -> Result<Sent> {
        // The generation of the token this request renewed itself after a 401, while no other
        // answer came in between. A 401 to that token once may be a revocation that landed
        // between the renewal and its use: one more renewal. Twice means the API refuses this
        // client, and more renewals would not help. A 401 to a token someone else renewed
        // earns this request its own renewal. A renewed token that then waited for the rate
        // limit or a permit (under load, long enough for a revocation to land) is no longer
        // fresh: its refusal is counted only against `max_retries`.
        let mut own_renewal: Option<u64> = None;
        let mut own_refused = 0u32;
        let mut unauthorized = 0u32;
        loop {
            let mut bearer = self.inner.auth.bearer().await?;
            let queued = Instant::now();
            if let Some(limiter) = &self.inner.limiter {
                limiter.until_ready().await;
            }
            // Held for the exchange only: never during a backoff or a token renewal.
            let permit = self
                .inner
                .permits
                .acquire(&call.customer, call.opens_list)
                .await;
            if queued.elapsed() > FRESH_TOKEN_WAIT {
                own_renewal = None;
            }
            // A renewal may have finished while this request queued for a permit; sending the
            // old token would only earn a 401.
            if let Some(newer) = self.inner.auth.newer(&bearer) {
                bearer = newer;
            }
            st.attempts += 1;
            let result = self
                .attempt(call, auth_header(&bearer, self.api())?, st.attempts)
                .await;
            drop(permit);
            let failure = match result {
                Ok(reply) if reply.status == StatusCode::UNAUTHORIZED => {
                    unauthorized += 1;
                    if own_renewal == Some(bearer.generation()) {
                        own_refused += 1;
                    }
                    if own_refused >= 2 || unauthorized > self.inner.config.retry.max_retries {
                        let (_, message) = error_details(reply.status, &reply.body);
                        return Err(Error::Auth {
                            message: format!("the API refused a freshly issued token: {message}"),
                        });
                    }
                    self.inner
                        .stats
                        .retry(&call.customer, RetryCause::Unauthorized);
                    let (renewed, mine) = self.inner.auth.renew_after_unauthorized(&bearer).await?;
                    own_renewal = mine.then(|| renewed.generation());
                    continue;
                }
                Ok(reply) => match RetryCause::from_status(reply.status.as_u16()) {
                    None => return Ok(Sent::Reply(reply)),
                    Some(cause) => Failure {
                        cause,
                        outcome_unknown: cause.outcome_unknown(),
                        retry_after: reply.retry_after,
                        error: status_error(&reply, st.attempts),
                        fatal: false,
                    },
                },
                Err(failure) if failure.fatal => return Err(failure.error),
                Err(failure) => failure,
            };
            own_renewal = None;
            if failure.outcome_unknown && on_unknown == OnUnknown::Report {
                return Ok(Sent::Unknown(failure));
            }
            self.pause(&call.customer, st, failure).await?;
        }
    }

    /// Waits before the next attempt, or returns the final error when the retry policy is
    /// spent. The concurrency permit is not held while waiting.
    pub(crate) async fn pause(
        &self,
        customer: &str,
        st: &mut Attempts,
        failure: Failure,
    ) -> Result<()> {
        let policy = &self.inner.config.retry;
        let give_up = |failure: Failure| match failure.error {
            Error::RateLimited { .. } => Error::RateLimited {
                attempts: st.attempts,
            },
            other => other,
        };
        if st.retries >= policy.max_retries {
            return Err(give_up(failure));
        }
        let delay = backoff(policy, st.retries, failure.retry_after);
        if st.waited + delay > policy.budget {
            return Err(give_up(failure));
        }
        st.retries += 1;
        st.waited += delay;
        self.inner.stats.retry(customer, failure.cause);
        warn!(
            customer_id = customer,
            cause = failure.cause.as_str(),
            retry = st.retries,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %failure.error,
            "API call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// One HTTP exchange; the caller holds a concurrency permit.
    #[instrument(
        name = "imanage_request",
        level = "debug",
        skip_all,
        fields(
            customer_id = %call.customer,
            method = %call.method,
            path = %call.url.path(),
            attempt = attempt,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        )
    )]
    async fn attempt(
        &self,
        call: &Call,
        (auth_name, auth): (HeaderName, HeaderValue),
        attempt: u32,
    ) -> std::result::Result<Reply, Failure> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .header(auth_name, auth)
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let _in_flight = self.inner.stats.in_flight();
        self.inner.stats.call(&call.customer);
        let started = Instant::now();
        let limit = self.inner.config.max_body_bytes;
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            // Read no further than the limit, whatever the server announces or sends.
            if response
                .content_length()
                .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
            {
                return Ok(None);
            }
            // Sized once from the announced length (already checked against the limit), up to
            // a few MiB: a server that announces more than it sends does not get more reserved.
            let announced = response
                .content_length()
                .map_or(0, |n| usize::try_from(n).unwrap_or(0))
                .min(4 << 20);
            let mut body = Vec::with_capacity(announced);
            while let Some(chunk) = response.chunk().await? {
                if body.len().saturating_add(chunk.len()) > limit {
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Some(Reply {
                status,
                retry_after,
                body,
            }))
        };
        let result = tokio::time::timeout(self.inner.config.request_timeout, exchange).await;
        let span = Span::current();
        span.record(
            "duration_ms",
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        );
        match result {
            Ok(Ok(Some(reply))) => {
                span.record("status", reply.status.as_u16());
                debug!("answered");
                Ok(reply)
            }
            Ok(Ok(None)) => {
                warn!(
                    customer_id = %call.customer,
                    limit_bytes = limit,
                    "response body over the limit; abandoned"
                );
                Err(Failure {
                    fatal: true,
                    ..Failure::retry(RetryCause::Malformed, false, Error::TooLarge { limit })
                })
            }
            Ok(Err(e)) => {
                // A connection that never opened never carried the request.
                let sent = !e.is_connect();
                let timeout = e.is_timeout();
                let cause = if timeout {
                    RetryCause::Timeout
                } else {
                    RetryCause::Connection
                };
                let message = transport_message(e);
                debug!(error = %message, "no answer");
                Err(Failure::retry(
                    cause,
                    sent,
                    Error::Transport { message, timeout },
                ))
            }
            Err(_) => {
                debug!("timed out");
                Err(Failure::retry(
                    RetryCause::Timeout,
                    true,
                    Error::Transport {
                        message: format!(
                            "no complete answer within {:?}",
                            self.inner.config.request_timeout
                        ),
                        timeout: true,
                    },
                ))
            }
        }
    }

    /// A read: retried freely, then the answer if it is a success.
    pub(crate) async fn read(&self, call: &Call, st: &mut Attempts) -> Result<Reply> {
        match self.exchange(call, st, OnUnknown::Retry).await? {
            Sent::Reply(reply) => success(reply, st.attempts),
            // `Retry` never reports; kept total rather than unreachable.
            Sent::Unknown(failure) => Err(failure.error),
        }
    }

    /// A read decoded by `decode`. A successful answer whose body is not JSON at all (cut
    /// short or garbled on the way) is retried like a 502, under the same policy; JSON of the
    /// wrong shape is an error at once, since asking again would get the same.
    ///
    /// A large body (a page of users is a few hundred KB) is decoded on a blocking thread: the
    /// runtime's workers stay free to send the next requests and read the answers that have
    /// come in, instead of leaving them queued for the milliseconds a page takes to decode.
    pub(crate) async fn read_decoded<T, F>(
        &self,
        call: &Call,
        st: &mut Attempts,
        decode: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&[u8]) -> Result<T> + Clone + Send + 'static,
    {
        loop {
            let reply = self.read(call, st).await?;
            let decoded = if reply.body.len() >= DECODE_OFF_THREAD_BYTES {
                let decode = decode.clone();
                match tokio::task::spawn_blocking(move || decode(&reply.body)).await {
                    Ok(decoded) => decoded,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(Error::Transport {
                        message: format!("decoding the answer was cancelled: {e}"),
                        timeout: false,
                    }),
                }
            } else {
                decode(&reply.body)
            };
            match decoded {
                Err(e) if is_not_json(&e) => {
                    let failure = Failure::retry(RetryCause::Malformed, false, e);
                    self.pause(&call.customer, st, failure).await?;
                }
                decoded => return decoded,
            }
        }
    }

    /// `GET users/{user_id}`.
    #[instrument(level = "debug", skip(self), fields(customer_id = %customer_id))]
    pub async fn get_user(&self, customer_id: &str, user_id: &str) -> Result<User> {
        let call = self
            .call(customer_id, Method::GET, &["users", user_id], &[], None)
            .await?;
        let api = self.api();
        self.read_decoded(&call, &mut Attempts::default(), move |body| {
            decode_user(body, api)
        })
        .await
    }

    /// Every user of the database, a page at a time.
    pub fn list_users(
        &self,
        customer_id: &str,
    ) -> impl Stream<Item = Result<Page<User>>> + Send + 'static {
        pages(self.clone(), customer_id, &["users"], Vec::new())
    }

    /// Every group of the database, a page at a time.
    pub fn list_groups(
        &self,
        customer_id: &str,
    ) -> impl Stream<Item = Result<Page<Group>>> + Send + 'static {
        pages(self.clone(), customer_id, &["groups"], Vec::new())
    }

    /// The members of one group, a page at a time.
    pub fn list_group_members(
        &self,
        customer_id: &str,
        group_id: &str,
    ) -> impl Stream<Item = Result<Page<Member>>> + Send + 'static {
        pages(
            self.clone(),
            customer_id,
            &["groups", group_id, "members"],
            Vec::new(),
        )
    }

    /// Every workspace of the database, a page at a time, or a single
    /// [`WorkspaceListing::NotOffered`] when a v1 server has no workspace endpoints (404 to
    /// the first page; an unknown customer shows on its users list instead). In the v2
    /// profile a 404 is an error like any other.
    pub fn list_workspaces(
        &self,
        customer_id: &str,
    ) -> impl Stream<Item = Result<WorkspaceListing>> + Send + 'static {
        let v1 = self.api() == ApiProfile::V1;
        let pages = pages::<Workspace>(self.clone(), customer_id, &["workspaces"], Vec::new());
        pages.enumerate().map(move |(i, page)| match page {
            Ok(page) => Ok(WorkspaceListing::Page(page)),
            Err(e) if v1 && i == 0 && e.is_not_found() => Ok(WorkspaceListing::NotOffered),
            Err(e) => Err(e),
        })
    }

    /// `GET workspaces/{workspace_id}/security`: the workspace's default security and entries.
    pub fn get_workspace_security(
        &self,
        customer_id: &str,
        workspace_id: &str,
    ) -> impl std::future::Future<Output = Result<WorkspaceSecurity>> + Send + 'static {
        let client = self.clone();
        let customer_id = customer_id.to_string();
        let workspace_id = workspace_id.to_string();
        async move {
            let call = client
                .call(
                    &customer_id,
                    Method::GET,
                    &["workspaces", &workspace_id, "security"],
                    &[],
                    None,
                )
                .await?;
            let mut st = Attempts::default();
            let mut security: WorkspaceSecurity =
                client.read_decoded(&call, &mut st, decode_one).await?;
            security.attempts = st.attempts;
            Ok(security)
        }
    }

    /// `GET users?login_name=`: the users of the database with that login, compared without
    /// regard to case (as iManage does). Usually none or one. v1 only.
    #[instrument(level = "debug", skip(self), fields(customer_id = %customer_id))]
    pub async fn find_users_by_login(&self, customer_id: &str, login: &str) -> Result<Vec<User>> {
        self.v1_only("find_users_by_login")?;
        let wanted = login.trim().to_lowercase();
        let mut stream = std::pin::pin!(pages::<User>(
            self.clone(),
            customer_id,
            &["users"],
            vec![("login_name".to_string(), login.to_string())],
        ));
        let mut found = Vec::new();
        while let Some(page) = stream.next().await {
            // Filtered again here: a server that ignored the filter must not make every
            // user look like a match.
            found.extend(page?.items.into_iter().filter(|u| {
                u.login_name
                    .as_deref()
                    .is_some_and(|l| l.trim().to_lowercase() == wanted)
            }));
        }
        Ok(found)
    }

    /// `POST users`. An answer lost on the way back (502, 504, timeout, a dropped connection) is
    /// checked with a login lookup before the create is repeated: the user is returned if it is
    /// there with the details sent, [`Error::Conflict`] if another account holds the login.
    #[instrument(level = "info", skip(self, user), fields(customer_id = %customer_id, login = %user.login_name))]
    pub async fn create_user(&self, customer_id: &str, user: &NewUser) -> Result<User> {
        self.v1_only("create_user")?;
        let body = serde_json::to_vec(user)
            .map_err(|e| Error::InvalidInput(format!("cannot serialize the user: {e}")))?;
        let call = self
            .call(customer_id, Method::POST, &["users"], &[], Some(body))
            .await?;
        let mut st = Attempts::default();
        loop {
            match self.exchange(&call, &mut st, OnUnknown::Report).await? {
                Sent::Reply(reply) if reply.status == StatusCode::CONFLICT && st.unknown => {
                    // Our earlier attempt may have landed after the check looked.
                    return match self.find_created(customer_id, user).await? {
                        Some(found) => Ok(found),
                        None => Err(status_error(&reply, st.attempts)),
                    };
                }
                Sent::Reply(reply) => {
                    let reply = success(reply, st.attempts)?;
                    if reply.body.iter().all(u8::is_ascii_whitespace) {
                        // A 201 without a body: the lookup finds the new id.
                        return self.find_created(customer_id, user).await?.ok_or_else(|| {
                            Error::Upstream {
                                status: 201,
                                code: None,
                                message: "created, but the new user cannot be found".into(),
                            }
                        });
                    }
                    return decode_one(&reply.body);
                }
                Sent::Unknown(failure) => {
                    st.unknown = true;
                    let waited = self.pause(customer_id, &mut st, failure).await;
                    if let Some(found) = self.find_created(customer_id, user).await? {
                        return Ok(found);
                    }
                    waited?;
                }
            }
        }
    }

    /// The user a create of `user` made, if the database has it.
    async fn find_created(&self, customer_id: &str, user: &NewUser) -> Result<Option<User>> {
        self.inner.stats.write_check(customer_id);
        let found = self
            .find_users_by_login(customer_id, &user.login_name)
            .await?;
        match found.into_iter().next() {
            None => Ok(None),
            Some(u) if user.matches(&u) => Ok(Some(u)),
            Some(_) => Err(Error::Conflict {
                message: "another account holds this login".into(),
            }),
        }
    }

    /// `PATCH users/{user_id}` with the fields set in `patch` only. Setting fields is
    /// idempotent, so it is retried like a read.
    #[instrument(level = "info", skip(self, patch), fields(customer_id = %customer_id))]
    pub async fn update_user(
        &self,
        customer_id: &str,
        user_id: &str,
        patch: &UserPatch,
    ) -> Result<User> {
        self.v1_only("update_user")?;
        let body = serde_json::to_vec(patch)
            .map_err(|e| Error::InvalidInput(format!("cannot serialize the patch: {e}")))?;
        let call = self
            .call(
                customer_id,
                Method::PATCH,
                &["users", user_id],
                &[],
                Some(body),
            )
            .await?;
        let reply = self.read(&call, &mut Attempts::default()).await?;
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            // A 204 (or an empty 200): fetch the result.
            return self.get_user(customer_id, user_id).await;
        }
        decode_one(&reply.body)
    }

    /// `DELETE users/{user_id}`: permanent (prefer `update_user` with `active(false)`). A lost
    /// answer is checked with a GET before the delete is repeated.
    #[instrument(level = "info", skip(self), fields(customer_id = %customer_id))]
    pub async fn delete_user(&self, customer_id: &str, user_id: &str) -> Result<Removal> {
        self.v1_only("delete_user")?;
        let call = self
            .call(customer_id, Method::DELETE, &["users", user_id], &[], None)
            .await?;
        let mut st = Attempts::default();
        loop {
            match self.exchange(&call, &mut st, OnUnknown::Report).await? {
                Sent::Reply(reply) if reply.status == StatusCode::NOT_FOUND && st.unknown => {
                    return Ok(Removal::AlreadyAbsent)
                }
                Sent::Reply(reply) => {
                    success(reply, st.attempts)?;
                    return Ok(Removal::Removed);
                }
                Sent::Unknown(failure) => {
                    st.unknown = true;
                    let waited = self.pause(customer_id, &mut st, failure).await;
                    self.inner.stats.write_check(customer_id);
                    match self.get_user(customer_id, user_id).await {
                        Err(Error::NotFound { .. }) => return Ok(Removal::AlreadyAbsent),
                        Err(e) => return Err(e),
                        Ok(_) => waited?,
                    }
                }
            }
        }
    }

    /// `POST groups/{group_id}/members`. 409 on the first attempt is
    /// [`AddOutcome::AlreadyMember`]; a lost answer is checked in the member list before the add
    /// is repeated.
    #[instrument(level = "info", skip(self), fields(customer_id = %customer_id))]
    pub async fn add_member(
        &self,
        customer_id: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<AddOutcome> {
        self.v1_only("add_member")?;
        check_segment("user_id", user_id)?;
        let body = serde_json::to_vec(&serde_json::json!({ "user_id": user_id }))
            .map_err(|e| Error::InvalidInput(format!("cannot serialize the member: {e}")))?;
        let call = self
            .call(
                customer_id,
                Method::POST,
                &["groups", group_id, "members"],
                &[],
                Some(body),
            )
            .await?;
        let mut st = Attempts::default();
        loop {
            match self.exchange(&call, &mut st, OnUnknown::Report).await? {
                Sent::Reply(reply) if reply.status == StatusCode::CONFLICT => {
                    return Ok(if st.unknown {
                        AddOutcome::Added
                    } else {
                        AddOutcome::AlreadyMember
                    });
                }
                Sent::Reply(reply) => {
                    success(reply, st.attempts)?;
                    return Ok(AddOutcome::Added);
                }
                Sent::Unknown(failure) => {
                    st.unknown = true;
                    let waited = self.pause(customer_id, &mut st, failure).await;
                    self.inner.stats.write_check(customer_id);
                    if self.is_member(customer_id, group_id, user_id).await? {
                        return Ok(AddOutcome::Added);
                    }
                    waited?;
                }
            }
        }
    }

    /// True when the member list of the group has `user_id`.
    async fn is_member(&self, customer_id: &str, group_id: &str, user_id: &str) -> Result<bool> {
        let mut stream = std::pin::pin!(self.list_group_members(customer_id, group_id));
        while let Some(page) = stream.next().await {
            if page?.items.iter().any(|m| m.user_id == user_id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `DELETE groups/{group_id}/members/{user_id}`. A lost answer is settled by repeating the
    /// delete: a 404 then means the membership is gone ([`Removal::AlreadyAbsent`]).
    #[instrument(level = "info", skip(self), fields(customer_id = %customer_id))]
    pub async fn remove_member(
        &self,
        customer_id: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<Removal> {
        self.v1_only("remove_member")?;
        let call = self
            .call(
                customer_id,
                Method::DELETE,
                &["groups", group_id, "members", user_id],
                &[],
                None,
            )
            .await?;
        let mut st = Attempts::default();
        loop {
            match self.exchange(&call, &mut st, OnUnknown::Report).await? {
                Sent::Reply(reply) if reply.status == StatusCode::NOT_FOUND && st.unknown => {
                    return Ok(Removal::AlreadyAbsent)
                }
                Sent::Reply(reply) => {
                    success(reply, st.attempts)?;
                    return Ok(Removal::Removed);
                }
                Sent::Unknown(failure) => {
                    st.unknown = true;
                    // The repeated delete is the check.
                    self.inner.stats.write_check(customer_id);
                    self.pause(customer_id, &mut st, failure).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_every_known_shape() {
        let s = StatusCode::FORBIDDEN;
        assert_eq!(
            error_details(
                s,
                br#"{"error": {"code": "forbidden", "message": "needs admin"}}"#
            ),
            (Some("forbidden".into()), "needs admin".into())
        );
        assert_eq!(
            error_details(
                s,
                br#"{"error": "invalid_grant", "error_description": "used"}"#
            ),
            (Some("invalid_grant".into()), "used".into())
        );
        assert_eq!(
            error_details(s, br#"{"message": "nope"}"#),
            (None, "nope".into())
        );
        assert_eq!(
            error_details(
                s,
                br#"{"error": {"code": "FORBIDDEN", "code_message": "Denied.", "messages": ["needs admin", "really"]}}"#
            ),
            (Some("FORBIDDEN".into()), "needs admin; really".into())
        );
        assert_eq!(
            error_details(
                s,
                br#"{"error": {"code": "FORBIDDEN", "code_message": "Denied.", "messages": []}}"#
            ),
            (Some("FORBIDDEN".into()), "Denied.".into())
        );
        assert_eq!(error_details(s, b"<html>"), (None, "Forbidden".into()));
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        for bad in ["", ".", ".."] {
            assert!(matches!(
                check_segment("id", bad),
                Err(Error::InvalidInput(_))
            ));
        }
        assert!(check_segment("id", "a/b").is_ok(), "escaped, not refused");
    }
}
