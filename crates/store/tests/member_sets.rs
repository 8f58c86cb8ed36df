//! Member sets (`migrations/*/20261128000001_member_sets.sql`): a commit reads the stored
//! memberships only of the users whose digest of groups changed. These tests would fail if a
//! changed user were skipped: every commit is made twice, into database `a` (digests) and into
//! database `b`, whose member sets are wiped before each commit so that it reads every stored
//! membership, as every commit did before the migration. Both must log the same changes, hold the
//! same memberships, and match what each step changed.
//!
//! Accounts' core hashes (`migrations/*/20261128000003_account_core_hash.sql`) are tested the same
//! way: an account whose only change is its group list is rewritten without being compared, so
//! `b`'s core hashes are wiped before each commit, as if its rows predated the migration, and
//! both databases must log the same field-level changes and hold the same accounts.

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
    accounts_whose_only_change_is_their_groups_are_not_compared,
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

/// Every change one run logged for one database.
async fn logged(ctx: &Ctx, run: RunId, db: &str) -> Vec<store::Change> {
    ctx.store
        .changes(&ChangeQuery {
            limit: 10_000,
            ..ChangeQuery::default()
        })
        .await
        .expect("changes")
        .into_iter()
        .filter(|c| c.run_id == run && c.database == db)
        .collect()
}

/// The changes one run logged for one database: kind, user, group.
async fn changes(ctx: &Ctx, run: RunId, db: &str) -> BTreeSet<Key> {
    logged(ctx, run, db)
        .await
        .into_iter()
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
            row.raw
                .update(|v| v["name"] = serde_json::json!(format!("{g} renamed")));
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

type FullKey = (
    ChangeKind,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Every column of the changes one run logged for one database.
async fn full_changes(ctx: &Ctx, run: RunId, db: &str) -> BTreeSet<FullKey> {
    logged(ctx, run, db)
        .await
        .into_iter()
        .map(|c| {
            (
                c.kind,
                c.user_id,
                c.group_id,
                c.field,
                c.old_value,
                c.new_value,
            )
        })
        .collect()
}

/// A snapshot of `db` with users u1..u4 and groups g1..g3 whose accounts carry their groups (in
/// `groups` and in the raw object, as the API reports them), then `edit` applied to each account.
fn snapshot_with_groups(
    db: &str,
    members: &[(&str, &[&str])],
    edit: &(dyn Fn(&mut model::Account) + Sync),
) -> DatabaseSnapshot {
    let mut s = snapshot(db, &["g1", "g2", "g3"], members);
    s.accounts.truncate(4);
    for a in &mut s.accounts {
        a.groups = members
            .iter()
            .filter(|(_, us)| us.contains(&a.user_id.as_str()))
            .map(|(g, _)| (*g).to_owned())
            .collect();
        let groups = serde_json::json!(a.groups);
        a.raw.update(|v| v["groups"] = groups);
        edit(a);
    }
    s
}

/// Commits the same content into `a` (core hashes kept) and `b` (core hashes wiped first, so
/// every account whose hash differs is compared in full), checks that both logged the same
/// changes and hold the snapshot's accounts, and returns `a`'s changes.
async fn commit_accounts_both(
    ctx: &Ctx,
    members: &[(&str, &[&str])],
    edit: &(dyn Fn(&mut model::Account) + Sync),
) -> BTreeSet<FullKey> {
    let run = ctx
        .store
        .start_run(&["a".into(), "b".into()])
        .await
        .expect("run");
    exec(
        ctx,
        &["UPDATE accounts SET core_hash = NULL, core_for = NULL WHERE database = 'b'"],
    )
    .await;
    let mut found = Vec::new();
    for db in ["a", "b"] {
        let s = snapshot_with_groups(db, members, edit);
        ctx.store
            .commit_database(run, &s, &stats())
            .await
            .expect("commit");
        let stored = ctx.store.load_database(db).await.expect("load");
        assert_eq!(stored.accounts, sorted(s.clone()).accounts, "{db}");
        assert_eq!(stored.memberships, sorted(s).memberships, "{db}");
        found.push(full_changes(ctx, run, db).await);
    }
    assert_eq!(
        found[0], found[1],
        "core hashes must log what comparing every changed account logs"
    );
    tick().await;
    found.swap_remove(0)
}

fn field_change(kind: ChangeKind, u: &str, field: &str, old: &str, new: &str) -> FullKey {
    (
        kind,
        Some(u.to_owned()),
        None,
        Some(field.to_owned()),
        Some(old.to_owned()),
        Some(new.to_owned()),
    )
}

fn membership_change(kind: ChangeKind, g: &str, u: &str) -> FullKey {
    (
        kind,
        Some(u.to_owned()),
        Some(g.to_owned()),
        None,
        None,
        None,
    )
}

async fn accounts_whose_only_change_is_their_groups_are_not_compared(ctx: Ctx) {
    use ChangeKind::{AccountChanged, MembershipAdded, MembershipRemoved};
    let none = |_: &mut model::Account| {};
    let v1: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2"]),
        ("g2", &["u1", "u3"]),
        ("g3", &["u4"]),
    ];
    assert!(commit_accounts_both(&ctx, v1, &none).await.is_empty());

    // u1 leaves g2: its account changes only in its groups, which log as the membership only.
    let v2: &[(&str, &[&str])] = &[("g1", &["u1", "u2"]), ("g2", &["u3"]), ("g3", &["u4"])];
    let expected: BTreeSet<FullKey> = [membership_change(MembershipRemoved, "g2", "u1")]
        .into_iter()
        .collect();
    assert_eq!(commit_accounts_both(&ctx, v2, &none).await, expected);

    // u2 joins g3 and changes its email in the same harvest: both are logged.
    let v3: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2"]),
        ("g2", &["u3"]),
        ("g3", &["u2", "u4"]),
    ];
    let email = |a: &mut model::Account| {
        if a.user_id == "u2" {
            a.email = Some("new2@firm.test".into());
        }
    };
    let expected: BTreeSet<FullKey> = [
        membership_change(MembershipAdded, "g3", "u2"),
        field_change(
            AccountChanged,
            "u2",
            "email",
            "user2@firm.test",
            "new2@firm.test",
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(commit_accounts_both(&ctx, v3, &email).await, expected);

    // u3 joins g1 and its raw object gains an entry (no known field): logged as `raw`.
    let v4: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2", "u3"]),
        ("g2", &["u3"]),
        ("g3", &["u2", "u4"]),
    ];
    let raw = |a: &mut model::Account| {
        email(a);
        if a.user_id == "u3" {
            a.raw.update(|v| v["extension"] = serde_json::json!(42));
        }
    };
    let got = commit_accounts_both(&ctx, v4, &raw).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&membership_change(MembershipAdded, "g1", "u3")));
    assert!(got.iter().any(|c| c.0 == AccountChanged
        && c.1.as_deref() == Some("u3")
        && c.3.as_deref() == Some("raw")));

    // u4 is deactivated and leaves g3.
    let v5: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2", "u3"]),
        ("g2", &["u3"]),
        ("g3", &["u2"]),
    ];
    let inactive = |a: &mut model::Account| {
        raw(a);
        if a.user_id == "u4" {
            a.active = false;
        }
    };
    let expected: BTreeSet<FullKey> = [
        membership_change(MembershipRemoved, "g3", "u4"),
        field_change(
            ChangeKind::AccountDeactivated,
            "u4",
            "active",
            "true",
            "false",
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(commit_accounts_both(&ctx, v5, &inactive).await, expected);

    // A binary older than the core hashes (still harvesting while a newer replica migrated the
    // store) rewrote u1's email and hash but left its core hash, which still matches the
    // snapshot's. Only distrust of that core hash finds the email change back.
    exec(
        &ctx,
        &["UPDATE accounts SET email = 'old1@firm.test', hash = hash + 1 WHERE user_id = 'u1'"],
    )
    .await;
    let v6: &[(&str, &[&str])] = &[
        ("g1", &["u1", "u2", "u3"]),
        ("g2", &["u3"]),
        ("g3", &["u1", "u2"]),
    ];
    let expected: BTreeSet<FullKey> = [
        membership_change(MembershipAdded, "g3", "u1"),
        field_change(
            AccountChanged,
            "u1",
            "email",
            "old1@firm.test",
            "user1@firm.test",
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(commit_accounts_both(&ctx, v6, &inactive).await, expected);

    // Every account `a` wrote carries a trusted core hash.
    let sql = "SELECT COUNT(*) FROM accounts WHERE database = 'a' AND core_for = hash";
    let trusted: i64 = match ctx.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&ctx.url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&ctx.url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
    };
    assert_eq!(trusted, 4);
}
