//! Test harness: every test body runs once on a fresh SQLite file and once on a fresh PostgreSQL
//! database, created for the test and dropped after it (even when the body panics).
//!
//! PostgreSQL comes from `IDGRAPH_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). CI starts it, so an unreachable server fails
//! the PostgreSQL half of every test instead of skipping it.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use model::{
    Access, Account, DatabaseSnapshot, DefaultSecurity, Group, Membership, Workspace,
    WorkspaceEntry,
};
use serde_json::json;
use sqlx::Connection;
use store::{Backend, Store, StoreOptions};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What a test body gets: a migrated store, and the URL to open more handles on it.
pub struct Ctx {
    pub store: Store,
    pub url: String,
    pub backend: Backend,
}

impl Ctx {
    /// Another, independent store instance on the same database (as another process would be).
    pub async fn reopen(&self) -> Store {
        Store::connect_with(&self.url, &options())
            .await
            .expect("reopening the test store")
    }
}

/// Small pools: many tests run at once against one PostgreSQL server.
pub fn options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        ..StoreOptions::default()
    }
}

enum Cleanup {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

fn admin_url() -> String {
    std::env::var("IDGRAPH_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "idgraph_test_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `postgres://user@host:port/db?x` with its database replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rsplit_once('/') {
        Some((p, _)) if p.contains("://") && p.len() > p.find("://").unwrap_or(0) + 3 => p,
        _ => base.trim_end_matches('/'),
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

async fn setup(backend: Backend) -> (Ctx, Cleanup) {
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            // A path in a fresh directory: the store must create the file.
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            (url, Cleanup::Sqlite(dir))
        }
        Backend::Postgres => {
            let admin = admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                    "PostgreSQL is unreachable at {admin} ({e}). The store tests need it: start \
                     it (CI does) or point IDGRAPH_TEST_PG_URL at one."
                )
                });
            let name = unique_name();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("creating the test database");
            let _ = conn.close().await;
            (
                with_database(&admin, &name),
                Cleanup::Postgres { admin, name },
            )
        }
    };
    let store = Store::connect_with(&url, &options())
        .await
        .expect("opening the test store");
    assert_eq!(store.backend(), backend);
    store.migrate().await.expect("migrating the test store");
    (
        Ctx {
            store,
            url,
            backend,
        },
        cleanup,
    )
}

async fn cleanup(c: Cleanup) {
    match c {
        Cleanup::Sqlite(dir) => drop(dir),
        Cleanup::Postgres { admin, name } => {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
    }
}

/// Runs `body` against a fresh store of `backend`, then drops the database whatever happened.
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (ctx, c) = setup(backend).await;
    let outcome = tokio::spawn(body(ctx)).await;
    cleanup(c).await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// Declares one test body as two tests, `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::common::run(store::Backend::Sqlite, super::$name).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::common::run(store::Backend::Postgres, super::$name).await
                }
            }
        )*
    };
}

// ---- data builders -------------------------------------------------------------------------

pub fn account(db: &str, id: &str, login: &str) -> Account {
    let email = format!("{login}@firm.test");
    Account {
        database: db.into(),
        user_id: id.into(),
        login_name: Some(login.into()),
        email: Some(email.clone()),
        first_name: Some("First".into()),
        last_name: Some(login.to_uppercase()),
        display_name: Some(format!("First {}", login.to_uppercase())),
        active: true,
        user_type: Some("full".into()),
        groups: vec![],
        default_database: Some(db.into()),
        phone: None,
        department: Some("Tax".into()),
        title: None,
        created_date: Some("2020-01-01T00:00:00Z".into()),
        raw: json!({"id": id, "login_name": login, "email": email, "active": true}).into(),
    }
}

pub fn group(db: &str, id: &str, name: &str) -> Group {
    Group {
        database: db.into(),
        group_id: id.into(),
        name: Some(name.into()),
        member_count: None,
        raw: json!({"id": id, "name": name}).into(),
    }
}

pub fn membership(db: &str, g: &str, u: &str) -> Membership {
    Membership {
        database: db.into(),
        group_id: g.into(),
        user_id: u.into(),
    }
}

pub fn workspace(db: &str, id: &str, sec: DefaultSecurity) -> Workspace {
    Workspace {
        database: db.into(),
        workspace_id: id.into(),
        name: Some(format!("Matter {id}")),
        default_security: sec,
        raw: json!({"id": id}).into(),
    }
}

pub fn entry(
    db: &str,
    ws: &str,
    principal: &str,
    is_group: bool,
    access: Access,
) -> WorkspaceEntry {
    WorkspaceEntry {
        database: db.into(),
        workspace_id: ws.into(),
        principal_id: principal.into(),
        is_group,
        access,
    }
}

/// A small database: three accounts, two groups, four memberships, no workspaces.
pub fn small(db: &str) -> DatabaseSnapshot {
    DatabaseSnapshot {
        database: db.into(),
        accounts: vec![
            account(db, "u1", "ada"),
            account(db, "u2", "ben"),
            account(db, "u3", "chloe"),
        ],
        groups: vec![group(db, "g1", "Everyone"), group(db, "g2", "Tax")],
        memberships: vec![
            membership(db, "g1", "u1"),
            membership(db, "g1", "u2"),
            membership(db, "g1", "u3"),
            membership(db, "g2", "u2"),
        ],
        workspaces: None,
        workspace_entries: None,
    }
}

/// The snapshot in the store's order, for comparisons.
pub fn sorted(mut s: DatabaseSnapshot) -> DatabaseSnapshot {
    s.accounts.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    s.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    s.memberships
        .sort_by(|a, b| (&a.group_id, &a.user_id).cmp(&(&b.group_id, &b.user_id)));
    if let Some(w) = &mut s.workspaces {
        w.sort_by(|a, b| a.workspace_id.cmp(&b.workspace_id));
    }
    if let Some(e) = &mut s.workspace_entries {
        e.sort_by(|a, b| {
            // The store orders group principals ("group") before users ("user").
            (&a.workspace_id, !a.is_group, &a.principal_id).cmp(&(
                &b.workspace_id,
                !b.is_group,
                &b.principal_id,
            ))
        });
    }
    s
}

/// Waits long enough for the millisecond clock to move, so two commits get distinct times.
pub async fn tick() {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

#[test]
fn database_is_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
