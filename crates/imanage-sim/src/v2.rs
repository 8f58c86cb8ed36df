//! The v2 shape of the API (`idgraph sim --api v2`), as public client code written against real
//! iManage Work deployments uses it:
//! - `GET /api`: discovery of the signed-in caller's customer id, the API versions and the
//!   libraries;
//! - everything else under `/work/api/v2/customers/{customerId}/libraries/{libraryId}`, with one
//!   customer id for the tenant ([`crate::V2_CUSTOMER_ID`]) and the databases as libraries
//!   (the same ids as the v1 customer ids, and the same user, group and workspace ids, so both
//!   shapes describe one firm);
//! - paging with `offset`, `limit` and `total=true`, the count in `total_count`;
//! - v2 field names (`user_id_ex`, `full_name`, `allow_logon`, `preferred_library`, ...);
//! - errors as `{"error": {"code", "code_message", "messages": [...]}}`.
//!
//! The shape is read-only here: writes are the v1 shape's. The gate (latency, faults, token,
//! database down, scopes) is the same as for v1.

use crate::api::{
    json_response, parse_count, unknown_workspace, users_list_with_drift, ApiError, ErrorInfo,
    OneBody, SecurityView, WorkspaceView, DEFAULT_PAGE, MAX_PAGE,
};
use crate::auth::Caller;
use crate::firm::{SimGroup, SimUser};
use crate::world::{DbState, World};
use crate::{read, Shared, V2_CUSTOMER_ID};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

type ApiResult = Result<Response, ApiError>;

/// The v2 routes (the gate is layered on by the caller).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    let library = crate::api::V2_PREFIX;
    Router::new()
        .route("/api", get(discovery))
        .route(&format!("{library}/users"), get(list_users))
        .route(&format!("{library}/users/{{user_id}}"), get(get_user))
        .route(&format!("{library}/groups"), get(list_groups))
        .route(&format!("{library}/groups/{{group_id}}"), get(get_group))
        .route(
            &format!("{library}/groups/{{group_id}}/members"),
            get(list_members),
        )
        .route(&format!("{library}/workspaces"), get(list_workspaces))
        .route(
            &format!("{library}/workspaces/{{workspace_id}}"),
            get(get_workspace),
        )
        .route(
            &format!("{library}/workspaces/{{workspace_id}}/security"),
            get(workspace_security),
        )
}

/// The v2 code and its fixed text for each of the API's error codes.
fn v2_code(code: &str) -> (&'static str, &'static str) {
    match code {
        "bad_request" => ("BAD_REQUEST", "The request is not valid."),
        "unauthorized" => ("UNAUTHORIZED", "Authentication is required."),
        "forbidden" => ("FORBIDDEN", "Access to this resource is denied."),
        "not_found" => ("NOT_FOUND", "The requested resource was not found."),
        "conflict" => ("CONFLICT", "The request conflicts with the resource."),
        "rate_limited" => ("RATE_LIMITED", "Too many requests."),
        "unavailable" => ("SERVICE_UNAVAILABLE", "The service is unavailable."),
        _ => ("INTERNAL_ERROR", "An internal error occurred."),
    }
}

/// Rewrites the body of every [`ApiError`] response into the v2 envelope
/// `{"error": {"code", "code_message", "messages": [...]}}`; status and headers stay.
pub(crate) async fn error_envelope(mut resp: Response) -> Response {
    let Some(info) = resp.extensions_mut().remove::<ErrorInfo>() else {
        return resp;
    };
    let (code, code_message) = v2_code(info.code);
    let body = json!({
        "error": { "code": code, "code_message": code_message, "messages": [info.message] }
    });
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            *resp.body_mut() = Body::from(bytes);
            resp
        }
        // The v1 body is still a valid error; better than none.
        Err(_) => resp,
    }
}

/// `offset`, `limit` and `total` of a v2 list call.
struct Paging {
    offset: usize,
    limit: usize,
    total: bool,
}

fn paging(query: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Paging, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let mut p = Paging {
        offset: 0,
        limit: DEFAULT_PAGE,
        total: false,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "offset" => p.offset = parse_count("offset", &v)?,
            // Larger pages are served at the maximum rather than refused, as in v1.
            "limit" => p.limit = parse_count("limit", &v)?.min(MAX_PAGE),
            "total" => {
                p.total = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(ApiError::bad_request("total must be true or false")),
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// A page of a v2 list: `{"data": [...], "total_count": N}`, the count only with `total=true`.
#[derive(Serialize)]
struct ListBody<T> {
    data: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count: Option<usize>,
}

fn page<'a, T: 'a, V: Serialize>(
    items: impl Iterator<Item = &'a T>,
    len: usize,
    p: &Paging,
    view: impl Fn(&'a T) -> V,
) -> ApiResult {
    let data = items.skip(p.offset).take(p.limit).map(view).collect();
    json_response(
        StatusCode::OK,
        &ListBody {
            data,
            total_count: p.total.then_some(len),
        },
    )
}

fn check_customer(customer: &str) -> Result<(), ApiError> {
    if customer == V2_CUSTOMER_ID {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no customer {customer}")))
    }
}

fn library<'a>(world: &'a World, customer: &str, library: &str) -> Result<&'a DbState, ApiError> {
    check_customer(customer)?;
    world
        .db(library)
        .ok_or_else(|| ApiError::not_found(format!("no library {library}")))
}

/// A stable number for an id, standing in for iManage's numeric `user_num` and `group_num`
/// (FNV-1a, so it is the same on every run and platform).
fn number_of(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    1_000_000 + h % 9_000_000
}

/// A user in v2 field names. Every piece of the v1 user object is here: `user_id_ex` is the
/// login, `full_name` the display name, `allow_logon` is `active`, `is_external` is
/// `user_type == "external"`, `preferred_library` the default database, `create_date` the
/// creation date; `first_name`, `last_name`, `department`, `title` and `groups` keep their v1
/// names (a real v2 server may not send them).
#[derive(Serialize)]
struct UserV2<'a> {
    id: &'a str,
    user_num: u64,
    user_id_ex: &'a str,
    full_name: Option<&'a str>,
    first_name: &'a str,
    last_name: &'a str,
    email: Option<&'a str>,
    is_external: bool,
    allow_logon: bool,
    preferred_library: Option<&'a str>,
    phone: Option<&'a str>,
    department: Option<&'a str>,
    title: Option<&'a str>,
    create_date: &'a str,
    /// Edits are not tracked: the creation date.
    edit_date: &'a str,
    /// Always 2 (a directory account); informational.
    user_nos: u8,
    groups: Vec<&'a str>,
}

fn user_v2<'a>(state: &'a DbState, u: &'a SimUser) -> UserV2<'a> {
    UserV2 {
        id: &u.id,
        user_num: number_of(&u.id),
        user_id_ex: &u.login_name,
        full_name: u.display_name.as_deref(),
        first_name: &u.first_name,
        last_name: &u.last_name,
        email: u.email.as_deref(),
        is_external: u.user_type == "external",
        allow_logon: u.active,
        preferred_library: u.default_database.as_deref(),
        phone: u.phone.as_deref(),
        department: u.department.as_deref(),
        title: u.title.as_deref(),
        create_date: &u.created_date,
        edit_date: &u.created_date,
        user_nos: 2,
        groups: state.groups_of(&u.id),
    }
}

/// A group in v2 field names; `member_count` is the v1 field, kept.
#[derive(Serialize)]
struct GroupV2<'a> {
    id: &'a str,
    group_num: u64,
    full_name: &'a str,
    enabled: bool,
    is_external: bool,
    member_count: usize,
}

fn group_v2(g: &SimGroup) -> GroupV2<'_> {
    GroupV2 {
        id: &g.id,
        group_num: number_of(&g.id),
        full_name: &g.name,
        enabled: true,
        is_external: g.name == "External Users",
        member_count: g.members.len(),
    }
}

/// A member of a group: a short user object.
#[derive(Serialize)]
struct MemberV2<'a> {
    id: &'a str,
    user_id_ex: &'a str,
    full_name: Option<&'a str>,
    email: Option<&'a str>,
}

/// A workspace in a v2 list: the v1 fields, its library and its kind.
#[derive(Serialize)]
struct WorkspaceV2<'a> {
    #[serde(flatten)]
    base: WorkspaceView<'a>,
    database: &'a str,
    wstype: &'static str,
}

/// `GET /api`: who the caller is, which versions the server speaks, and the libraries.
async fn discovery(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    let world = read(&shared.world);
    let libraries: Vec<serde_json::Value> = world
        .dbs
        .iter()
        .map(|s| json!({ "alias": s.db.customer_id, "type": "worksite" }))
        .collect();
    let preferred = world.dbs.first().map(|s| s.db.customer_id.clone());
    let customer_id: u64 = V2_CUSTOMER_ID.parse().unwrap_or(1);
    json_response(
        StatusCode::OK,
        &OneBody {
            data: json!({
                "auth_status": "authenticated",
                "user": { "customer_id": customer_id, "id": caller.client_id },
                "versions": [{ "name": "v2", "version": "10.4.2", "url": "/work/api/v2" }],
                "work": { "libraries": libraries, "preferred_library": preferred },
            }),
        },
    )
}

async fn list_users(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = paging(query)?;
    check_customer(&customer)?;
    users_list_with_drift(&shared, &lib, |state| {
        page(state.db.users.values(), state.db.users.len(), &p, |u| {
            user_v2(state, u)
        })
    })
}

async fn get_user(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib, user_id)): Path<(String, String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
    let user = state
        .db
        .users
        .get(&user_id)
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id}")))?;
    json_response(
        StatusCode::OK,
        &OneBody {
            data: user_v2(state, user),
        },
    )
}

async fn list_groups(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = paging(query)?;
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
    page(
        state.db.groups.values(),
        state.db.groups.len(),
        &p,
        group_v2,
    )
}

async fn get_group(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib, group_id)): Path<(String, String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
    let g = state
        .db
        .groups
        .get(&group_id)
        .ok_or_else(|| ApiError::not_found(format!("no group {group_id}")))?;
    json_response(StatusCode::OK, &OneBody { data: group_v2(g) })
}

async fn list_members(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib, group_id)): Path<(String, String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = paging(query)?;
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
    let g = state
        .db
        .groups
        .get(&group_id)
        .ok_or_else(|| ApiError::not_found(format!("no group {group_id}")))?;
    let members = g.members.iter().filter_map(|id| state.db.users.get(id));
    page(members, g.members.len(), &p, |u| MemberV2 {
        id: &u.id,
        user_id_ex: &u.login_name,
        full_name: u.display_name.as_deref(),
        email: u.email.as_deref(),
    })
}

async fn list_workspaces(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let p = paging(query)?;
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
    let database = state.db.customer_id.as_str();
    page(
        state.db.workspaces.values(),
        state.db.workspaces.len(),
        &p,
        |ws| WorkspaceV2 {
            base: WorkspaceView::of(ws),
            database,
            wstype: "workspace",
        },
    )
}

async fn get_workspace(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib, workspace_id)): Path<(String, String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
    let ws = state
        .db
        .workspaces
        .get(&workspace_id)
        .ok_or_else(|| unknown_workspace(&workspace_id))?;
    json_response(
        StatusCode::OK,
        &OneBody {
            data: WorkspaceV2 {
                base: WorkspaceView::of(ws),
                database: &state.db.customer_id,
                wstype: "workspace",
            },
        },
    )
}

async fn workspace_security(
    State(shared): State<Arc<Shared>>,
    Path((customer, lib, workspace_id)): Path<(String, String, String)>,
) -> ApiResult {
    let world = read(&shared.world);
    let state = library(&world, &customer, &lib)?;
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
    use super::number_of;

    #[test]
    fn numbers_are_stable_and_seven_digits() {
        assert_eq!(number_of("usr_k3v9x2m7qa"), number_of("usr_k3v9x2m7qa"));
        assert_ne!(number_of("usr_a"), number_of("usr_b"));
        for id in ["", "grp_1", "usr_zzzzzzzzzz"] {
            assert!((1_000_000..10_000_000).contains(&number_of(id)));
        }
    }
}
