//! The harvester's workspace rules, driven by a fake [`Directory`] into a real SQLite store:
//! "not offered" keeps what the store had, drift in the security heals with a re-crawl or ends
//! incomplete, and failures name their cause.

use futures::Stream;
use harvest::{HarvestOptions, Harvester, Outcome};
use imanage::{
    Directory, Group, Member, Page, SecurityMember, User, Workspace, WorkspaceListing,
    WorkspaceSecurity,
};
use model::{Access, DefaultSecurity};
use serde_json::Map;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use store::Store;

const DB: &str = "lib";

fn user(id: &str) -> User {
    serde_json::from_value(serde_json::json!({"id": id, "login_name": id})).expect("user")
}

fn group(id: &str) -> Group {
    serde_json::from_value(serde_json::json!({"id": id, "name": id})).expect("group")
}

fn member(id: &str) -> Member {
    serde_json::from_value(serde_json::json!({"user_id": id})).expect("member")
}

fn workspace(id: &str) -> Workspace {
    Workspace {
        id: id.into(),
        name: Some(format!("Matter {id}")),
        default_security: Some(DefaultSecurity::Private),
        extra: Map::new(),
        raw: model::RawJson::null(),
    }
}

fn entry(id: &str, is_group: bool, access: Access) -> SecurityMember {
    SecurityMember {
        id: id.into(),
        is_group,
        access,
        extra: Map::new(),
    }
}

fn security(default: Option<DefaultSecurity>, members: Vec<SecurityMember>) -> WorkspaceSecurity {
    WorkspaceSecurity {
        default_security: default,
        members,
        extra: Map::new(),
        raw: model::RawJson::null(),
        attempts: 1,
    }
}

fn page<T>(items: Vec<T>) -> Page<T> {
    Page {
        start_index: 0,
        total_results: Some(items.len() as u64),
        items,
        attempts: 1,
    }
}

type SecurityFn = dyn Fn(&str, usize) -> imanage::Result<WorkspaceSecurity> + Send + Sync;

/// Two users, one group with one member, and what the test says about workspaces.
struct Fake {
    /// `None`: the deployment offers no workspace endpoints.
    workspaces: Mutex<Option<Vec<Workspace>>>,
    /// The security of a workspace on the n-th crawl pass (counted by workspace listings).
    security: Box<SecurityFn>,
    passes: AtomicUsize,
}

impl Fake {
    fn new(
        workspaces: Option<Vec<Workspace>>,
        security: impl Fn(&str, usize) -> imanage::Result<WorkspaceSecurity> + Send + Sync + 'static,
    ) -> Self {
        Self {
            workspaces: Mutex::new(workspaces),
            security: Box::new(security),
            passes: AtomicUsize::new(0),
        }
    }
}

impl Directory for Fake {
    fn users(&self, _: &str) -> impl Stream<Item = imanage::Result<Page<User>>> + Send + '_ {
        futures::stream::iter(vec![Ok(page(vec![user("u1"), user("u2")]))])
    }

    fn groups(&self, _: &str) -> impl Stream<Item = imanage::Result<Page<Group>>> + Send + '_ {
        futures::stream::iter(vec![Ok(page(vec![group("g1")]))])
    }

    fn group_members(
        &self,
        _: &str,
        _: &str,
    ) -> impl Stream<Item = imanage::Result<Page<Member>>> + Send + '_ {
        futures::stream::iter(vec![Ok(page(vec![member("u1")]))])
    }

    fn workspaces(
        &self,
        _: &str,
    ) -> impl Stream<Item = imanage::Result<WorkspaceListing>> + Send + '_ {
        self.passes.fetch_add(1, Ordering::SeqCst);
        let item = match &*self.workspaces.lock().expect("lock") {
            Some(list) => WorkspaceListing::Page(page(list.clone())),
            None => WorkspaceListing::NotOffered,
        };
        futures::stream::iter(vec![Ok(item)])
    }

    fn workspace_security(
        &self,
        _: &str,
        workspace_id: &str,
    ) -> impl Future<Output = imanage::Result<WorkspaceSecurity>> + Send + '_ {
        let answer = (self.security)(workspace_id, self.passes.load(Ordering::SeqCst));
        async move { answer }
    }
}

async fn store(dir: &tempfile::TempDir) -> Store {
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("h.db").display()))
        .await
        .expect("store opens");
    store.migrate().await.expect("migrations");
    store
}

async fn run(fake: &Arc<Fake>, store: &Store) -> harvest::DatabaseReport {
    let harvester = Harvester::new(
        fake.clone(),
        store.clone(),
        HarvestOptions {
            databases: vec![DB.into()],
            page_size: 100,
            max_recrawls: 2,
            ..HarvestOptions::default()
        },
    );
    let mut report = harvester.run(&()).await.expect("the store accepts it");
    report.databases.remove(0)
}

fn ordinary(_: &str, _: usize) -> imanage::Result<WorkspaceSecurity> {
    Ok(security(
        Some(DefaultSecurity::View),
        vec![
            entry("g1", true, Access::ReadWrite),
            entry("u2", false, Access::NoAccess),
        ],
    ))
}

#[tokio::test]
async fn workspaces_are_stored_and_not_offered_keeps_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let fake = Arc::new(Fake::new(
        Some(vec![workspace("lib!2"), workspace("lib!1")]),
        ordinary,
    ));
    let report = run(&fake, &store).await;
    assert!(
        matches!(
            report.outcome,
            Outcome::Complete {
                workspaces: Some((2, 4)),
                ..
            }
        ),
        "{report:?}"
    );
    assert!(report
        .summary_line()
        .contains("2 workspaces (4 security entries)"));
    // users, groups, one member list, the workspace list and two security calls.
    assert_eq!((report.stats.min_calls, report.stats.api_calls), (6, 6));
    let stored = store.load_database(DB).await.expect("load");
    let ws = stored.workspaces.clone().expect("workspaces stored");
    let ids: Vec<(&str, DefaultSecurity)> = ws
        .iter()
        .map(|w| (w.workspace_id.as_str(), w.default_security))
        .collect();
    // The security call's default wins over the list's.
    assert_eq!(
        ids,
        vec![
            ("lib!1", DefaultSecurity::View),
            ("lib!2", DefaultSecurity::View)
        ]
    );
    let entries: BTreeMap<(String, String), Access> = stored
        .workspace_entries
        .clone()
        .expect("entries stored")
        .into_iter()
        .map(|e| ((e.workspace_id, e.principal_id), e.access))
        .collect();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[&("lib!1".into(), "u2".into())], Access::NoAccess);

    // The deployment stops offering workspaces: nothing is known, so nothing is removed.
    *fake.workspaces.lock().expect("lock") = None;
    let report = run(&fake, &store).await;
    assert!(
        matches!(
            report.outcome,
            Outcome::Complete {
                workspaces: None,
                ..
            }
        ),
        "{report:?}"
    );
    assert!(report
        .summary_line()
        .contains("no workspace security offered"));
    assert_eq!((report.stats.min_calls, report.stats.api_calls), (4, 4));
    assert_eq!(store.load_database(DB).await.expect("load"), stored);
}

#[tokio::test]
async fn an_entry_for_someone_unlisted_is_drift_and_heals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    // On the first pass the security names a user the users list did not have.
    let fake = Arc::new(Fake::new(Some(vec![workspace("lib!1")]), |_, pass| {
        let who = if pass == 1 { "u9" } else { "u1" };
        Ok(security(
            Some(DefaultSecurity::Private),
            vec![entry(who, false, Access::FullAccess)],
        ))
    }));
    let report = run(&fake, &store).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.recrawls, 1);
    let stored = store.load_database(DB).await.expect("load");
    let entries = stored.workspace_entries.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].principal_id, "u1");

    // A group no listing had, on every pass: given up as incomplete, the state kept.
    let fake = Arc::new(Fake::new(Some(vec![workspace("lib!1")]), |_, _| {
        Ok(security(
            Some(DefaultSecurity::Private),
            vec![entry("g9", true, Access::Read)],
        ))
    }));
    let before = store.load_database(DB).await.expect("load");
    let report = run(&fake, &store).await;
    assert!(!report.is_complete());
    let line = report.summary_line();
    assert!(
        line.contains("names g9") && line.contains("drift"),
        "{line}"
    );
    assert_eq!(report.stats.recrawls, 2);
    assert_eq!(store.load_database(DB).await.expect("load"), before);
}

#[tokio::test]
async fn a_workspace_gone_before_its_security_is_drift() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let fake = Arc::new(Fake::new(
        Some(vec![workspace("lib!1"), workspace("lib!2")]),
        |id, pass| {
            if pass == 1 && id == "lib!2" {
                Err(imanage::Error::NotFound {
                    message: "no workspace lib!2".into(),
                })
            } else {
                ordinary(id, pass)
            }
        },
    ));
    let report = run(&fake, &store).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.recrawls, 1);
    assert_eq!(
        store
            .load_database(DB)
            .await
            .expect("load")
            .workspaces
            .map(|w| w.len()),
        Some(2)
    );
}

#[tokio::test]
async fn failed_security_calls_and_missing_defaults_leave_the_crawl_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let fake = Arc::new(Fake::new(Some(vec![workspace("lib!1")]), |_, _| {
        Err(imanage::Error::Upstream {
            status: 500,
            code: Some("INTERNAL_ERROR".into()),
            message: "boom".into(),
        })
    }));
    let report = run(&fake, &store).await;
    let Outcome::Incomplete { cause } = &report.outcome else {
        panic!("{report:?}");
    };
    assert!(
        cause.contains("security of workspace lib!1") && cause.contains("500"),
        "{cause}"
    );
    assert!(store
        .load_database(DB)
        .await
        .expect("load")
        .accounts
        .is_empty());

    let mut bare = workspace("lib!1");
    bare.default_security = None;
    let fake = Arc::new(Fake::new(Some(vec![bare]), |_, _| {
        Ok(security(None, Vec::new()))
    }));
    let report = run(&fake, &store).await;
    let Outcome::Incomplete { cause } = &report.outcome else {
        panic!("{report:?}");
    };
    assert!(cause.contains("no default security"), "{cause}");
}
