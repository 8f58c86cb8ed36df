//! Query under load, and the plain-SQL baseline beside it (issue #8, points 4 and 5).
//!
//! A firm of `people` persons, each with an account in every one of `databases` databases, is
//! harvested from the in-process simulator into a fresh PostgreSQL database and served by the
//! real `idgraph serve` binary (`--no-harvest`, a reader key). The load generator
//! ([`loadgen`]) sends the `person(login:)` query of the demo at fixed rates (open loop, latency
//! from each request's due time), then as fast as it can (closed loop), and a listing query at a
//! fixed rate. The server runs twice: with its response cache off, then with a cache large enough
//! for every answer asked for ([`CACHE_MB`]) and warmed, so the figures of both are printed side
//! by side. Then the same
//! question is answered by plain SQL over the same store ([`sql`]), served over HTTP by a small
//! axum app, under the same load generator, and the medians are compared. Last, the issue's
//! yardsticks of the machine run closed loop beside the person query's saturation
//! ([`machine_scale`]): a static 3.4 KB JSON answer from axum, and the person query through
//! async-graphql's executor instead of the API's fast path.

mod loadgen;
mod sql;

use crate::report::{Figure, Table};
use crate::scratch::ScratchDatabase;
use anyhow::{bail, Context};
use axum::serve::ListenerExt as _;
use bytes::Bytes;
use harvest::{HarvestOptions, Harvester};
use hyper::header::HeaderValue;
use imanage_sim::firm::{self, Firm, FirmSpec, SimDatabase, SimGroup, Truth};
use imanage_sim::{ClientSpec, Sim, SimConfig};
use loadgen::{Outcome, Target};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The query the demo prints: a person by login, with accounts, groups and reach.
const PERSON_QUERY: &str = "query PersonByLogin($login: String!) { person(login: $login) { \
    id displayName accounts { database userId loginName active groups { name } } \
    reach { database access group { name } } } }";

/// [`PERSON_QUERY`] with its fields in an inline fragment: the same answer, which the API's
/// fast path declines (it takes no fragments), so async-graphql's executor gives it. The
/// issue's "straightforward async-graphql version of this query".
const PERSON_QUERY_EXECUTOR: &str =
    "query PersonByLogin($login: String!) { person(login: $login) { \
    ... on Person { id displayName accounts { database userId loginName active groups { name } } \
    reach { database access group { name } } } } }";

/// The listing: active members of one group, a page of 100.
const LISTING_QUERY: &str = "query GroupMembers($db: String!, $group: String!) { \
    persons(filter: {database: $db, groupId: $group, active: true}, first: 100) { \
    totalCount edges { node { id displayName } } } }";

/// Every login of the graph, a page at a time.
const LOGINS_QUERY: &str =
    "query AllLogins($after: String) { persons(first: 500, after: $after) { \
    pageInfo { hasNextPage endCursor } edges { node { logins } } } }";

/// Options of the query section. The defaults are the issue's sizes and rates.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// People in the firm; each has an account in every database.
    #[arg(long, default_value_t = 50_000)]
    pub people: usize,
    /// Databases in the firm.
    #[arg(long, default_value_t = 10)]
    pub databases: usize,
    /// Fixed rates of the `person(login:)` query, requests a second.
    #[arg(long, value_delimiter = ',', default_values_t = [1000.0, 2000.0, 4000.0, 8000.0])]
    pub rates: Vec<f64>,
    /// Seconds at each fixed rate.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds of warm-up load (at the first rate) before the measured runs of each server.
    #[arg(long, default_value_t = 3.0)]
    pub warmup_seconds: f64,
    /// Seconds of the closed-loop run for the maximum throughput.
    #[arg(long, default_value_t = 10.0)]
    pub max_seconds: f64,
    /// Keep-alive connections of the open-loop runs.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Keep-alive connections of the closed-loop (maximum throughput) run.
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
    /// Seconds of the one-at-a-time run (one connection, closed loop): each server's latency
    /// with no queue at all, beside the fixed rates, where a server that cannot keep up with a
    /// rate (the SQL baseline on a slow machine) measures its queue rather than its answer.
    #[arg(long, default_value_t = 5.0)]
    pub serial_seconds: f64,
    /// Rate of the listing query, requests a second.
    #[arg(long, default_value_t = 1000.0)]
    pub listing_rate: f64,
    /// Rates at which the plain-SQL baseline runs (a rate is skipped once a lower one could not
    /// keep up).
    #[arg(long, value_delimiter = ',', default_values_t = [1000.0, 4000.0])]
    pub sql_rates: Vec<f64>,
    /// A PostgreSQL server to create (and drop) the benchmark's database on; default
    /// `IDGRAPH_TEST_PG_URL`, else postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Firm seed.
    #[arg(long, default_value_t = 8)]
    pub seed: u64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            people: 50_000,
            databases: 10,
            rates: vec![1000.0, 2000.0, 4000.0, 8000.0],
            seconds: 10.0,
            warmup_seconds: 3.0,
            max_seconds: 10.0,
            connections: 64,
            max_connections: 64,
            serial_seconds: 5.0,
            listing_rate: 1000.0,
            sql_rates: vec![1000.0, 4000.0],
            database_url: None,
            seed: 8,
        }
    }
}

/// Runs the section: builds, measures, prints, and returns the figures with goals.
pub async fn run(args: &Args) -> anyhow::Result<Vec<Figure>> {
    let started = Instant::now();
    let binary = idgraph_binary().await?;
    let admin_url = args
        .database_url
        .clone()
        .or_else(|| std::env::var("IDGRAPH_TEST_PG_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let db = ScratchDatabase::create(&admin_url, "query").await?;
    let load_before = load_average();
    let result = run_on(args, &binary, &db.url).await;
    if let Err(e) = db.drop_database().await {
        eprintln!("query: dropping the benchmark's database failed: {e:#}");
    }
    let figures = result?;
    // The load generator, the server and PostgreSQL share this machine with whatever else runs
    // on it; the load average says how much else that was.
    println!(
        "\nquery section: {:.0} s in all; load average (1 min) {} at the start, {} at the end",
        started.elapsed().as_secs_f64(),
        load_before,
        load_average()
    );
    Ok(figures)
}

async fn run_on(args: &Args, binary: &Path, database_url: &str) -> anyhow::Result<Vec<Figure>> {
    let mut setup = Table::new(["step", "what", "time"]);
    let t = Instant::now();
    let firm = build_firm(args.people, args.databases, args.seed);
    let accounts: usize = firm.databases.iter().map(|d| d.users.len()).sum();
    let memberships: usize = firm
        .databases
        .iter()
        .flat_map(|d| d.groups.values())
        .map(|g| g.members.len())
        .sum();
    let groups: Vec<(String, String)> = firm
        .databases
        .iter()
        .flat_map(|d| {
            d.groups
                .values()
                .filter(|g| !g.members.is_empty())
                .map(|g| (d.customer_id.clone(), g.id.clone()))
        })
        .collect();
    let aliases = Aliases::of(&firm.truth);
    setup.row([
        "firm".to_string(),
        format!(
            "{} people x {} databases: {accounts} accounts, {} groups, {memberships} memberships",
            args.people,
            args.databases,
            groups.len()
        ),
        secs(t.elapsed()),
    ]);

    let t = Instant::now();
    harvest(firm, args.seed, database_url).await?;
    setup.row([
        "harvest".to_string(),
        "in-process simulator (no latency, 64 in flight) into a fresh PostgreSQL database"
            .to_string(),
        secs(t.elapsed()),
    ]);

    // A harvest of millions of fresh rows sets autovacuum off on its tables within a minute or
    // so; left to it, that vacuum and analyze ran beside the first measured rates (the machine's
    // load average 3.4 at the first rate of one run, a 50 ms stall in another). Done here first.
    let t = Instant::now();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .context("connecting to the benchmark's database")?;
    sqlx::raw_sql("VACUUM (ANALYZE)")
        .execute(&pool)
        .await
        .context("vacuuming the benchmark's database")?;
    pool.close().await;
    setup.row([
        "vacuum".to_string(),
        "VACUUM (ANALYZE) of the fresh store, so that autovacuum does not run during the \
         measurements"
            .to_string(),
        secs(t.elapsed()),
    ]);

    let dir = tempfile::tempdir()?;
    let key = random_key();
    let mut runs = Vec::new();
    for cache in [Cache::Off, Cache::On] {
        let t = Instant::now();
        let server = Server::start(binary, database_url, &key, &aliases, cache, dir.path()).await?;
        setup.row([
            format!("serve ({})", cache.label()),
            "idgraph serve --no-harvest: load the store, resolve, ready".to_string(),
            secs(t.elapsed()),
        ]);
        let result = measure_graph(args, &server, &key, &groups, cache).await;
        let rss = server.rss_mib();
        let counts = cache_counts(server.addr).await;
        server.stop().await;
        let mut run = result?;
        run.rss_mib = rss;
        run.cache_counts = counts;
        runs.push(run);
    }

    let t = Instant::now();
    let sql = measure_sql(args, database_url, &runs[0].logins).await?;
    setup.row([
        "sql baseline".to_string(),
        "indexes, then the same load on the plain-SQL service".to_string(),
        secs(t.elapsed()),
    ]);
    let server = LocalServer::fixed_json().await?;
    let fixed = Target {
        addr: server.addr,
        path: "/graphql".into(),
        authorization: None,
        bodies: Arc::new(
            runs[0]
                .logins
                .iter()
                .take(1000)
                .map(|l| graphql_body(PERSON_QUERY, serde_json::json!({ "login": l })))
                .collect(),
        ),
        valid: valid_person,
    };
    let fixed_max = flat_out(&fixed, args, "static JSON from axum").await;
    // The same fixed answer at the baseline's first rate and one request at a time: the
    // latency of the HTTP exchange alone, the floor under any server's answer here.
    let first_rate = args.sql_rates.first().copied().unwrap_or(1000.0);
    let rate = at_rate(&fixed, first_rate, args, 300, "static JSON from axum").await;
    // And at the rate of the person p99 goal: the tail of the HTTP exchange alone on this
    // machine (its scheduling stalls included), the floor under the person query's p99.
    let at_goal_rate = match goal_rate(args) {
        Some(r) if r == first_rate => None,
        Some(r) => Some(at_rate(&fixed, r, args, 301, "static JSON from axum").await),
        None => None,
    };
    let fixed = StaticRuns {
        rate,
        at_goal_rate,
        serial: one_at_a_time(&fixed, args, "static JSON from axum").await,
        max: fixed_max,
    };
    server.stop();
    setup.print("Query under load: set-up");
    Ok(report(args, &runs, &sql, &fixed))
}

/// The static answer's row in the person table.
const STATIC_LABEL: &str = "static 3.4 KB JSON (reference)";

/// The static answer's runs: closed loop (the machine's yardstick), at the baseline's first
/// rate, at the person p99 goal's rate, and one request at a time.
struct StaticRuns {
    max: Outcome,
    rate: Outcome,
    /// At [`goal_rate`], when that is not the baseline's first rate (then it is `rate`).
    at_goal_rate: Option<Outcome>,
    serial: Outcome,
}

impl StaticRuns {
    /// The static answer's run at `rate`, if there was one.
    fn at(&self, rate: Option<f64>) -> Option<&Outcome> {
        [Some(&self.rate), self.at_goal_rate.as_ref()]
            .into_iter()
            .flatten()
            .find(|o| o.target_rate == rate)
    }
}

/// The rate the person p99 goal is judged at: 4,000 a second when it is measured, else the
/// highest fixed rate.
const P99_GOAL_RATE: f64 = 4000.0;

fn goal_rate(args: &Args) -> Option<f64> {
    if args.rates.contains(&P99_GOAL_RATE) {
        Some(P99_GOAL_RATE)
    } else {
        args.rates.iter().copied().reduce(f64::max)
    }
}

/// The response cache's size for the cached runs: every person's answer (about 6 KB each for
/// 50,000 people) and every listing fit, so a warm cache answers every request. The default
/// (256 MB) holds about two thirds of them, and a cache evicting in insertion order then
/// answers about two thirds of random requests.
const CACHE_MB: usize = 1024;

/// Whether the served API caches responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// `IDGRAPH_RESPONSE_CACHE_MB=0`: every request is answered anew.
    Off,
    /// On, sized to hold every answer the runs ask for ([`CACHE_MB`]), and warmed with every
    /// request the runs will send.
    On,
}

impl Cache {
    fn label(self) -> &'static str {
        match self {
            Cache::Off => "cache off",
            Cache::On => "cache on (1024 MB), warm",
        }
    }
}

/// Everything measured against one server.
struct GraphRun {
    cache: Cache,
    logins: Vec<String>,
    rates: Vec<Outcome>,
    max: Outcome,
    /// One request at a time on one connection.
    serial: Outcome,
    /// Closed loop on the async-graphql executor ([`PERSON_QUERY_EXECUTOR`]), cache off only.
    executor_max: Option<Outcome>,
    listing: Outcome,
    rss_mib: Option<f64>,
    /// Response-cache hits and stores over the whole run, from the server's `/metrics`.
    cache_counts: Option<(u64, u64)>,
}

async fn measure_graph(
    args: &Args,
    server: &Server,
    key: &str,
    groups: &[(String, String)],
    cache: Cache,
) -> anyhow::Result<GraphRun> {
    let auth = HeaderValue::from_str(&format!("Bearer {key}"))?;
    let logins = collect_logins(server.addr, &auth).await?;
    if logins.is_empty() {
        bail!("the served graph has no person with one plain login");
    }
    let person = Target {
        addr: server.addr,
        path: "/graphql".into(),
        authorization: Some(auth.clone()),
        bodies: Arc::new(
            logins
                .iter()
                .map(|l| graphql_body(PERSON_QUERY, serde_json::json!({ "login": l })))
                .collect(),
        ),
        valid: valid_person,
    };
    let listing = Target {
        addr: server.addr,
        path: "/graphql".into(),
        authorization: Some(auth),
        bodies: Arc::new(
            groups
                .iter()
                .map(|(db, g)| {
                    graphql_body(LISTING_QUERY, serde_json::json!({ "db": db, "group": g }))
                })
                .collect(),
        ),
        valid: valid_graphql,
    };
    if cache == Cache::On {
        // Warm: every request the runs can send, once, so that the figures are of a warm cache.
        let t = Instant::now();
        let a = loadgen::each_once(&person, args.max_connections).await;
        let b = loadgen::each_once(&listing, args.max_connections).await;
        eprintln!(
            "query: cache warmed with {} requests ({} errors) in {:.1} s",
            person.bodies.len() + listing.bodies.len(),
            a + b,
            t.elapsed().as_secs_f64()
        );
    }
    let first_rate = args.rates.first().copied().unwrap_or(1000.0);
    loadgen::open_loop(
        &person,
        first_rate,
        Duration::from_secs_f64(args.warmup_seconds),
        args.connections,
        1,
    )
    .await;
    let mut rates = Vec::new();
    let what = format!("{} person", cache.label());
    for (i, &rate) in args.rates.iter().enumerate() {
        rates.push(at_rate(&person, rate, args, 100 + i as u64, &what).await);
    }
    let max = flat_out(&person, args, &what).await;
    let serial = one_at_a_time(&person, args, &what).await;
    let executor_max = if cache == Cache::Off {
        let executor = Target {
            bodies: Arc::new(
                logins
                    .iter()
                    .map(|l| graphql_body(PERSON_QUERY_EXECUTOR, serde_json::json!({ "login": l })))
                    .collect(),
            ),
            ..person.clone()
        };
        let what = format!("{what} through async-graphql's executor");
        Some(flat_out(&executor, args, &what).await)
    } else {
        None
    };
    let listing = loadgen::open_loop(
        &listing,
        args.listing_rate,
        Duration::from_secs_f64(args.seconds),
        args.connections,
        300,
    )
    .await;
    Ok(GraphRun {
        cache,
        logins,
        rates,
        max,
        serial,
        executor_max,
        listing,
        rss_mib: None,
        cache_counts: None,
    })
}

/// The plain-SQL baseline's runs, by rate.
struct SqlRuns {
    runs: Vec<Outcome>,
    /// As fast as it goes (closed loop).
    max: Outcome,
    /// One request at a time on one connection.
    serial: Outcome,
    /// Rates skipped because a lower rate could not keep up.
    skipped: Vec<f64>,
}

async fn measure_sql(
    args: &Args,
    database_url: &str,
    logins: &[String],
) -> anyhow::Result<SqlRuns> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await?;
    for statement in sql::INDEXES {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .with_context(|| format!("baseline index: {statement}"))?;
    }
    pool.close().await;
    let server = LocalServer::sql(database_url.to_string()).await?;
    let target = Target {
        addr: server.addr,
        path: "/person".into(),
        authorization: None,
        bodies: Arc::new(
            logins
                .iter()
                .map(|l| Bytes::from(serde_json::json!({ "login": l }).to_string()))
                .collect(),
        ),
        valid: valid_person,
    };
    let first_rate = args.sql_rates.first().copied().unwrap_or(1000.0);
    loadgen::open_loop(
        &target,
        first_rate / 2.0,
        Duration::from_secs_f64(args.warmup_seconds),
        args.connections,
        1,
    )
    .await;
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for (i, &rate) in args.sql_rates.iter().enumerate() {
        if !runs.last().is_none_or(kept_up) {
            skipped.push(rate);
            continue;
        }
        runs.push(at_rate(&target, rate, args, 100 + i as u64, "plain SQL").await);
    }
    let max = flat_out(&target, args, "plain SQL").await;
    let serial = one_at_a_time(&target, args, "plain SQL").await;
    server.stop();
    Ok(SqlRuns {
        runs,
        max,
        serial,
        skipped,
    })
}

/// Whether an open-loop run kept up with its rate: it answered nearly as many requests a second
/// as were sent, and none waited a quarter of a second. A run that did not measured its queue.
fn kept_up(o: &Outcome) -> bool {
    o.throughput >= 0.95 * o.target_rate.unwrap_or(0.0)
        && o.quantile(0.99) < Duration::from_millis(250)
}

/// The SQL / graph goal (10x at the median) for the baseline's run `sql` and the graph's median
/// `graph` at the same rate: the figure to print, its goal and whether it is met. If the
/// baseline did not keep up, its median is a queue's (it grows with the run's length), so
/// there is no median to compare at that rate: when the baseline kept up at another rate
/// (`kept_up_elsewhere`), the goal is judged there and this rate is only reported; when it kept
/// up at none, the goal is judged on the one-at-a-time medians (`sql_serial`, `graph_serial`)
/// instead, where neither side queues (without them there is nothing fair to judge by, and the
/// goal is missed).
fn sql_graph_goal(
    sql: &Outcome,
    graph: Duration,
    sql_serial: Duration,
    graph_serial: Option<Duration>,
    kept_up_elsewhere: bool,
) -> (String, &'static str, bool) {
    const GOAL: &str = ">= 10x";
    let r = sql.quantile(0.5).as_secs_f64() / graph.as_secs_f64();
    if kept_up(sql) {
        return (format!("{r:.1}x"), GOAL, r >= 10.0);
    }
    let overloaded = format!(
        "{r:.1}x; SQL did not keep up ({:.0}/s answered)",
        sql.throughput
    );
    match graph_serial {
        _ if kept_up_elsewhere => (
            format!("{overloaded}: its median is its queue's"),
            "reported (judged where SQL kept up)",
            true,
        ),
        Some(graph_serial) => {
            let serial = sql_serial.as_secs_f64() / graph_serial.as_secs_f64();
            (
                format!("{overloaded}, one at a time {serial:.1}x"),
                GOAL,
                serial >= 10.0,
            )
        }
        None => (
            format!("{overloaded}, no one-at-a-time run to judge by"),
            GOAL,
            false,
        ),
    }
}

/// One open-loop run at `rate` for `args.seconds` on `args.connections`, with its progress line.
async fn at_rate(target: &Target, rate: f64, args: &Args, seed: u64, what: &str) -> Outcome {
    let o = loadgen::open_loop(
        target,
        rate,
        Duration::from_secs_f64(args.seconds),
        args.connections,
        seed,
    )
    .await;
    eprintln!(
        "query: {what} at {rate}/s: p50 {} p99 {} p99.9 {} errors {}",
        ms(o.quantile(0.5)),
        ms(o.quantile(0.99)),
        ms(o.quantile(0.999)),
        o.errors
    );
    o
}

/// The closed-loop run for the maximum throughput, with its progress line.
async fn flat_out(target: &Target, args: &Args, what: &str) -> Outcome {
    let max = loadgen::closed_loop(
        target,
        Duration::from_secs_f64(args.max_seconds),
        args.max_connections,
        200,
    )
    .await;
    eprintln!("query: {what}, closed loop: {:.0}/s", max.throughput);
    max
}

/// The one-at-a-time run (one connection, closed loop), with its progress line.
async fn one_at_a_time(target: &Target, args: &Args, what: &str) -> Outcome {
    let o =
        loadgen::closed_loop(target, Duration::from_secs_f64(args.serial_seconds), 1, 400).await;
    eprintln!(
        "query: {what}, one at a time: p50 {} p99 {} ({:.0}/s)",
        ms(o.quantile(0.5)),
        ms(o.quantile(0.99)),
        o.throughput
    );
    o
}

fn report(args: &Args, runs: &[GraphRun], sql: &SqlRuns, fixed: &StaticRuns) -> Vec<Figure> {
    let mut figures = Vec::new();
    let mut t = Table::new([
        "server",
        "load",
        "achieved/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "errors",
        "machine load avg",
    ]);
    for run in runs {
        for o in &run.rates {
            t.row(latency_row(run.cache.label(), &rate_label(o), o));
        }
        t.row(latency_row(
            run.cache.label(),
            &format!("closed loop, {} conns", args.max_connections),
            &run.max,
        ));
    }
    if let Some(o) = fixed.at(goal_rate(args)) {
        t.row(latency_row(STATIC_LABEL, &rate_label(o), o));
    }
    t.print(&format!(
        "Query under load: person(login:) with accounts, groups and reach ({} people, {} accounts), \
         open loop on {} keep-alive connections, latency from each request's due time",
        args.people,
        args.people * args.databases,
        args.connections
    ));
    if fixed.at(goal_rate(args)).is_some() {
        println!(
            "The last row is a fixed 3.4 KB answer from axum at the rate of the p99 goal, same \
             loopback and load generator: the HTTP exchange's own tail on this machine, which no \
             server's p99 here could be under."
        );
    }
    let mut l = Table::new([
        "server",
        "load",
        "achieved/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "errors",
        "machine load avg",
    ]);
    for run in runs {
        l.row(latency_row(
            run.cache.label(),
            &rate_label(&run.listing),
            &run.listing,
        ));
    }
    l.print("Query under load: persons(filter: {database, groupId, active: true}, first: 100)");
    for run in runs {
        if let Some(rss) = run.rss_mib {
            println!(
                "server resident memory ({}): {rss:.0} MiB",
                run.cache.label()
            );
        }
        if let (Cache::On, Some((hits, stores))) = (run.cache, run.cache_counts) {
            println!(
                "response cache ({}): {hits} hits, {stores} answers stored (warm-up included); \
                 {:.1}% of cacheable requests were hits",
                run.cache.label(),
                100.0 * hits as f64 / (hits + stores).max(1) as f64
            );
        }
    }

    if let Some(o) = fixed.at(goal_rate(args)) {
        figures.push(Figure::new(
            "query",
            format!("static axum answer p99 at {}", rate_label(o)),
            format!("{} ({} errors)", ms(o.quantile(0.99)), o.errors),
            "reported (the floor under the person p99)",
            true,
        ));
    }
    for run in runs {
        let label = run.cache.label();
        if let Some(o) = run.rates.iter().find(|o| o.target_rate == goal_rate(args)) {
            let p99 = o.quantile(0.99);
            figures.push(Figure::new(
                "query",
                format!("person p99 at {} ({label})", rate_label(o)),
                format!("{} ({} errors)", ms(p99), o.errors),
                "< 2 ms, no errors",
                p99 < Duration::from_millis(2) && o.errors == 0,
            ));
        }
        figures.push(Figure::new(
            "query",
            format!("person max throughput ({label})"),
            format!("{:.0}/s", run.max.throughput),
            ">= 15,000/s",
            run.max.throughput >= 15_000.0 && run.max.errors == 0,
        ));
        let p99 = run.listing.quantile(0.99);
        figures.push(Figure::new(
            "query",
            format!("listing p99 at {} ({label})", rate_label(&run.listing)),
            format!("{} ({} errors)", ms(p99), run.listing.errors),
            "< 10 ms",
            p99 < Duration::from_millis(10) && run.listing.errors == 0,
        ));
    }

    let mut b = Table::new([
        "rate",
        "SQL p50",
        "SQL p99",
        "SQL errors",
        "graph p50 (cache off)",
        "SQL / graph (cache off)",
        "graph p50 (cache on)",
        "SQL / graph (cache on)",
        "static p50",
        "SQL / static (ceiling)",
    ]);
    // The static answer beside an SQL outcome: its p50 and the ratio no server could beat here.
    let ceiling = |o: &Outcome, f: Option<&Outcome>| match f {
        Some(f) => [
            ms(f.quantile(0.5)),
            format!(
                "{:.1}x",
                o.quantile(0.5).as_secs_f64() / f.quantile(0.5).as_secs_f64()
            ),
        ],
        None => ["-".to_string(), "-".to_string()],
    };
    // Each server's median one request at a time (cache off, cache on), where nothing queues.
    let serial_graph = [
        runs.first().map(|r| r.serial.quantile(0.5)),
        runs.get(1).map(|r| r.serial.quantile(0.5)),
    ];
    // The graph's median at a rate: the first server (cache off), then the second (cache on).
    let graph_at = |server: usize, rate: Option<f64>| {
        runs.get(server).and_then(|run| {
            run.rates
                .iter()
                .find(|g| g.target_rate == rate)
                .map(|g| g.quantile(0.5))
        })
    };
    for o in &sql.runs {
        let off = graph_at(0, o.target_rate);
        let on = graph_at(1, o.target_rate);
        let ratio = |g: Option<Duration>| {
            g.map_or("-".to_string(), |g| {
                format!("{:.1}x", o.quantile(0.5).as_secs_f64() / g.as_secs_f64())
            })
        };
        let fixed_here = fixed.at(o.target_rate);
        let [static_p50, static_ratio] = ceiling(o, fixed_here);
        if let Some(f) = fixed_here {
            let r = o.quantile(0.5).as_secs_f64() / f.quantile(0.5).as_secs_f64();
            figures.push(Figure::new(
                "query",
                format!("SQL / static axum answer median at {}", rate_label(o)),
                format!("{r:.1}x"),
                "reported (the ceiling of SQL / graph)",
                true,
            ));
        }
        b.row([
            rate_label(o),
            ms(o.quantile(0.5)),
            ms(o.quantile(0.99)),
            o.errors.to_string(),
            off.map_or("-".into(), ms),
            ratio(off),
            on.map_or("-".into(), ms),
            ratio(on),
            static_p50,
            static_ratio,
        ]);
        // Both servers' settings are goals: the cache off is the graph's own speed, the cache
        // on is how `idgraph serve` runs by default.
        // A rate the baseline did not keep up with is judged at another rate, one it kept up
        // with and the graph ran at too (`sql_graph_goal`). Higher rates are skipped once one
        // fails, so that is a lower rate.
        let kept_up_elsewhere = sql.runs.iter().any(|r| {
            r.target_rate != o.target_rate && kept_up(r) && graph_at(0, r.target_rate).is_some()
        });
        for ((g, serial_g), server) in [off, on]
            .into_iter()
            .zip(serial_graph)
            .zip(["cache off", "cache on"])
        {
            let Some(g) = g else { continue };
            let (measured, goal, met) =
                sql_graph_goal(o, g, sql.serial.quantile(0.5), serial_g, kept_up_elsewhere);
            figures.push(Figure::new(
                "query",
                format!("SQL / graph median at {} ({server})", rate_label(o)),
                measured,
                goal,
                met,
            ));
        }
    }
    // Latency with no queue: each server's answer alone, one request at a time.
    if let [Some(off), on] = serial_graph {
        let o = &sql.serial;
        let ratio =
            |g: Duration| format!("{:.1}x", o.quantile(0.5).as_secs_f64() / g.as_secs_f64());
        let [static_p50, static_ratio] = ceiling(o, Some(&fixed.serial));
        b.row([
            "one at a time, 1 conn".to_string(),
            ms(o.quantile(0.5)),
            ms(o.quantile(0.99)),
            o.errors.to_string(),
            ms(off),
            ratio(off),
            on.map_or("-".into(), ms),
            on.map_or("-".into(), ratio),
            static_p50,
            static_ratio,
        ]);
    }
    if let Some(graph_max) = runs.first().map(|r| &r.max) {
        let on = runs.get(1).map(|r| r.max.throughput);
        b.row([
            format!("closed loop, {} conns", args.max_connections),
            format!("{:.0}/s", sql.max.throughput),
            ms(sql.max.quantile(0.99)),
            sql.max.errors.to_string(),
            format!("{:.0}/s", graph_max.throughput),
            format!(
                "graph {:.0}x the throughput",
                graph_max.throughput / sql.max.throughput.max(1.0)
            ),
            on.map_or("-".into(), |t| format!("{t:.0}/s")),
            on.map_or("-".into(), |t| {
                format!(
                    "graph {:.0}x the throughput",
                    t / sql.max.throughput.max(1.0)
                )
            }),
            format!("{:.0}/s", fixed.max.throughput),
            format!(
                "static {:.0}x the throughput",
                fixed.max.throughput / sql.max.throughput.max(1.0)
            ),
        ]);
    }
    for rate in &sql.skipped {
        b.row([
            format!("{rate:.0}/s"),
            "skipped: the SQL service did not keep up at a lower rate".to_string(),
        ]);
    }
    b.print(
        "Plain-SQL baseline: the same person(login:) answer from one SQL statement over the \
         store's tables (PostgreSQL builds the JSON), over HTTP, same load generator",
    );
    println!(
        "The static column is a fixed 3.4 KB answer from axum on the same loopback with the same \
         load generator: the HTTP exchange alone. SQL / static is the most SQL / graph could be \
         here, whatever the graph did."
    );
    figures.extend(machine_scale(args, runs, &fixed.max));
    figures
}

/// The issue's own yardsticks of "this machine", measured in the same run: a static 3.4 KB
/// JSON answer from axum ("about 50,000 a second here") and the person query through
/// async-graphql's executor ("about 9,000"). Their ratios to the issue's figures say how this
/// machine compares with the one the goals were set on; the goals themselves are not scaled.
fn machine_scale(args: &Args, runs: &[GraphRun], fixed: &Outcome) -> Vec<Figure> {
    const ISSUE_STATIC: f64 = 50_000.0;
    const ISSUE_EXECUTOR: f64 = 9_000.0;
    const GOAL_MAX: f64 = 15_000.0;
    let mut t = Table::new([
        "server",
        "achieved/s",
        "p50",
        "p99",
        "errors",
        "the issue's figure",
        "here / issue's",
    ]);
    let mut row = |server: &str, o: &Outcome, issue: f64| {
        t.row([
            server.to_string(),
            format!("{:.0}", o.throughput),
            ms(o.quantile(0.5)),
            ms(o.quantile(0.99)),
            o.errors.to_string(),
            format!("{issue:.0}/s"),
            format!("{:.2}", o.throughput / issue),
        ]);
    };
    row(
        &format!("static {STATIC_BODY_BYTES} B JSON from axum"),
        fixed,
        ISSUE_STATIC,
    );
    if let Some(o) = runs.first().and_then(|r| r.executor_max.as_ref()) {
        row(
            "person through async-graphql's executor (cache off)",
            o,
            ISSUE_EXECUTOR,
        );
    }
    for run in runs {
        row(
            &format!("person ({}), goal", run.cache.label()),
            &run.max,
            GOAL_MAX,
        );
    }
    t.print(&format!(
        "Machine scale: the issue's reference points on this machine (closed loop, {} conns, {} s \
         each, same load generator)",
        args.max_connections, args.max_seconds
    ));
    let scale = fixed.throughput / ISSUE_STATIC;
    println!(
        "This machine answers the static reference at {scale:.2} of the issue's \
         {ISSUE_STATIC:.0}/s; the person goal of {GOAL_MAX:.0}/s at that scale would be {:.0}/s.",
        GOAL_MAX * scale
    );
    let mut figures = vec![Figure::new(
        "query",
        "static 3.4 KB axum answer, closed loop (machine scale)",
        format!("{:.0}/s ({scale:.2} of 50,000)", fixed.throughput),
        "reported (issue: ~50,000/s)",
        true,
    )];
    if let Some(run) = runs.first() {
        let ratio = run.max.throughput / fixed.throughput.max(1.0);
        figures.push(Figure::new(
            "query",
            "person max throughput / static axum (cache off)",
            format!("{ratio:.2}"),
            "reported (goal / issue's static: 0.30)",
            true,
        ));
    }
    figures
}

fn latency_row(server: &str, load: &str, o: &Outcome) -> Vec<String> {
    vec![
        server.to_string(),
        load.to_string(),
        format!("{:.0}", o.throughput),
        ms(o.quantile(0.5)),
        ms(o.quantile(0.99)),
        ms(o.quantile(0.999)),
        ms(o.max()),
        o.errors.to_string(),
        o.load_average.clone(),
    ]
}

fn rate_label(o: &Outcome) -> String {
    match o.target_rate {
        Some(r) => format!("{r:.0}/s"),
        None => "closed loop".to_string(),
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A GraphQL answer without errors.
fn valid_graphql(body: &[u8]) -> bool {
    body.starts_with(b"{") && memchr::memmem::find(body, b"\"errors\"").is_none()
}

/// A GraphQL answer (or the baseline's) with a person and no errors.
fn valid_person(body: &[u8]) -> bool {
    valid_graphql(body)
        && memchr::memmem::find(body, b"\"person\":null").is_none()
        && memchr::memmem::find(body, b"\"person\" : null").is_none()
}

fn graphql_body(query: &str, variables: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::json!({ "query": query, "variables": variables }).to_string())
}

/// The response cache's counters (hits, stores) from the server's Prometheus text.
async fn cache_counts(addr: SocketAddr) -> Option<(u64, u64)> {
    let (status, body) = loadgen::request(addr, "/metrics", None, None).await.ok()?;
    if status != hyper::StatusCode::OK {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    let count = |result: &str| {
        let prefix = format!("idgraph_graphql_response_cache_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    Some((count("hit"), count("store")))
}

/// Every person's login, for persons with exactly one plain login (no domain part), through
/// the API itself.
async fn collect_logins(addr: SocketAddr, auth: &HeaderValue) -> anyhow::Result<Vec<String>> {
    let mut logins = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = graphql_body(LOGINS_QUERY, serde_json::json!({ "after": after }));
        let (status, answer) = loadgen::request(addr, "/graphql", Some(auth), Some(body)).await?;
        let answer: serde_json::Value = serde_json::from_slice(&answer)?;
        if status != hyper::StatusCode::OK || answer.get("errors").is_some() {
            bail!("listing logins failed: {status} {answer}");
        }
        let page = &answer["data"]["persons"];
        for edge in page["edges"].as_array().into_iter().flatten() {
            if let Some([one]) = edge["node"]["logins"].as_array().map(Vec::as_slice) {
                if let Some(l) = one.as_str().filter(|l| !l.contains(['@', '\\'])) {
                    logins.push(l.to_string());
                }
            }
        }
        if page["pageInfo"]["hasNextPage"].as_bool() != Some(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    Ok(logins)
}

/// A firm of `people` persons, each with an account in every one of `databases` databases: one
/// generated office, copied into every database with database-specific user and group ids (as
/// iManage gives one person a different user id in each database), same logins, emails and
/// group names. The copies have no workspaces (the v1 API serves none), so reach is the groups.
fn build_firm(people: usize, databases: usize, seed: u64) -> Firm {
    let base = firm::generate(&FirmSpec {
        seed,
        databases: 1,
        people,
        users_per_database: None,
        groups_per_database: None,
    });
    let template = &base.databases[0];
    let copies = (0..databases)
        .map(|d| {
            let suffix = format!("{d:x}");
            let users = template
                .users
                .values()
                .map(|u| {
                    let mut u = u.clone();
                    u.id.push_str(&suffix);
                    (u.id.clone(), u)
                })
                .collect();
            let groups = template
                .groups
                .values()
                .map(|g| {
                    let id = format!("{}{suffix}", g.id);
                    let group = SimGroup {
                        id: id.clone(),
                        name: g.name.clone(),
                        members: g.members.iter().map(|m| format!("{m}{suffix}")).collect(),
                    };
                    (id, group)
                })
                .collect();
            SimDatabase {
                customer_id: firm::customer_id(d),
                users,
                groups,
                workspaces: BTreeMap::new(),
            }
        })
        .collect::<Vec<_>>();
    let truth = Truth {
        databases: copies.iter().map(|d| d.customer_id.clone()).collect(),
        email_domain_aliases: base.truth.email_domain_aliases.clone(),
        login_domains: base.truth.login_domains.clone(),
        ..Truth::default()
    };
    Firm {
        databases: copies,
        truth,
    }
}

/// Harvests the firm from an in-process simulator into the store at `database_url`.
async fn harvest(firm: Firm, seed: u64, database_url: &str) -> anyhow::Result<()> {
    let databases = firm.truth.databases.clone();
    let sim = Sim::from_firm(
        SimConfig {
            firm: FirmSpec {
                seed,
                ..FirmSpec::default()
            },
            clients: vec![ClientSpec {
                id: "bench".into(),
                secret: "bench-secret".into(),
                scopes: vec!["user".into()],
            }],
            latency_ms: 0,
            fault_rate: 0.0,
            ..SimConfig::default()
        },
        firm,
    );
    let running = sim.spawn("127.0.0.1:0").await?;
    let client = imanage::Client::new(imanage::ClientConfig {
        api: imanage::ApiProfile::V1,
        base_url: url::Url::parse(&format!("http://{}", running.addr))?,
        client_id: "bench".into(),
        client_secret: SecretString::from("bench-secret"),
        page_size: 1000,
        max_concurrency: 64,
        ..imanage::ClientConfig::default()
    })?;
    let store = store::Store::connect(database_url).await?;
    store.migrate().await?;
    let report = Harvester::new(
        Arc::new(client),
        store.clone(),
        HarvestOptions {
            databases,
            page_size: 1000,
            max_recrawls: 3,
            member_listings_in_flight: 64,
        },
    )
    .run(&())
    .await?;
    store.close().await;
    let _ = running.shutdown().await;
    if let Some(bad) = report.incomplete().next() {
        bail!("the harvest was incomplete: {}", bad.summary_line());
    }
    Ok(())
}

/// The firm's domain aliases, as `idgraph serve` takes them from the environment (as the demo
/// configures its resolver: the Windows domains and the email domains are one login domain).
struct Aliases {
    email: String,
    login: String,
}

impl Aliases {
    fn of(truth: &Truth) -> Self {
        let email = truth
            .email_domain_aliases
            .iter()
            .map(|g| g.join("="))
            .collect::<Vec<_>>()
            .join(";");
        let mut login = truth.login_domains.clone();
        login.extend(truth.email_domain_aliases.iter().flatten().cloned());
        Aliases {
            email,
            login: login.join("="),
        }
    }
}

/// The `idgraph` binary next to this one, built first when run through cargo.
async fn idgraph_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the bench binary has no directory")?;
    let binary = dir.join("idgraph");
    if let Ok(cargo) = std::env::var("CARGO") {
        // `cargo run --release -p idgraph-bench` sets CARGO: make sure the server measured is
        // built from this tree, in the same profile.
        let release = dir.ends_with("release");
        let mut build = tokio::process::Command::new(cargo);
        build.args(["build", "-p", "idgraph"]);
        if release {
            build.arg("--release");
        }
        eprintln!(
            "query: cargo build {}-p idgraph",
            if release { "--release " } else { "" }
        );
        let status = build.status().await?;
        if !status.success() {
            bail!("building idgraph failed");
        }
    }
    if !binary.exists() {
        bail!(
            "{} is missing: build it first with `cargo build --release -p idgraph`",
            binary.display()
        );
    }
    Ok(binary)
}

/// A running `idgraph serve`.
struct Server {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(
        binary: &Path,
        database_url: &str,
        key: &str,
        aliases: &Aliases,
        cache: Cache,
        dir: &Path,
    ) -> anyhow::Result<Server> {
        let addr = free_port()?;
        let log_path = dir.join(format!("serve-{}.log", addr.port()));
        let log = std::fs::File::create(&log_path)?;
        let mut command = tokio::process::Command::new(binary);
        command
            .args(["serve", "--no-harvest", "--listen", &addr.to_string()])
            .env("DATABASE_URL", database_url)
            .env("IDGRAPH_API_KEYS", format!("reader:{key}"))
            .env("IDGRAPH_EMAIL_DOMAIN_ALIASES", &aliases.email)
            .env("IDGRAPH_LOGIN_DOMAIN_ALIASES", &aliases.login)
            .env_remove("RUST_LOG")
            .env_remove("IDGRAPH_LOG")
            .env_remove("IDGRAPH_RESPONSE_CACHE_MB")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        command.env(
            "IDGRAPH_RESPONSE_CACHE_MB",
            match cache {
                Cache::Off => "0".to_string(),
                Cache::On => CACHE_MB.to_string(),
            },
        );
        let mut child = command.spawn().context("starting idgraph serve")?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("idgraph serve exited ({status}):\n{log}");
            }
            if let Ok((status, _)) = loadgen::request(addr, "/readyz", None, None).await {
                if status == hyper::StatusCode::OK {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("idgraph serve was not ready after 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Server { child, addr })
    }

    /// The server's resident memory, MiB.
    fn rss_mib(&self) -> Option<f64> {
        let bytes = graph::memory::resident_bytes_of(self.child.id()?)?;
        Some(bytes as f64 / (1024.0 * 1024.0))
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A small axum service on a runtime (two worker threads) of its own, as a separate service
/// would run: the plain-SQL baseline, and the static reference of the machine-scale runs.
struct LocalServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalServer {
    /// Starts the service `setup` builds on its own runtime; a pool it returns is closed when
    /// the service stops.
    async fn start<F, Fut>(setup: F) -> anyhow::Result<LocalServer>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<(axum::Router, Option<sqlx::PgPool>)>>,
    {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                let started = async {
                    let (router, pool) = setup().await?;
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    anyhow::Ok((router, pool, listener))
                };
                let (router, pool, listener) = match started.await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let addr = listener.local_addr().map_err(anyhow::Error::from);
                let _ = ready_tx.send(addr);
                // As the API's server does, so that both answer alike on the wire.
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
                if let Some(pool) = pool {
                    pool.close().await;
                }
            });
        });
        let addr = ready_rx.await.context("the service did not start")??;
        Ok(LocalServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The plain-SQL service over the store at `database_url`.
    async fn sql(database_url: String) -> anyhow::Result<LocalServer> {
        LocalServer::start(move || async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .min_connections(16)
                .connect(&database_url)
                .await?;
            Ok((sql::router(pool.clone()), Some(pool)))
        })
        .await
    }

    /// The issue's "static JSON response from axum": `POST /graphql` reads the request body
    /// and answers [`STATIC_BODY_BYTES`] of fixed JSON.
    async fn fixed_json() -> anyhow::Result<LocalServer> {
        LocalServer::start(|| async {
            let body = Bytes::from(static_body(STATIC_BODY_BYTES));
            let router = axum::Router::new().route(
                "/graphql",
                axum::routing::post(move |_request: Bytes| {
                    let body = body.clone();
                    async move { ([(hyper::header::CONTENT_TYPE, "application/json")], body) }
                }),
            );
            Ok((router, None))
        })
        .await
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The size of the static reference's answer: the issue's "static 3.4 KB JSON response".
const STATIC_BODY_BYTES: usize = 3400;

/// A JSON document of `len` bytes (at least) shaped like a person's answer.
fn static_body(len: usize) -> Vec<u8> {
    let head = br#"{"data":{"person":{"id":"p-static","accounts":["#;
    let account =
        br#"{"database":"acme-london","userId":"U000001","loginName":"static","active":true}"#;
    let (tail_open, tail_close) = (br#"],"note":""#, br#""}}}"#);
    let mut out = head.to_vec();
    while out.len() + account.len() + 1 + tail_open.len() + tail_close.len() <= len {
        if out.len() > head.len() {
            out.push(b',');
        }
        out.extend_from_slice(account);
    }
    out.extend_from_slice(tail_open);
    let pad = len.saturating_sub(out.len() + tail_close.len());
    out.extend(std::iter::repeat_n(b'x', pad));
    out.extend_from_slice(tail_close);
    out
}

/// The 1-minute load average, as `/proc/loadavg` has it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn random_key() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p99_goal_is_judged_at_4000_a_second_or_the_highest_rate_run() {
        let with = |rates: &[f64]| Args {
            rates: rates.to_vec(),
            ..Args::default()
        };
        assert_eq!(goal_rate(&Args::default()), Some(4000.0));
        assert_eq!(goal_rate(&with(&[8000.0, 4000.0, 1000.0])), Some(4000.0));
        assert_eq!(goal_rate(&with(&[1000.0, 2000.0])), Some(2000.0));
        assert_eq!(goal_rate(&with(&[8000.0, 1000.0])), Some(8000.0));
        assert_eq!(goal_rate(&with(&[])), None);
    }

    #[test]
    fn static_body_is_a_person_answer_of_the_asked_size() {
        for len in [STATIC_BODY_BYTES, 200, 1000] {
            let body = static_body(len);
            assert_eq!(body.len(), len);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(v["data"]["person"]["id"], "p-static");
            assert!(valid_person(&body));
        }
    }

    /// An open-loop outcome at `rate` whose every latency is `ms` milliseconds.
    fn outcome(rate: f64, throughput: f64, ms: u64) -> Outcome {
        Outcome {
            latencies_ns: vec![ms * 1_000_000; 100],
            errors: 0,
            throughput,
            target_rate: Some(rate),
            load_average: String::new(),
        }
    }

    #[test]
    fn an_overloaded_baseline_is_judged_where_it_kept_up_else_one_request_at_a_time() {
        let graph = Duration::from_micros(200);
        let goal = |o: &Outcome, sql_serial: Duration, elsewhere: bool| {
            sql_graph_goal(o, graph, sql_serial, Some(graph), elsewhere)
        };
        // Kept up: the median ratio decides (2 ms / 0.2 ms = 10x, met; 1.8 ms: 9x, missed),
        // whatever happened at other rates.
        for elsewhere in [false, true] {
            let (text, g, met) = goal(&outcome(1000.0, 1000.0, 2), graph, elsewhere);
            assert_eq!((text.as_str(), g, met), ("10.0x", ">= 10x", true));
            let fast_sql = Outcome {
                latencies_ns: vec![1_800_000; 100],
                ..outcome(1000.0, 1000.0, 0)
            };
            assert!(!goal(&fast_sql, graph, elsewhere).2);
        }
        // Did not keep up (700 of 1,000 a second, a queue of seconds) at the only rate: a huge
        // median ratio does not meet the goal when one at a time SQL is only 8x the graph ...
        let overloaded = outcome(1000.0, 700.0, 1500);
        let (text, g, met) = goal(&overloaded, Duration::from_micros(1600), false);
        assert!(!met, "{text}");
        assert_eq!(g, ">= 10x");
        assert!(
            text.contains("SQL did not keep up (700/s answered)"),
            "{text}"
        );
        assert!(text.ends_with("one at a time 8.0x"), "{text}");
        // ... and meets it when one at a time is 12x.
        assert!(goal(&overloaded, Duration::from_micros(2400), false).2);
        // Kept up at another rate: that rate is the goal, this one is reported, not judged
        // (neither a 7,500x "met" nor an 8x "missed").
        let (text, g, met) = goal(&overloaded, Duration::from_micros(1600), true);
        assert!(g.starts_with(crate::report::REPORTED), "{g}");
        assert!(met, "a reported figure is not shown as missed");
        assert!(text.ends_with("its median is its queue's"), "{text}");
        // Kept up nowhere and no one-at-a-time run of the graph: nothing fair to judge by, so
        // the queue's 7,500x is not taken as met.
        let (text, g, met) = sql_graph_goal(&overloaded, graph, graph, None, false);
        assert_eq!((g, met), (">= 10x", false), "{text}");
        // A p99 of 250 ms or more is a queue too, even at the full rate.
        assert!(!kept_up(&outcome(1000.0, 1000.0, 300)));
        assert!(kept_up(&outcome(1000.0, 990.0, 3)));
    }
}
