//! OAuth2 against `/auth/oauth2/token` and `/auth/oauth2/authorize`: client credentials,
//! authorization code with PKCE (S256), and refresh tokens, with one shared, renewed token.
//!
//! The token lives behind a `tokio::sync::Mutex`. Whoever finds it due for renewal renews it while
//! holding the lock, so requests that hit expiry together wait for that one renewal instead of
//! each fetching a token (the token endpoint may rotate refresh tokens, which makes a second,
//! concurrent refresh fail). A 401 names the token generation it was sent with; if the token has
//! moved on since, the request just retries with the new one.

use crate::config::{ClientConfig, RetryPolicy};
use crate::error::{decode_error, is_retryable_status, short, Error, Result};
use crate::retry::{backoff, parse_retry_after, RetryCause};
use crate::stats::Stats;
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, warn};
use url::Url;

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Renew this long before expiry at most...
const MAX_MARGIN: Duration = Duration::from_secs(30);
/// ...and at most this share of the token's lifetime, so short-lived tokens are still used.
const MARGIN_DIVISOR: u32 = 10;

/// An access token and what came with it.
pub(crate) struct Token {
    access: SecretString,
    refresh: Option<SecretString>,
    /// When to renew before use; `None` when the server gave no lifetime (renew on 401 only).
    renew_at: Option<Instant>,
    expires_at: Option<Instant>,
    /// Bumped on every new token, so a 401 can tell whether it was answered to the current one.
    generation: u64,
}

/// The bearer a request is sent with.
#[derive(Clone)]
pub(crate) struct Bearer {
    token: Arc<Token>,
}

impl Bearer {
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.token.access.expose_secret())
    }

    /// The bare token, as the v2 profile's `X-Auth-Token` header carries it.
    pub(crate) fn token_value(&self) -> String {
        self.token.access.expose_secret().to_string()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.token.generation
    }
}

/// How the session got its token, which decides how it may get the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// The application's own: a new token can always be fetched with the client credentials.
    ClientCredentials,
    /// A signed-in user's: only the refresh token can renew it. Falling back to client
    /// credentials would silently change whose rights the calls use.
    Delegated,
}

struct Session {
    grant: Grant,
    token: Option<Arc<Token>>,
    generation: u64,
    /// How many renewals have failed so far, and the last failure: a call that waited for the
    /// session while another's renewal failed (after all its retries) gets that failure rather
    /// than starting the same retries over. With the token endpoint down, every database of a
    /// harvest would otherwise wait through the whole backoff once more, one after the other.
    failures: u64,
    last_failure: Option<Error>,
}

/// Errors of the HTTP exchange with the token endpoint, as the `oauth2` crate sees them.
#[derive(Debug, thiserror::Error)]
enum TokenHttpError {
    #[error("{message}")]
    Transport { message: String, timeout: bool },
    #[error("status {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// The token manager of one [`crate::Client`].
pub(crate) struct Auth {
    oauth: OAuthClient,
    http: reqwest::Client,
    scopes: Vec<String>,
    retry: RetryPolicy,
    timeout: Duration,
    session: tokio::sync::Mutex<Session>,
    /// [`Session::failures`], readable without the lock: what a call saw before it queued.
    failures_seen: std::sync::atomic::AtomicU64,
    stats: Arc<Stats>,
}

/// A started authorization-code sign-in: send the user to [`PendingAuthorization::url`], then
/// hand the `code` and `state` of the redirect to [`crate::Client::complete_authorization`].
pub struct PendingAuthorization {
    url: Url,
    state: CsrfToken,
    verifier: PkceCodeVerifier,
    redirect: RedirectUrl,
}

impl PendingAuthorization {
    /// The authorize URL, with `state` and the PKCE S256 challenge.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("redirect", &self.redirect.as_str())
            .finish_non_exhaustive()
    }
}

fn endpoint(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::Config("base_url cannot be a base".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The oauth2 crate's HTTP client: reqwest, but answers that are worth retrying (429, 502,
/// 503, 504) become errors here, before the crate tries to parse them as OAuth2 errors.
async fn token_http(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
    timeout: Duration,
) -> std::result::Result<oauth2::HttpResponse, TokenHttpError> {
    let request = reqwest::Request::try_from(request).map_err(|e| TokenHttpError::Transport {
        message: e.without_url().to_string(),
        timeout: false,
    })?;
    let exchange = async {
        let response = http.execute(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    };
    let (status, headers, body) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => {
            return Err(TokenHttpError::Transport {
                message: "the token endpoint did not answer in time".into(),
                timeout: true,
            })
        }
        Ok(Err(e)) => {
            let timeout = e.is_timeout();
            return Err(TokenHttpError::Transport {
                message: e.without_url().to_string(),
                timeout,
            });
        }
        Ok(Ok(parts)) => parts,
    };
    if is_retryable_status(status.as_u16()) {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        return Err(TokenHttpError::Status {
            status: status.as_u16(),
            retry_after,
        });
    }
    let mut builder = oauth2::http::Response::builder().status(status.as_u16());
    for (name, value) in &headers {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    builder
        .body(body.to_vec())
        .map_err(|e| TokenHttpError::Transport {
            message: format!("malformed token response: {e}"),
            timeout: false,
        })
}

/// One failed token request: the error to return, and whether trying again may help.
struct TokenFailure {
    error: Error,
    retry: Option<(RetryCause, Option<Duration>)>,
}

fn token_failure(err: RequestTokenError<TokenHttpError, BasicErrorResponse>) -> TokenFailure {
    match err {
        RequestTokenError::ServerResponse(resp) => {
            let mut message = format!("the token endpoint refused: {}", resp.error());
            if let Some(d) = resp.error_description() {
                message.push_str(" (");
                message.push_str(&short(d));
                message.push(')');
            }
            TokenFailure {
                error: Error::Auth { message },
                retry: None,
            }
        }
        RequestTokenError::Request(TokenHttpError::Transport { message, timeout }) => {
            let cause = if timeout {
                RetryCause::Timeout
            } else {
                RetryCause::Connection
            };
            TokenFailure {
                error: Error::Transport { message, timeout },
                retry: Some((cause, None)),
            }
        }
        RequestTokenError::Request(TokenHttpError::Status {
            status,
            retry_after,
        }) => TokenFailure {
            error: if status == 429 {
                Error::RateLimited { attempts: 0 }
            } else {
                Error::Upstream {
                    status,
                    code: None,
                    message: "the token endpoint is unavailable".into(),
                }
            },
            retry: RetryCause::from_status(status).map(|c| (c, retry_after)),
        },
        // The body may hold a token: only the JSON path of the problem is kept.
        RequestTokenError::Parse(e, _body) => TokenFailure {
            error: decode_error("token response", e),
            retry: None,
        },
        RequestTokenError::Other(message) => TokenFailure {
            error: Error::Auth {
                message: format!(
                    "the token endpoint answered unexpectedly: {}",
                    short(&message)
                ),
            },
            retry: None,
        },
    }
}

/// What to ask the token endpoint for.
enum TokenGrant<'a> {
    ClientCredentials,
    Refresh(&'a SecretString),
    Code {
        code: &'a str,
        verifier: &'a str,
        redirect: &'a RedirectUrl,
    },
}

impl Auth {
    pub(crate) fn new(
        config: &ClientConfig,
        http: reqwest::Client,
        stats: Arc<Stats>,
    ) -> Result<Self> {
        let token_url = endpoint(&config.base_url, &["auth", "oauth2", "token"])?;
        let auth_url = endpoint(&config.base_url, &["auth", "oauth2", "authorize"])?;
        let oauth = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_string(),
            ))
            .set_auth_uri(AuthUrl::from_url(auth_url))
            .set_token_uri(TokenUrl::from_url(token_url))
            // The summary has client_id and client_secret POSTed in the form body.
            .set_auth_type(AuthType::RequestBody);
        Ok(Self {
            oauth,
            http,
            scopes: config.scopes.clone(),
            retry: config.retry.clone(),
            timeout: config.request_timeout,
            session: tokio::sync::Mutex::new(Session {
                grant: Grant::ClientCredentials,
                token: None,
                generation: 0,
                failures: 0,
                last_failure: None,
            }),
            failures_seen: std::sync::atomic::AtomicU64::new(0),
            stats,
        })
    }

    /// The current token, fetched or renewed first when there is none or it is due.
    pub(crate) async fn bearer(&self) -> Result<Bearer> {
        let failures = self
            .failures_seen
            .load(std::sync::atomic::Ordering::Acquire);
        let mut session = self.session.lock().await;
        let now = Instant::now();
        if let Some(token) = &session.token {
            if token.renew_at.is_none_or(|at| now < at) {
                return Ok(Bearer {
                    token: token.clone(),
                });
            }
        }
        let previous = session.token.clone();
        let renewed = match self.failed_while_waiting(&session, failures) {
            Some(e) => Err(e),
            None => self.renew(&mut session).await,
        };
        match renewed {
            Ok(bearer) => Ok(bearer),
            // A token inside its safety margin is still good: a failed early renewal is not
            // yet a reason to fail the call.
            Err(e) => match previous.filter(|t| t.expires_at.is_some_and(|at| now < at)) {
                Some(token) => {
                    warn!(error = %e, "early token renewal failed; using the current token until it expires");
                    Ok(Bearer { token })
                }
                None => Err(e),
            },
        }
    }

    /// A newer, still fresh token than `seen`, if one was installed meanwhile. Never waits: while
    /// a renewal is in progress, `seen` is as good as anything.
    pub(crate) fn newer(&self, seen: &Bearer) -> Option<Bearer> {
        let session = self.session.try_lock().ok()?;
        let token = session.token.as_ref()?;
        let fresh = token.renew_at.is_none_or(|at| Instant::now() < at);
        (token.generation > seen.generation() && fresh).then(|| Bearer {
            token: token.clone(),
        })
    }

    /// Called after a 401 answered to `seen`: renews the token unless that already happened.
    /// The flag says whether this call did the renewal.
    pub(crate) async fn renew_after_unauthorized(&self, seen: &Bearer) -> Result<(Bearer, bool)> {
        let failures = self
            .failures_seen
            .load(std::sync::atomic::Ordering::Acquire);
        let mut session = self.session.lock().await;
        if let Some(token) = &session.token {
            if token.generation != seen.generation() {
                let current = Bearer {
                    token: token.clone(),
                };
                return Ok((current, false));
            }
        }
        if let Some(e) = self.failed_while_waiting(&session, failures) {
            return Err(e);
        }
        Ok((self.renew(&mut session).await?, true))
    }

    /// The failure of a renewal that ended while this call queued for the session (it saw
    /// `failures_before` failures before it queued), if one did.
    fn failed_while_waiting(&self, session: &Session, failures_before: u64) -> Option<Error> {
        if session.failures == failures_before {
            return None;
        }
        session.last_failure.clone()
    }

    /// Gets a new token: by refresh token when one was issued, else by client credentials (for
    /// the application's own session only).
    async fn renew(&self, session: &mut Session) -> Result<Bearer> {
        let renewal = session.token.is_some();
        let refresh = session.token.as_ref().and_then(|t| t.refresh.clone());
        let response = match (refresh, session.grant) {
            (Some(refresh), grant) => match self.request(TokenGrant::Refresh(&refresh)).await {
                Ok(r) => Ok(r),
                Err(e @ Error::Auth { .. }) if grant == Grant::ClientCredentials => {
                    debug!(error = %e, "refresh token refused; using client credentials");
                    self.request(TokenGrant::ClientCredentials).await
                }
                Err(e) => Err(e),
            },
            (None, Grant::ClientCredentials) => self.request(TokenGrant::ClientCredentials).await,
            (None, Grant::Delegated) => Err(Error::Auth {
                message: "the signed-in session has no refresh token; sign in again".into(),
            }),
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                if session.grant == Grant::Delegated {
                    // A refused refresh ends the delegated session; keep no half-dead token.
                    session.token = None;
                }
                session.failures += 1;
                session.last_failure = Some(e.clone());
                self.failures_seen
                    .store(session.failures, std::sync::atomic::Ordering::Release);
                return Err(e);
            }
        };
        let bearer = self.install(session, &response);
        self.stats.token_issued(renewal);
        Ok(bearer)
    }

    fn install(&self, session: &mut Session, response: &BasicTokenResponse) -> Bearer {
        let now = Instant::now();
        let lifetime = response.expires_in();
        let margin = lifetime.map(|l| (l / MARGIN_DIVISOR).min(MAX_MARGIN));
        // A refresh response without a new refresh token leaves the old one valid (RFC 6749
        // section 6).
        let old_refresh = session.token.as_ref().and_then(|t| t.refresh.clone());
        session.generation += 1;
        let token = Arc::new(Token {
            access: SecretString::from(response.access_token().secret().as_str()),
            refresh: response
                .refresh_token()
                .map(|r| SecretString::from(r.secret().as_str()))
                .or(old_refresh),
            renew_at: lifetime.zip(margin).map(|(l, m)| now + l.saturating_sub(m)),
            expires_at: lifetime.map(|l| now + l),
            generation: session.generation,
        });
        debug!(
            generation = session.generation,
            expires_in_s = lifetime.map(|l| l.as_secs()),
            refresh = token.refresh.is_some(),
            "access token installed"
        );
        session.token = Some(token.clone());
        Bearer { token }
    }

    /// One token request with retries on rate limiting, 502/503/504 and transport errors.
    async fn request(&self, grant: TokenGrant<'_>) -> Result<BasicTokenResponse> {
        // The closure hands out futures that own what they use: futures borrowing from `self`
        // here would not be provably `Send` for every lifetime, which page streams need.
        let (client, timeout) = (self.http.clone(), self.timeout);
        let http = move |req: oauth2::HttpRequest| {
            let client = client.clone();
            async move { token_http(&client, req, timeout).await }
        };
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            self.stats.token_request();
            let result = match &grant {
                TokenGrant::ClientCredentials => {
                    let mut req = self.oauth.exchange_client_credentials();
                    for s in &self.scopes {
                        req = req.add_scope(Scope::new(s.clone()));
                    }
                    req.request_async(&http).await
                }
                TokenGrant::Refresh(secret) => {
                    let refresh = RefreshToken::new(secret.expose_secret().to_string());
                    self.oauth
                        .exchange_refresh_token(&refresh)
                        .request_async(&http)
                        .await
                }
                TokenGrant::Code {
                    code,
                    verifier,
                    redirect,
                } => {
                    self.oauth
                        .exchange_code(AuthorizationCode::new((*code).to_string()))
                        .set_pkce_verifier(PkceCodeVerifier::new((*verifier).to_string()))
                        .set_redirect_uri(Cow::Borrowed(redirect))
                        .request_async(&http)
                        .await
                }
            };
            let failure = match result {
                Ok(response) => return Ok(response),
                Err(e) => token_failure(e),
            };
            let Some((cause, retry_after)) = failure.retry else {
                return Err(failure.error);
            };
            // An authorization code is single-use: whether a lost answer consumed it cannot be
            // known, so it is not sent twice.
            if matches!(grant, TokenGrant::Code { .. }) && cause.outcome_unknown() {
                return Err(failure.error);
            }
            if retries >= self.retry.max_retries || started.elapsed() >= self.retry.budget {
                return Err(match failure.error {
                    Error::RateLimited { .. } => Error::RateLimited {
                        attempts: retries + 1,
                    },
                    other => other,
                });
            }
            let delay = backoff(&self.retry, retries, retry_after);
            retries += 1;
            warn!(
                cause = cause.as_str(),
                retry = retries,
                delay_ms = delay.as_millis() as u64,
                "token request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Starts an authorization-code sign-in for `redirect` with PKCE S256.
    pub(crate) fn begin_authorization(
        &self,
        redirect: &Url,
        scopes: &[String],
    ) -> Result<PendingAuthorization> {
        let redirect = RedirectUrl::from_url(redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .oauth
            .authorize_url(CsrfToken::new_random)
            .set_redirect_uri(Cow::Owned(redirect.clone()))
            .set_pkce_challenge(challenge);
        for s in scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state) = request.url();
        Ok(PendingAuthorization {
            url,
            state,
            verifier,
            redirect,
        })
    }

    /// Exchanges the code of a finished sign-in; from then on the session is the user's and
    /// renews with its refresh token only.
    pub(crate) async fn complete_authorization(
        &self,
        pending: PendingAuthorization,
        code: &str,
        state: &str,
    ) -> Result<()> {
        if pending.state.secret().as_str() != state {
            // Not the sign-in this client started (CSRF, or a stale tab): refuse the code.
            return Err(Error::Auth {
                message: "the state of the authorization response does not match".into(),
            });
        }
        let response = self
            .request(TokenGrant::Code {
                code,
                verifier: pending.verifier.secret(),
                redirect: &pending.redirect,
            })
            .await?;
        let mut session = self.session.lock().await;
        let renewal = session.token.is_some();
        session.grant = Grant::Delegated;
        // The app token's refresh token must not outlive the switch to the user's session.
        session.token = None;
        self.install(&mut session, &response);
        drop(session);
        self.stats.token_issued(renewal);
        Ok(())
    }
}
