//! The real `idgraph` binary: exit codes, summaries, crash safety, and the committed schema.

mod support;

use imanage_sim::firm::FirmSpec;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{assert_store_matches_sim, base_url, start_sim, Backend, TestStore};

fn idgraph() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idgraph"));
    // Nothing from the developer's environment may leak into a test.
    for (key, _) in std::env::vars() {
        if key.starts_with("IMANAGE_") || key.starts_with("IDGRAPH_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("IDGRAPH_LOG", "warn");
    cmd
}

fn harvest_command(sim: &imanage_sim::RunningSim, database_url: &str) -> Command {
    let mut cmd = idgraph();
    cmd.arg("harvest")
        .env("DATABASE_URL", database_url)
        .env("IMANAGE_BASE_URL", base_url(sim))
        .env("IMANAGE_CLIENT_ID", support::CLIENT_ID)
        .env("IMANAGE_CLIENT_SECRET", support::CLIENT_SECRET)
        .env("IMANAGE_CUSTOMERS", sim.handle.truth().databases.join(","));
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("idgraph runs"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harvest_exits_0_and_prints_one_line_per_database() {
    let sim = start_sim(FirmSpec::default(), 0.0, 3600).await;
    let ts = TestStore::new(Backend::Sqlite).await;
    let out = run(harvest_command(&sim, &ts.url)).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    for db in sim.handle.truth().databases {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{db}: complete")))
            .unwrap_or_else(|| panic!("no summary line for {db} in {stdout}"));
        // Without faults the calls made are the minimum.
        let calls = line.split(" calls (minimum ").collect::<Vec<_>>();
        let made: u64 = calls[0].rsplit(' ').next().unwrap().parse().unwrap();
        let min: u64 = calls[1].split(')').next().unwrap().parse().unwrap();
        assert_eq!(made, min, "{line}");
    }
    assert_store_matches_sim(&ts.store, &sim.handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harvest_exits_3_naming_the_failed_database_and_its_cause() {
    let sim = start_sim(FirmSpec::default(), 0.0, 3600).await;
    let ts = TestStore::new(Backend::Sqlite).await;
    let down = sim.handle.truth().databases[2].clone();
    sim.handle.set_database_down(&down, true);
    let out = run(harvest_command(&sim, &ts.url)).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{down}: INCOMPLETE")))
        .unwrap_or_else(|| panic!("no INCOMPLETE line for {down} in {stdout}"));
    assert!(line.contains("503"), "the cause is named: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_2() {
    let sim = start_sim(FirmSpec::default(), 0.0, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());

    let mut no_customers = harvest_command(&sim, &url);
    no_customers.env_remove("IMANAGE_CUSTOMERS");
    let out = run(no_customers).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("IMANAGE_CUSTOMERS"),
        "{}",
        text(&out.stderr)
    );

    let mut big_page = harvest_command(&sim, &url);
    big_page.env("IMANAGE_PAGE_SIZE", "5000");
    let out = run(big_page).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("IMANAGE_PAGE_SIZE"));

    let mut no_secret = harvest_command(&sim, &url);
    no_secret.env_remove("IMANAGE_CLIENT_SECRET");
    let out = run(no_secret).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("IMANAGE_CLIENT_SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_reaches_the_output() {
    let sim = start_sim(FirmSpec::default(), 0.3, 2).await;
    let ts = TestStore::new(Backend::Sqlite).await;
    let mut cmd = harvest_command(&sim, &ts.url);
    cmd.env("IDGRAPH_LOG", "debug");
    let out = run(cmd).await;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !all.contains(support::CLIENT_SECRET),
        "the client secret was printed"
    );
    assert!(
        !all.to_lowercase().contains("bearer "),
        "a token was printed"
    );
}

/// `kill -9` at different moments of a harvest, then a fresh harvest: the store equals the
/// simulator's state, and the killed runs are marked abandoned.
async fn killed_harvests_leave_a_consistent_store(backend: Backend) {
    let sim = start_sim(
        FirmSpec {
            seed: 21,
            databases: 3,
            people: 0,
            users_per_database: Some(6000),
            groups_per_database: Some(60),
        },
        0.0,
        3600,
    )
    .await;
    sim.handle.set_faults(0.0, 2);
    // How long a whole first harvest takes on this machine, into a store of its own, so that
    // the kills land inside a harvest however fast the build and the machine are.
    let probe = TestStore::new(backend).await;
    let probe_started = Instant::now();
    let out = run(harvest_command(&sim, &probe.url)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let whole = probe_started.elapsed();
    let ts = TestStore::new(backend).await;
    let mut kills = 0;
    for (i, fraction) in [0.05, 0.2, 0.4, 0.6, 0.85].into_iter().enumerate() {
        let delay = whole.mul_f64(fraction);
        let mut child = harvest_command(&sim, &ts.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // Between kills the simulator moves on, so later harvests have changes to write.
        sim.handle.mutate(0.01, 100 * (i as u64 + 1));
    }
    assert!(
        kills >= 3,
        "the harvests were too fast to be killed mid-way ({kills} kills; a whole one took {whole:?})"
    );
    sim.handle.set_faults(0.0, 0);
    let out = run(harvest_command(&sim, &ts.url)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_store_matches_sim(&ts.store, &sim.handle).await;
    let runs = ts.store.runs(20).await.unwrap();
    assert!(
        runs.iter().all(|r| r.status != store::RunStatus::Running),
        "no run is left running after a restart: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_harvests_leave_a_consistent_store_on_sqlite() {
    killed_harvests_leave_a_consistent_store(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_harvests_leave_a_consistent_store_on_postgres() {
    killed_harvests_leave_a_consistent_store(Backend::Postgres).await;
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = idgraph().arg("schema").output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema.graphql"))
            .expect("schema.graphql is committed at the top of the repo");
    assert_eq!(
        text(&out.stdout),
        committed,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}
