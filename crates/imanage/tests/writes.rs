//! Writes whose outcome is unknown: a proxy in front of the simulator lets the simulator process
//! a write and then drops or replaces the answer, and the client must check before repeating.

mod support;

use imanage::{AddOutcome, Client, Error, NewUser, Removal};
use serde_json::json;
use support::*;

fn gateway_timeout() -> Resp {
    Resp::json(
        504,
        json!({"error": {"code": "unavailable", "message": "gateway timeout"}}),
    )
}

fn bad_gateway() -> Resp {
    Resp::json(
        502,
        json!({"error": {"code": "unavailable", "message": "bad gateway"}}),
    )
}

fn unavailable() -> Resp {
    Resp::json(
        503,
        json!({"error": {"code": "unavailable", "message": "try later"}}),
    )
}

async fn through(
    sim: &imanage_sim::RunningSim,
    handler: impl Fn(&Req) -> Action + Send + Sync + 'static,
) -> (TestServer, Client) {
    let proxy = serve(Some(sim.addr), handler).await;
    let client =
        Client::new(config_for(&proxy.base_url(), ADMIN_ID, ADMIN_SECRET)).expect("config");
    (proxy, client)
}

fn count(proxy: &TestServer, method: &str, path_end: &str) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|(m, t)| m == method && t.split('?').next().unwrap_or("").ends_with(path_end))
        .count()
}

fn logins(sim: &imanage_sim::RunningSim, login: &str) -> usize {
    sim.handle.snapshot()[0]
        .users
        .values()
        .filter(|u| u.login_name == login)
        .count()
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated() {
    for lost in [
        Action::DropAfterForward,
        Action::ReplaceAfterForward(gateway_timeout()),
    ] {
        let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
        let (proxy, client) = through(&sim, on_nth("POST", "/users", 1, lost.clone())).await;
        let new = NewUser::new("jsmith", "jsmith@acme.com", "Jane", "Smith");
        let user = client.create_user("db0", &new).await.expect("create");
        assert_eq!(user.login_name.as_deref(), Some("jsmith"));
        assert_eq!(logins(&sim, "jsmith"), 1, "{lost:?}: created once");
        assert!(sim.handle.snapshot()[0].users.contains_key(&user.id));
        assert_eq!(
            count(&proxy, "POST", "/users"),
            1,
            "{lost:?}: never sent twice"
        );
        assert_eq!(
            count(&proxy, "GET", "/users"),
            1,
            "{lost:?}: one login lookup"
        );
        assert_eq!(client.stats().total.write_checks, 1);
    }
}

#[tokio::test]
async fn a_create_that_never_arrived_is_sent_again_after_the_check() {
    for lost in [Action::DropBeforeForward, Action::Respond(bad_gateway())] {
        let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
        let (proxy, client) = through(&sim, on_nth("POST", "/users", 1, lost.clone())).await;
        let new = NewUser::new("jsmith", "jsmith@acme.com", "Jane", "Smith");
        client.create_user("db0", &new).await.expect("create");
        assert_eq!(logins(&sim, "jsmith"), 1, "{lost:?}");
        assert_eq!(
            count(&proxy, "POST", "/users"),
            2,
            "{lost:?}: checked, then repeated"
        );
        assert_eq!(count(&proxy, "GET", "/users"), 1);
        assert_eq!(sim_calls(&sim, "user_create"), 1);
    }
}

#[tokio::test]
async fn a_lost_create_that_finds_someone_elses_account_is_a_conflict() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
    // db0-user1 exists already, with other details than ours.
    let (proxy, client) =
        through(&sim, on_nth("POST", "/users", 1, Action::DropBeforeForward)).await;
    let new = NewUser::new("DB0-USER1", "someone.else@acme.com", "Some", "One");
    let err = client.create_user("db0", &new).await.expect_err("conflict");
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        count(&proxy, "POST", "/users"),
        1,
        "not repeated into a 409"
    );
    assert_eq!(sim.handle.snapshot()[0].users.len(), 3);
}

#[tokio::test]
async fn refusals_before_processing_are_retried_without_a_check() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
    let (proxy, client) = through(
        &sim,
        on_nth("POST", "/users", 2, Action::Respond(unavailable())),
    )
    .await;
    let new = NewUser::new("jsmith", "jsmith@acme.com", "Jane", "Smith");
    client.create_user("db0", &new).await.expect("create");
    assert_eq!(count(&proxy, "POST", "/users"), 3);
    assert_eq!(
        count(&proxy, "GET", "/users"),
        0,
        "503 means not processed: no check"
    );
    assert_eq!(client.stats().total.write_checks, 0);
    assert_eq!(logins(&sim, "jsmith"), 1);
}

#[tokio::test]
async fn an_add_whose_answer_was_lost_is_checked_in_the_member_list() {
    let sim = start_firm(sim_config(3600), exact_firm(&[5], 2)).await;
    let (proxy, client) = through(
        &sim,
        on_nth("POST", "/members", 1, Action::DropAfterForward),
    )
    .await;
    let outcome = client
        .add_member("db0", "grp_none", "usr_000003")
        .await
        .expect("add");
    assert_eq!(outcome, AddOutcome::Added);
    assert_eq!(count(&proxy, "POST", "/members"), 1, "not repeated");
    assert_eq!(count(&proxy, "GET", "/members"), 1, "checked");
    assert!(sim.handle.snapshot()[0].groups["grp_none"]
        .members
        .contains("usr_000003"));

    // Lost before it arrived: the check finds nothing and the add is sent again.
    let (proxy, client) = through(
        &sim,
        on_nth("POST", "/members", 1, Action::DropBeforeForward),
    )
    .await;
    let outcome = client
        .add_member("db0", "grp_none", "usr_000004")
        .await
        .expect("add");
    assert_eq!(outcome, AddOutcome::Added);
    assert_eq!(count(&proxy, "POST", "/members"), 2);
    assert_eq!(sim.handle.snapshot()[0].groups["grp_none"].members.len(), 2);
}

#[tokio::test]
async fn a_conflict_after_a_lost_add_means_added() {
    let sim = start_firm(sim_config(3600), exact_firm(&[5], 2)).await;
    // The first add is processed and its answer replaced by a 502; the check is made to miss
    // it (its answer is replaced with an empty list), so the add is repeated and meets a 409.
    let step = std::sync::Mutex::new(0);
    let (proxy, client) = through(&sim, move |req: &Req| {
        let mut step = step.lock().expect("step");
        let is_add = req.method == "POST" && req.path().ends_with("/members");
        let is_list = req.method == "GET" && req.path().ends_with("/members");
        match (*step, is_add, is_list) {
            (0, true, _) => {
                *step = 1;
                Action::ReplaceAfterForward(bad_gateway())
            }
            (1, _, true) => {
                *step = 2;
                Action::Respond(Resp::json(200, json!({"data": [], "total_results": 0})))
            }
            _ => Action::Forward,
        }
    })
    .await;
    let outcome = client
        .add_member("db0", "grp_none", "usr_000001")
        .await
        .expect("add");
    assert_eq!(
        outcome,
        AddOutcome::Added,
        "409 after a lost answer is ours, not AlreadyMember"
    );
    assert_eq!(count(&proxy, "POST", "/members"), 2);
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_checked_with_a_get() {
    let sim = start_firm(sim_config(3600), exact_firm(&[5], 2)).await;
    let (proxy, client) = through(
        &sim,
        on_nth("DELETE", "/users/usr_000002", 1, Action::DropAfterForward),
    )
    .await;
    let r = client
        .delete_user("db0", "usr_000002")
        .await
        .expect("delete");
    assert_eq!(r, Removal::AlreadyAbsent);
    assert_eq!(count(&proxy, "DELETE", "/users/usr_000002"), 1);
    assert_eq!(count(&proxy, "GET", "/users/usr_000002"), 1, "the check");
    assert!(!sim.handle.snapshot()[0].users.contains_key("usr_000002"));

    // Lost before it arrived: the GET finds the user, so the delete is sent again.
    let (proxy, client) = through(
        &sim,
        on_nth(
            "DELETE",
            "/users/usr_000003",
            1,
            Action::Respond(gateway_timeout()),
        ),
    )
    .await;
    let r = client
        .delete_user("db0", "usr_000003")
        .await
        .expect("delete");
    assert_eq!(r, Removal::Removed);
    assert_eq!(count(&proxy, "DELETE", "/users/usr_000003"), 2);
    assert!(!sim.handle.snapshot()[0].users.contains_key("usr_000003"));
}

#[tokio::test]
async fn a_remove_whose_answer_was_lost_is_settled_by_repeating_it() {
    let sim = start_firm(sim_config(3600), exact_firm(&[5], 3)).await;
    let (proxy, client) = through(
        &sim,
        on_nth("DELETE", "/members/usr_000001", 1, Action::DropAfterForward),
    )
    .await;
    let r = client
        .remove_member("db0", "grp_all", "usr_000001")
        .await
        .expect("remove");
    assert_eq!(r, Removal::AlreadyAbsent, "the repeat met a 404: done");
    assert_eq!(count(&proxy, "DELETE", "/members/usr_000001"), 2);
    assert!(!sim.handle.snapshot()[0].groups["grp_all"]
        .members
        .contains("usr_000001"));
    assert_eq!(sim_calls(&sim, "member_remove"), 2);
}
