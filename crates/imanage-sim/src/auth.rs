//! OAuth2: the token endpoint (client credentials, refresh token, authorization code with PKCE),
//! the test login behind `/auth/oauth2/authorize`, and bearer-token checks for the API.
//!
//! Token endpoint errors follow RFC 6749 section 5.2 (`{"error", "error_description"}`), not the
//! API's error envelope, because that is what OAuth2 clients parse.

use crate::{lock, ClientSpec, Shared};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Refresh tokens outlive access tokens by far, as in iManage; a day is plenty for any test.
const REFRESH_TTL: Duration = Duration::from_secs(24 * 3600);
/// In the v2 shape refresh tokens last a year, as iManage's v2 documentation gives them.
const V2_REFRESH_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Authorization codes are short-lived (RFC 6749 recommends at most ten minutes).
const CODE_TTL: Duration = Duration::from_secs(600);
/// Above this many stored tokens, expired ones are swept on the next issue.
const SWEEP_ABOVE: usize = 10_000;

struct Grant {
    client_id: String,
    scopes: Vec<String>,
    expires: Instant,
}

struct Code {
    grant: Grant,
    redirect_uri: String,
    /// (method, challenge) when the authorization request carried PKCE.
    challenge: Option<(String, String)>,
}

/// Issued access tokens, refresh tokens and authorization codes.
#[derive(Default)]
pub(crate) struct TokenStore {
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    codes: HashMap<String, Code>,
}

/// Why a bearer token was refused.
pub(crate) enum BearerError {
    Missing,
    Invalid,
    Expired,
}

/// Who an API call is made for: what the gate found in the access token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The OAuth2 client the token was issued to.
    pub(crate) client_id: String,
    /// The token's scopes.
    pub(crate) scopes: Vec<String>,
}

/// The v2 shape's token header.
const X_AUTH_TOKEN: &str = "x-auth-token";

impl TokenStore {
    /// The caller of a valid access token from an `Authorization: Bearer` header, or, when
    /// `v2_idle` is set (the v2 shape), from an `X-Auth-Token` header too. In the v2 shape a
    /// token lapses after `v2_idle` without use rather than at a fixed time, as iManage's v2
    /// tokens do, so every accepted use extends it.
    pub(crate) fn check(
        &mut self,
        headers: &HeaderMap,
        v2_idle: Option<Duration>,
    ) -> Result<Caller, BearerError> {
        let x_auth = v2_idle
            .and_then(|_| headers.get(X_AUTH_TOKEN))
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let token = match x_auth {
            Some(t) => t,
            None => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(BearerError::Missing)?
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
                .ok_or(BearerError::Missing)?,
        };
        let grant = self.access.get_mut(token).ok_or(BearerError::Invalid)?;
        let now = Instant::now();
        if now >= grant.expires {
            self.access.remove(token);
            return Err(BearerError::Expired);
        }
        if let Some(idle) = v2_idle {
            grant.expires = now + idle;
        }
        Ok(Caller {
            client_id: grant.client_id.clone(),
            scopes: grant.scopes.clone(),
        })
    }

    /// Invalidates every access token; returns how many there were. Refresh tokens stay valid,
    /// so a client can recover the way it would after a server-side session reset.
    pub(crate) fn revoke_access(&mut self) -> usize {
        let n = self.access.len();
        self.access.clear();
        n
    }

    fn sweep(&mut self) {
        if self.access.len() + self.refresh.len() + self.codes.len() > SWEEP_ABOVE {
            let now = Instant::now();
            self.access.retain(|_, g| g.expires > now);
            self.refresh.retain(|_, g| g.expires > now);
            self.codes.retain(|_, c| c.grant.expires > now);
        }
    }
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// An RFC 6749 error response (section 5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"imanage-sim\""),
            );
        }
        resp
    }
}

fn bad(error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::BAD_REQUEST,
        error,
        description: description.to_string(),
    }
}

fn invalid_client(description: &str) -> OAuthError {
    OAuthError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: description.to_string(),
    }
}

/// Decodes `%XX` escapes and `+` (form encoding), as RFC 6749 section 2.3.1 asks for the
/// credentials in an HTTP Basic header. Malformed escapes are kept as they are.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Client credentials from an HTTP Basic header: Ok(None) when there is none.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| invalid_client("malformed Authorization header"))?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(invalid_client("malformed Authorization header"));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid_client("client authentication must use HTTP Basic"));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_client("malformed HTTP Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client("malformed HTTP Basic credentials"))?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// Form parameters, each at most once (RFC 6749 section 3.2).
fn single_params(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, OAuthError> {
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(bad(
                "invalid_request",
                &format!("parameter {k} is repeated"),
            ));
        }
    }
    Ok(map)
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// The requested scopes that the client may have; all of its scopes when none were asked for.
fn grant_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(allowed.to_vec()),
        Some(r) => {
            let granted: Vec<String> = split_scopes(r)
                .into_iter()
                .filter(|s| allowed.contains(s))
                .collect();
            if granted.is_empty() {
                Err(bad(
                    "invalid_scope",
                    "none of the requested scopes is granted to this client",
                ))
            } else {
                Ok(granted)
            }
        }
    }
}

fn find_client<'a>(clients: &'a [ClientSpec], id: &str) -> Option<&'a ClientSpec> {
    clients.iter().find(|c| c.id == id)
}

/// Authenticates the client; `Ok((client, false))` when it sent no secret at all (allowed only
/// for a PKCE authorization code, which the caller checks).
fn authenticate<'a>(
    clients: &'a [ClientSpec],
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(&'a ClientSpec, bool), OAuthError> {
    let basic = basic_credentials(headers)?;
    let (id, secret) = match basic {
        Some((id, secret)) => {
            if params.contains_key("client_secret") {
                return Err(bad(
                    "invalid_request",
                    "client credentials in both the Authorization header and the body",
                ));
            }
            if params.get("client_id").is_some_and(|b| *b != id) {
                return Err(bad(
                    "invalid_request",
                    "client_id differs from the Authorization header",
                ));
            }
            (id, Some(secret))
        }
        None => {
            let id = params
                .get("client_id")
                .cloned()
                .ok_or_else(|| invalid_client("client authentication is missing"))?;
            (id, params.get("client_secret").cloned())
        }
    };
    let client = find_client(clients, &id).ok_or_else(|| invalid_client("unknown client"))?;
    match secret {
        Some(secret) => {
            if bool::from(client.secret.as_bytes().ct_eq(secret.as_bytes())) {
                Ok((client, true))
            } else {
                Err(invalid_client("client authentication failed"))
            }
        }
        None => Ok((client, false)),
    }
}

/// `POST /auth/oauth2/token`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let grant_type = form
        .as_ref()
        .ok()
        .and_then(|Form(pairs)| {
            pairs
                .iter()
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "none".to_string());
    // Counted by grant; anything else in one bucket, so clients cannot grow the map at will.
    let grant_type = match grant_type.as_str() {
        "client_credentials" | "refresh_token" | "authorization_code" | "none" => grant_type,
        _ => "other".to_string(),
    };
    lock(&shared.stats)
        .token_requests
        .entry(grant_type)
        .and_modify(|n| *n += 1)
        .or_insert(1);
    token_inner(&shared, &headers, form).unwrap_or_else(IntoResponse::into_response)
}

fn token_inner(
    shared: &Shared,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(pairs) = form.map_err(|_| {
        bad(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        )
    })?;
    let params = single_params(pairs)?;
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| bad("invalid_request", "grant_type is missing"))?
        .clone();
    if !matches!(
        grant_type.as_str(),
        "client_credentials" | "refresh_token" | "authorization_code"
    ) {
        return Err(bad(
            "unsupported_grant_type",
            "grant_type must be client_credentials, refresh_token or authorization_code",
        ));
    }
    let (client, has_secret) = authenticate(&shared.clients, headers, &params)?;
    let mut store = lock(&shared.tokens);
    let scopes = match grant_type.as_str() {
        "client_credentials" => {
            if !has_secret {
                return Err(invalid_client("client_secret is missing"));
            }
            grant_scopes(params.get("scope").map(String::as_str), &client.scopes)?
        }
        "refresh_token" => {
            if !has_secret {
                return Err(invalid_client("client_secret is missing"));
            }
            let presented = params
                .get("refresh_token")
                .ok_or_else(|| bad("invalid_request", "refresh_token is missing"))?;
            // Rotation: a refresh token works once, whatever the outcome.
            let old = store
                .refresh
                .remove(presented)
                .ok_or_else(|| bad("invalid_grant", "unknown, used or revoked refresh token"))?;
            if old.client_id != client.id {
                return Err(bad("invalid_grant", "refresh token of another client"));
            }
            if Instant::now() >= old.expires {
                return Err(bad("invalid_grant", "refresh token expired"));
            }
            match params.get("scope") {
                None => old.scopes,
                Some(s) => {
                    let asked = split_scopes(s);
                    if asked.is_empty() || !asked.iter().all(|a| old.scopes.contains(a)) {
                        return Err(bad(
                            "invalid_scope",
                            "a refresh can only narrow the original scopes",
                        ));
                    }
                    asked
                }
            }
        }
        _ => {
            let presented = params
                .get("code")
                .ok_or_else(|| bad("invalid_request", "code is missing"))?;
            // Codes are single-use: a failed exchange burns the code too.
            let code = store
                .codes
                .remove(presented)
                .ok_or_else(|| bad("invalid_grant", "unknown or used authorization code"))?;
            if code.grant.client_id != client.id {
                return Err(bad("invalid_grant", "code issued to another client"));
            }
            if Instant::now() >= code.grant.expires {
                return Err(bad("invalid_grant", "authorization code expired"));
            }
            if params.get("redirect_uri") != Some(&code.redirect_uri) {
                return Err(bad(
                    "invalid_grant",
                    "redirect_uri differs from the authorization request",
                ));
            }
            match &code.challenge {
                Some((method, challenge)) => {
                    let verifier = params
                        .get("code_verifier")
                        .ok_or_else(|| bad("invalid_grant", "code_verifier is missing"))?;
                    if !(43..=128).contains(&verifier.len()) {
                        return Err(bad(
                            "invalid_grant",
                            "code_verifier must be 43 to 128 characters",
                        ));
                    }
                    let derived = if method == "S256" {
                        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
                    } else {
                        verifier.clone()
                    };
                    if !bool::from(derived.as_bytes().ct_eq(challenge.as_bytes())) {
                        return Err(bad("invalid_grant", "PKCE verification failed"));
                    }
                }
                None if !has_secret => {
                    return Err(invalid_client("client_secret is missing"));
                }
                None => {}
            }
            code.grant.scopes
        }
    };
    store.sweep();
    let access = random_token("at_");
    let refresh = random_token("rt_");
    let now = Instant::now();
    store.access.insert(
        access.clone(),
        Grant {
            client_id: client.id.clone(),
            scopes: scopes.clone(),
            expires: now + shared.token_ttl,
        },
    );
    store.refresh.insert(
        refresh.clone(),
        Grant {
            client_id: client.id.clone(),
            scopes: scopes.clone(),
            expires: now
                + if shared.api == crate::ApiProfile::V2 {
                    V2_REFRESH_TTL
                } else {
                    REFRESH_TTL
                }
                .max(shared.token_ttl),
        },
    );
    drop(store);
    lock(&shared.stats).tokens_issued += 1;
    let mut resp = Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": shared.token_ttl.as_secs(),
        "refresh_token": refresh,
        "scope": scopes.join(" "),
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /auth/oauth2/authorize`: the test login. It signs a built-in user in at once and sends
/// the browser back to `redirect_uri` with a code.
pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    lock(&shared.stats)
        .calls
        .entry("authorize".to_string())
        .and_modify(|n| *n += 1)
        .or_insert(1);
    authorize_inner(&shared, query).unwrap_or_else(IntoResponse::into_response)
}

fn authorize_inner(
    shared: &Shared,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, OAuthError> {
    let Query(pairs) = query.map_err(|_| bad("invalid_request", "malformed query"))?;
    let params = single_params(pairs)?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| bad("invalid_request", "client_id is missing"))?;
    let client = find_client(&shared.clients, client_id)
        .ok_or_else(|| bad("invalid_client", "unknown client"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| {
            bad(
                "invalid_request",
                "redirect_uri must be an absolute http(s) URL",
            )
        })?;
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(bad(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    // From here on, errors go back to the client through the redirect (RFC 6749 4.1.2.1).
    let state = params.get("state");
    let redirect = |pairs: &[(&str, &str)]| -> Response {
        let mut target = redirect_uri.clone();
        let mut sep = if target.contains('?') { '&' } else { '?' };
        let state_pair = state.map(|s| ("state", s.as_str()));
        for (k, v) in pairs.iter().copied().chain(state_pair) {
            target.push(sep);
            target.push_str(k);
            target.push('=');
            target.push_str(&query_encode(v));
            sep = '&';
        }
        match HeaderValue::from_str(&target) {
            Ok(location) => {
                let mut resp = StatusCode::FOUND.into_response();
                resp.headers_mut().insert(header::LOCATION, location);
                resp
            }
            Err(_) => bad(
                "invalid_request",
                "redirect_uri is not a valid header value",
            )
            .into_response(),
        }
    };
    let mut allowed = client.scopes.clone();
    if !allowed.iter().any(|s| s == "openid") {
        allowed.push("openid".to_string());
    }
    let scopes = match params.get("scope") {
        None => client.scopes.clone(),
        Some(s) => {
            let granted: Vec<String> = split_scopes(s)
                .into_iter()
                .filter(|s| allowed.contains(s))
                .collect();
            if granted.is_empty() {
                return Ok(redirect(&[
                    ("error", "invalid_scope"),
                    ("error_description", "no requested scope can be granted"),
                ]));
            }
            granted
        }
    };
    let challenge = match params.get("code_challenge") {
        None => None,
        Some(c) => {
            let method = params
                .get("code_challenge_method")
                .map_or("plain", String::as_str);
            if method != "S256" && method != "plain" {
                return Ok(redirect(&[
                    ("error", "invalid_request"),
                    (
                        "error_description",
                        "code_challenge_method must be S256 or plain",
                    ),
                ]));
            }
            Some((method.to_string(), c.clone()))
        }
    };
    let code = random_token("ac_");
    lock(&shared.tokens).codes.insert(
        code.clone(),
        Code {
            grant: Grant {
                client_id: client.id.clone(),
                scopes,
                expires: Instant::now() + CODE_TTL,
            },
            redirect_uri: redirect_uri.clone(),
            challenge,
        },
    );
    Ok(redirect(&[("code", &code)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn form_decoding_and_query_encoding() {
        assert_eq!(form_decode("a%3Ab+c"), "a:b c");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
        assert_eq!(query_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
