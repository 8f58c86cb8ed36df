//! Admin operations end to end: the operator plans from the graph of a real harvest, applies
//! through the real client over HTTP against the simulator, records in a real store (a SQLite
//! file; PostgreSQL for the scenarios marked so), and the simulator's state afterwards is
//! compared with what the plan said, call by call.

mod support;

use graph::{Anomaly, Graph};
use harvest::{HarvestOptions, Harvester};
use imanage_sim::firm::{FirmSpec, SimDatabase, SimUser};
use imanage_sim::{ClientSpec, RunningSim, Sim, SimConfig};
use ops::{
    ApplyProgress, AuditQuery, Call, CallError, CallResult, OffboardOptions, OperationQuery,
    OperationReport, OperationStatus, Operator, OperatorOptions, ProblemKind, ProvisionInput, Step,
    StepState, UserRef,
};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use support::{assert_store_matches_sim, Backend, TestStore};

const ACTOR: &str = "admin:alice";
/// Short, so a test can wait out the lease of a crashed apply.
const LEASE: Duration = Duration::from_secs(1);

struct World {
    sim: RunningSim,
    store: TestStore,
    /// Reads for the test's own set-up and harvests (admin scopes).
    admin: Arc<imanage::Client>,
    operator: Operator,
    resolve: graph::ResolveConfig,
    databases: Vec<String>,
}

/// A small firm: four databases and a few hundred people, so each test harvests in well under
/// a second.
fn firm() -> FirmSpec {
    FirmSpec {
        seed: 11,
        databases: 4,
        people: 400,
        users_per_database: None,
        groups_per_database: None,
    }
}

fn make_client(sim: &RunningSim, id: &str, secret: &str) -> imanage::Client {
    imanage::Client::new(imanage::ClientConfig {
        base_url: url::Url::parse(&format!("http://{}", sim.addr)).unwrap(),
        client_id: id.into(),
        client_secret: SecretString::from(secret),
        // Failing fast keeps the failure tests short; the policy itself is the client's.
        retry: imanage::RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            budget: Duration::from_secs(2),
        },
        ..imanage::ClientConfig::default()
    })
    .expect("client config is valid")
}

/// A simulator, a store with every database harvested, and an operator whose iManage client is
/// `operator_client` (`admin` or `reader`, the latter with the `user` scope only).
async fn world(backend: Backend, operator_client: &str) -> World {
    let sim = Sim::new(SimConfig {
        firm: firm(),
        clients: vec![
            ClientSpec {
                id: "admin".into(),
                secret: "admin-secret".into(),
                scopes: vec!["admin".into(), "user".into()],
            },
            ClientSpec {
                id: "reader".into(),
                secret: "reader-secret".into(),
                scopes: vec!["user".into()],
            },
        ],
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .expect("simulator starts");
    let truth = sim.handle.truth();
    let admin = Arc::new(make_client(&sim, "admin", "admin-secret"));
    let operator_client = Arc::new(make_client(
        &sim,
        operator_client,
        &format!("{operator_client}-secret"),
    ));
    let store = TestStore::new(backend).await;
    let operator = Operator::new(
        operator_client,
        store.store.clone(),
        HarvestOptions::default(),
    )
    .with_options(OperatorOptions {
        lease: LEASE,
        reharvest: true,
    });
    let w = World {
        resolve: graph::ResolveConfig {
            email_domain_aliases: truth.email_domain_aliases.clone(),
            login_domain_aliases: vec![truth.login_domains.clone()],
            ..graph::ResolveConfig::default()
        },
        databases: truth.databases.clone(),
        sim,
        store,
        admin,
        operator,
    };
    w.harvest(&w.databases).await;
    w
}

impl World {
    async fn harvest(&self, databases: &[String]) {
        let report = Harvester::new(
            self.admin.clone(),
            self.store.store.clone(),
            HarvestOptions {
                databases: databases.to_vec(),
                ..HarvestOptions::default()
            },
        )
        .run(&())
        .await
        .expect("harvest runs");
        assert!(report.all_complete(), "harvest complete");
    }

    async fn graph(&self) -> Graph {
        ops::load_graph(&self.store.store, &self.resolve)
            .await
            .expect("graph loads")
    }

    fn snapshot(&self) -> BTreeMap<String, SimDatabase> {
        self.sim
            .handle
            .snapshot()
            .into_iter()
            .map(|d| (d.customer_id.clone(), d))
            .collect()
    }

    fn calls(&self, kind: &str) -> u64 {
        self.sim
            .handle
            .stats()
            .calls
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Every audit entry of one operation, in order.
    async fn audit_of(&self, id: i64) -> Vec<store::AuditRecord> {
        self.operator
            .audit(&AuditQuery {
                target: Some(format!("operation:{id}")),
                limit: 10_000,
                ..AuditQuery::default()
            })
            .await
            .expect("audit reads")
    }
}

/// One database's accounts by id and group members by group id.
type UsersAndGroups = (
    BTreeMap<String, SimUser>,
    BTreeMap<String, BTreeSet<String>>,
);

/// The users and groups of every database (what the operations write), without anything else
/// the simulator keeps.
fn users_and_groups(state: &BTreeMap<String, SimDatabase>) -> BTreeMap<String, UsersAndGroups> {
    state
        .iter()
        .map(|(db, d)| {
            let groups = d
                .groups
                .iter()
                .map(|(gid, g)| (gid.clone(), g.members.clone()))
                .collect();
            (db.clone(), (d.users.clone(), groups))
        })
        .collect()
}

/// Asserts that `after` is `before` with exactly the effects of the report's done steps, and
/// nothing else: every account, every field, every membership of every database.
fn assert_state_is_plan(
    before: &BTreeMap<String, SimDatabase>,
    after: &BTreeMap<String, SimDatabase>,
    report: &OperationReport,
) {
    let mut expected = users_and_groups(before);
    let actual = users_and_groups(after);
    let mut created: BTreeMap<u32, String> = BTreeMap::new();
    for step in report.steps_in(StepState::Done) {
        let (users, groups) = expected
            .get_mut(step.call.database())
            .expect("the step's database exists");
        match &step.call {
            Call::DeactivateUser { user_id, .. } => {
                if let Some(u) = users.get_mut(user_id) {
                    u.active = false;
                }
            }
            Call::ActivateUser { user_id, .. } => {
                users.get_mut(user_id).expect("user exists").active = true;
            }
            Call::RemoveMember {
                group_id, user_id, ..
            } => {
                groups
                    .get_mut(group_id)
                    .expect("group exists")
                    .remove(user_id);
            }
            Call::DeleteUser { user_id, .. } => {
                users.remove(user_id);
                for members in groups.values_mut() {
                    members.remove(user_id);
                }
            }
            Call::CreateUser {
                database,
                login,
                email,
                first_name,
                last_name,
            } => {
                let id = step
                    .result
                    .as_ref()
                    .and_then(CallResult::created_user_id)
                    .expect("a done create step records its user")
                    .to_string();
                assert!(!users.contains_key(&id), "{id} is new");
                let made = actual[database]
                    .0
                    .get(&id)
                    .expect("the created user exists");
                assert_eq!(
                    (
                        made.login_name.as_str(),
                        made.email.as_deref(),
                        made.first_name.as_str(),
                        made.last_name.as_str(),
                        made.active
                    ),
                    (
                        login.as_str(),
                        Some(email.as_str()),
                        first_name.as_str(),
                        last_name.as_str(),
                        true
                    )
                );
                users.insert(id.clone(), made.clone());
                created.insert(step.index, id);
            }
            Call::AddMember { group_id, user, .. } => {
                let uid = match user {
                    UserRef::Existing(id) => id.clone(),
                    UserRef::CreatedInStep(i) => created[i].clone(),
                };
                groups.get_mut(group_id).expect("group exists").insert(uid);
            }
        }
    }
    for (db, (users, groups)) in &expected {
        let (got_users, got_groups) = &actual[db];
        assert_eq!(
            got_users.keys().collect::<Vec<_>>(),
            users.keys().collect::<Vec<_>>(),
            "{db}: the accounts are what the plan said"
        );
        for (id, u) in users {
            assert_eq!(&got_users[id], u, "{db}/{id}: every field as the plan said");
        }
        assert_eq!(
            got_groups, groups,
            "{db}: the memberships are what the plan said"
        );
    }
}

/// The audit log of an operation holds: the plan, the apply's start, then one entry per call in
/// step order, each with the actor and its result, then the apply's end.
fn assert_audit_holds_every_call(audit: &[store::AuditRecord], report: &OperationReport) {
    let calls: Vec<&store::AuditRecord> = audit
        .iter()
        .filter(|e| e.action.starts_with("imanage."))
        .collect();
    let attempted: Vec<&ops::StepReport> = report
        .steps
        .iter()
        .filter(|s| s.state != StepState::NotAttempted)
        .collect();
    assert_eq!(
        calls.len(),
        attempted.len(),
        "one audit entry per call made (this report's single apply)"
    );
    for (entry, step) in calls.iter().zip(&attempted) {
        assert_eq!(entry.action, step.call.action());
        assert_eq!(entry.actor.as_deref(), Some(ACTOR));
        assert_eq!(entry.detail["step"], step.index);
        assert_eq!(entry.detail["request"], step.request.as_str());
        match step.state {
            StepState::Done => {
                let changed = step.result.as_ref().is_some_and(CallResult::changed);
                assert_eq!(entry.outcome, if changed { "ok" } else { "already" });
                assert!(!entry.detail["result"].is_null());
            }
            StepState::Failed => {
                assert_eq!(entry.outcome, "error");
                assert!(!entry.detail["error"].is_null());
            }
            _ => panic!("step {} left {:?}", step.index, step.state),
        }
    }
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| !e.action.starts_with("imanage."))
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("operation.plan", "planned"),
            ("operation.apply", "started"),
            ("operation.apply", report.status.as_str())
        ]
    );
}

/// The account count and memberships of a person, from the graph.
fn memberships(g: &Graph, person: &str) -> usize {
    g.person(person)
        .expect("person")
        .accounts()
        .map(|a| a.groups().count())
        .sum()
}

fn partly_active(g: &Graph) -> BTreeSet<String> {
    g.anomalies()
        .iter()
        .filter_map(|a| match a {
            Anomaly::PartlyActive { person } => Some(person.id().to_string()),
            _ => None,
        })
        .collect()
}

/// A person with an active account in every database, no identity conflict, and the most
/// memberships.
fn everywhere_person(g: &Graph, databases: usize) -> String {
    g.persons()
        .filter(|p| {
            p.accounts().filter(|a| a.active()).count() == databases
                && p.accounts()
                    .map(|a| a.database())
                    .collect::<BTreeSet<_>>()
                    .len()
                    == databases
                && p.conflicts().is_empty()
        })
        .max_by_key(|p| (memberships(g, p.id()), p.id().to_string()))
        .map(|p| p.id().to_string())
        .expect("the firm has a person in every database")
}

/// Offboarding a person with accounts in four databases and memberships in more than a dozen
/// groups, who is already deactivated in one of them (partly active): every account ends
/// inactive, every membership is gone, the audit log has every call, and the graph (re-harvested
/// by the operator, no manual harvest) shows it and no longer calls the person partly active.
async fn offboard_everywhere(backend: Backend) {
    let w = world(backend, "admin").await;
    let g = w.graph().await;
    let person = everywhere_person(&g, 4);
    let total_memberships = memberships(&g, &person);
    assert!(
        total_memberships >= 12,
        "{person} has {total_memberships} memberships"
    );
    // A leaver already deactivated in one database, by hand, as admins do today.
    let paris = g
        .person(&person)
        .unwrap()
        .accounts()
        .find(|a| a.database() == "acme-paris")
        .expect("an account in Paris")
        .user_id()
        .to_string();
    w.admin
        .update_user(
            "acme-paris",
            &paris,
            &imanage::UserPatch::default().active(false),
        )
        .await
        .unwrap();
    w.harvest(&["acme-paris".to_string()]).await;
    drop(g);
    let g = w.graph().await;
    assert!(partly_active(&g).contains(&person), "partly active before");

    let plan = w
        .operator
        .plan_offboard(&g, &person, OffboardOptions::default())
        .unwrap();
    let deactivations = plan
        .steps
        .iter()
        .filter(|s| matches!(s.call, Call::DeactivateUser { .. }))
        .count();
    let removals = plan
        .steps
        .iter()
        .filter(|s| matches!(s.call, Call::RemoveMember { .. }))
        .count();
    assert_eq!(deactivations, 3, "the three accounts still active");
    assert_eq!(removals, total_memberships, "every membership, Paris too");
    assert_eq!(plan.steps.len(), deactivations + removals, "no delete");

    let before = w.snapshot();
    let (updates, member_removes) = (w.calls("user_update"), w.calls("member_remove"));
    let report = w.operator.run(&plan, ACTOR, false, &()).await.unwrap();
    assert_eq!(
        report.status,
        OperationStatus::Completed,
        "{}",
        report.render()
    );
    assert_eq!(
        (report.done, report.failed, report.not_attempted),
        (plan.steps.len() as u64, 0, 0)
    );
    assert_state_is_plan(&before, &w.snapshot(), &report);
    assert_eq!(w.calls("user_update") - updates, 3, "one PATCH per account");
    assert_eq!(
        w.calls("member_remove") - member_removes,
        removals as u64,
        "one DELETE per membership"
    );
    assert_eq!(w.calls("user_delete"), 0);
    assert_audit_holds_every_call(&w.audit_of(report.id).await, &report);

    // The operator re-harvested the four databases: the graph shows the result.
    let harvest = report.harvest.as_ref().expect("re-harvested");
    assert_eq!(
        harvest
            .databases
            .iter()
            .filter(|d| d.complete)
            .map(|d| d.database.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "acme-frankfurt",
            "acme-london",
            "acme-newyork",
            "acme-paris"
        ])
    );
    assert_store_matches_sim(&w.store.store, &w.sim.handle).await;
    let g = w.graph().await;
    let p = g.person(&person).expect("same person id");
    assert_eq!(p.accounts().count(), 4);
    assert!(p.accounts().all(|a| !a.active()), "inactive everywhere");
    assert_eq!(memberships(&g, &person), 0, "in no group");
    assert!(
        !partly_active(&g).contains(&person),
        "no longer partly active"
    );

    // Past operations and the audit log answer queries.
    let listed = w
        .operator
        .operations(&OperationQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, report.id);
    assert_eq!(listed[0].done, plan.steps.len() as u64);
    let latest = w
        .operator
        .latest_audit(&AuditQuery {
            limit: 2,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        latest.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["imanage.member.remove", "operation.apply"],
        "the newest entries, oldest first"
    );
    // Running it again changes nothing and calls nothing.
    let calls = w.sim.handle.stats().total_calls();
    let again = w.operator.apply(report.id, ACTOR).await.unwrap();
    assert_eq!(again.status, OperationStatus::Completed);
    assert_eq!(w.sim.handle.stats().total_calls(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboard_everywhere_sqlite() {
    offboard_everywhere(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboard_everywhere_postgres() {
    offboard_everywhere(Backend::Postgres).await;
}

/// An active account in `database` of a person with no account in `missing`, a plain login
/// and an email, and no identity conflict.
fn person_in_not_in(g: &Graph, database: &str, missing: &str) -> (String, String, String) {
    g.persons()
        .filter(|p| p.conflicts().is_empty() && p.accounts().count() == 1)
        .filter_map(|p| {
            let a = p.accounts().next()?;
            let login = a.login_name()?;
            let plain = login.chars().all(|c| c.is_ascii_alphanumeric());
            (a.database() == database && a.active() && plain && a.email().is_some()).then(|| {
                (
                    p.id().to_string(),
                    login.to_string(),
                    a.user_id().to_string(),
                )
            })
        })
        .find(|(id, _, _)| {
            g.person(id)
                .unwrap()
                .accounts()
                .all(|a| a.database() != missing)
        })
        .expect("such a person")
}

/// The id of the group named `name` in `database` (a group with members).
fn group_id(g: &Graph, database: &str, name: &str) -> String {
    g.persons()
        .flat_map(|p| p.accounts().collect::<Vec<_>>())
        .filter(|a| a.database() == database)
        .flat_map(|a| a.groups().collect::<Vec<_>>())
        .find(|gr| gr.name() == Some(name))
        .map(|gr| gr.group_id().to_string())
        .expect("a group of that name with members")
}

/// Provisioning a new person into three databases and groups, and an existing person (with a
/// deactivated account) into a second database: accounts are created only where missing,
/// reused (and reactivated) where present, and the graph links the new accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_new_and_existing_persons() {
    let w = world(Backend::Sqlite, "admin").await;
    let g = w.graph().await;
    let all_staff = |db: &str| group_id(&g, db, "All Staff");
    let ny_all_staff = all_staff("acme-newyork");
    let (existing, login, london_id) = person_in_not_in(&g, "acme-london", "acme-newyork");
    let existing_email = g
        .account("acme-london", &london_id)
        .unwrap()
        .email()
        .unwrap()
        .to_string();
    let (first, last) = {
        let a = g.account("acme-london", &london_id).unwrap();
        (
            a.first_name().unwrap().to_string(),
            a.last_name().unwrap().to_string(),
        )
    };
    let london_groups: BTreeSet<String> = g
        .account("acme-london", &london_id)
        .unwrap()
        .groups()
        .map(|gr| gr.group_id().to_string())
        .collect();
    let london_new_group = g
        .persons()
        .flat_map(|p| p.accounts().collect::<Vec<_>>())
        .filter(|a| a.database() == "acme-london")
        .flat_map(|a| a.groups().collect::<Vec<_>>())
        .map(|gr| gr.group_id().to_string())
        .find(|gid| !london_groups.contains(gid))
        .expect("a London group the person is not in");
    let inputs = [
        ProvisionInput {
            login: "nhire".into(),
            email: "new.hire@acme.com".into(),
            first_name: "Nora".into(),
            last_name: "Hire".into(),
            databases: vec![
                "acme-london".into(),
                "acme-newyork".into(),
                "acme-paris".into(),
            ],
            groups: vec![
                ops::GroupTarget {
                    database: "acme-london".into(),
                    group_id: all_staff("acme-london"),
                },
                ops::GroupTarget {
                    database: "acme-paris".into(),
                    group_id: all_staff("acme-paris"),
                },
            ],
        },
        ProvisionInput {
            login: login.clone(),
            // The graph finds the person by email whatever its letter case.
            email: existing_email.to_uppercase(),
            first_name: first.clone(),
            last_name: last.clone(),
            databases: vec!["acme-london".into(), "acme-newyork".into()],
            groups: vec![
                ops::GroupTarget {
                    database: "acme-london".into(),
                    group_id: london_new_group.clone(),
                },
                ops::GroupTarget {
                    database: "acme-newyork".into(),
                    group_id: ny_all_staff.clone(),
                },
            ],
        },
    ];
    // The existing person left London once: provisioning brings the account back.
    w.admin
        .update_user(
            "acme-london",
            &london_id,
            &imanage::UserPatch::default().active(false),
        )
        .await
        .unwrap();
    w.harvest(&["acme-london".to_string()]).await;
    drop(g);
    let g = w.graph().await;

    let new_plan = w.operator.plan_provision(&g, inputs[0].clone()).unwrap();
    let creates: Vec<&str> = new_plan
        .steps
        .iter()
        .filter_map(|s| match &s.call {
            Call::CreateUser { database, .. } => Some(database.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(creates, ["acme-london", "acme-newyork", "acme-paris"]);
    assert_eq!(new_plan.steps.len(), 5, "{}", new_plan.render());

    let old_plan = w.operator.plan_provision(&g, inputs[1].clone()).unwrap();
    let calls: Vec<Call> = old_plan.steps.iter().map(|s| s.call.clone()).collect();
    let email = existing_email.to_uppercase();
    assert_eq!(
        calls,
        [
            Call::ActivateUser {
                database: "acme-london".into(),
                user_id: london_id.clone()
            },
            Call::CreateUser {
                database: "acme-newyork".into(),
                login: login.clone(),
                email: email.clone(),
                first_name: first.clone(),
                last_name: last.clone(),
            },
            Call::AddMember {
                database: "acme-london".into(),
                group_id: london_new_group.clone(),
                user: UserRef::Existing(london_id.clone()),
            },
            Call::AddMember {
                database: "acme-newyork".into(),
                group_id: ny_all_staff.clone(),
                user: UserRef::CreatedInStep(1),
            },
        ],
        "{}",
        old_plan.render()
    );

    for plan in [&new_plan, &old_plan] {
        let before = w.snapshot();
        let report = w.operator.run(plan, ACTOR, false, &()).await.unwrap();
        assert_eq!(
            report.status,
            OperationStatus::Completed,
            "{}",
            report.render()
        );
        assert_state_is_plan(&before, &w.snapshot(), &report);
        assert_audit_holds_every_call(&w.audit_of(report.id).await, &report);
    }
    assert_eq!(w.calls("user_create"), 4, "one POST per account created");
    assert_store_matches_sim(&w.store.store, &w.sim.handle).await;

    // The graph, from the operator's re-harvest: one person each, linked across databases.
    let g = w.graph().await;
    let hires = g.person_by_email("new.hire@acme.com");
    assert_eq!(hires.len(), 1);
    let dbs: BTreeSet<&str> = hires[0].accounts().map(|a| a.database()).collect();
    assert_eq!(
        dbs,
        BTreeSet::from(["acme-london", "acme-newyork", "acme-paris"])
    );
    let p = g
        .person(&existing)
        .expect("the existing person keeps their id");
    let dbs: BTreeSet<&str> = p.accounts().map(|a| a.database()).collect();
    assert_eq!(dbs, BTreeSet::from(["acme-london", "acme-newyork"]));
    assert!(p.accounts().all(|a| a.active()));

    // Provisioning again plans nothing: everything asked for is in place.
    let again = w.operator.plan_provision(&g, inputs[1].clone()).unwrap();
    assert!(again.steps.is_empty(), "{}", again.render());
    assert!(again
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::NothingToDo));
}

/// Syncing a group to a directory list written in whatever forms the directory uses: logins in
/// other letter cases and domain forms, emails in capitals. Entries that match no account, or
/// several, are reported and never guessed; members an ambiguous entry might mean are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_group_from_an_authoritative_list() {
    let w = world(Backend::Sqlite, "admin").await;
    let db = "acme-london";
    let g = w.graph().await;
    // A group of a workable size, not one of the firm-wide ones.
    let (gid, current) = {
        let mut candidates: Vec<(String, Vec<String>)> = BTreeSet::<String>::from_iter(
            g.persons()
                .flat_map(|p| p.accounts().collect::<Vec<_>>())
                .filter(|a| a.database() == db)
                .flat_map(|a| {
                    a.groups()
                        .map(|gr| gr.group_id().to_string())
                        .collect::<Vec<_>>()
                }),
        )
        .into_iter()
        .map(|gid| {
            let members = g
                .group(db, &gid)
                .unwrap()
                .members()
                .filter(|a| a.person().conflicts().is_empty())
                .map(|a| a.user_id().to_string())
                .collect::<Vec<_>>();
            (gid, members)
        })
        .filter(|(gid, m)| {
            (8..=40).contains(&m.len()) && m.len() == g.group(db, gid).unwrap().member_count()
        })
        .collect();
        candidates.sort();
        candidates.into_iter().next().expect("a mid-sized group")
    };
    let members: BTreeSet<String> = current.iter().cloned().collect();
    // Newcomers: active London accounts outside the group, with a plain login and no conflict.
    let outsiders: Vec<String> = g
        .persons()
        .filter(|p| p.conflicts().is_empty())
        .flat_map(|p| p.accounts().collect::<Vec<_>>())
        .filter(|a| {
            a.database() == db
                && a.active()
                && !members.contains(a.user_id())
                && a.email().is_some()
                && a.login_name()
                    .is_some_and(|l| l.chars().all(|c| c.is_ascii_alphanumeric()))
        })
        .map(|a| a.user_id().to_string())
        .take(4)
        .collect();
    assert_eq!(outsiders.len(), 4);
    // Two different people given one desk address: one a member who is not on the list, one
    // an outsider. The entry naming the address is ambiguous, so neither is touched.
    let shared = "front.desk@acme.com";
    let protected = current[current.len() - 1].clone();
    for uid in [&protected, &outsiders[3]] {
        w.admin
            .update_user(db, uid, &imanage::UserPatch::default().email(shared))
            .await
            .unwrap();
    }
    w.harvest(&[db.to_string()]).await;
    drop(g);
    let g = w.graph().await;

    let keep: Vec<String> = current[..current.len() / 2].to_vec();
    let account = |uid: &str| g.account(db, uid).expect("account");
    let mut list: Vec<String> = Vec::new();
    for (i, uid) in keep.iter().chain(&outsiders[..3]).enumerate() {
        let a = account(uid);
        let login = a.login_name().unwrap();
        let plain = login.chars().all(|c| c.is_ascii_alphanumeric());
        list.push(match (i % 3, a.email()) {
            (0, Some(email)) => email.to_uppercase(),
            (1, _) if plain => format!("ACME\\{login}"),
            _ => login.to_uppercase(),
        });
    }
    list.push("ghost@nowhere.example".into());
    list.push(shared.to_uppercase());
    list.push(String::new());

    let plan = w.operator.plan_sync_group(&g, db, &gid, &list).unwrap();
    let problems: Vec<(ProblemKind, String)> = plan
        .problems
        .iter()
        .filter(|p| p.kind != ProblemKind::InactiveAccount)
        .map(|p| (p.kind, p.subject.clone()))
        .collect();
    assert_eq!(
        problems,
        [
            (ProblemKind::Unresolved, "ghost@nowhere.example".to_string()),
            (ProblemKind::Ambiguous, shared.to_uppercase()),
        ],
        "{}",
        plan.render()
    );
    let added: BTreeSet<String> = outsiders[..3].iter().cloned().collect();
    let kept: BTreeSet<String> = keep.iter().cloned().collect();
    let removed: BTreeSet<String> = members
        .iter()
        .filter(|m| !kept.contains(*m) && **m != protected)
        .cloned()
        .collect();
    let planned_adds: BTreeSet<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.call {
            Call::AddMember {
                user: UserRef::Existing(u),
                ..
            } => Some(u.clone()),
            _ => None,
        })
        .collect();
    let planned_removals: BTreeSet<String> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.call {
            Call::RemoveMember { user_id, .. } => Some(user_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(planned_adds, added);
    assert_eq!(planned_removals, removed);

    let before = w.snapshot();
    let report = w.operator.run(&plan, ACTOR, false, &()).await.unwrap();
    assert_eq!(
        report.status,
        OperationStatus::Completed,
        "{}",
        report.render()
    );
    let after = w.snapshot();
    assert_state_is_plan(&before, &after, &report);
    let expected: BTreeSet<String> = kept
        .iter()
        .chain(&added)
        .chain([&protected])
        .cloned()
        .collect();
    assert_eq!(after[db].groups[&gid].members, expected);
    assert_audit_holds_every_call(&w.audit_of(report.id).await, &report);
    let g = w.graph().await;
    let in_graph: BTreeSet<String> = g
        .group(db, &gid)
        .unwrap()
        .members()
        .map(|a| a.user_id().to_string())
        .collect();
    assert_eq!(in_graph, expected, "the graph shows the synced group");
}

/// A dry run records the plan and calls nothing; the plan can be applied later by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_calls_nothing_and_can_be_applied_later() {
    let w = world(Backend::Sqlite, "admin").await;
    let g = w.graph().await;
    let person = everywhere_person(&g, 4);
    let plan = w
        .operator
        .plan_offboard(&g, &person, OffboardOptions::default())
        .unwrap();
    let stats = w.sim.handle.stats();
    let before = w.snapshot();
    let dry = w.operator.run(&plan, ACTOR, true, &()).await.unwrap();
    assert_eq!(w.sim.handle.stats(), stats, "not one call, not one token");
    assert_eq!(dry.status, OperationStatus::Planned);
    assert_eq!(dry.not_attempted, plan.steps.len() as u64);
    assert!(dry.harvest.is_none());
    assert!(dry
        .steps
        .iter()
        .all(|s| s.state == StepState::NotAttempted && s.attempts == 0));
    let planned = w
        .operator
        .operations(&OperationQuery {
            status: Some(OperationStatus::Planned),
            ..OperationQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].id, dry.id);

    let report = w.operator.apply(dry.id, ACTOR).await.unwrap();
    assert_eq!(report.status, OperationStatus::Completed);
    assert_state_is_plan(&before, &w.snapshot(), &report);
    let planned = w
        .operator
        .operations(&OperationQuery {
            status: Some(OperationStatus::Planned),
            ..OperationQuery::default()
        })
        .await
        .unwrap();
    assert!(planned.is_empty());
}

/// Panics right after the call of one step returned and before its outcome was recorded: a
/// process dying at the worst moment.
struct CrashAfterCall(u32);

impl ApplyProgress for CrashAfterCall {
    fn call_returned(&self, step: &Step, _outcome: &Result<CallResult, CallError>) {
        if step.index == self.0 {
            panic!("simulated crash after the call of step {}", step.index);
        }
    }
}

/// Applies `id` in a task of its own that crashes after step `at`'s call.
async fn crash_at(w: &World, id: i64, at: u32) {
    let operator = w.operator.clone();
    let crashed = tokio::spawn(async move {
        operator
            .apply_with(id, ACTOR, &CrashAfterCall(at))
            .await
            .map(|_| ())
    })
    .await;
    assert!(
        crashed.as_ref().is_err_and(|e| e.is_panic()),
        "the apply crashed: {crashed:?}"
    );
}

/// Crashes between a call and its record, twice (after a create, after an add), then re-runs:
/// the operation completes without a second user or a second membership, and every call the
/// simulator saw is one the plan listed.
async fn crash_and_rerun(backend: Backend) {
    let w = world(backend, "admin").await;
    let g = w.graph().await;
    let all_staff = |db: &str| group_id(&g, db, "All Staff");
    let input = ProvisionInput {
        login: "crashtest".into(),
        email: "crash.test@acme.com".into(),
        first_name: "Crash".into(),
        last_name: "Test".into(),
        databases: vec![
            "acme-london".into(),
            "acme-newyork".into(),
            "acme-paris".into(),
        ],
        groups: ["acme-london", "acme-newyork", "acme-paris"]
            .iter()
            .map(|db| ops::GroupTarget {
                database: db.to_string(),
                group_id: all_staff(db),
            })
            .collect(),
    };
    let plan = w.operator.plan_provision(&g, input).unwrap();
    // Steps: 0..=2 create in London, New York, Paris; 3..=5 add each to All Staff.
    assert_eq!(plan.steps.len(), 6, "{}", plan.render());
    let recorded = w.operator.record(&plan, ACTOR).await.unwrap();
    let before = w.snapshot();

    crash_at(&w, recorded.id, 1).await;
    let op = w.operator.operation(recorded.id).await.unwrap().unwrap();
    assert_eq!(op.status, OperationStatus::Running);
    let states: Vec<StepState> = op.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        &states[..3],
        [
            StepState::Done,
            StepState::Interrupted,
            StepState::NotAttempted
        ]
    );
    assert_eq!(op.interrupted, 1);
    let in_ny = |w: &World| -> usize {
        w.snapshot()["acme-newyork"]
            .users
            .values()
            .filter(|u| u.login_name == "crashtest")
            .count()
    };
    assert_eq!(in_ny(&w), 1, "the New York create landed before the crash");

    // The crashed apply still holds its lease for a moment: a re-run now is refused.
    match w.operator.apply(recorded.id, ACTOR).await {
        Err(ops::Error::Busy { id, .. }) => assert_eq!(id, recorded.id),
        other => panic!("expected Busy, got {other:?}"),
    }
    tokio::time::sleep(LEASE + Duration::from_millis(100)).await;

    crash_at(&w, recorded.id, 4).await;
    let op = w.operator.operation(recorded.id).await.unwrap().unwrap();
    assert_eq!(
        op.steps[1].result,
        Some(CallResult::FoundCreated {
            user_id: op.steps[1]
                .result
                .as_ref()
                .and_then(CallResult::created_user_id)
                .unwrap()
                .to_string()
        }),
        "the re-run found the user its crashed attempt had created"
    );
    assert_eq!(op.steps[4].state, StepState::Interrupted);
    tokio::time::sleep(LEASE + Duration::from_millis(100)).await;

    let report = w.operator.apply(recorded.id, ACTOR).await.unwrap();
    assert_eq!(
        report.status,
        OperationStatus::Completed,
        "{}",
        report.render()
    );
    assert_eq!(report.apply_count, 3);
    assert_eq!(
        report.steps[4].result,
        Some(CallResult::AlreadyMember),
        "the interrupted add was checked, not repeated"
    );
    assert_state_is_plan(&before, &w.snapshot(), &report);
    assert_eq!(in_ny(&w), 1, "no second user");
    assert_eq!(
        w.calls("user_create"),
        3,
        "one POST per database, none repeated"
    );
    assert_eq!(
        w.calls("member_add"),
        3,
        "one POST per membership, none repeated"
    );
    // Every call that has an outcome is in the audit log, the verified ones marked so.
    let audit = w.audit_of(recorded.id).await;
    let calls: Vec<(u64, bool, &str)> = audit
        .iter()
        .filter(|e| e.action.starts_with("imanage."))
        .map(|e| {
            (
                e.detail["step"].as_u64().unwrap(),
                e.detail["verified_first"].as_bool().unwrap(),
                e.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            (0, false, "ok"),
            (1, true, "already"),
            (2, false, "ok"),
            (3, false, "ok"),
            (4, true, "already"),
            (5, false, "ok"),
        ]
    );
    assert_store_matches_sim(&w.store.store, &w.sim.handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_rerun_sqlite() {
    crash_and_rerun(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_rerun_postgres() {
    crash_and_rerun(Backend::Postgres).await;
}

/// A database that is down fails its first call after the client's retries: the apply stops,
/// the report says done / failed (with the upstream 503) / not attempted, and a re-run once the
/// database is back completes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_failure_is_reported_and_a_rerun_completes_it() {
    let w = world(Backend::Sqlite, "admin").await;
    let g = w.graph().await;
    let person = everywhere_person(&g, 4);
    let plan = w
        .operator
        .plan_offboard(&g, &person, OffboardOptions::default())
        .unwrap();
    // Steps go database by database in name order: Frankfurt, London, New York, Paris.
    let first_ny = plan
        .steps
        .iter()
        .position(|s| s.call.database() == "acme-newyork")
        .expect("a New York step") as u64;
    let before = w.snapshot();
    w.sim.handle.set_database_down("acme-newyork", true);
    let report = w.operator.run(&plan, ACTOR, false, &()).await.unwrap();
    assert_eq!(
        report.status,
        OperationStatus::Failed,
        "{}",
        report.render()
    );
    assert_eq!(report.done, first_ny);
    assert_eq!(report.failed, 1);
    assert_eq!(report.not_attempted, plan.steps.len() as u64 - first_ny - 1);
    let failed = report.steps_in(StepState::Failed).next().unwrap();
    let error = failed.error.as_ref().expect("the upstream error");
    assert_eq!((error.kind.as_str(), error.status), ("upstream", Some(503)));
    assert!(report.render().contains("HTTP 503"), "{}", report.render());
    // The re-harvest could not read New York either, and says so; the others are fresh.
    let harvest = report.harvest.as_ref().unwrap();
    let incomplete: Vec<&str> = harvest
        .databases
        .iter()
        .filter(|d| !d.complete)
        .map(|d| d.database.as_str())
        .collect();
    assert_eq!(incomplete, ["acme-newyork"]);
    assert_state_is_plan(&before, &w.snapshot(), &report);
    assert_audit_holds_every_call(&w.audit_of(report.id).await, &report);

    w.sim.handle.set_database_down("acme-newyork", false);
    let report = w.operator.apply(report.id, ACTOR).await.unwrap();
    assert_eq!(
        report.status,
        OperationStatus::Completed,
        "{}",
        report.render()
    );
    assert_eq!(report.done, plan.steps.len() as u64);
    assert_state_is_plan(&before, &w.snapshot(), &report);
    assert_store_matches_sim(&w.store.store, &w.sim.handle).await;
}

/// A token with only the `user` scope: iManage answers the first write with 403, which the
/// report shows as a clear forbidden error; nothing changes in iManage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_scope_token_surfaces_the_upstream_403() {
    let w = world(Backend::Sqlite, "reader").await;
    let g = w.graph().await;
    let person = everywhere_person(&g, 4);
    let plan = w
        .operator
        .plan_offboard(&g, &person, OffboardOptions::default())
        .unwrap();
    let before = w.snapshot();
    let report = w.operator.run(&plan, ACTOR, false, &()).await.unwrap();
    assert_eq!(report.status, OperationStatus::Failed);
    assert_eq!(
        (report.done, report.failed, report.not_attempted),
        (0, 1, plan.steps.len() as u64 - 1)
    );
    let error = report.steps[0].error.as_ref().expect("an error");
    assert_eq!(
        (error.kind.as_str(), error.status),
        ("forbidden", Some(403))
    );
    let text = report.render();
    assert!(text.contains("forbidden (HTTP 403)"), "{text}");
    assert_eq!(
        w.sim.handle.stats().forbidden,
        1,
        "one write tried, and refused"
    );
    assert_eq!(
        users_and_groups(&w.snapshot()),
        users_and_groups(&before),
        "nothing changed"
    );
    assert_audit_holds_every_call(&w.audit_of(report.id).await, &report);
}
