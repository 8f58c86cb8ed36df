//! Member sets (`migrations/*/20261128000001_member_sets.sql`): a commit reads the stored
//! memberships only of the users whose digest of groups changed. These tests would fail if a
//! changed user were skipped: every commit is made twice, into database `a` (digests) and into
//! database `b`, whose member sets are wiped before each commit so that it reads every stored
//! membership, as every commit did before the migration. Both must log the same changes, hold the
//! same memberships, and match what each step changed.

mod common;

use std::collections::BTreeSet;

use common::*;
use model::DatabaseSnapshot;
use sqlx::Connection;
use store::{Backend, ChangeKind, ChangeQuery, CrawlStats, RunId};

both_backends!(
    only_changed_users_are_read_and_nothing_is_missed,
    sets_written_before_the_migration_are_filled_in,
    sets_older_than_the_last_commit_are_not_trusted,
);

/// Runs statements on a connection of its own, as a migration or an operator would.
async fn exec(ctx: &Ctx, statements: &[&str]) {
    match ctx.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url)
                .await
                .expect("connect");
            for s in statements {
                sqlx::query(s).execute(&mut c).await.expect("statement");
            }
            c.close().await.expect("close");
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url)
                .await
                .expect("connect");
            for s in statements {
                sqlx::query(s).execute(&mut c).await.expect("statement");
            }
            c.close().await.expect("close");
        }
    }
}

/// Makes database `db` look as if its memberships were stored before the migration.
async fn forget_member_sets(ctx: &Ctx, db: &str) {
    exec(
        ctx,
        &[
            &format!("DELETE FROM member_sets WHERE database = '{db}'"),
            &format!("UPDATE databases SET member_sets = FALSE WHERE database = '{db}'"),
        ],
    )
    .await;
}

async fn member_set_rows(ctx: &Ctx, db: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM member_sets WHERE database = '{db}'");
    match ctx.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url)
                .await
                .expect("connect");
            sqlx::query_scalar(&sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url)
                .await
                .expect("connect");
            sqlx::query_scalar(&sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
    }
}

fn stats() -> CrawlStats {
    CrawlStats::default()
}

type Key = (ChangeKind, Option<String>, Option<String>);

/// The changes one run logged for one database: kind, user, group.
async fn changes(ctx: &Ctx, run: RunId, db: &str) -> BTreeSet<Key> {
    ctx.store
        .changes(&ChangeQuery {
            limit: 10_000,
            ..ChangeQuery::default()
        })
        .await
        .expect("changes")
        .into_iter()
        .filter(|c| c.run_id == run && c.database == db)
        .map(|c| (c.kind, c.user_id, c.group_id))
        .collect()
}

fn added(g: &str, u: &str) -> Key {
    (
        ChangeKind::MembershipAdded,
        Some(u.to_owned()),
        Some(g.to_owned()),
    )
}

fn removed(g: &str, u: &str) -> Key {
    (
        ChangeKind::MembershipRemoved,
        Some(u.to_owned()),
        Some(g.to_owned()),
    )
}

fn group_key(kind: ChangeKind, g: &str) -> Key {
    (kind, None, Some(g.to_owned()))
}

/// A snapshot of database `db`: users u1..u6, the named groups, the memberships as
/// `(group, [users])`.
fn snapshot(db: &str, groups: &[&str], members: &[(&str, &[&str])]) -> DatabaseSnapshot {
    DatabaseSnapshot {
        database: db.into(),
        accounts: (1..=6)
            .map(|i| account(db, &format!("u{i}"), &format!("user{i}")))
            .collect(),
        groups: groups.iter().map(|g| group(db, g, g)).collect(),
        memberships: members
            .iter()
            .flat_map(|(g, us)| us.iter().map(move |u| membership(db, g, u)))
            .collect(),
        workspaces: None,
        workspace_entries: None,
    }
}

/// Commits the same content into `a` (member sets kept) and `b` (member sets wiped first, so
/// every stored membership is read), checks that both logged the same changes and hold the
/// snapshot's memberships and count, and returns `a`'s changes.
async fn commit_both(
    ctx: &Ctx,
    groups: &[&str],
    members: &[(&str, &[&str])],
    rename: Option<&str>,
) -> BTreeSet<Key> {
    let run = ctx
        .store
        .start_run(&["a".into(), "b".into()])
        .await
        .expect("run");
    forget_member_sets(ctx, "b").await;
    let mut found = Vec::new();
    for db in ["a", "b"] {
        let mut s = snapshot(db, groups, members);
        if let Some(g) = rename {
            let row = s
                .groups
                .iter_mut()
                .find(|x| x.group_id == g)
                .expect("group to rename");
            row.name = Some(format!("{g} renamed"));
            row.raw["name"] = serde_json::json!(format!("{g} renamed"));
        }
        ctx.store
            .commit_database(run, &s, &stats())
            .await
            .expect("commit");
        let stored = ctx.store.load_database(db).await.expect("load");
        assert_eq!(stored.memberships, sorted(s.clone()).memberships, "{db}");
        let status = ctx
            .store
            .database_statuses()
            .await
            .expect("statuses")
            .into_iter()
            .find(|st| st.database == db)
            .expect("status");
        assert_eq!(status.membership_count, s.memberships.len() as i64, "{db}");
        found.push(changes(ctx, run, db).await);
    }
    assert_eq!(
        found[0], found[1],
        "member sets must log what reading every membership logs"
    );
    // Every user with a present membership has its set; no one else.
    let users: BTreeSet<&str> = members
        .iter()
        .flat_map(|(_, us)| us.iter().copied())
        .collect();
    assert_eq!(member_set_rows(ctx, "a").await, users.len() as i64);
    tick().await;
    found.swap_remove(0)
}

async fn only_changed_users_are_read_and_nothing_is_missed(ctx: Ctx) {
    let all = ["g1", "g2", "g3", "g4"];
    let v1: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2", "u3"]),
        ("g2", &["u1", "u4"]),
        ("g3", &["u2", "u5"]),
        ("g4", &["u6"]),
    ];
    assert!(
        commit_both(&ctx, &all, v1, None).await.is_empty(),
        "the baseline logs nothing"
    );

    // Unchanged: nothing.
    assert!(commit_both(&ctx, &all, v1, None).await.is_empty());

    // In g1, u2 removed and u4 added while g2 stays; g3 emptied (the group stays); g4 removed
    // with its only member, whose account stays.
    let v2: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u3", "u4"]),
        ("g2", &["u1", "u4"]),
        ("g3", &[]),
    ];
    let expected: BTreeSet<Key> = [
        removed("g1", "u2"),
        added("g1", "u4"),
        removed("g3", "u2"),
        removed("g3", "u5"),
        removed("g4", "u6"),
        group_key(ChangeKind::GroupRemoved, "g4"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        commit_both(&ctx, &["g1", "g2", "g3"], v2, None).await,
        expected
    );

    // u2 back in g1 and u5 back in g3 (re-added rows); g2 renamed with the same members; g4
    // back with u6.
    let v3: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2", "u3", "u4"]),
        ("g2", &["u1", "u4"]),
        ("g3", &["u5"]),
        ("g4", &["u6"]),
    ];
    let got = commit_both(&ctx, &all, v3, Some("g2")).await;
    let expected: BTreeSet<Key> = [
        added("g1", "u2"),
        added("g3", "u5"),
        added("g4", "u6"),
        group_key(ChangeKind::GroupAdded, "g4"),
        group_key(ChangeKind::GroupChanged, "g2"),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expected);

    // (g2 keeps its new name from here on.) A user moved between groups keeps the same number of groups: its digest still differs.
    let v4: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2", "u3", "u4"]),
        ("g2", &["u4", "u5"]),
        ("g3", &["u1"]),
        ("g4", &["u6"]),
    ];
    let expected: BTreeSet<Key> = [
        removed("g2", "u1"),
        added("g3", "u1"),
        added("g2", "u5"),
        removed("g3", "u5"),
    ]
    .into_iter()
    .collect();
    assert_eq!(commit_both(&ctx, &all, v4, Some("g2")).await, expected);

    // Every membership of the database gone.
    let expected: BTreeSet<Key> = [
        removed("g1", "u1"),
        removed("g1", "u2"),
        removed("g1", "u3"),
        removed("g1", "u4"),
        removed("g2", "u4"),
        removed("g2", "u5"),
        removed("g3", "u1"),
        removed("g4", "u6"),
    ]
    .into_iter()
    .collect();
    assert_eq!(commit_both(&ctx, &all, &[], Some("g2")).await, expected);
    assert_eq!(member_set_rows(&ctx, "a").await, 0);

    // And back.
    let got = commit_both(&ctx, &all, v1, Some("g2")).await;
    assert_eq!(got.len(), 8);
    assert!(got.iter().all(|k| k.0 == ChangeKind::MembershipAdded));
}

async fn sets_written_before_the_migration_are_filled_in(ctx: Ctx) {
    let all = ["g1", "g2", "g3"];
    let v1: &[(&str, &[&str])] = &[("g1", &["u1", "u2"]), ("g2", &["u1"]), ("g3", &["u3"])];
    commit_both(&ctx, &all, v1, None).await;
    // As if `a`'s memberships had been stored before the migration: no member sets, and the
    // database not marked as having them. The next commit must read every membership (a
    // missing set is not an empty one: u3's removal from g3 is found) and fill the sets in.
    forget_member_sets(&ctx, "a").await;
    let v2: &[(&str, &[&str])] = &[("g1", &["u1", "u2"]), ("g2", &["u1", "u4"])];
    let expected: BTreeSet<Key> = [removed("g3", "u3"), added("g2", "u4")]
        .into_iter()
        .collect();
    assert_eq!(commit_both(&ctx, &all, v2, None).await, expected);
    // From here on, the sets that commit wrote are used.
    let v3: &[(&str, &[&str])] = &[("g1", &["u2"]), ("g2", &["u1", "u4"]), ("g3", &["u3"])];
    let expected: BTreeSet<Key> = [removed("g1", "u1"), added("g3", "u3")]
        .into_iter()
        .collect();
    assert_eq!(commit_both(&ctx, &all, v3, None).await, expected);
}

async fn sets_older_than_the_last_commit_are_not_trusted(ctx: Ctx) {
    let all = ["g1", "g2"];
    let v1: &[(&str, &[&str])] = &[("g1", &["u1", "u2"]), ("g2", &["u1"])];
    commit_both(&ctx, &all, v1, None).await;
    // A commit by a binary that predates the member sets (still harvesting while a newer
    // replica migrated the store): it removed g1:u1 and moved the database's last complete
    // commit on, but left the sets as they were, so u1's stored set still says g1 and g2.
    for db in ["a", "b"] {
        exec(
            &ctx,
            &[
                &format!(
                    "UPDATE memberships SET present = FALSE WHERE database = '{db}' \
                     AND group_id = 'g1' AND user_id = 'u1'"
                ),
                &format!(
                    "UPDATE databases SET last_complete_at = last_complete_at + 1 \
                     WHERE database = '{db}'"
                ),
            ],
        )
        .await;
    }
    // u1 is back in g1: its digest equals the stale set's, so only distrust of the stale sets
    // finds the re-added membership.
    let expected: BTreeSet<Key> = [added("g1", "u1")].into_iter().collect();
    assert_eq!(commit_both(&ctx, &all, v1, None).await, expected);
    // And the sets written by that commit are trusted again.
    let v2: &[(&str, &[&str])] = &[("g1", &["u2"]), ("g2", &["u1"])];
    let expected: BTreeSet<Key> = [removed("g1", "u1")].into_iter().collect();
    assert_eq!(commit_both(&ctx, &all, v2, None).await, expected);
}
