//! The store's test suite: every body runs on a fresh SQLite file and on a fresh PostgreSQL
//! database (see `common`).

mod common;

use std::collections::BTreeSet;

use common::*;
use model::{Access, AccountKey, DatabaseSnapshot, DefaultSecurity, OverrideKind};
use serde_json::json;
use sqlx::Connection;
use store::{
    AuditEntry, AuditQuery, Backend, Change, ChangeCounts, ChangeKind, ChangeQuery, CrawlStats,
    Error, PersonIds, RunOutcome, RunStatus, State,
};

both_backends!(
    migrate_twice,
    first_commit_stores_everything_as_a_baseline,
    awkward_text_round_trips,
    unchanged_commit_rewrites_nothing,
    every_change_kind_is_logged,
    removal_and_readd_keep_history,
    failed_crawl_keeps_the_previous_state,
    orphaned_runs_are_marked_abandoned,
    change_queries_filter_and_page,
    overrides_are_audited,
    audit_log_is_general,
    persons_round_trip,
    absent_workspaces_are_left_alone,
    bad_input_writes_nothing,
    a_failed_commit_writes_nothing,
    concurrent_commits_of_one_database_are_serialized,
    an_interrupted_commit_leaves_one_state_or_the_other,
    bulk_harvest_throughput,
);

fn stats(calls: u64) -> CrawlStats {
    CrawlStats {
        api_calls: calls,
        min_calls: calls - 1,
        retries: 1,
        pages: calls - 1,
        recrawls: 1,
        duration_ms: 42,
    }
}

fn dbs(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn all_changes(store: &store::Store) -> Vec<Change> {
    store
        .changes(&ChangeQuery {
            limit: 10_000,
            ..ChangeQuery::default()
        })
        .await
        .expect("changes")
}

async fn migrate_twice(ctx: Ctx) {
    ctx.store.migrate().await.expect("migrating again");
    let other = ctx.reopen().await;
    other
        .migrate()
        .await
        .expect("migrating from another instance");
    assert_eq!(
        ctx.store.load_state().await.expect("state"),
        State::default()
    );
    assert!(ctx
        .store
        .database_statuses()
        .await
        .expect("statuses")
        .is_empty());
    assert!(matches!(
        ctx.store.load_database("nope").await,
        Err(Error::UnknownDatabase(_))
    ));
    ctx.store.set_meta("k", "v1").await.expect("set");
    ctx.store.set_meta("k", "v2").await.expect("set again");
    assert_eq!(
        ctx.store.get_meta("k").await.expect("get").as_deref(),
        Some("v2")
    );
    assert_eq!(ctx.store.get_meta("missing").await.expect("get"), None);
    other.close().await;
}

fn with_workspaces(mut s: DatabaseSnapshot) -> DatabaseSnapshot {
    let db = s.database.clone();
    s.workspaces = Some(vec![workspace(&db, "w1", DefaultSecurity::Private)]);
    s.workspace_entries = Some(vec![
        entry(&db, "w1", "g1", true, Access::Read),
        entry(&db, "w1", "u1", false, Access::FullAccess),
    ]);
    s
}

async fn first_commit_stores_everything_as_a_baseline(ctx: Ctx) {
    let store = &ctx.store;
    let s = with_workspaces(small("db1"));
    let run = store.start_run(&dbs(&["db1"])).await.expect("run");
    let counts = store
        .commit_database(run, &s, &stats(7))
        .await
        .expect("commit");
    assert_eq!(
        counts,
        ChangeCounts {
            accounts_added: 3,
            groups_added: 2,
            memberships_added: 4,
            workspaces_added: 1,
            workspace_entries_added: 2,
            total: 0,
            ..ChangeCounts::default()
        }
    );
    store.finish_run(run).await.expect("finish");

    assert_eq!(
        store.load_database("db1").await.expect("load"),
        sorted(s.clone())
    );
    let statuses = store.database_statuses().await.expect("statuses");
    assert_eq!(statuses.len(), 1);
    let st = &statuses[0];
    assert!(st.complete);
    assert_eq!(
        (st.account_count, st.group_count, st.membership_count),
        (3, 2, 4)
    );
    assert!(st.last_complete_at.is_some());
    assert_eq!(st.last_attempt_at, st.last_complete_at);
    assert_eq!(st.last_error, None);

    assert!(
        all_changes(store).await.is_empty(),
        "the baseline is not logged"
    );

    let runs = store.runs(10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, run);
    assert_eq!(runs[0].status, RunStatus::Complete);
    assert_eq!(runs[0].requested, dbs(&["db1"]));
    assert!(runs[0].duration_ms().is_some_and(|d| d >= 0));
    let outcome = &runs[0].databases[0];
    assert_eq!(outcome.outcome, RunOutcome::Complete);
    assert_eq!(outcome.stats, stats(7));
    assert_eq!(outcome.changes, counts);
    assert_eq!(outcome.account_count, Some(3));
    assert_eq!(outcome.membership_count, Some(4));
    assert_eq!(store.run(run).await.expect("run").as_ref(), Some(&runs[0]));

    for r in store.account_history("db1").await.expect("history") {
        assert!(r.presence.present);
        assert_eq!(Some(r.presence.first_seen_at), st.last_complete_at);
        assert_eq!(r.presence.last_seen_at, st.last_complete_at);
        assert_eq!(r.presence.updated_run, run);
    }

    let state = store.load_state().await.expect("state");
    assert_eq!(state.accounts, sorted(s.clone()).accounts);
    assert_eq!(state.memberships.len(), 4);
    assert_eq!(state.workspaces.len(), 1);
    assert_eq!(state.workspace_entries.len(), 2);
    assert_eq!(state.databases, statuses);
}

/// A first commit (PostgreSQL writes it with binary `COPY`) keeps text with `COPY`'s and
/// JSON's special characters exactly, and drops NUL on PostgreSQL, whose text cannot hold it.
async fn awkward_text_round_trips(ctx: Ctx) {
    let store = &ctx.store;
    let mut s = small("db1");
    let a = &mut s.accounts[0];
    a.first_name = Some("tab\there, line\nbreak, return\r".into());
    a.last_name = Some("back\\slash \\N \"quoted\" 'single'".into());
    a.department = Some("é ü 東京 🚀 \u{7f}".into());
    a.title = Some(String::new());
    a.raw = json!({"id": a.user_id, "note": "tab\t \\ \"q\" \u{1}"}).into();
    a.display_name = Some("nul\0inside".into());
    s.groups[0].name = Some("Group \\ with\ttab".into());
    let run = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(run, &s, &stats(3))
        .await
        .expect("commit");
    store.finish_run(run).await.expect("finish");

    let loaded = store.load_database("db1").await.expect("load");
    let mut expected = sorted(s);
    if ctx.backend == Backend::Postgres {
        for a in &mut expected.accounts {
            if a.display_name.as_deref() == Some("nul\0inside") {
                a.display_name = Some("nulinside".into());
            }
        }
    }
    assert_eq!(loaded, expected);
}

async fn unchanged_commit_rewrites_nothing(ctx: Ctx) {
    let store = &ctx.store;
    let s = with_workspaces(small("db1"));
    let r1 = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(r1, &s, &stats(3))
        .await
        .expect("commit");
    let first = store.database_statuses().await.expect("statuses")[0].clone();
    tick().await;

    // The same data, with the raw objects' keys in another order (as a JSON library may emit).
    let mut again = s.clone();
    for a in &mut again.accounts {
        let login = a.login_name.clone();
        let email = a.email.clone();
        a.raw =
            json!({"active": true, "email": email, "login_name": login, "id": a.user_id}).into();
    }
    let r2 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let counts = store
        .commit_database(r2, &again, &stats(3))
        .await
        .expect("commit");
    assert_eq!(counts, ChangeCounts::default());
    assert!(all_changes(store).await.is_empty());

    let second = store.database_statuses().await.expect("statuses")[0].clone();
    assert!(second.last_complete_at > first.last_complete_at);
    // No row was rewritten: each still carries the first run as its writer, while its last-seen
    // time (derived) moved on to the second harvest.
    for r in store.account_history("db1").await.expect("history") {
        assert_eq!(
            r.presence.updated_run, r1,
            "{} was rewritten",
            r.account.user_id
        );
        assert_eq!(r.presence.last_seen_at, second.last_complete_at);
        assert_eq!(Some(r.presence.first_seen_at), first.last_complete_at);
    }
    for r in store.membership_history("db1").await.expect("history") {
        assert_eq!(r.presence.updated_run, r1);
    }
    for r in store.group_history("db1").await.expect("history") {
        assert_eq!(r.presence.updated_run, r1);
    }
    let runs = store.runs(1).await.expect("runs");
    assert_eq!(runs[0].id, r2);
    assert_eq!(runs[0].status, RunStatus::Running, "not finished yet");
}

type ChangeKey = (
    ChangeKind,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn key(c: &Change) -> ChangeKey {
    let raw = c.field.as_deref() == Some("raw");
    (
        c.kind,
        c.user_id.clone(),
        c.group_id.clone(),
        c.workspace_id.clone(),
        c.field.clone(),
        // Raw values are whole JSON objects; their presence is checked separately.
        if raw { None } else { c.old_value.clone() },
        if raw { None } else { c.new_value.clone() },
    )
}

fn ck(
    kind: ChangeKind,
    user: Option<&str>,
    group: Option<&str>,
    ws: Option<&str>,
    field: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
) -> ChangeKey {
    let s = |v: Option<&str>| v.map(str::to_owned);
    (kind, s(user), s(group), s(ws), s(field), s(old), s(new))
}

async fn every_change_kind_is_logged(ctx: Ctx) {
    use ChangeKind::*;
    let store = &ctx.store;
    let db = "db1";
    let mut u3 = account(db, "u3", "chloe");
    u3.active = false;
    let mut g2 = group(db, "g2", "Tax");
    g2.member_count = Some(1);
    let v1 = DatabaseSnapshot {
        database: db.into(),
        accounts: vec![
            account(db, "u1", "ada"),
            account(db, "u2", "ben"),
            u3.clone(),
            account(db, "u4", "dev"),
            account(db, "u7", "gita"),
        ],
        groups: vec![
            group(db, "g1", "Everyone"),
            g2.clone(),
            group(db, "g3", "Old"),
        ],
        memberships: vec![
            membership(db, "g1", "u1"),
            membership(db, "g1", "u2"),
            membership(db, "g2", "u2"),
            membership(db, "g3", "u4"),
        ],
        workspaces: Some(vec![
            workspace(db, "w1", DefaultSecurity::Private),
            workspace(db, "w2", DefaultSecurity::View),
        ]),
        workspace_entries: Some(vec![
            entry(db, "w1", "g1", true, Access::Read),
            entry(db, "w1", "u1", false, Access::FullAccess),
            entry(db, "w2", "u2", false, Access::Read),
        ]),
    };
    let r1 = store.start_run(&dbs(&[db])).await.expect("run");
    store
        .commit_database(r1, &v1, &stats(2))
        .await
        .expect("baseline");
    tick().await;

    let mut v2 = v1.clone();
    // u1: email changed; u2: deactivated; u3: activated; u4: gone; u5: new; u7: raw only.
    v2.accounts[0].email = Some("ada@new.test".into());
    v2.accounts[0]
        .raw
        .update(|v| v["email"] = json!("ada@new.test"));
    v2.accounts[1].active = false;
    v2.accounts[2].active = true;
    v2.accounts.remove(3);
    v2.accounts[3].raw.update(|v| v["custom_field"] = json!(1));
    v2.accounts.push(account(db, "u5", "erin"));
    // g1 renamed; g2's member count alone moves (not logged); g3 gone; g4 new.
    v2.groups[0].name = Some("All staff".into());
    v2.groups[1].member_count = Some(2);
    v2.groups[1].raw.update(|v| v["member_count"] = json!(2));
    v2.groups.remove(2);
    v2.groups.push(group(db, "g4", "New"));
    // g1:u2 and g3:u4 gone; g4:u5 new.
    v2.memberships = vec![
        membership(db, "g1", "u1"),
        membership(db, "g2", "u2"),
        membership(db, "g4", "u5"),
    ];
    // w1 made public; w2 gone; w3 new. Entries: w1/g1 upgraded, w1/u1 and w2/u2 gone, w3/u5 new.
    v2.workspaces = Some(vec![
        workspace(db, "w1", DefaultSecurity::Public),
        workspace(db, "w3", DefaultSecurity::Private),
    ]);
    v2.workspace_entries = Some(vec![
        entry(db, "w1", "g1", true, Access::ReadWrite),
        entry(db, "w3", "u5", false, Access::Read),
    ]);

    let r2 = store.start_run(&dbs(&[db])).await.expect("run");
    let counts = store
        .commit_database(r2, &v2, &stats(2))
        .await
        .expect("commit");
    assert_eq!(
        counts,
        ChangeCounts {
            accounts_added: 1,
            accounts_removed: 1,
            accounts_changed: 4,
            groups_added: 1,
            groups_removed: 1,
            groups_changed: 1,
            memberships_added: 1,
            memberships_removed: 2,
            workspaces_added: 1,
            workspaces_removed: 1,
            workspaces_changed: 1,
            workspace_entries_added: 1,
            workspace_entries_removed: 2,
            workspace_entries_changed: 1,
            total: 19,
        }
    );
    assert_eq!(
        store.load_database(db).await.expect("load"),
        sorted(v2.clone())
    );

    let changes = all_changes(store).await;
    assert_eq!(changes.len(), 19);
    let at = store.database_statuses().await.expect("statuses")[0].last_complete_at;
    for c in &changes {
        assert_eq!(c.run_id, r2);
        assert_eq!(c.database, db);
        assert_eq!(Some(c.at), at);
    }
    assert!(changes.windows(2).all(|w| w[0].id < w[1].id));
    let got: BTreeSet<ChangeKey> = changes.iter().map(key).collect();
    let want: BTreeSet<ChangeKey> = [
        ck(AccountAdded, Some("u5"), None, None, None, None, None),
        ck(AccountRemoved, Some("u4"), None, None, None, None, None),
        ck(
            AccountChanged,
            Some("u1"),
            None,
            None,
            Some("email"),
            Some("ada@firm.test"),
            Some("ada@new.test"),
        ),
        ck(
            AccountDeactivated,
            Some("u2"),
            None,
            None,
            Some("active"),
            Some("true"),
            Some("false"),
        ),
        ck(
            AccountActivated,
            Some("u3"),
            None,
            None,
            Some("active"),
            Some("false"),
            Some("true"),
        ),
        ck(
            AccountChanged,
            Some("u7"),
            None,
            None,
            Some("raw"),
            None,
            None,
        ),
        ck(GroupAdded, None, Some("g4"), None, None, None, None),
        ck(GroupRemoved, None, Some("g3"), None, None, None, None),
        ck(
            GroupChanged,
            None,
            Some("g1"),
            None,
            Some("name"),
            Some("Everyone"),
            Some("All staff"),
        ),
        ck(
            MembershipAdded,
            Some("u5"),
            Some("g4"),
            None,
            None,
            None,
            None,
        ),
        ck(
            MembershipRemoved,
            Some("u2"),
            Some("g1"),
            None,
            None,
            None,
            None,
        ),
        ck(
            MembershipRemoved,
            Some("u4"),
            Some("g3"),
            None,
            None,
            None,
            None,
        ),
        ck(WorkspaceAdded, None, None, Some("w3"), None, None, None),
        ck(WorkspaceRemoved, None, None, Some("w2"), None, None, None),
        ck(
            WorkspaceChanged,
            None,
            None,
            Some("w1"),
            Some("default_security"),
            Some("private"),
            Some("public"),
        ),
        ck(
            WorkspaceEntryAdded,
            Some("u5"),
            None,
            Some("w3"),
            Some("access"),
            None,
            Some("read"),
        ),
        ck(
            WorkspaceEntryRemoved,
            Some("u1"),
            None,
            Some("w1"),
            Some("access"),
            Some("full_access"),
            None,
        ),
        ck(
            WorkspaceEntryRemoved,
            Some("u2"),
            None,
            Some("w2"),
            Some("access"),
            Some("read"),
            None,
        ),
        ck(
            WorkspaceEntryChanged,
            None,
            Some("g1"),
            Some("w1"),
            Some("access"),
            Some("read"),
            Some("read_write"),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    let raw = changes
        .iter()
        .find(|c| c.field.as_deref() == Some("raw"))
        .expect("raw change");
    let new: serde_json::Value =
        serde_json::from_str(raw.new_value.as_deref().expect("new raw")).expect("JSON");
    assert_eq!(new["custom_field"], json!(1));
    assert!(raw
        .old_value
        .as_deref()
        .is_some_and(|v| !v.contains("custom_field")));

    for k in ChangeKind::ALL {
        assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
    }
}

async fn removal_and_readd_keep_history(ctx: Ctx) {
    let store = &ctx.store;
    let s = small("db1");
    let r1 = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(r1, &s, &stats(2))
        .await
        .expect("commit");
    let t1 = store.database_statuses().await.expect("st")[0].last_complete_at;
    tick().await;

    let mut without = s.clone();
    without.accounts.retain(|a| a.user_id != "u3");
    without.memberships.retain(|m| m.user_id != "u3");
    let r2 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let counts = store
        .commit_database(r2, &without, &stats(2))
        .await
        .expect("commit");
    assert_eq!(
        (
            counts.accounts_removed,
            counts.memberships_removed,
            counts.total
        ),
        (1, 1, 2)
    );
    let t2 = store.database_statuses().await.expect("st")[0].last_complete_at;
    let st = &store.database_statuses().await.expect("st")[0];
    assert_eq!((st.account_count, st.membership_count), (2, 3));

    let history = store.account_history("db1").await.expect("history");
    let u3 = history
        .iter()
        .find(|r| r.account.user_id == "u3")
        .expect("u3 kept");
    assert!(!u3.presence.present);
    assert_eq!(u3.presence.removed_at, t2);
    assert_eq!(
        u3.presence.last_seen_at, t1,
        "last seen by the harvest before removal"
    );
    assert_eq!(Some(u3.presence.first_seen_at), t1);
    assert_eq!(u3.presence.updated_run, r2);
    let m = store.membership_history("db1").await.expect("history");
    let gone = m
        .iter()
        .find(|r| r.membership.user_id == "u3")
        .expect("membership kept");
    assert!(!gone.presence.present);
    assert_eq!(gone.presence.removed_at, t2);
    assert!(!store
        .load_database("db1")
        .await
        .expect("load")
        .accounts
        .iter()
        .any(|a| a.user_id == "u3"));
    tick().await;

    let r3 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let counts = store
        .commit_database(r3, &s, &stats(2))
        .await
        .expect("commit");
    assert_eq!(
        (
            counts.accounts_added,
            counts.memberships_added,
            counts.total
        ),
        (1, 1, 2)
    );
    let t3 = store.database_statuses().await.expect("st")[0].last_complete_at;
    let history = store.account_history("db1").await.expect("history");
    let u3 = history
        .iter()
        .find(|r| r.account.user_id == "u3")
        .expect("u3");
    assert!(u3.presence.present);
    assert_eq!(u3.presence.removed_at, None);
    assert_eq!(u3.presence.last_seen_at, t3);
    assert_eq!(Some(u3.presence.first_seen_at), t1, "first seen is kept");
    assert_eq!(u3.presence.updated_run, r3);
    assert_eq!(store.load_database("db1").await.expect("load"), sorted(s));
    let readded: Vec<ChangeKind> = all_changes(store)
        .await
        .into_iter()
        .filter(|c| c.run_id == r3)
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        readded,
        [ChangeKind::AccountAdded, ChangeKind::MembershipAdded]
    );
}

async fn failed_crawl_keeps_the_previous_state(ctx: Ctx) {
    let store = &ctx.store;
    let s = small("db1");
    let r1 = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(r1, &s, &stats(2))
        .await
        .expect("commit");
    store.finish_run(r1).await.expect("finish");
    let before = store.database_statuses().await.expect("st")[0].clone();
    tick().await;

    let r2 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let cause = "users: HTTP 503 after 5 retries";
    store
        .fail_database(r2, "db1", &stats(9), cause)
        .await
        .expect("fail");
    store.finish_run(r2).await.expect("finish");

    assert_eq!(
        store.load_database("db1").await.expect("load"),
        sorted(s.clone())
    );
    let after = store.database_statuses().await.expect("st")[0].clone();
    assert!(!after.complete);
    assert_eq!(after.last_error.as_deref(), Some(cause));
    assert_eq!(after.last_complete_at, before.last_complete_at);
    assert!(after.last_attempt_at > before.last_attempt_at);
    assert_eq!(after.account_count, 3);
    for r in store.account_history("db1").await.expect("history") {
        assert!(r.presence.present);
        assert_eq!(r.presence.last_seen_at, before.last_complete_at);
    }
    let run = store.run(r2).await.expect("run").expect("exists");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.databases.len(), 1);
    assert_eq!(run.databases[0].outcome, RunOutcome::Failed);
    assert_eq!(run.databases[0].cause.as_deref(), Some(cause));
    assert_eq!(run.databases[0].stats, stats(9));
    assert_eq!(run.databases[0].account_count, None);

    // One database committed, one failed: partial. A failure of a never-harvested database
    // shows up in the statuses too. An overlong cause is cut.
    let r3 = store.start_run(&dbs(&["db1", "db2"])).await.expect("run");
    store
        .commit_database(r3, &s, &stats(2))
        .await
        .expect("commit");
    let long = "x".repeat(10_000);
    store
        .fail_database(r3, "db2", &stats(2), &long)
        .await
        .expect("fail");
    store.finish_run(r3).await.expect("finish");
    assert_eq!(
        store.run(r3).await.expect("run").expect("r3").status,
        RunStatus::Partial
    );
    let statuses = store.database_statuses().await.expect("st");
    assert_eq!(statuses.len(), 2);
    assert!(statuses[0].complete);
    assert_eq!(statuses[1].database, "db2");
    assert_eq!(statuses[1].last_complete_at, None);
    assert_eq!(
        statuses[1].last_error.as_ref().map(String::len),
        Some(4_000)
    );
    let runs = store.runs(2).await.expect("runs");
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [r3, r2]);
}

/// Waits until the test database shows no advisory locks: a closed store's lock is released by
/// the server shortly after the connection goes.
async fn wait_for_no_advisory_locks(url: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND \
             database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_locks");
        if n == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("advisory locks were not released");
}

async fn orphaned_runs_are_marked_abandoned(ctx: Ctx) {
    // A process starts a run and dies.
    let crashed = ctx.reopen().await;
    let orphan = crashed.start_run(&dbs(&["db1"])).await.expect("run");
    crashed.close().await;
    if ctx.backend == Backend::Postgres {
        wait_for_no_advisory_locks(&ctx.url).await;
    }

    let live = ctx.reopen().await;
    let running = live.start_run(&dbs(&["db1"])).await.expect("run");
    let r = live.run(orphan).await.expect("run").expect("orphan");
    assert_eq!(r.status, RunStatus::Abandoned);
    assert!(r.finished_at.is_some());
    assert_eq!(
        live.run(running)
            .await
            .expect("run")
            .expect("running")
            .status,
        RunStatus::Running
    );

    // A third instance starts while `live` is still working.
    let third = ctx.reopen().await;
    third.start_run(&dbs(&["db2"])).await.expect("run");
    let seen = third
        .run(running)
        .await
        .expect("run")
        .expect("running")
        .status;
    // The owner is alive (it holds its advisory lock, or its lock file on SQLite).
    assert_eq!(seen, RunStatus::Running);
    // The live run completes normally and its status is right in the end.
    live.commit_database(running, &small("db1"), &stats(2))
        .await
        .expect("commit");
    live.finish_run(running).await.expect("finish");
    assert_eq!(
        live.run(running)
            .await
            .expect("run")
            .expect("running")
            .status,
        RunStatus::Complete
    );
    let counts = live.run_status_counts().await.expect("counts");
    assert_eq!(counts.get(&RunStatus::Abandoned), Some(&1));
    live.close().await;
    third.close().await;
}

async fn change_queries_filter_and_page(ctx: Ctx) {
    let store = &ctx.store;
    let r1 = store.start_run(&dbs(&["db1", "db2"])).await.expect("run");
    store
        .commit_database(r1, &small("db1"), &stats(2))
        .await
        .expect("c");
    store
        .commit_database(r1, &small("db2"), &stats(2))
        .await
        .expect("c");
    tick().await;

    let r2 = store.start_run(&dbs(&["db1", "db2"])).await.expect("run");
    let mut d1 = small("db1");
    d1.accounts[0].email = Some("ada@new.test".into());
    d1.accounts.push(account("db1", "u4", "dev"));
    d1.memberships.push(membership("db1", "g1", "u4"));
    store.commit_database(r2, &d1, &stats(2)).await.expect("c");
    let mut d2 = small("db2");
    d2.accounts.retain(|a| a.user_id != "u2");
    d2.memberships.retain(|m| m.user_id != "u2");
    store.commit_database(r2, &d2, &stats(2)).await.expect("c");
    tick().await;

    let r3 = store.start_run(&dbs(&["db1"])).await.expect("run");
    d1.accounts[0].active = false;
    store.commit_database(r3, &d1, &stats(2)).await.expect("c");
    let t3 = store.database_statuses().await.expect("st")[0]
        .last_complete_at
        .expect("t3");

    let q = |f: &dyn Fn(&mut ChangeQuery)| {
        let mut q = ChangeQuery {
            limit: 1_000,
            ..ChangeQuery::default()
        };
        f(&mut q);
        q
    };
    let all = store.changes(&q(&|_| {})).await.expect("all");
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));

    let db2 = store
        .changes(&q(&|q| q.databases = Some(dbs(&["db2"]))))
        .await
        .expect("db2");
    assert_eq!(db2.len(), 3);
    assert!(db2.iter().all(|c| c.database == "db2"));

    let ada = store
        .changes(&q(&|q| {
            q.accounts = Some(vec![AccountKey::new("db1", "u1")])
        }))
        .await
        .expect("ada");
    assert_eq!(
        ada.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [ChangeKind::AccountChanged, ChangeKind::AccountDeactivated]
    );
    let ben = store
        .changes(&q(&|q| {
            q.accounts = Some(vec![AccountKey::new("db2", "u2")])
        }))
        .await
        .expect("ben");
    assert_eq!(ben.len(), 3, "the account and its two memberships");
    let other_db = store
        .changes(&q(&|q| {
            q.accounts = Some(vec![AccountKey::new("db1", "u2")])
        }))
        .await
        .expect("same id, other database");
    assert!(other_db.is_empty());
    let both = store
        .changes(&q(&|q| {
            q.accounts = Some(vec![
                AccountKey::new("db1", "u1"),
                AccountKey::new("db2", "u2"),
            ])
        }))
        .await
        .expect("both");
    assert_eq!(both.len(), 5);

    let memberships = store
        .changes(&q(&|q| {
            q.kinds = Some(vec![
                ChangeKind::MembershipAdded,
                ChangeKind::MembershipRemoved,
            ])
        }))
        .await
        .expect("kinds");
    assert_eq!(memberships.len(), 3);

    let since = store
        .changes(&q(&|q| q.since = Some(t3)))
        .await
        .expect("since");
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].run_id, r3);
    let until = store
        .changes(&q(&|q| q.until = Some(t3)))
        .await
        .expect("until");
    assert_eq!(until.len(), 6);
    let combined = store
        .changes(&q(&|q| {
            q.databases = Some(dbs(&["db1"]));
            q.kinds = Some(vec![ChangeKind::AccountAdded]);
            q.until = Some(t3);
        }))
        .await
        .expect("combined");
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0].user_id.as_deref(), Some("u4"));

    // Pages of two, following the cursor, give back exactly the full list.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .changes(&ChangeQuery {
                after_id: after,
                limit: 2,
                ..ChangeQuery::default()
            })
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, all);

    assert!(store
        .changes(&q(&|q| q.limit = 0))
        .await
        .expect("0")
        .is_empty());
    assert!(store
        .changes(&q(&|q| q.databases = Some(vec![])))
        .await
        .expect("none")
        .is_empty());
}

async fn overrides_are_audited(ctx: Ctx) {
    let store = &ctx.store;
    let a = AccountKey::new("db1", "u1");
    let b = AccountKey::new("db2", "u9");
    let c = AccountKey::new("db3", "u4");
    let o1 = store
        .add_override(
            OverrideKind::MustLink,
            &a,
            &b,
            Some("same person"),
            Some("alice"),
        )
        .await
        .expect("add");
    assert_eq!((o1.kind, &o1.a, &o1.b), (OverrideKind::MustLink, &a, &b));
    assert_eq!(o1.reason.as_deref(), Some("same person"));
    assert_eq!(o1.created_by.as_deref(), Some("alice"));
    // The same pair the other way round is the same override.
    let again = store
        .add_override(OverrideKind::MustLink, &b, &a, None, Some("bob"))
        .await
        .expect("add again");
    assert_eq!(again, o1);
    let o2 = store
        .add_override(OverrideKind::CannotLink, &a, &c, None, None)
        .await
        .expect("add");
    assert!(matches!(
        store
            .add_override(OverrideKind::MustLink, &a, &a, None, None)
            .await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        store.overrides().await.expect("list"),
        [o1.clone(), o2.clone()]
    );

    assert!(store
        .remove_override(o1.id, Some("carol"))
        .await
        .expect("remove"));
    assert!(!store
        .remove_override(o1.id, Some("carol"))
        .await
        .expect("again"));
    assert!(!store.remove_override(999_999, None).await.expect("unknown"));
    assert_eq!(store.overrides().await.expect("list"), vec![o2.clone()]);
    assert_eq!(store.load_state().await.expect("state").overrides, vec![o2]);

    let log = store.audit(&AuditQuery::default()).await.expect("audit");
    let summary: Vec<(&str, &str, Option<&str>)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str(), e.actor.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("override.add", "ok", Some("alice")),
            ("override.add", "exists", Some("bob")),
            ("override.add", "ok", None),
            ("override.remove", "ok", Some("carol")),
            ("override.remove", "not_found", Some("carol")),
            ("override.remove", "not_found", None),
        ]
    );
    assert_eq!(log[0].detail["kind"], json!("MUST_LINK"));
    assert_eq!(
        log[0].detail["a"],
        json!({"database": "db1", "user_id": "u1"})
    );
    assert_eq!(
        log[3].detail["b"],
        json!({"database": "db2", "user_id": "u9"})
    );
    let target = format!("override:{}", o1.id);
    let on_o1 = store
        .audit(&AuditQuery {
            target: Some(target.clone()),
            ..AuditQuery::default()
        })
        .await
        .expect("by target");
    assert_eq!(on_o1.len(), 4);
    assert!(on_o1
        .iter()
        .all(|e| e.target.as_deref() == Some(target.as_str())));
    assert!(log.iter().all(|e| e.at >= o1.created_at));
}

async fn audit_log_is_general(ctx: Ctx) {
    let store = &ctx.store;
    let entry = AuditEntry {
        actor: Some("api:ops".into()),
        action: "imanage.user.deactivate".into(),
        target: Some("db1/u1".into()),
        detail: json!({"plan": 7, "call": "PATCH /users/u1", "status": 200}),
        outcome: "ok".into(),
    };
    let first = store.append_audit(&entry).await.expect("append");
    tick().await;
    let second = store
        .append_audit(&AuditEntry {
            outcome: "error".into(),
            ..entry.clone()
        })
        .await
        .expect("append");
    store
        .append_audit(&AuditEntry {
            action: "imanage.membership.add".into(),
            actor: None,
            target: None,
            detail: json!(null),
            ..entry.clone()
        })
        .await
        .expect("append");
    assert!(second > first);
    assert!(matches!(
        store
            .append_audit(&AuditEntry {
                action: String::new(),
                ..entry.clone()
            })
            .await,
        Err(Error::InvalidInput(_))
    ));

    let deactivations = store
        .audit(&AuditQuery {
            actions: Some(vec!["imanage.user.deactivate".into()]),
            ..AuditQuery::default()
        })
        .await
        .expect("by action");
    assert_eq!(deactivations.len(), 2);
    assert_eq!(deactivations[0].id, first);
    assert_eq!(deactivations[0].detail, entry.detail);
    assert_eq!(deactivations[1].outcome, "error");
    let by_actor = store
        .audit(&AuditQuery {
            actor: Some("api:ops".into()),
            after_id: Some(first),
            ..AuditQuery::default()
        })
        .await
        .expect("by actor");
    assert_eq!(by_actor.iter().map(|e| e.id).collect::<Vec<_>>(), [second]);
    let window = store
        .audit(&AuditQuery {
            since: Some(deactivations[1].at),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .expect("window");
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].id, second);
    let all = store.audit(&AuditQuery::default()).await.expect("all");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].actor, None);
    assert_eq!(all[2].detail, json!(null));
}

async fn persons_round_trip(ctx: Ctx) {
    let store = &ctx.store;
    let k = |d: &str, u: &str| AccountKey::new(d, u);
    let p1 = PersonIds {
        by_account: vec![
            (k("db1", "u1"), "P1".into()),
            (k("db1", "u2"), "P1".into()),
            (k("db2", "u1"), "P2".into()),
        ],
        aliases: vec![],
        created: vec![("P1".into(), 1), ("P2".into(), 2)],
        next_seq: 3,
    };
    store.save_persons(&p1).await.expect("save");
    assert_eq!(store.persons().await.expect("load"), p1);

    let p2 = PersonIds {
        by_account: vec![
            (k("db1", "u1"), "P1".into()),
            (k("db1", "u2"), "P2".into()),
            (k("db3", "u5"), "P3".into()),
        ],
        aliases: vec![("P9".into(), "P1".into())],
        created: vec![("P1".into(), 1), ("P2".into(), 2), ("P3".into(), 3)],
        next_seq: 4,
    };
    store.save_persons(&p2).await.expect("save");
    assert_eq!(store.persons().await.expect("load"), p2);
    assert_eq!(store.load_state().await.expect("state").persons, p2);

    store
        .save_persons(&PersonIds::default())
        .await
        .expect("clear");
    assert_eq!(store.persons().await.expect("load"), PersonIds::default());
}

async fn absent_workspaces_are_left_alone(ctx: Ctx) {
    let store = &ctx.store;
    let s = with_workspaces(small("db1"));
    let r1 = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(r1, &s, &stats(2))
        .await
        .expect("commit");

    let mut none = s.clone();
    none.workspaces = None;
    none.workspace_entries = None;
    let r2 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let counts = store
        .commit_database(r2, &none, &stats(2))
        .await
        .expect("commit");
    assert_eq!(counts, ChangeCounts::default());
    let loaded = store.load_database("db1").await.expect("load");
    assert_eq!(loaded.workspaces, sorted(s.clone()).workspaces);
    assert_eq!(
        loaded.workspace_entries,
        sorted(s.clone()).workspace_entries
    );

    // An empty list, on the other hand, is a real "all gone".
    let mut empty = s.clone();
    empty.workspaces = Some(vec![]);
    empty.workspace_entries = Some(vec![]);
    let r3 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let counts = store
        .commit_database(r3, &empty, &stats(2))
        .await
        .expect("commit");
    assert_eq!(
        (counts.workspaces_removed, counts.workspace_entries_removed),
        (1, 2)
    );
    let loaded = store.load_database("db1").await.expect("load");
    assert_eq!(loaded.workspaces, Some(vec![]));
    assert_eq!(loaded.workspace_entries, Some(vec![]));

    // A database harvested without workspaces loads with `None`.
    store
        .commit_database(r3, &small("db2"), &stats(2))
        .await
        .expect("commit");
    assert_eq!(
        store.load_database("db2").await.expect("load").workspaces,
        None
    );
}

async fn bad_input_writes_nothing(ctx: Ctx) {
    let store = &ctx.store;
    assert!(matches!(
        store.commit_database(4242, &small("db1"), &stats(2)).await,
        Err(Error::UnknownRun(4242))
    ));
    assert!(matches!(
        store.fail_database(4242, "db1", &stats(2), "x").await,
        Err(Error::UnknownRun(4242))
    ));
    assert!(matches!(
        store.finish_run(4242).await,
        Err(Error::UnknownRun(4242))
    ));
    let run = store.start_run(&dbs(&["db1"])).await.expect("run");
    let mut mixed = small("db1");
    mixed.accounts.push(account("db2", "u9", "intruder"));
    assert!(matches!(
        store.commit_database(run, &mixed, &stats(2)).await,
        Err(Error::InvalidSnapshot(_))
    ));
    assert!(store
        .database_statuses()
        .await
        .expect("statuses")
        .is_empty());

    // Repeated keys are stored once.
    let mut dup = small("db1");
    dup.accounts.push(account("db1", "u1", "ada-again"));
    dup.memberships.push(membership("db1", "g1", "u1"));
    let counts = store
        .commit_database(run, &dup, &stats(2))
        .await
        .expect("commit");
    assert_eq!((counts.accounts_added, counts.memberships_added), (3, 4));
    assert_eq!(
        store.load_database("db1").await.expect("load"),
        sorted(small("db1"))
    );
}

/// Renames a table behind the store's back, to make a commit fail halfway.
async fn rename_table(ctx: &Ctx, from: &str, to: &str) {
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    match ctx.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url)
                .await
                .expect("connect");
            sqlx::query(&sql).execute(&mut c).await.expect("rename");
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url)
                .await
                .expect("connect");
            sqlx::query(&sql).execute(&mut c).await.expect("rename");
        }
    }
}

async fn a_failed_commit_writes_nothing(ctx: Ctx) {
    let store = &ctx.store;
    let s = small("db1");
    let r1 = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(r1, &s, &stats(2))
        .await
        .expect("commit");
    let before = store.database_statuses().await.expect("st");
    tick().await;

    // The change log is written after all the data: hiding its table makes the commit fail at
    // the last moment, with every data write already done inside the transaction.
    rename_table(&ctx, "changes", "changes_hidden").await;
    let mut v2 = s.clone();
    v2.accounts.remove(0);
    v2.accounts.push(account("db1", "u8", "hugo"));
    v2.memberships.push(membership("db1", "g2", "u8"));
    let r2 = store.start_run(&dbs(&["db1"])).await.expect("run");
    let err = store
        .commit_database(r2, &v2, &stats(2))
        .await
        .expect_err("the commit must fail");
    assert!(matches!(err, Error::Database(_)), "{err}");
    assert!(
        !err.to_string().contains("hugo"),
        "no data in messages: {err}"
    );

    assert_eq!(
        store.load_database("db1").await.expect("load"),
        sorted(s.clone())
    );
    assert_eq!(store.database_statuses().await.expect("st"), before);
    assert!(store
        .run(r2)
        .await
        .expect("run")
        .expect("r2")
        .databases
        .is_empty());
    for r in store.account_history("db1").await.expect("history") {
        assert_eq!(r.presence.updated_run, r1);
    }

    rename_table(&ctx, "changes_hidden", "changes").await;
    let counts = store
        .commit_database(r2, &v2, &stats(2))
        .await
        .expect("commit");
    assert_eq!((counts.accounts_added, counts.accounts_removed), (1, 1));
    assert_eq!(store.load_database("db1").await.expect("load"), sorted(v2));
}

async fn concurrent_commits_of_one_database_are_serialized(ctx: Ctx) {
    let base = small("db1");
    let r0 = ctx.store.start_run(&dbs(&["db1"])).await.expect("run");
    ctx.store
        .commit_database(r0, &base, &stats(2))
        .await
        .expect("baseline");

    // Four writers, each its own store instance (as separate processes would be), each
    // committing a variant with one extra account of its own.
    let n = 4;
    let mut tasks = Vec::new();
    let mut variants = Vec::new();
    for i in 0..n {
        let mut v = base.clone();
        v.accounts
            .push(account("db1", &format!("x{i}"), &format!("extra{i}")));
        variants.push(sorted(v.clone()));
        let store = ctx.reopen().await;
        tasks.push(tokio::spawn(async move {
            let run = store.start_run(&["db1".to_owned()]).await.expect("run");
            let counts = store
                .commit_database(run, &v, &stats(2))
                .await
                .expect("commit");
            store.close().await;
            counts
        }));
    }
    let mut added = 0;
    let mut removed = 0;
    for t in tasks {
        let c = t.await.expect("task");
        added += c.accounts_added;
        removed += c.accounts_removed;
    }
    // Each commit saw the one before it: the final state is exactly one variant, and every
    // commit but the first removed its predecessor's extra account.
    let last = ctx.store.load_database("db1").await.expect("load");
    assert!(variants.contains(&last), "lost update: {:?}", last.accounts);
    assert_eq!((added, removed), (n, n - 1));
    let logged = all_changes(&ctx.store).await;
    assert_eq!(logged.len() as u64, added + removed);
}

/// A database's stored state once nothing can change it any more, checked against its status
/// row (the counts the same commit wrote).
///
/// A commit cut off after its `COMMIT` had reached the database still lands: its connection is
/// closed only after the statement (SQLite's worker thread, or the PostgreSQL server, finishes
/// it). That is still one whole state, but two reads just after the abort can straddle it: the
/// data read before, the status row after (seen once in CI: 9,000 memberships loaded, 8,700 in
/// the status). So a write goes first, which on SQLite waits for the file's write lock and with
/// it for such a commit, and then the state and status are read until two reads a moment apart
/// agree with each other; a mix that stays fails the test at the deadline.
async fn settled(store: &store::Store, db: &str) -> DatabaseSnapshot {
    store
        .start_run(&dbs(&[db]))
        .await
        .expect("a write after the abort");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut previous: Option<DatabaseSnapshot> = None;
    loop {
        let loaded = store.load_database(db).await.expect("load");
        let statuses = store.database_statuses().await.expect("statuses");
        let status = statuses
            .iter()
            .find(|s| s.database == db)
            .expect("the database has a status");
        let consistent = status.account_count as usize == loaded.accounts.len()
            && status.membership_count as usize == loaded.memberships.len();
        if consistent && previous.as_ref() == Some(&loaded) {
            return loaded;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not settle: status {} accounts / {} memberships, loaded {} / {}",
            status.account_count,
            status.membership_count,
            loaded.accounts.len(),
            loaded.memberships.len()
        );
        previous = consistent.then_some(loaded);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A commit cut off at an arbitrary point (its task aborted, as a killed process would be)
/// leaves either the old state or the new one, never a mix, and the store keeps working.
async fn an_interrupted_commit_leaves_one_state_or_the_other(ctx: Ctx) {
    let store = &ctx.store;
    let a = sorted(store::synthetic::snapshot("db1", 3_000, 30, 9_000, 1));
    let b = sorted(store::synthetic::mutate(&a, 0.2, 2));
    let r0 = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(r0, &a, &stats(2))
        .await
        .expect("baseline");
    let mut current = a.clone();
    let mut seen_committed = false;
    let mut seen_cut = false;
    for delay_ms in [0u64, 1, 2, 4, 8, 16, 32, 64, 128, 256] {
        let next = if current == a { b.clone() } else { a.clone() };
        let handle = store.clone();
        let target = next.clone();
        let task = tokio::spawn(async move {
            let run = handle.start_run(&["db1".to_owned()]).await.expect("run");
            handle.commit_database(run, &target, &stats(2)).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        task.abort();
        let finished = matches!(task.await, Ok(Ok(_)));
        let loaded = settled(store, "db1").await;
        if loaded == next {
            seen_committed = true;
            current = next;
        } else {
            assert!(!finished, "a finished commit must be visible");
            assert_eq!(loaded, current, "a cut commit leaves the old state");
            seen_cut = true;
        }
    }
    assert!(
        seen_cut,
        "no commit was interrupted; the test proves nothing"
    );
    // The store still works: a last commit goes through and the log matches it.
    let run = store.start_run(&dbs(&["db1"])).await.expect("run");
    let target = if current == a { b } else { a };
    let counts = store
        .commit_database(run, &target, &stats(2))
        .await
        .expect("commit");
    assert!(counts.total > 0);
    assert_eq!(store.load_database("db1").await.expect("load"), target);
    let _ = seen_committed;
}

/// First harvest of a large database, then a second after 1% changed. The figures go to stdout
/// (`cargo test -- --nocapture`). The default size fits a debug-build CI run; set
/// `IDGRAPH_BULK_ACCOUNTS=100000` (with five memberships per account, as below) for the full
/// measurement, ideally with `--release`.
async fn bulk_harvest_throughput(ctx: Ctx) {
    let accounts: usize = std::env::var("IDGRAPH_BULK_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let memberships = accounts * 5;
    let groups = (accounts / 50).max(10);
    let store = &ctx.store;
    let first = store::synthetic::snapshot("bulk", accounts, groups, memberships, 1);
    let rows = first.accounts.len() + first.groups.len() + first.memberships.len();

    let r1 = store.start_run(&dbs(&["bulk"])).await.expect("run");
    let t = std::time::Instant::now();
    let counts = store
        .commit_database(r1, &first, &stats(2))
        .await
        .expect("commit");
    let first_s = t.elapsed().as_secs_f64();
    assert_eq!(counts.accounts_added as usize, accounts);
    assert_eq!(counts.memberships_added as usize, memberships);
    println!(
        "{:?}: first harvest of {accounts} accounts, {groups} groups, {memberships} memberships: \
         {rows} rows in {first_s:.2}s = {:.0} rows/s",
        ctx.backend,
        rows as f64 / first_s
    );

    let second = store::synthetic::mutate(&first, 0.01, 2);
    let r2 = store.start_run(&dbs(&["bulk"])).await.expect("run");
    let t = std::time::Instant::now();
    let counts = store
        .commit_database(r2, &second, &stats(2))
        .await
        .expect("commit");
    let second_s = t.elapsed().as_secs_f64();
    println!(
        "{:?}: second harvest after 1% changed: {} change rows in {second_s:.2}s",
        ctx.backend, counts.total
    );
    assert!(counts.accounts_changed > 0 && counts.accounts_removed > 0);
    assert!(counts.memberships_added > 0 && counts.memberships_removed > 0);
    assert_eq!(all_changes(store).await.len() as u64, counts.total);
    // Only the difference was written: every other row still carries the first run.
    let rewritten = store
        .account_history("bulk")
        .await
        .expect("history")
        .iter()
        .filter(|r| r.presence.updated_run == r2)
        .count() as u64;
    assert_eq!(
        rewritten,
        counts.accounts_added + counts.accounts_removed + counts.accounts_changed
    );
    let rewritten = store
        .membership_history("bulk")
        .await
        .expect("history")
        .iter()
        .filter(|r| r.presence.updated_run == r2)
        .count() as u64;
    assert_eq!(
        rewritten,
        counts.memberships_added + counts.memberships_removed
    );

    let t = std::time::Instant::now();
    let state = store.load_state().await.expect("state");
    println!(
        "{:?}: load_state of {} accounts and {} memberships in {:.2}s",
        ctx.backend,
        state.accounts.len(),
        state.memberships.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(state.accounts.len(), second.accounts.len());
    assert_eq!(state.memberships.len(), second.memberships.len());
    assert_eq!(
        store.load_database("bulk").await.expect("load"),
        sorted(second)
    );
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = store::Store::connect(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    assert!(path.exists(), "the file is created");
    let run = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(run, &small("db1"), &stats(2))
        .await
        .expect("commit");
    let mut c = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .expect("pragma");
    assert_eq!(mode, "wal");
    store.close().await;
}

#[tokio::test]
async fn in_memory_sqlite_works_and_unknown_schemes_are_refused() {
    let store = store::Store::connect("sqlite::memory:")
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let run = store.start_run(&dbs(&["db1"])).await.expect("run");
    store
        .commit_database(run, &small("db1"), &stats(2))
        .await
        .expect("commit");
    // A write that fails inside its transaction must not cost the database its only connection.
    assert!(matches!(
        store.commit_database(4242, &small("db1"), &stats(2)).await,
        Err(Error::UnknownRun(4242))
    ));
    assert_eq!(
        store.load_database("db1").await.expect("load"),
        sorted(small("db1"))
    );
    store
        .set_meta("after", "failure")
        .await
        .expect("writes still work");
    assert!(matches!(
        store::Store::connect("mysql://localhost/x").await,
        Err(Error::UnsupportedUrl)
    ));
}

/// A first commit far larger than the connection's socket buffers, to a server that keeps
/// pausing its reads, finishes. Each pause fills the buffers, and the client's writes block
/// until the server reads again, tens of times in one `COPY`. Over TLS that is where a harvest
/// hung for good (sqlx-core 0.8.6, launchbadge/sqlx#4248, patched in vendor/sqlx-core): when
/// the socket turned writable between a blocked write and the wait for it, the connection
/// waited to become readable instead, and a server in the middle of a `COPY` has nothing to
/// say. The race is narrow, so passing here is not proof of the fix; the test keeps the path
/// covered, with a time-out rather than a hung suite. PostgreSQL on 127.0.0.1 negotiates TLS
/// when the server offers it (`sslmode=prefer`; Debian's default cluster does), and the test
/// prints which transport it ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_commit_to_a_server_slow_to_read_finishes() {
    common::run(Backend::Postgres, |ctx| async move {
        let conn = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&ctx.url)
            .await
            .expect("connect");
        let tls: Option<bool> =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_optional(&conn)
                .await
                .expect("pg_stat_ssl");
        println!("connection over TLS: {}", tls.unwrap_or(false));
        // The server pauses for 50 ms every 1,000 accounts.
        sqlx::raw_sql(
            "CREATE FUNCTION stall_at_first() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF right(NEW.user_id, 3) = '000' THEN PERFORM pg_sleep(0.05); END IF; RETURN NEW; END $$; \
             CREATE TRIGGER stall_at_first BEFORE INSERT ON accounts \
             FOR EACH ROW EXECUTE FUNCTION stall_at_first();",
        )
        .execute(&conn)
        .await
        .expect("trigger");
        conn.close().await;
        // About 60 MB of COPY data: far more than loopback's socket buffers hold.
        let pad = "x".repeat(600);
        let accounts: Vec<_> = (0..80_000)
            .map(|i| {
                let mut a = account("big", &format!("U{i:06}"), &format!("user{i}"));
                a.raw = json!({"id": a.user_id, "pad": pad}).into();
                a
            })
            .collect();
        let snapshot = DatabaseSnapshot {
            database: "big".into(),
            accounts,
            groups: vec![],
            memberships: vec![],
            workspaces: None,
            workspace_entries: None,
        };
        let store = &ctx.store;
        let run = store.start_run(&dbs(&["big"])).await.expect("run");
        let t = std::time::Instant::now();
        let counts = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            store.commit_database(run, &snapshot, &stats(80)),
        )
        .await
        .expect("the commit hung: no progress in 120 s")
        .expect("commit");
        println!("committed in {:.1}s", t.elapsed().as_secs_f64());
        assert_eq!(counts.accounts_added, 80_000);
        assert_eq!(
            store.load_database("big").await.expect("load").accounts.len(),
            80_000
        );
    })
    .await
}
