//! Several real `idgraph serve` processes on one real PostgreSQL database, harvesting the
//! simulator over HTTP: exactly one of them harvests (the runs in the store have one owner, one
//! replica reports `idgraph_harvest_leader 1`), killing it with SIGKILL makes another take over
//! within one harvest interval, both answer the same `person(login:)` queries identically after
//! every harvest, and SIGTERM stops a replica cleanly (the request in flight answered, a harvest
//! in flight abandoned without a half-written database or a run left `running`, exit status 0).
//! Admin mutations and overrides made through a replica that does not harvest reach the others
//! by the store's notification, long before their fallback check.
//!
//! Each test creates its own database on `IDGRAPH_TEST_PG_URL` (one, on SQLite, its own file).

mod support;

use imanage_sim::firm::{FirmSpec, SimDatabase};
use imanage_sim::RunningSim;
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{base_url, start_sim, Backend, TestStore};

const ADMIN_KEY: &str = "admin-key-for-replica-tests-0123456789";

fn firm(seed: u64) -> FirmSpec {
    FirmSpec {
        seed,
        databases: 2,
        people: 150,
        users_per_database: None,
        groups_per_database: Some(8),
    }
}

/// One `idgraph serve` process, killed when dropped.
struct Replica {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    /// Its log lines (standard error), kept to explain a failure.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `idgraph serve` against `sim` and the store at `database_url` without waiting.
fn spawn_replica(sim: &RunningSim, database_url: &str, every: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .args(["serve", "--listen", "127.0.0.1:0", "--harvest-every", every])
        .env("IDGRAPH_LOG", "info,sqlx=warn")
        .env("DATABASE_URL", database_url)
        .env("IMANAGE_BASE_URL", base_url(sim))
        .env("IMANAGE_CLIENT_ID", support::CLIENT_ID)
        .env("IMANAGE_CLIENT_SECRET", support::CLIENT_SECRET)
        .env("IMANAGE_CUSTOMERS", sim.handle.truth().databases.join(","))
        .env("IMANAGE_MAX_CONCURRENCY", "4")
        .env("IDGRAPH_API_KEYS", format!("admin:{ADMIN_KEY}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("idgraph starts")
}

/// Waits for the spawned process to print the address it serves on, and collects its logs.
fn attach(mut child: Child) -> Replica {
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(rest) = line.strip_prefix("idgraph serving on ") {
                let base = rest.trim().trim_end_matches("/graphql").to_string();
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return Replica { child, base, log };
            }
        }
    }
    let _ = child.kill();
    panic!(
        "idgraph serve printed no address; its log: {:#?}",
        log.lock().unwrap()
    );
}

impl Replica {
    fn start(sim: &RunningSim, database_url: &str, every: &str) -> Replica {
        attach(spawn_replica(sim, database_url, every))
    }

    fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    fn dump(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "idgraph did not exit within {limit:?}; its log:\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} never became ready; its log:\n{}",
            self.base,
            self.dump()
        );
    }

    /// The `idgraph_harvest_leader` gauge from /metrics.
    async fn leader_gauge(&self, http: &reqwest::Client) -> Option<f64> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("idgraph_harvest_leader "))
            .and_then(|v| v.trim().parse().ok())
    }

    async fn gql(&self, http: &reqwest::Client, query: &str, variables: Value) -> Value {
        let r = http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .expect("the replica answers");
        assert_eq!(r.status(), 200, "{}", self.base);
        r.json().await.expect("JSON")
    }
}

/// A run as the store keeps it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Run {
    id: i64,
    owner: i64,
    status: String,
    started_at: i64,
}

async fn runs(url: &str) -> Vec<Run> {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let runs =
        sqlx::query_as::<_, Run>("SELECT id, owner, status, started_at FROM runs ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("runs");
    let _ = conn.close().await;
    runs
}

/// Waits until `pred` holds for the store's runs, at most `limit`; returns them.
async fn wait_runs(
    url: &str,
    limit: Duration,
    what: &str,
    pred: impl Fn(&[Run]) -> bool,
) -> Vec<Run> {
    let deadline = Instant::now() + limit;
    loop {
        let r = runs(url).await;
        if pred(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; runs: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn owners(runs: &[Run]) -> BTreeSet<i64> {
    runs.iter().map(|r| r.owner).collect()
}

fn complete(runs: &[Run]) -> usize {
    runs.iter().filter(|r| r.status == "complete").count()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The last complete commit time of every database, from the store.
async fn last_complete(store: &store::Store) -> BTreeMap<String, i64> {
    store
        .database_statuses()
        .await
        .expect("database statuses")
        .into_iter()
        .filter_map(|d| d.last_complete_at.map(|at| (d.database, at)))
        .collect()
}

const PERSONS: &str = "query($l0: String, $l1: String, $l2: String, $l3: String) {
  databases { id accountCount groupCount lastHarvestedAt }
  p0: person(login: $l0) { ...P }
  p1: person(login: $l1) { ...P }
  p2: person(login: $l2) { ...P }
  p3: person(login: $l3) { ...P }
}
fragment P on Person {
  id displayName logins emails
  accounts { database userId loginName email active groups { name } }
  reach { database access group { name } }
}";

/// Logins to ask about: two from each database.
fn logins(sim: &RunningSim) -> Value {
    let mut out = Vec::new();
    for db in sim.handle.snapshot() {
        out.extend(db.users.values().take(2).map(|u| u.login_name.clone()));
    }
    json!({"l0": out[0], "l1": out[1], "l2": out[2], "l3": out[3]})
}

/// The databases' `lastHarvestedAt` of an answer, as unix milliseconds.
fn harvested_at(answer: &Value) -> BTreeMap<String, i64> {
    answer["data"]["databases"]
        .as_array()
        .map(|dbs| {
            dbs.iter()
                .filter_map(|d| {
                    let at = d["lastHarvestedAt"].as_str()?;
                    let ms = chrono::DateTime::parse_from_rfc3339(at)
                        .ok()?
                        .timestamp_millis();
                    Some((d["id"].as_str()?.to_string(), ms))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every replica answers the `person(login:)` queries identically, from the state
/// the store holds now (their `lastHarvestedAt` equal the store's last complete commits).
/// Returns how long that took.
async fn answers_converge(
    replicas: &[&Replica],
    http: &reqwest::Client,
    store: &store::Store,
    vars: &Value,
) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    loop {
        let stored = last_complete(store).await;
        let mut answers = Vec::new();
        for r in replicas {
            answers.push(r.gql(http, PERSONS, vars.clone()).await);
        }
        let fresh = answers.iter().all(|a| harvested_at(a) == stored);
        let same = answers.windows(2).all(|w| w[0] == w[1]);
        if fresh && same && !stored.is_empty() {
            assert!(
                answers[0]["data"]["p0"].is_object() || answers[0]["errors"].is_array(),
                "the query found nobody: {}",
                answers[0]
            );
            return started.elapsed();
        }
        if Instant::now() > deadline {
            panic!(
                "the replicas did not converge on the stored state {stored:?}: {:#}",
                json!(answers
                    .iter()
                    .map(|a| json!({"harvested": harvested_at(a), "answer": a}))
                    .collect::<Vec<_>>())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_harvests_the_other_follows_and_takes_over_when_it_dies() {
    let every = Duration::from_secs(3);
    let sim = start_sim(firm(71), 0.0, 3600).await;
    let db = TestStore::new(Backend::Postgres).await;
    let http = reqwest::Client::new();
    let mut a = Replica::start(&sim, &db.url, "3s");
    a.wait_ready(&http).await;
    let b = Replica::start(&sim, &db.url, "3s");
    b.wait_ready(&http).await;

    // A few harvests: all by one process.
    let seen = wait_runs(
        &db.url,
        Duration::from_secs(20),
        "three complete harvests",
        |r| complete(r) >= 3,
    )
    .await;
    assert_eq!(
        owners(&seen).len(),
        1,
        "more than one replica harvested: {seen:#?}"
    );
    let leader_owner = seen[0].owner;
    assert_eq!(a.leader_gauge(&http).await, Some(1.0), "{}", a.dump());
    assert_eq!(b.leader_gauge(&http).await, Some(0.0), "{}", b.dump());
    assert!(a.logged("harvest leadership acquired"), "{}", a.dump());
    assert!(!b.logged("harvest leadership acquired"), "{}", b.dump());

    // After each harvest of a changed firm, both answer identically from the new state.
    let vars = logins(&sim);
    for round in 0..2u64 {
        let report = sim.handle.mutate(0.05, 100 + round);
        assert!(!report.changes.is_empty());
        let before = runs(&db.url).await.last().map(|r| r.id).unwrap_or(0);
        wait_runs(
            &db.url,
            Duration::from_secs(15),
            "a harvest after the change",
            |r| r.iter().any(|r| r.id > before && r.status == "complete"),
        )
        .await;
        let took = answers_converge(&[&a, &b], &http, &db.store, &vars).await;
        // The follower hears of the commit by NOTIFY: far sooner than its 15 s fallback check.
        assert!(
            took < Duration::from_secs(5),
            "converged only after {took:?}"
        );
        eprintln!("round {round}: both replicas answer from the new harvest {took:?} after its run completed");
    }
    support::assert_store_matches_sim(&db.store, &sim.handle).await;

    // SIGKILL the leader: the other one takes over within one interval (plus its quarter-
    // interval retry) and harvests.
    a.child.kill().expect("kill -9");
    a.child.wait().expect("reaped");
    let killed_at = now_ms();
    let after = wait_runs(
        &db.url,
        every * 3,
        "a harvest by the surviving replica",
        |r| r.iter().any(|r| r.owner != leader_owner),
    )
    .await;
    let first = after.iter().find(|r| r.owner != leader_owner).unwrap();
    let delay = first.started_at - killed_at;
    assert!(
        delay <= (every + every / 4).as_millis() as i64 + 500,
        "the takeover took {delay} ms after the kill (interval {every:?})"
    );
    eprintln!(
        "takeover: the survivor started a harvest {delay} ms after the kill (interval {every:?})"
    );
    assert!(b.logged("harvest leadership acquired"), "{}", b.dump());
    assert_eq!(b.leader_gauge(&http).await, Some(1.0));
    // Nothing the dead leader left is `running` once the new leader has started a run.
    let runs_now = wait_runs(
        &db.url,
        Duration::from_secs(10),
        "a complete takeover harvest",
        |r| {
            r.iter()
                .any(|r| r.owner != leader_owner && r.status == "complete")
        },
    )
    .await;
    assert!(
        !runs_now
            .iter()
            .any(|r| r.owner == leader_owner && r.status == "running"),
        "{runs_now:#?}"
    );
    // The survivor keeps harvesting changes and serving them.
    sim.handle.mutate(0.05, 200);
    let before = runs(&db.url).await.last().map(|r| r.id).unwrap_or(0);
    wait_runs(
        &db.url,
        Duration::from_secs(15),
        "a harvest by the new leader",
        |r| r.iter().any(|r| r.id > before && r.status == "complete"),
    )
    .await;
    answers_converge(&[&b], &http, &db.store, &vars).await;
    support::assert_store_matches_sim(&db.store, &sim.handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_at_the_same_instant_elect_one_harvester() {
    let sim = start_sim(firm(72), 0.0, 3600).await;
    let db = TestStore::new(Backend::Postgres).await;
    let http = reqwest::Client::new();
    // Spawned back to back, before either has printed anything.
    let children: Vec<Child> = (0..3).map(|_| spawn_replica(&sim, &db.url, "2s")).collect();
    let replicas: Vec<Replica> = children.into_iter().map(attach).collect();
    for r in &replicas {
        r.wait_ready(&http).await;
    }
    let seen = wait_runs(
        &db.url,
        Duration::from_secs(20),
        "three complete harvests",
        |r| complete(r) >= 3,
    )
    .await;
    assert_eq!(
        owners(&seen).len(),
        1,
        "more than one replica harvested: {seen:#?}"
    );
    let mut gauges = Vec::new();
    for r in &replicas {
        gauges.push(r.leader_gauge(&http).await.expect("the gauge is exported"));
    }
    assert_eq!(
        gauges.iter().filter(|g| **g == 1.0).count(),
        1,
        "leader gauges {gauges:?}"
    );
    let leaders = replicas
        .iter()
        .filter(|r| r.logged("harvest leadership acquired"))
        .count();
    assert_eq!(leaders, 1);
    let refs: Vec<&Replica> = replicas.iter().collect();
    answers_converge(&refs, &http, &db.store, &logins(&sim)).await;
}

/// What a database holds, as comparable lines: every account's fields and every membership.
fn sim_lines(db: &SimDatabase) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = db
        .users
        .values()
        .map(|u| {
            format!(
                "u {} {} {:?} {:?} {} {:?} {:?} {:?}",
                u.id,
                u.login_name,
                u.email,
                u.display_name,
                u.active,
                u.title,
                u.department,
                u.phone
            )
        })
        .collect();
    for g in db.groups.values() {
        out.insert(format!("g {} {}", g.id, g.name));
        out.extend(g.members.iter().map(|m| format!("m {} {m}", g.id)));
    }
    out
}

async fn store_lines(store: &store::Store, database: &str) -> BTreeSet<String> {
    let s = store.load_database(database).await.expect("loads");
    let mut out: BTreeSet<String> = s
        .accounts
        .iter()
        .map(|a| {
            format!(
                "u {} {} {:?} {:?} {} {:?} {:?} {:?}",
                a.user_id,
                a.login_name.as_deref().unwrap_or(""),
                a.email,
                a.display_name,
                a.active,
                a.title,
                a.department,
                a.phone
            )
        })
        .collect();
    for g in &s.groups {
        out.insert(format!(
            "g {} {}",
            g.group_id,
            g.name.as_deref().unwrap_or("")
        ));
    }
    out.extend(
        s.memberships
            .iter()
            .map(|m| format!("m {} {}", m.group_id, m.user_id)),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_harvest_abandons_it_cleanly_and_exits_0() {
    let sim = start_sim(firm(73), 0.0, 3600).await;
    let db = TestStore::new(Backend::Postgres).await;
    let http = reqwest::Client::new();
    let mut r = Replica::start(&sim, &db.url, "3s");
    r.wait_ready(&http).await;
    let first = wait_runs(&db.url, Duration::from_secs(20), "the first harvest", |r| {
        complete(r) >= 1
    })
    .await;
    let first_id = first.last().unwrap().id;

    // The firm changes and iManage turns slow: the next harvest takes many seconds.
    let before: BTreeMap<String, BTreeSet<String>> = sim
        .handle
        .snapshot()
        .iter()
        .map(|d| (d.customer_id.clone(), sim_lines(d)))
        .collect();
    sim.handle.mutate(0.1, 9);
    sim.handle.set_faults(0.0, 250);
    wait_runs(
        &db.url,
        Duration::from_secs(10),
        "the slow harvest starting",
        |r| r.iter().any(|r| r.id > first_id && r.status == "running"),
    )
    .await;
    let calls = sim.handle.stats().total_calls();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.handle.stats().total_calls() < calls + 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // SIGTERM mid-crawl.
    let signalled = Instant::now();
    r.terminate();
    let status = r.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", r.dump());
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stopping waited for the slow harvest ({took:?})"
    );
    eprintln!("SIGTERM mid-harvest: exited 0 after {took:?}");
    assert!(r.logged("harvest in flight is abandoned"), "{}", r.dump());
    assert!(r.logged("harvest leadership released"), "{}", r.dump());

    // The store: no run left running, the cut run abandoned, every database wholly in its old
    // or its new state.
    let after = runs(&db.url).await;
    assert!(after.iter().all(|r| r.status != "running"), "{after:#?}");
    assert!(
        after
            .iter()
            .any(|r| r.id > first_id && r.status == "abandoned"),
        "{after:#?}"
    );
    let now: BTreeMap<String, BTreeSet<String>> = sim
        .handle
        .snapshot()
        .iter()
        .map(|d| (d.customer_id.clone(), sim_lines(d)))
        .collect();
    for (database, old) in &before {
        let stored = store_lines(&db.store, database).await;
        assert!(
            &stored == old || stored == now[database],
            "{database} is neither its old nor its new state (a half-written commit)"
        );
    }

    // Nothing is lost: a new replica on the same store harvests everything.
    sim.handle.set_faults(0.0, 0);
    let last = after.last().unwrap().id;
    let _r2 = Replica::start(&sim, &db.url, "1h");
    wait_runs(
        &db.url,
        Duration::from_secs(20),
        "a harvest by a new replica",
        |r| r.iter().any(|r| r.id > last && r.status == "complete"),
    )
    .await;
    support::assert_store_matches_sim(&db.store, &sim.handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_request_answers_it_then_exits_0() {
    let sim = start_sim(firm(74), 0.0, 3600).await;
    let db = TestStore::new(Backend::Postgres).await;
    let http = reqwest::Client::new();
    let mut r = Replica::start(&sim, &db.url, "1h");
    r.wait_ready(&http).await;

    // Someone with an active account to offboard.
    let persons = r
        .gql(
            &http,
            "{ persons(first: 50) { edges { node { id accounts { active } } } } }",
            json!({}),
        )
        .await;
    let person = persons["data"]["persons"]["edges"]
        .as_array()
        .expect("persons")
        .iter()
        .map(|e| &e["node"])
        .find(|p| {
            p["accounts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["active"] == true))
        })
        .expect("a person with an active account")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // iManage turns slow; the offboarding (calls, then a re-harvest) takes seconds.
    sim.handle.set_faults(0.0, 300);
    let calls = sim.handle.stats().total_calls();
    let request = {
        let http = http.clone();
        let url = format!("{}/graphql", r.base);
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(ADMIN_KEY)
                .json(&json!({
                    "query": "mutation($p: ID!) { offboardPerson(personId: $p) { id status failed } }",
                    "variables": {"p": person},
                }))
                .send()
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.handle.stats().total_calls() == calls {
        assert!(
            Instant::now() < deadline,
            "the mutation never called iManage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    r.terminate();
    // Stopped accepting: a new connection is refused while the request is still in flight.
    let fresh = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let attempt = fresh
            .get(format!("{}/healthz", r.base))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if attempt.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new requests were still accepted 3 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !request.is_finished(),
        "the slow request finished before the check"
    );

    let response = request
        .await
        .expect("task")
        .expect("the request in flight is answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body["data"]["offboardPerson"]["status"], "completed",
        "{body}"
    );
    let status = r.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", r.dump());

    let after = runs(&db.url).await;
    assert!(after.iter().all(|r| r.status != "running"), "{after:#?}");
    // The offboarding's re-harvest completed before the exit: the store is the simulator's.
    support::assert_store_matches_sim(&db.store, &sim.handle).await;
}

/// Polls `replica` with `query` until `done` holds for the answer, at most five seconds (the
/// replicas' fallback check is every 15 s, and nobody harvests on a schedule in the test that
/// uses this: only a notification explains a reload that fast). Returns how long it took.
async fn until(
    replica: &Replica,
    http: &reqwest::Client,
    query: &str,
    variables: Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let answer = replica.gql(http, query, variables.clone()).await;
        if done(&answer) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not seen on {} within 5 s; last answer {answer}",
            replica.base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_on_a_follower_reach_every_replica() {
    let sim = start_sim(firm(75), 0.0, 3600).await;
    let db = TestStore::new(Backend::Postgres).await;
    let http = reqwest::Client::new();
    // No scheduled harvest after the first: only the mutations change the store.
    let leader = Replica::start(&sim, &db.url, "1h");
    leader.wait_ready(&http).await;
    let follower = Replica::start(&sim, &db.url, "1h");
    follower.wait_ready(&http).await;
    assert_eq!(follower.leader_gauge(&http).await, Some(0.0));

    let persons = follower
        .gql(
            &http,
            "{ persons(first: 50) { edges { node { id accounts { database userId active } } } } }",
            json!({}),
        )
        .await;
    let nodes: Vec<&Value> = persons["data"]["persons"]["edges"]
        .as_array()
        .expect("persons")
        .iter()
        .map(|e| &e["node"])
        .collect();
    let active = |p: &&Value| {
        p["accounts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["active"] == true))
    };
    let mut candidates = nodes.iter().copied().filter(active);
    let offboarded = candidates.next().expect("an active person")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (x, y) = (candidates.next().unwrap(), candidates.next().unwrap());
    let key = |p: &Value| json!({"database": p["accounts"][0]["database"], "userId": p["accounts"][0]["userId"]});
    let (ka, kb) = (key(x), key(y));

    // Offboarding through the follower: it calls iManage, re-harvests what it touched, and the
    // leader (which harvests nothing on its own for an hour) shows the result.
    let body = follower
        .gql(
            &http,
            "mutation($p: ID!) { offboardPerson(personId: $p) { status } }",
            json!({"p": offboarded}),
        )
        .await;
    assert_eq!(
        body["data"]["offboardPerson"]["status"], "completed",
        "{body}"
    );
    const ACTIVE: &str = "query($p: ID!) { person(id: $p) { accounts { active } } }";
    let all_inactive = |a: &Value| {
        a["data"]["person"]["accounts"]
            .as_array()
            .is_some_and(|acc| !acc.is_empty() && acc.iter().all(|x| x["active"] == false))
    };
    let took = until(
        &leader,
        &http,
        ACTIVE,
        json!({"p": offboarded}),
        "the offboarding",
        all_inactive,
    )
    .await;
    eprintln!("offboarding on the follower: seen on the leader after {took:?}");

    // An analyst's override through the follower reaches the leader too.
    let body = follower
        .gql(
            &http,
            "mutation($a: AccountKeyInput!, $b: AccountKeyInput!) { addOverride(input: {kind: MUST_LINK, a: $a, b: $b, reason: \"replica test\"}) { id } }",
            json!({"a": ka, "b": kb}),
        )
        .await;
    assert!(body["data"]["addOverride"]["id"].is_string(), "{body}");
    const LINKED: &str = "query($da: String!, $ua: String!, $db: String!, $ub: String!) { a: account(database: $da, userId: $ua) { person { id } } b: account(database: $db, userId: $ub) { person { id } } }";
    let vars =
        json!({"da": ka["database"], "ua": ka["userId"], "db": kb["database"], "ub": kb["userId"]});
    let same_person = |a: &Value| {
        let pa = &a["data"]["a"]["person"]["id"];
        pa.is_string() && *pa == a["data"]["b"]["person"]["id"]
    };
    for r in [&follower, &leader] {
        let took = until(r, &http, LINKED, vars.clone(), "the override", same_person).await;
        eprintln!(
            "override on the follower: seen on {} after {took:?}",
            r.base
        );
    }
    answers_converge(&[&leader, &follower], &http, &db.store, &logins(&sim)).await;
    // Only the first harvest was scheduled; the other run is the follower's re-harvest.
    let all = runs(&db.url).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(owners(&all).len(), 2);
    support::assert_store_matches_sim(&db.store, &sim.handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_harvest_by_another_process_is_picked_up_by_the_periodic_check() {
    // SQLite has no notifications: the serving process finds a commit made by another process
    // (here `idgraph harvest`) by comparing the store's state generation every 15 s.
    let sim = start_sim(firm(76), 0.0, 3600).await;
    let db = TestStore::new(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let serving = Replica::start(&sim, &db.url, "1h");
    serving.wait_ready(&http).await;
    let vars = logins(&sim);
    answers_converge(&[&serving], &http, &db.store, &vars).await;
    let before = last_complete(&db.store).await;

    sim.handle.mutate(0.05, 300);
    let status = Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .arg("harvest")
        .env("IDGRAPH_LOG", "warn")
        .env("DATABASE_URL", &db.url)
        .env("IMANAGE_BASE_URL", base_url(&sim))
        .env("IMANAGE_CLIENT_ID", support::CLIENT_ID)
        .env("IMANAGE_CLIENT_SECRET", support::CLIENT_SECRET)
        .env("IMANAGE_CUSTOMERS", sim.handle.truth().databases.join(","))
        .stdout(Stdio::null())
        .status()
        .expect("idgraph harvest runs");
    assert_eq!(status.code(), Some(0));
    let after = last_complete(&db.store).await;
    assert_ne!(after, before, "the harvest committed nothing");

    let started = Instant::now();
    loop {
        let answer = serving.gql(&http, PERSONS, vars.clone()).await;
        if harvested_at(&answer) == after {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "the serving process never loaded the other process's harvest; log:\n{}",
            serving.dump()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "SQLite: a harvest by another process served after {:?} (check every 15 s)",
        started.elapsed()
    );
    assert!(serving.logged("loaded a new state committed to the store"));
    support::assert_store_matches_sim(&db.store, &sim.handle).await;
}
