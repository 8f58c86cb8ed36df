//! The iManage Work API under `/api/v1/customers/{customer_id}`: users, groups and members (and
//! the simulator's workspace extension), with the gate every call passes first (latency, faults,
//! authentication, database down, scopes). The gate and the error type serve the v2 shape
//! ([`crate::v2`]) too.

use crate::auth::BearerError;
use crate::fault::FaultKind;
use crate::firm::{self, SimUser, SimWorkspace};
use crate::world::DbState;
use crate::{lock, read, Shared};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Default and largest page sizes, as the API summary gives them.
pub(crate) const DEFAULT_PAGE: usize = 100;
pub(crate) const MAX_PAGE: usize = 1000;

/// An API error: `{"error": {"code", "message"}}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: false,
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The code and message of an [`ApiError`], kept on its response so that the v2 shape can
/// rewrite the body into its own envelope ([`crate::v2::error_envelope`]).
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        resp.extensions_mut().insert(ErrorInfo {
            code: self.code,
            message: self.message,
        });
        if self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"imanage-sim\""),
            );
        }
        resp
    }
}

type ApiResult = Result<Response, ApiError>;

/// The route prefix of one database's resources in the v1 shape.
pub(crate) const V1_PREFIX: &str = "/api/v1/customers/{customer_id}";
/// The route prefix of one library's resources in the v2 shape.
pub(crate) const V2_PREFIX: &str = "/work/api/v2/customers/{customer_id}/libraries/{library_id}";

/// The kind of an API call, for statistics: from the method and the matched route.
fn call_kind(method: &Method, route: &str) -> &'static str {
    let tail = route
        .strip_prefix(V1_PREFIX)
        .or_else(|| route.strip_prefix(V2_PREFIX))
        .unwrap_or(route);
    match (method.as_str(), tail) {
        ("GET", "/api") => "discovery",
        ("GET", "/workspaces") => "workspaces_list",
        ("GET", "/workspaces/{workspace_id}") => "workspace_get",
        ("GET", "/workspaces/{workspace_id}/security") => "workspace_security",
        ("GET", "/users") => "users_list",
        ("POST", "/users") => "user_create",
        ("GET", "/users/{user_id}") => "user_get",
        ("PATCH", "/users/{user_id}") => "user_update",
        ("DELETE", "/users/{user_id}") => "user_delete",
        ("GET", "/groups") => "groups_list",
        ("GET", "/groups/{group_id}") => "group_get",
        ("GET", "/groups/{group_id}/members") => "members_list",
        ("POST", "/groups/{group_id}/members") => "member_add",
        ("DELETE", "/groups/{group_id}/members/{user_id}") => "member_remove",
        _ => "other",
    }
}

fn fault_response(kind: FaultKind, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (code, message) = if status == StatusCode::TOO_MANY_REQUESTS {
        ("rate_limited", "too many requests")
    } else {
        ("unavailable", "the service is temporarily unavailable")
    };
    let mut err = ApiError::new(status, code, message);
    err.retry_after = kind == FaultKind::RateLimitedRetryAfter;
    err.into_response()
}

/// The page size a list call asks for (`max_results`, v2 `limit`), for the oversized-page fault.
fn asked_page_size(req: &Request) -> usize {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "max_results" || *k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PAGE)
        .min(MAX_PAGE)
}

/// Runs before every API call: counts it, waits the configured latency, injects a fault with the
/// configured probability, then checks the token, the database's health and the scope. A body
/// fault lets the call run and spoils its answer when that is a successful `GET`.
pub(crate) async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let kind = call_kind(req.method(), &route);
    lock(&shared.stats).count_call(kind);

    let latency = lock(&shared.faults).latency_ms;
    if latency > 0 {
        shared.delays.wait(Duration::from_millis(latency)).await;
    }
    let fault = {
        let mut faults = lock(&shared.faults);
        let rate = faults.rate;
        if rate > 0.0 && faults.rng.chance(rate) {
            let n = faults.kinds.len();
            let i = faults.rng.below(n);
            faults.kinds.get(i).copied()
        } else {
            None
        }
    };
    let mut body_fault = None;
    if let Some(fault) = fault {
        match fault.status() {
            Some(status) => {
                lock(&shared.stats).count_fault(fault.as_str());
                return fault_response(fault, status);
            }
            None if req.method() == Method::GET => {
                body_fault = Some((fault, asked_page_size(&req)));
            }
            None => {}
        }
    }

    let v2 = shared.api == crate::ApiProfile::V2;
    let caller = match lock(&shared.tokens).check(req.headers(), v2.then_some(shared.token_ttl)) {
        Ok(caller) => caller,
        Err(e) => {
            lock(&shared.stats).unauthorized += 1;
            let message = match e {
                BearerError::Missing => "a bearer token is required",
                BearerError::Invalid => "the access token is not valid",
                BearerError::Expired => "the access token has expired",
            };
            return ApiError::unauthorized(message).into_response();
        }
    };

    let customer = database_of(req.uri().path()).unwrap_or_default();
    if read(&shared.down).contains(customer) {
        lock(&shared.stats).database_down += 1;
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("database {customer} is unavailable"),
        )
        .into_response();
    }

    let write_call = !matches!(*req.method(), Method::GET | Method::HEAD);
    let scopes = &caller.scopes;
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let allowed = if write_call {
        has("admin")
    } else {
        has("admin") || has("user")
    };
    if !allowed {
        lock(&shared.stats).forbidden += 1;
        let needed = if write_call {
            "the admin scope"
        } else {
            "the user or admin scope"
        };
        return ApiError::forbidden(format!("this call needs {needed}")).into_response();
    }
    let mut req = req;
    req.extensions_mut().insert(caller);
    let cacheable = crate::pages::cacheable(kind) && shared.drift.load(Ordering::Relaxed) == 0;
    let response = if cacheable && shared.pages.enabled() {
        let key = req.uri().to_string();
        let version = shared.world_version.load(Ordering::SeqCst);
        match shared.pages.get(&key, version) {
            Some(response) => response,
            None => shared.pages.fill(key, version, next.run(req).await).await,
        }
    } else {
        next.run(req).await
    };
    match body_fault {
        Some((fault, page_size)) if response.status() == StatusCode::OK => {
            let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
                Ok(body) => body,
                Err(e) => {
                    return ApiError::internal(format!("cannot read the answer: {e}"))
                        .into_response()
                }
            };
            lock(&shared.stats).count_fault(fault.as_str());
            crate::fault::spoil(fault, body, page_size)
        }
        _ => response,
    }
}

/// The database an API path addresses: the customer id of a v1 path, the library id of a v2
/// path. `None` for paths about no database (`/api`).
fn database_of(path: &str) -> Option<&str> {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("api"), Some("v1")) => {
            // api/v1/customers/{customer_id}
            segments.nth(1)
        }
        (Some("work"), Some("api")) => {
            // work/api/v2/customers/{customer_id}/libraries/{library_id}
            segments.nth(4)
        }
        _ => None,
    }
}

/// `404` for paths the API does not have.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

/// `405` for a method a path does not support.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        "method not allowed on this resource",
    )
}

/// Pagination and filter parameters of a list call.
struct ListParams {
    start: usize,
    max: usize,
    login_name: Option<String>,
}

pub(crate) fn parse_count(name: &str, value: &str) -> Result<usize, ApiError> {
    let n: i64 = value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a non-negative integer, not {value:?}"
        ))
    })?;
    usize::try_from(n).map_err(|_| ApiError::bad_request(format!("{name} must not be negative")))
}

fn list_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<ListParams, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let mut params = ListParams {
        start: 0,
        max: DEFAULT_PAGE,
        login_name: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "start_index" => params.start = parse_count("start_index", &v)?,
            // Larger pages are served at the maximum rather than refused, as iManage does.
            "max_results" => params.max = parse_count("max_results", &v)?.min(MAX_PAGE),
            "login_name" => params.login_name = Some(v),
            _ => {}
        }
    }
    Ok(params)
}

/// A user as the API returns it: every field of the summary's user object, `password` never.
#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    login_name: &'a str,
    email: Option<&'a str>,
    first_name: &'a str,
    last_name: &'a str,
    display_name: Option<&'a str>,
    active: bool,
    user_type: &'a str,
    groups: Vec<&'a str>,
    default_database: Option<&'a str>,
    phone: Option<&'a str>,
    department: Option<&'a str>,
    title: Option<&'a str>,
    created_date: &'a str,
}

fn user_view<'a>(state: &'a DbState, u: &'a SimUser) -> UserView<'a> {
    UserView {
        id: &u.id,
        login_name: &u.login_name,
        email: u.email.as_deref(),
        first_name: &u.first_name,
        last_name: &u.last_name,
        display_name: u.display_name.as_deref(),
        active: u.active,
        user_type: &u.user_type,
        groups: state.groups_of(&u.id),
        default_database: u.default_database.as_deref(),
        phone: u.phone.as_deref(),
        department: u.department.as_deref(),
        title: u.title.as_deref(),
        created_date: &u.created_date,
    }
}

#[derive(Serialize)]
struct ListBody<T> {
    data: Vec<T>,
    total_results: usize,
}

#[derive(Serialize)]
pub(crate) struct OneBody<T> {
    pub(crate) data: T,
}

/// Serializes while the caller still holds the lock, so no borrowed state escapes it.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> ApiResult {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::internal(format!("cannot serialize the response: {e}")))?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

pub(crate) fn unknown_customer(customer: &str) -> ApiError {
    ApiError::not_found(format!("no database {customer}"))
}

fn users_page(state: &DbState, p: &ListParams) -> ApiResult {
    match &p.login_name {
        Some(login) => {
            let wanted = login.to_lowercase();
            let matching: Vec<&SimUser> = state
                .db
                .users
                .values()
                .filter(|u| u.login_name.to_lowercase() == wanted)
                .collect();
            let data = matching
                .iter()
                .skip(p.start)
                .take(p.max)
                .map(|u| user_view(state, u))
                .collect();
            json_response(
                StatusCode::OK,
                &ListBody {
                    data,
                    total_results: matching.len(),
                },
            )
        }
        None => {
            let data = state
                .db
                .users
                .values()
                .skip(p.start)
                .take(p.max)
                .map(|u| user_view(state, u))
                .collect();
            json_response(
                StatusCode::OK,
                &ListBody {
                    data,
                    total_results: state.db.users.len(),
                },
            )
        }
    }
}

/// Runs `page` on a database for a users list call, after any drift the simulator is set to
/// inject (each users list call, of either shape, drifts once).
pub(crate) fn users_list_with_drift(
    shared: &Shared,
    customer: &str,
    page: impl FnOnce(&DbState) -> ApiResult,
) -> ApiResult {
    let drift = shared.drift.load(Ordering::Relaxed);
    if drift > 0 {
        let mut world = shared.world_mut();
        let d = world
            .position(customer)
            .ok_or_else(|| unknown_customer(customer))?;
        let (added, removed) = world.drift(d, drift);
        {
            let mut stats = lock(&shared.stats);
            stats.drift_added += added;
            stats.drift_removed += removed;
        }
        let state = world.dbs.get(d).ok_or_else(|| unknown_customer(customer))?;
        page(state)
    } else {
        let world = read(&shared.world);
        let state = world
            .db(customer)
            .ok_or_else(|| unknown_customer(customer))?;
        page(state)
    }
}

/// `GET /users`: a page of users, after any drift the simulator is set to inject.
pub(crate) async fn list_users(
    State(shared): State<Arc<Shared>>,
    Path(customer): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = list_params(query)?;
    users_list_with_drift(&shared, &customer, |state| users_page(state, &p))
}

/// `GET /users/{user_id}`.
pub(crate) async fn get_user(
    State(shared): State<Arc<Shared>>,
    Path((customer, user_id)): Path<(String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = world
        .db(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let user = state
        .db
        .users
        .get(&user_id)
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id}")))?;
    json_response(
        StatusCode::OK,
        &OneBody {
            data: user_view(state, user),
        },
    )
}

fn json_object(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    match body {
        Ok(Json(Value::Object(map))) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A field that must be a non-empty string.
fn required_string(map: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match map.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(ApiError::bad_request(format!("{field} must not be empty"))),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string"))),
        None => Err(ApiError::bad_request(format!("{field} is required"))),
    }
}

/// An optional field: absent (`None`), null (`Some(None)`) or a string.
fn optional_string(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<Option<String>>, ApiError> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{field} must be a string or null"
        ))),
    }
}

fn optional_bool(map: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a boolean"))),
    }
}

/// `groups` of a user object: a list of existing group ids.
fn group_list(
    map: &Map<String, Value>,
    state: &DbState,
) -> Result<Option<BTreeSet<String>>, ApiError> {
    let Some(value) = map.get("groups") else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(ApiError::bad_request("groups must be a list of group ids"));
    };
    let mut out = BTreeSet::new();
    for item in items {
        let Value::String(id) = item else {
            return Err(ApiError::bad_request("groups must be a list of group ids"));
        };
        if !state.db.groups.contains_key(id) {
            return Err(ApiError::bad_request(format!("no group {id}")));
        }
        out.insert(id.clone());
    }
    Ok(Some(out))
}

fn check_password(map: &Map<String, Value>) -> Result<(), ApiError> {
    // Accepted and forgotten at once: the API never returns it and nothing here checks it.
    match map.get("password") {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(ApiError::bad_request("password must be a string")),
    }
}

fn immutable_fields(map: &Map<String, Value>) -> Result<(), ApiError> {
    for field in ["id", "created_date"] {
        if map.contains_key(field) {
            return Err(ApiError::bad_request(format!(
                "{field} is set by the system and cannot be written"
            )));
        }
    }
    Ok(())
}

fn login_taken(state: &DbState, login: &str, except: Option<&str>) -> bool {
    state
        .find_login(login)
        .is_some_and(|u| Some(u.id.as_str()) != except)
}

/// `POST /users`.
pub(crate) async fn create_user(
    State(shared): State<Arc<Shared>>,
    Path(customer): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    let map = json_object(body)?;
    immutable_fields(&map)?;
    let login_name = required_string(&map, "login_name")?;
    let email = required_string(&map, "email")?;
    let first_name = required_string(&map, "first_name")?;
    let last_name = required_string(&map, "last_name")?;
    let display_name = optional_string(&map, "display_name")?.flatten();
    let default_database = optional_string(&map, "default_database")?.flatten();
    let phone = optional_string(&map, "phone")?.flatten();
    let department = optional_string(&map, "department")?.flatten();
    let title = optional_string(&map, "title")?.flatten();
    let user_type = optional_string(&map, "user_type")?
        .flatten()
        .unwrap_or_else(|| "full".to_string());
    let active = optional_bool(&map, "active")?.unwrap_or(true);
    check_password(&map)?;

    let mut world = shared.world_mut();
    let d = world
        .position(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let state = world
        .dbs
        .get(d)
        .ok_or_else(|| unknown_customer(&customer))?;
    let groups = group_list(&map, state)?.unwrap_or_default();
    if login_taken(state, &login_name, None) {
        return Err(ApiError::conflict(format!(
            "login {login_name} already exists in {customer}"
        )));
    }
    world.reserve(Some(&login_name), Some(&email));
    let id = world.new_id(d, "usr_");
    let user = SimUser {
        id: id.clone(),
        login_name,
        email: Some(email),
        first_name,
        last_name,
        display_name,
        active,
        user_type,
        default_database,
        phone,
        department,
        title,
        created_date: now_iso8601(),
    };
    let state = world
        .dbs
        .get_mut(d)
        .ok_or_else(|| unknown_customer(&customer))?;
    state.db.users.insert(id.clone(), user);
    for g in &groups {
        state.add_member(g, &id);
    }
    let user = state
        .db
        .users
        .get(&id)
        .ok_or_else(|| ApiError::internal("the new user vanished"))?;
    json_response(
        StatusCode::CREATED,
        &OneBody {
            data: user_view(state, user),
        },
    )
}

fn now_iso8601() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    firm::iso8601(i64::try_from(secs).unwrap_or(i64::MAX / 2))
}

/// `PATCH /users/{user_id}`: only the supplied fields change.
pub(crate) async fn update_user(
    State(shared): State<Arc<Shared>>,
    Path((customer, user_id)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    let map = json_object(body)?;
    immutable_fields(&map)?;
    // Fields the summary requires on create cannot be cleared.
    let mut required = Vec::new();
    for field in [
        "login_name",
        "email",
        "first_name",
        "last_name",
        "user_type",
    ] {
        if map.contains_key(field) {
            required.push((field, required_string(&map, field)?));
        }
    }
    let mut optional = Vec::new();
    for field in [
        "display_name",
        "default_database",
        "phone",
        "department",
        "title",
    ] {
        if let Some(v) = optional_string(&map, field)? {
            optional.push((field, v));
        }
    }
    let active = optional_bool(&map, "active")?;
    check_password(&map)?;

    let mut world = shared.world_mut();
    let d = world
        .position(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let state = world
        .dbs
        .get(d)
        .ok_or_else(|| unknown_customer(&customer))?;
    if !state.db.users.contains_key(&user_id) {
        return Err(ApiError::not_found(format!("no user {user_id}")));
    }
    let groups = group_list(&map, state)?;
    for (field, value) in &required {
        if *field == "login_name" && login_taken(state, value, Some(&user_id)) {
            return Err(ApiError::conflict(format!(
                "login {value} already exists in {customer}"
            )));
        }
    }
    for (field, value) in &required {
        match *field {
            "login_name" => world.reserve(Some(value), None),
            "email" => world.reserve(None, Some(value)),
            _ => {}
        }
    }
    let state = world
        .dbs
        .get_mut(d)
        .ok_or_else(|| unknown_customer(&customer))?;
    let user = state
        .db
        .users
        .get_mut(&user_id)
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id}")))?;
    for (field, value) in required {
        match field {
            "login_name" => user.login_name = value,
            "email" => user.email = Some(value),
            "first_name" => user.first_name = value,
            "last_name" => user.last_name = value,
            _ => user.user_type = value,
        }
    }
    for (field, value) in optional {
        match field {
            "display_name" => user.display_name = value,
            "default_database" => user.default_database = value,
            "phone" => user.phone = value,
            "department" => user.department = value,
            _ => user.title = value,
        }
    }
    if let Some(active) = active {
        user.active = active;
    }
    if let Some(groups) = groups {
        let current: BTreeSet<String> = state
            .groups_of(&user_id)
            .into_iter()
            .map(str::to_string)
            .collect();
        for g in current.difference(&groups) {
            state.remove_member(g, &user_id);
        }
        for g in groups.difference(&current) {
            state.add_member(g, &user_id);
        }
    }
    let user = state
        .db
        .users
        .get(&user_id)
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id}")))?;
    json_response(
        StatusCode::OK,
        &OneBody {
            data: user_view(state, user),
        },
    )
}

/// `DELETE /users/{user_id}`: the user and its memberships go.
pub(crate) async fn delete_user(
    State(shared): State<Arc<Shared>>,
    Path((customer, user_id)): Path<(String, String)>,
) -> ApiResult {
    let mut world = shared.world_mut();
    let d = world
        .position(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let mut changes = Vec::new();
    if world.delete_user(d, &user_id, &mut changes) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no user {user_id}")))
    }
}

#[derive(Serialize)]
struct GroupView<'a> {
    id: &'a str,
    name: &'a str,
    member_count: usize,
}

/// `GET /groups`.
pub(crate) async fn list_groups(
    State(shared): State<Arc<Shared>>,
    Path(customer): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = list_params(query)?;
    let world = read(&shared.world);
    let state = world
        .db(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let data = state
        .db
        .groups
        .values()
        .skip(p.start)
        .take(p.max)
        .map(|g| GroupView {
            id: &g.id,
            name: &g.name,
            member_count: g.members.len(),
        })
        .collect();
    json_response(
        StatusCode::OK,
        &ListBody {
            data,
            total_results: state.db.groups.len(),
        },
    )
}

/// `GET /groups/{group_id}` (not in the summary; offered for convenience).
pub(crate) async fn get_group(
    State(shared): State<Arc<Shared>>,
    Path((customer, group_id)): Path<(String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = world
        .db(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let g = state
        .db
        .groups
        .get(&group_id)
        .ok_or_else(|| ApiError::not_found(format!("no group {group_id}")))?;
    json_response(
        StatusCode::OK,
        &OneBody {
            data: GroupView {
                id: &g.id,
                name: &g.name,
                member_count: g.members.len(),
            },
        },
    )
}

#[derive(Serialize)]
struct MemberView<'a> {
    user_id: &'a str,
    login_name: &'a str,
    email: Option<&'a str>,
}

/// `GET /groups/{group_id}/members`.
pub(crate) async fn list_members(
    State(shared): State<Arc<Shared>>,
    Path((customer, group_id)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = list_params(query)?;
    let world = read(&shared.world);
    let state = world
        .db(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let g = state
        .db
        .groups
        .get(&group_id)
        .ok_or_else(|| ApiError::not_found(format!("no group {group_id}")))?;
    let data = g
        .members
        .iter()
        .skip(p.start)
        .take(p.max)
        .filter_map(|id| state.db.users.get(id))
        .map(|u| MemberView {
            user_id: &u.id,
            login_name: &u.login_name,
            email: u.email.as_deref(),
        })
        .collect();
    json_response(
        StatusCode::OK,
        &ListBody {
            data,
            total_results: g.members.len(),
        },
    )
}

/// `POST /groups/{group_id}/members` with `{"user_id"}`.
pub(crate) async fn add_member(
    State(shared): State<Arc<Shared>>,
    Path((customer, group_id)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    let map = json_object(body)?;
    let user_id = required_string(&map, "user_id")?;
    let mut world = shared.world_mut();
    let state = world
        .db_mut(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let group = state
        .db
        .groups
        .get(&group_id)
        .ok_or_else(|| ApiError::not_found(format!("no group {group_id}")))?;
    if !state.db.users.contains_key(&user_id) {
        return Err(ApiError::not_found(format!("no user {user_id}")));
    }
    if group.members.contains(&user_id) {
        return Err(ApiError::conflict(format!(
            "{user_id} is already a member of {group_id}"
        )));
    }
    state.add_member(&group_id, &user_id);
    json_response(
        StatusCode::CREATED,
        &OneBody {
            data: json!({ "group_id": group_id, "user_id": user_id }),
        },
    )
}

/// `DELETE /groups/{group_id}/members/{user_id}`.
pub(crate) async fn remove_member(
    State(shared): State<Arc<Shared>>,
    Path((customer, group_id, user_id)): Path<(String, String, String)>,
) -> ApiResult {
    let mut world = shared.world_mut();
    let state = world
        .db_mut(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    if !state.db.groups.contains_key(&group_id) {
        return Err(ApiError::not_found(format!("no group {group_id}")));
    }
    if state.remove_member(&group_id, &user_id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "{user_id} is not a member of {group_id}"
        )))
    }
}

/// A workspace as the lists show it (both shapes; v2 adds a few fields of its own).
#[derive(Serialize)]
pub(crate) struct WorkspaceView<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) default_security: &'static str,
}

impl<'a> WorkspaceView<'a> {
    pub(crate) fn of(ws: &'a SimWorkspace) -> Self {
        Self {
            id: &ws.id,
            name: &ws.name,
            default_security: ws.default_security.as_str(),
        }
    }
}

/// A workspace's security: `{"default_security", "members": [{"id", "is_group", "access"}]}`
/// (the same in both shapes).
#[derive(Serialize)]
pub(crate) struct SecurityView<'a> {
    default_security: &'static str,
    members: Vec<SecurityMemberView<'a>>,
}

#[derive(Serialize)]
struct SecurityMemberView<'a> {
    id: &'a str,
    is_group: bool,
    access: &'static str,
}

impl<'a> SecurityView<'a> {
    pub(crate) fn of(ws: &'a SimWorkspace) -> Self {
        Self {
            default_security: ws.default_security.as_str(),
            members: ws
                .security
                .iter()
                .map(|e| SecurityMemberView {
                    id: &e.id,
                    is_group: e.is_group,
                    access: e.access.as_str(),
                })
                .collect(),
        }
    }
}

pub(crate) fn unknown_workspace(workspace_id: &str) -> ApiError {
    ApiError::not_found(format!("no workspace {workspace_id}"))
}

/// `GET /workspaces` (the simulator's v1 extension): paged exactly like the users list.
pub(crate) async fn list_workspaces(
    State(shared): State<Arc<Shared>>,
    Path(customer): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = list_params(query)?;
    let world = read(&shared.world);
    let state = world
        .db(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let data = state
        .db
        .workspaces
        .values()
        .skip(p.start)
        .take(p.max)
        .map(WorkspaceView::of)
        .collect();
    json_response(
        StatusCode::OK,
        &ListBody {
            data,
            total_results: state.db.workspaces.len(),
        },
    )
}

/// `GET /workspaces/{workspace_id}/security` (the simulator's v1 extension).
pub(crate) async fn workspace_security(
    State(shared): State<Arc<Shared>>,
    Path((customer, workspace_id)): Path<(String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = world
        .db(&customer)
        .ok_or_else(|| unknown_customer(&customer))?;
    let ws = state
        .db
        .workspaces
        .get(&workspace_id)
        .ok_or_else(|| unknown_workspace(&workspace_id))?;
    json_response(
        StatusCode::OK,
        &OneBody {
            data: SecurityView::of(ws),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::database_of;

    #[test]
    fn the_database_of_both_shapes_of_path() {
        assert_eq!(database_of("/api/v1/customers/acme/users"), Some("acme"));
        assert_eq!(
            database_of("/work/api/v2/customers/1/libraries/acme-paris/users/u1"),
            Some("acme-paris")
        );
        assert_eq!(database_of("/api"), None);
        assert_eq!(database_of("/_sim/state"), None);
    }
}
