//! Every endpoint of the API summary, against the simulator over real HTTP.

mod support;

use imanage::{AddOutcome, Error, NewUser, Removal, UserPatch};
use secrecy::SecretString;
use support::*;

#[tokio::test]
async fn reads_return_what_the_simulator_holds() {
    let sim = start_firm(sim_config(3600), exact_firm(&[30], 12)).await;
    let client = admin(&sim, 7);
    let db = sim.handle.snapshot().remove(0);

    let (users, pages) = drain(client.list_users("db0")).await;
    assert_eq!(pages.len(), 5, "30 users in pages of 7");
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let want: Vec<&str> = db.users.keys().map(String::as_str).collect();
    assert_eq!(ids, want);
    // Every field of the summary's user object arrives and converts.
    let first = users[0].clone();
    let sim_first = &db.users[&first.id];
    assert_eq!(
        first.login_name.as_deref(),
        Some(sim_first.login_name.as_str())
    );
    assert_eq!(first.email, sim_first.email);
    assert_eq!(
        first.user_type.as_deref(),
        Some(sim_first.user_type.as_str())
    );
    assert_eq!(first.groups, vec!["grp_all"]);
    assert_eq!(first.created_date.as_deref(), Some("2016-03-14T09:21:07Z"));
    let account = first.clone().into_account("db0");
    assert_eq!(account.user_id, first.id);
    assert_eq!(account.active, sim_first.active);
    assert_eq!(
        account.raw.to_value()["login_name"],
        sim_first.login_name.as_str()
    );

    let got = client.get_user("db0", "usr_000003").await.expect("get");
    assert_eq!(got.login_name.as_deref(), Some("db0-user3"));
    assert_eq!(got.department.as_deref(), Some("Litigation"));

    let (groups, _) = drain(client.list_groups("db0")).await;
    let names: Vec<_> = groups
        .iter()
        .map(|g| (g.id.as_str(), g.name.as_deref(), g.member_count))
        .collect();
    assert_eq!(
        names,
        vec![
            ("grp_all", Some("Everyone"), Some(12)),
            ("grp_none", Some("Nobody"), Some(0))
        ]
    );

    let (members, pages) = drain(client.list_group_members("db0", "grp_all")).await;
    assert_eq!(pages.len(), 2);
    let member_ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let want: Vec<&str> = db.groups["grp_all"]
        .members
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(member_ids, want);
    let membership = members[0].clone().into_membership("db0", "grp_all");
    assert_eq!(membership.user_id, "usr_000000");

    let (none, pages) = drain(client.list_group_members("db0", "grp_none")).await;
    assert!(none.is_empty());
    assert_eq!(pages.len(), 1, "an empty list is one call");

    let found = client
        .find_users_by_login("db0", "DB0-USER4")
        .await
        .expect("find");
    assert_eq!(found.len(), 1, "case-insensitive");
    assert_eq!(found[0].id, "usr_000004");
    assert!(client
        .find_users_by_login("db0", "nobody")
        .await
        .expect("find")
        .is_empty());
}

#[tokio::test]
async fn unknown_things_are_not_found() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
    let client = admin(&sim, 1000);
    let err = client.get_user("db0", "usr_nope").await.expect_err("404");
    assert!(err.is_not_found(), "{err}");
    let err = client
        .get_user("nodb", "usr_000001")
        .await
        .expect_err("404");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = futures::TryStreamExt::try_collect::<Vec<_>>(client.list_users("nodb"))
        .await
        .expect_err("unknown database");
    assert!(err.is_not_found(), "{err}");
    assert!(matches!(
        client.get_user("db0", "..").await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn user_lifecycle_create_update_delete() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
    let client = admin(&sim, 1000);

    let mut new = NewUser::new("jsmith", "jsmith@acme.com", "Jane", "Smith");
    new.title = Some("Associate".into());
    new.phone = Some("+44 20 7946 0000".into());
    new.groups = Some(vec!["grp_all".into()]);
    new.password = Some(SecretString::from("correct horse battery staple"));
    let created = client.create_user("db0", &new).await.expect("create");
    assert!(created.is_active(), "the summary's default");
    assert_eq!(created.title.as_deref(), Some("Associate"));
    assert!(created.raw.to_value().get("password").is_none());
    let in_sim = sim.handle.snapshot().remove(0);
    assert!(in_sim.users.contains_key(&created.id));
    assert!(in_sim.groups["grp_all"].members.contains(&created.id));

    // A second create with the same login is a conflict, not a second account.
    let err = client.create_user("db0", &new).await.expect_err("409");
    assert!(matches!(err, Error::Conflict { .. }), "{err}");

    // Only the supplied fields change; a cleared field becomes null; the rest stays.
    let patch = UserPatch::default()
        .active(false)
        .title("Senior Associate")
        .clear_phone();
    let updated = client
        .update_user("db0", &created.id, &patch)
        .await
        .expect("patch");
    assert_eq!(updated.active, Some(false));
    assert_eq!(updated.title.as_deref(), Some("Senior Associate"));
    assert_eq!(updated.phone, None);
    assert_eq!(updated.email.as_deref(), Some("jsmith@acme.com"));
    assert_eq!(updated.first_name.as_deref(), Some("Jane"));
    let in_sim = sim.handle.snapshot().remove(0);
    let u = &in_sim.users[&created.id];
    assert!(!u.active);
    assert_eq!(u.phone, None);
    assert_eq!(u.last_name, "Smith");

    // The deactivate-a-leaver scenario of the summary: find by login, then PATCH.
    let found = client
        .find_users_by_login("db0", "jsmith")
        .await
        .expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created.id);

    assert_eq!(
        client
            .delete_user("db0", &created.id)
            .await
            .expect("delete"),
        Removal::Removed
    );
    assert!(!sim.handle.snapshot()[0].users.contains_key(&created.id));
    let err = client
        .delete_user("db0", &created.id)
        .await
        .expect_err("gone");
    assert!(err.is_not_found(), "a plain 404 stays an error: {err}");
    assert_eq!(sim_calls(&sim, "user_delete"), 2);
}

#[tokio::test]
async fn group_membership_add_and_remove() {
    let sim = start_firm(sim_config(3600), exact_firm(&[5], 2)).await;
    let client = admin(&sim, 1000);

    assert_eq!(
        client
            .add_member("db0", "grp_none", "usr_000004")
            .await
            .expect("add"),
        AddOutcome::Added
    );
    assert!(sim.handle.snapshot()[0].groups["grp_none"]
        .members
        .contains("usr_000004"));
    assert_eq!(
        client
            .add_member("db0", "grp_none", "usr_000004")
            .await
            .expect("409 is an outcome"),
        AddOutcome::AlreadyMember
    );
    let err = client
        .add_member("db0", "grp_none", "usr_nope")
        .await
        .expect_err("unknown user");
    assert!(err.is_not_found(), "{err}");

    assert_eq!(
        client
            .remove_member("db0", "grp_none", "usr_000004")
            .await
            .expect("remove"),
        Removal::Removed
    );
    assert!(sim.handle.snapshot()[0].groups["grp_none"]
        .members
        .is_empty());
    let err = client
        .remove_member("db0", "grp_none", "usr_000004")
        .await
        .expect_err("not a member");
    assert!(err.is_not_found(), "{err}");
    let s = client.stats();
    assert_eq!(s.per_customer["db0"].write_checks, 0, "no answer was lost");
}

#[tokio::test]
async fn a_user_scope_client_reads_but_every_write_is_forbidden() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
    let client = reader(&sim);
    let (users, _) = drain(client.list_users("db0")).await;
    assert_eq!(users.len(), 3);

    let new = NewUser::new("x", "x@acme.com", "X", "Y");
    let results = [
        client.create_user("db0", &new).await.map(|_| ()),
        client
            .update_user("db0", "usr_000001", &UserPatch::default().active(false))
            .await
            .map(|_| ()),
        client.delete_user("db0", "usr_000001").await.map(|_| ()),
        client
            .add_member("db0", "grp_none", "usr_000001")
            .await
            .map(|_| ()),
        client
            .remove_member("db0", "grp_all", "usr_000000")
            .await
            .map(|_| ()),
    ];
    for r in results {
        let err = r.expect_err("forbidden");
        assert!(matches!(err, Error::Forbidden { .. }), "{err}");
        assert!(!err.is_retryable());
    }
    assert_eq!(sim.handle.stats().forbidden, 5);
    assert_eq!(sim.handle.snapshot()[0].users.len(), 3, "nothing changed");
}

#[tokio::test]
async fn bad_credentials_are_an_auth_error_without_the_secret() {
    let sim = start_firm(sim_config(3600), exact_firm(&[1], 1)).await;
    let client = imanage::Client::new(config_for(&sim.base_url(), ADMIN_ID, "wrong-secret-5b1d"))
        .expect("config");
    let err = client.get_user("db0", "usr_000000").await.expect_err("401");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    let text = format!("{err} {err:?} {client:?}");
    assert!(!text.contains("wrong-secret-5b1d"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert_eq!(
        sim_calls(&sim, "user_get"),
        0,
        "no API call without a token"
    );
}

#[tokio::test]
async fn requested_scopes_narrow_the_token() {
    let sim = start_firm(sim_config(3600), exact_firm(&[2], 1)).await;
    // The admin client asks for `user` only: least privilege on request.
    let client = imanage::Client::new(imanage::ClientConfig {
        scopes: vec!["user".into()],
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    client.get_user("db0", "usr_000001").await.expect("read");
    let err = client
        .delete_user("db0", "usr_000001")
        .await
        .expect_err("no admin scope");
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
}
