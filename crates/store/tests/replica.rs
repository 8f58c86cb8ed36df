//! Several processes on one store: the harvest leadership, state-change notifications, the state
//! generation and abandoning one's own runs at shutdown. Each body runs on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use model::{AccountKey, OverrideKind};
use store::{Backend, CrawlStats, RunStatus, StateChanges};

both_backends!(
    one_harvest_leader_at_a_time,
    state_changes_are_announced_when_committed,
    abandon_own_runs_touches_only_this_instance,
    a_run_whose_owner_is_gone_holds_no_reader_back,
);

async fn one_harvest_leader_at_a_time(ctx: Ctx) {
    let other = ctx.reopen().await;
    let mut first = ctx
        .store
        .try_lead_harvest()
        .await
        .expect("try")
        .expect("the first asker leads");
    assert!(first.is_held().await);
    let second = other.try_lead_harvest().await.expect("try");
    match ctx.backend {
        Backend::Sqlite => {
            // One process per SQLite file: nothing to coordinate.
            assert!(second.is_some());
            return;
        }
        Backend::Postgres => assert!(second.is_none(), "two leaders at once"),
    }
    // Released: the other takes it at once, and the first cannot take it back.
    first.release().await;
    let taken = other
        .try_lead_harvest()
        .await
        .expect("try")
        .expect("free after the release");
    assert!(ctx.store.try_lead_harvest().await.expect("try").is_none());
    // A leader that vanishes (its session closes without unlocking, as when the process dies)
    // frees the leadership once the server notices the closed connection.
    drop(taken);
    let mut again = None;
    for _ in 0..100 {
        again = ctx.store.try_lead_harvest().await.expect("try");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.is_some(),
        "the leadership was not freed by a dropped session"
    );
    other.close().await;
}

/// The next notification's payload, within five seconds.
async fn next_payload(changes: &mut StateChanges) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(p) = changes.next().await.expect("listening") {
                return p;
            }
        }
    })
    .await
    .expect("a notification within five seconds")
}

async fn state_changes_are_announced_when_committed(ctx: Ctx) {
    let writer = ctx.reopen().await;
    let mut changes = ctx.store.state_changes().await.expect("listen");
    assert_eq!(changes.is_some(), ctx.backend == Backend::Postgres);
    let g0 = ctx.store.state_generation().await.expect("generation");

    // A failed crawl changes nothing a graph is built from: no new generation.
    let run = writer.start_run(&["db1".to_string()]).await.expect("run");
    writer
        .fail_database(run, "db1", &CrawlStats::default(), "down")
        .await
        .expect("fail");
    assert_eq!(ctx.store.state_generation().await.expect("generation"), g0);

    // A committed crawl, by another instance: announced, and a new generation.
    writer
        .commit_database(run, &small("db1"), &CrawlStats::default())
        .await
        .expect("commit");
    if let Some(c) = changes.as_mut() {
        assert_eq!(next_payload(c).await, "commit:db1");
    }
    let g1 = ctx.store.state_generation().await.expect("generation");
    assert_ne!(g1, g0);
    // The same database committed again (nothing changed in it) is still a new state.
    tick().await;
    writer
        .commit_database(run, &small("db1"), &CrawlStats::default())
        .await
        .expect("commit");
    if let Some(c) = changes.as_mut() {
        assert_eq!(next_payload(c).await, "commit:db1");
    }
    let g2 = ctx.store.state_generation().await.expect("generation");
    assert_ne!(g2, g1);
    // The writer's run is still under way: a reader holds back from publishing half of it.
    assert!(ctx.store.harvest_in_progress().await.expect("in progress"));
    writer.finish_run(run).await.expect("finish");
    if let Some(c) = changes.as_mut() {
        assert_eq!(next_payload(c).await, "run-finished");
    }
    assert!(!ctx.store.harvest_in_progress().await.expect("in progress"));

    // Overrides: added, added again (no change), removed.
    let (a, b) = (AccountKey::new("db1", "u1"), AccountKey::new("db1", "u2"));
    let o = writer
        .add_override(OverrideKind::CannotLink, &a, &b, None, None)
        .await
        .expect("add");
    if let Some(c) = changes.as_mut() {
        assert_eq!(next_payload(c).await, "override");
    }
    let g3 = ctx.store.state_generation().await.expect("generation");
    assert_ne!(g3, g2);
    writer
        .add_override(OverrideKind::CannotLink, &b, &a, None, None)
        .await
        .expect("add again");
    assert_eq!(ctx.store.state_generation().await.expect("generation"), g3);
    assert!(writer.remove_override(o.id, None).await.expect("remove"));
    if let Some(c) = changes.as_mut() {
        assert_eq!(next_payload(c).await, "override");
    }
    assert_ne!(ctx.store.state_generation().await.expect("generation"), g3);
    writer.close().await;
}

async fn a_run_whose_owner_is_gone_holds_no_reader_back(ctx: Ctx) {
    // Another instance harvests: readers wait for its run to end.
    let harvester = ctx.reopen().await;
    let run = harvester
        .start_run(&["db1".to_string()])
        .await
        .expect("run");
    assert!(ctx.store.harvest_in_progress().await.expect("in progress"));
    // It goes away without finishing (its lock goes with it, as with a process that dies):
    // readers stop waiting at once, not when the run has aged out.
    harvester.close().await;
    let mut waiting = true;
    for _ in 0..100 {
        waiting = ctx.store.harvest_in_progress().await.expect("in progress");
        if !waiting {
            break;
        }
        // PostgreSQL frees the lock when it notices the closed session.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !waiting,
        "a run of a closed instance still holds readers back"
    );
    // The next run marks it abandoned.
    ctx.store
        .start_run(&["db1".to_string()])
        .await
        .expect("run");
    let left = ctx.store.run(run).await.expect("run").expect("exists");
    assert_eq!(left.status, RunStatus::Abandoned);
}

async fn abandon_own_runs_touches_only_this_instance(ctx: Ctx) {
    let other = ctx.reopen().await;
    let mine = ctx
        .store
        .start_run(&["db1".to_string()])
        .await
        .expect("run");
    let theirs = other.start_run(&["db2".to_string()]).await.expect("run");
    let status = |id| {
        let s = ctx.store.clone();
        async move { s.run(id).await.expect("run").expect("exists").status }
    };
    // `other` started while `mine` was under way in a live instance: it left it alone.
    assert_eq!(status(mine).await, RunStatus::Running);
    assert_eq!(ctx.store.abandon_own_runs().await.expect("abandon"), 1);
    assert_eq!(status(mine).await, RunStatus::Abandoned);
    assert_eq!(status(theirs).await, RunStatus::Running);
    assert_eq!(ctx.store.abandon_own_runs().await.expect("abandon"), 0);
    other.close().await;
}
