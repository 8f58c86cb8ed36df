//! The real binary, both ends: `idgraph harvest` with `IMANAGE_API=v2` (its libraries
//! discovered) against `idgraph sim --api v2` fills the same store as the v1 path does against
//! `idgraph sim` for the same firm, workspaces included.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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

/// A running `idgraph sim`, killed when dropped.
struct SimProcess {
    child: Child,
    base_url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(api: &str) -> SimProcess {
    let mut child = idgraph()
        .args([
            "sim",
            "--api",
            api,
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "5",
            "--databases",
            "3",
            "--people",
            "600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("idgraph sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base_url = loop {
        let line = lines
            .next()
            .expect("the simulator prints where it listens")
            .expect("a line");
        if let Some(url) = line.strip_prefix("idgraph sim listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep reading: a closed pipe would make the simulator's next line fail and end it.
    std::thread::spawn(move || lines.for_each(drop));
    SimProcess { child, base_url }
}

fn harvest(sim: &SimProcess, database_url: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = idgraph();
    cmd.arg("harvest")
        .env("DATABASE_URL", database_url)
        .env("IMANAGE_BASE_URL", &sim.base_url)
        .env("IMANAGE_CLIENT_ID", "idgraph")
        .env("IMANAGE_CLIENT_SECRET", "idgraph-secret");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("idgraph harvest runs")
}

/// The stored rows of one database, without the raw objects (which differ between the shapes).
async fn rows(url: &str, database: &str) -> model::DatabaseSnapshot {
    let store = store::Store::connect(url).await.expect("store opens");
    let mut s = store.load_database(database).await.expect("loads");
    store.close().await;
    for a in &mut s.accounts {
        a.raw = model::RawJson::null();
    }
    for g in &mut s.groups {
        g.raw = model::RawJson::null();
    }
    for w in s.workspaces.iter_mut().flatten() {
        w.raw = model::RawJson::null();
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harvest_with_the_v2_profile_fills_the_same_store_as_v1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v1_url = format!("sqlite://{}", dir.path().join("v1.db").display());
    let v2_url = format!("sqlite://{}", dir.path().join("v2.db").display());
    let databases = "acme-london,acme-newyork,acme-paris";

    let (v1_out, v2_out, no_customers) = tokio::task::spawn_blocking({
        let (v1_url, v2_url) = (v1_url.clone(), v2_url.clone());
        move || {
            let v1 = start_sim("v1");
            let v2 = start_sim("v2");
            let v1_out = harvest(&v1, &v1_url, &[("IMANAGE_CUSTOMERS", databases)]);
            // No IMANAGE_CUSTOMERS: the libraries come from the v2 discovery.
            let v2_out = harvest(&v2, &v2_url, &[("IMANAGE_API", "v2")]);
            let no_customers = harvest(&v1, &v1_url, &[]);
            (v1_out, v2_out, no_customers)
        }
    })
    .await
    .expect("the processes ran");
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let both =
        |o: &std::process::Output| format!("{}{}", text(o), String::from_utf8_lossy(&o.stderr));
    assert!(v1_out.status.success(), "{}", both(&v1_out));
    assert!(v2_out.status.success(), "{}", both(&v2_out));
    for out in [&v1_out, &v2_out] {
        let summary = text(out);
        assert_eq!(summary.matches(": complete: ").count(), 3, "{summary}");
        assert_eq!(summary.matches(" workspaces (").count(), 3, "{summary}");
    }
    // v1 without IMANAGE_CUSTOMERS is a configuration error that names the way out.
    assert_eq!(no_customers.status.code(), Some(2));
    let err = String::from_utf8_lossy(&no_customers.stderr);
    assert!(
        err.contains("IMANAGE_CUSTOMERS") && err.contains("IMANAGE_API=v2"),
        "{err}"
    );

    for db in databases.split(',') {
        let a = rows(&v1_url, db).await;
        let b = rows(&v2_url, db).await;
        assert!(!a.accounts.is_empty() && a.workspaces.as_ref().is_some_and(|w| !w.is_empty()));
        assert_eq!(a, b, "{db} differs between the v1 and the v2 harvest");
    }
}
