//! The plain-SQL baseline: the `person(login:)` question answered by one SQL statement over the
//! store's own tables on PostgreSQL, served as JSON over HTTP by a small axum handler, so that
//! it goes through the same HTTP, JSON and load generator as the graph.
//!
//! This is the obvious alternative a team would build without an in-memory graph: find the
//! accounts with that login (normalized in SQL: the `DOMAIN\` prefix and the `@domain` suffix
//! stripped, case folded, behind an expression index), their person (the `person_accounts` table
//! the resolver keeps), that person's accounts, and each account's groups by joins, with the
//! indexes a team would add for exactly these lookups. PostgreSQL builds the whole JSON answer
//! itself, so the answer costs one round trip.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sqlx::PgPool;

/// The indexes the baseline's lookups need; the store's own schema has none of them. The login
/// index is not partial, so that `ANALYZE` keeps statistics on its expression and the planner
/// knows a login matches a handful of rows (with the default estimate it scans `person_accounts`).
pub const INDEXES: &[&str] = &[
    r"CREATE INDEX IF NOT EXISTS bench_accounts_login_idx
        ON accounts ((lower(regexp_replace(login_name, '^.*\\|@.*$', '', 'g'))))",
    "CREATE INDEX IF NOT EXISTS bench_person_accounts_person_idx ON person_accounts (person_id)",
    "CREATE INDEX IF NOT EXISTS bench_memberships_user_idx
        ON memberships (database, user_id) INCLUDE (group_id) WHERE present",
    "ANALYZE accounts",
    "ANALYZE person_accounts",
    "ANALYZE memberships",
    "ANALYZE groups",
];

/// The person with a login, their accounts with groups, and their reach (group memberships:
/// the v1 API offers no workspace security), as the GraphQL answer's JSON. More than one person
/// with the login makes the scalar subquery fail, which the handler reports as an error, as the
/// API reports an ambiguous login.
const PERSON_BY_LOGIN: &str = r"
WITH hit AS (
    SELECT DISTINCT pa.person_id
    FROM accounts a
    JOIN person_accounts pa ON pa.database = a.database AND pa.user_id = a.user_id
    WHERE lower(regexp_replace(a.login_name, '^.*\\|@.*$', '', 'g')) = $1 AND a.present
),
acc AS (
    SELECT a.database, a.user_id, a.login_name, a.active, a.display_name
    FROM person_accounts pa
    JOIN accounts a ON a.database = pa.database AND a.user_id = pa.user_id AND a.present
    WHERE pa.person_id = (SELECT person_id FROM hit)
),
mem AS (
    SELECT acc.database, acc.user_id, g.group_id, g.name
    FROM acc
    JOIN memberships m ON m.database = acc.database AND m.user_id = acc.user_id AND m.present
    JOIN groups g ON g.database = m.database AND g.group_id = m.group_id AND g.present
)
SELECT json_build_object('data', json_build_object('person',
    CASE WHEN NOT EXISTS (SELECT 1 FROM acc) THEN NULL ELSE json_build_object(
        'id', (SELECT person_id FROM hit),
        'displayName', (SELECT display_name FROM acc WHERE display_name IS NOT NULL
                        ORDER BY database, user_id LIMIT 1),
        'accounts', (SELECT json_agg(json_build_object(
                'database', acc.database, 'userId', acc.user_id, 'loginName', acc.login_name,
                'active', acc.active,
                'groups', COALESCE((SELECT json_agg(json_build_object('name', mem.name)
                                                    ORDER BY mem.group_id)
                                    FROM mem
                                    WHERE mem.database = acc.database
                                      AND mem.user_id = acc.user_id), '[]'::json))
                ORDER BY acc.database, acc.user_id) FROM acc),
        'reach', COALESCE((SELECT json_agg(json_build_object(
                'database', mem.database, 'access', 'member',
                'group', json_build_object('name', mem.name))
                ORDER BY mem.database, mem.user_id, mem.group_id) FROM mem), '[]'::json)
    ) END))::text";

/// The login key the expression index holds: case folded, without `DOMAIN\` or `@domain`.
pub fn login_key(login: &str) -> String {
    let s = login.rsplit_once('\\').map_or(login, |(_, user)| user);
    let s = s.split_once('@').map_or(s, |(user, _)| user);
    s.to_lowercase()
}

/// `POST /person` with `{"login": "..."}`.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/person", post(person))
        .with_state(pool)
}

#[derive(serde::Deserialize)]
struct Ask {
    login: String,
}

async fn person(State(pool): State<PgPool>, body: Bytes) -> Response {
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(ask) => ask,
        Err(_) => return error(StatusCode::BAD_REQUEST, "the body must be {\"login\": ...}"),
    };
    let row: Result<(String,), sqlx::Error> = sqlx::query_as(PERSON_BY_LOGIN)
        .bind(login_key(&ask.login))
        .fetch_one(&pool)
        .await;
    match row {
        Ok((json,)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "baseline query failed");
            error(StatusCode::OK, "query failed (ambiguous login?)")
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message }] }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_keys_drop_domains_and_case() {
        assert_eq!(login_key("ACME\\JDoe"), "jdoe");
        assert_eq!(login_key("jdoe@acme.com"), "jdoe");
        assert_eq!(login_key("jdoe"), "jdoe");
    }
}
