//! The commands: wiring of the library crates, nothing more.

use crate::cli::{Cli, Command, DemoArgs, HarvestArgs, ServeArgs, SimArgs};
use crate::config::{redact_url, Config};
use anyhow::Context;
use harvest::{HarvestOptions, HarvestReport, Harvester, LogProgress, Progress, TerminalProgress};
use imanage_sim::{ClientSpec, Sim, SimConfig};
use secrecy::SecretString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use store::Store;
use tracing::{info, warn};

// A child module, so the admin-operation commands share this module's store and client set-up.
#[path = "ops_commands.rs"]
mod ops_commands;

/// A configuration error: `idgraph` exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadConfig(pub String);

fn bad_config(err: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(BadConfig(format!("{err:#}")))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sim(args) => sim(args).await,
        Command::Schema => {
            print!("{}", api::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo(args).await,
        command => {
            let config = Config::from_process(cli.config.as_deref()).map_err(bad_config)?;
            match command {
                Command::Migrate => migrate(&config).await,
                Command::Harvest(args) => harvest_once(&config, args).await,
                Command::Serve(args) => serve(&config, args).await,
                Command::Ops(command) => ops_commands::run(&config, command).await,
                Command::Sim(_) | Command::Schema | Command::Demo(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    open_store(&config.database_url).await?;
    println!("migrations applied to {}", redact_url(&config.database_url));
    Ok(ExitCode::SUCCESS)
}

/// The iManage client from the configuration; every missing setting is a configuration error.
fn imanage_client(config: &Config) -> anyhow::Result<imanage::Client> {
    let i = &config.imanage;
    let base_url = i
        .base_url
        .as_deref()
        .ok_or_else(|| bad_config(anyhow::anyhow!("IMANAGE_BASE_URL is not set")))?;
    let base_url = url::Url::parse(base_url)
        .map_err(|e| bad_config(anyhow::anyhow!("IMANAGE_BASE_URL is not a URL: {e}")))?;
    let client_id = i
        .client_id
        .clone()
        .ok_or_else(|| bad_config(anyhow::anyhow!("IMANAGE_CLIENT_ID is not set")))?;
    let client_secret = config
        .client_secret()
        .map_err(bad_config)?
        .ok_or_else(|| bad_config(anyhow::anyhow!("IMANAGE_CLIENT_SECRET is not set")))?;
    client_from_parts(base_url, client_id, client_secret, config)
}

fn client_from_parts(
    base_url: url::Url,
    client_id: String,
    client_secret: SecretString,
    config: &Config,
) -> anyhow::Result<imanage::Client> {
    let i = &config.imanage;
    let client_config = imanage::ClientConfig {
        base_url,
        api: match i.api {
            crate::config::ApiProfile::V1 => imanage::ApiProfile::V1,
            crate::config::ApiProfile::V2 => imanage::ApiProfile::V2,
        },
        client_id,
        client_secret,
        scopes: i.scopes.clone(),
        page_size: i.page_size,
        max_concurrency: i.max_concurrency,
        rate_limit_per_s: i.rate_limit_per_s,
        ..imanage::ClientConfig::default()
    };
    imanage::Client::new(client_config).map_err(|e| bad_config(anyhow::anyhow!("{e}")))
}

/// The databases to harvest: `IMANAGE_CUSTOMERS` when set; otherwise, with `IMANAGE_API=v2`,
/// the libraries the v2 discovery (`GET /api`) names.
async fn databases(config: &Config, client: &imanage::Client) -> anyhow::Result<Vec<String>> {
    if !config.imanage.customers.is_empty() {
        return Ok(config.imanage.customers.clone());
    }
    if config.imanage.api != crate::config::ApiProfile::V2 {
        return Err(bad_config(anyhow::anyhow!(
            "IMANAGE_CUSTOMERS is not set: name the customer_ids (databases) to harvest, or set \
             IMANAGE_API=v2 to discover the libraries"
        )));
    }
    let libraries = client
        .discover_libraries()
        .await
        .context("discovering the libraries to harvest (GET /api)")?;
    if libraries.is_empty() {
        return Err(bad_config(anyhow::anyhow!(
            "the v2 discovery names no libraries and IMANAGE_CUSTOMERS is not set"
        )));
    }
    info!(libraries = %libraries.join(","), "libraries discovered");
    Ok(libraries)
}

fn progress() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(TerminalProgress::new())
    } else {
        Box::new(LogProgress)
    }
}

async fn harvest_once(config: &Config, args: HarvestArgs) -> anyhow::Result<ExitCode> {
    let client = Arc::new(imanage_client(config)?);
    let databases = databases(config, &client).await?;
    let store = open_store(&config.database_url).await?;
    let options = HarvestOptions {
        databases,
        page_size: config.imanage.page_size,
        max_recrawls: args.max_recrawls,
        ..HarvestOptions::default()
    };
    let harvester = Harvester::new(client, store, options);
    let progress = progress();
    let report = harvester.run(progress.as_ref()).await?;
    print_report(&report);
    Ok(if report.all_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print_report(report: &HarvestReport) {
    for db in &report.databases {
        println!("{}", db.summary_line());
    }
    let incomplete: Vec<&str> = report.incomplete().map(|d| d.database.as_str()).collect();
    if incomplete.is_empty() {
        println!(
            "harvest {} complete in {:.1} s",
            report.run_id,
            report.duration.as_secs_f64()
        );
    } else {
        println!(
            "harvest {} INCOMPLETE for {}: their last complete state is kept",
            report.run_id,
            incomplete.join(", ")
        );
    }
}

async fn sim(args: SimArgs) -> anyhow::Result<ExitCode> {
    let clients = if args.clients.is_empty() {
        vec!["idgraph:idgraph-secret:admin user".to_string()]
    } else {
        args.clients.clone()
    };
    let clients = clients
        .iter()
        .map(|c| {
            c.parse::<ClientSpec>()
                .map_err(|e| bad_config(anyhow::anyhow!("--client {c:?}: {e}")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(bad_config(anyhow::anyhow!(
            "--fault-rate must be between 0 and 1"
        )));
    }
    let firm = imanage_sim::firm::FirmSpec {
        seed: args.seed,
        databases: args.databases,
        people: args.people,
        users_per_database: args.users_per_database,
        groups_per_database: args.groups_per_database,
    };
    let sim = Sim::new(SimConfig {
        firm,
        clients,
        latency_ms: args.latency_ms,
        fault_rate: args.fault_rate,
        token_ttl_s: args.token_ttl_s,
        api: args.api,
        ..SimConfig::default()
    });
    if let Some(path) = &args.truth {
        let truth = serde_json::to_vec_pretty(&sim.handle().truth())?;
        std::fs::write(path, truth)
            .with_context(|| format!("writing the ground truth to {}", path.display()))?;
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let customers: Vec<String> = sim.handle().databases();
    println!("idgraph sim listening on http://{addr}");
    println!("databases: {}", customers.join(","));
    if args.api == imanage_sim::ApiProfile::V2 {
        println!(
            "api: v2 (customer id {}; the databases are libraries; discovery at /api)",
            imanage_sim::V2_CUSTOMER_ID
        );
    }
    tokio::select! {
        served = sim.serve(listener) => served.context("serving the simulator")?,
        _ = shutdown_signal() => info!("simulator stopping"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let keys = config.api_keys().map_err(bad_config)?;
    if keys.is_empty() && !args.insecure_no_auth {
        return Err(bad_config(anyhow::anyhow!(
            "IDGRAPH_API_KEYS is not set: give ROLE:SECRET pairs, or --insecure-no-auth to serve without keys"
        )));
    }
    let every = match &args.harvest_every {
        Some(s) => crate::config::parse_duration(s).map_err(bad_config)?,
        None => config.harvest_every().map_err(bad_config)?,
    };
    let harvester = if args.no_harvest {
        None
    } else {
        let client = Arc::new(imanage_client(config)?);
        let databases = databases(config, &client).await?;
        Some((client, databases))
    };
    let store = open_store(&config.database_url).await?;
    let keys = if args.insecure_no_auth && keys.is_empty() {
        warn!("serving WITHOUT API keys (--insecure-no-auth)");
        None
    } else {
        Some(keys)
    };
    let state = api::AppState::new(
        store.clone(),
        keys,
        config.api_limits(),
        config.resolve_config(),
    );
    // Serve the last complete state at once, if there is one; a first harvest follows in the
    // background. With nothing harvested yet, /readyz stays 503 until the first harvest (by this
    // replica or, on PostgreSQL, by whichever replica leads).
    let reloader = crate::replica::Reloader::new(state.clone());
    match reloader.reload_if_changed().await {
        Ok(true) => info!("graph loaded from the store"),
        Ok(false) => {
            info!("the store holds no complete harvest yet; not ready until the first one")
        }
        Err(e) => warn!(error = %e, "no graph loaded from the store yet"),
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!(
        "idgraph serving on http://{}/graphql",
        listener.local_addr()?
    );

    // SIGTERM or Ctrl-C: stop accepting, finish the requests in flight, abandon a harvest in
    // flight, release the harvest leadership, exit 0.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    };

    let harvest_task = harvester.map(|(client, databases)| {
        let options = HarvestOptions {
            databases,
            page_size: config.imanage.page_size,
            ..HarvestOptions::default()
        };
        // The admin mutations act through the same client and re-harvest what they touched;
        // the store announces their commits, so every replica reloads.
        state.set_operator(Arc::new(ops::Operator::new(
            client.clone(),
            store.clone(),
            options.clone(),
        )));
        let harvester = Harvester::new(client, store.clone(), options);
        tokio::spawn(crate::replica::harvest_duty(
            harvester,
            reloader.clone(),
            every,
            stop_rx.clone(),
        ))
    });
    let following = tokio::spawn(crate::replica::follow_changes(reloader));
    let served = api::serve(listener, state, stopped).await;
    // The requests in flight have been answered; the harvest duty saw the same signal.
    following.abort();
    if let Some(mut task) = harvest_task {
        // It stops at once unless it is stuck reaching PostgreSQL (asking for the leadership
        // or checking it): then it is cut off, which also drops the leadership's connection.
        match tokio::time::timeout(std::time::Duration::from_secs(10), &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "the harvest task ended abnormally"),
            Err(_) => {
                warn!("the harvest task did not stop within 10 s; aborting it");
                task.abort();
                let _ = task.await;
            }
        }
    }
    // A harvest dropped half-way committed whole databases or nothing of them; its run must
    // not stay `running`.
    match store.abandon_own_runs().await {
        Ok(0) => {}
        Ok(n) => info!(
            runs = n,
            "the run cut short by the shutdown is marked abandoned"
        ),
        Err(e) => warn!(error = %e, "marking the run cut short as abandoned failed"),
    }
    store.close().await;
    served.context("serving the API")?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let sim = Sim::new(SimConfig {
        firm: imanage_sim::firm::FirmSpec {
            seed: args.seed,
            databases: args.databases,
            people: args.people,
            users_per_database: None,
            groups_per_database: None,
        },
        clients: vec![ClientSpec {
            id: "idgraph".into(),
            secret: "idgraph-secret".into(),
            scopes: vec!["admin".into(), "user".into()],
        }],
        ..SimConfig::default()
    });
    let truth = sim.handle().truth();
    let running = sim
        .spawn("127.0.0.1:0")
        .await
        .context("starting the simulator")?;
    let base_url = url::Url::parse(&format!("http://{}", running.addr))?;
    info!(%base_url, "simulator started");

    let dir = tempfile::tempdir().context("creating a directory for the demo store")?;
    let db_path = dir.path().join("idgraph-demo.db");
    let database_url = format!("sqlite://{}", db_path.display());
    let config = Config::load(None, [("DATABASE_URL".to_string(), database_url.clone())])?;
    let store = open_store(&database_url).await?;
    let client = Arc::new(client_from_parts(
        base_url,
        "idgraph".into(),
        SecretString::from("idgraph-secret"),
        &config,
    )?);
    let options = HarvestOptions {
        databases: truth.databases.clone(),
        ..HarvestOptions::default()
    };
    let operator = Arc::new(ops::Operator::new(
        client.clone(),
        store.clone(),
        options.clone(),
    ));
    let harvester = Harvester::new(client, store.clone(), options);
    let report = harvester.run(progress().as_ref()).await?;
    print_report(&report);

    let key = random_secret();
    let keys = vec![format!("admin:{key}")
        .parse::<api::ApiKey>()
        .map_err(|_| anyhow::anyhow!("building the demo key"))?];
    let mut resolve = config.resolve_config();
    resolve.email_domain_aliases = truth.email_domain_aliases.clone();
    // The firm's Windows domains and its email domains are one login domain.
    let mut login_domains = truth.login_domains.clone();
    login_domains.extend(truth.email_domain_aliases.iter().flatten().cloned());
    resolve.login_domain_aliases = vec![login_domains];
    let state = api::AppState::new(store, Some(keys), api::Limits::default(), resolve);
    state.set_operator(operator);
    let stats = api::reload(&state).await?;
    info!(?stats, "graph ready");
    let example_login = state
        .current()
        .and_then(|g| example_login(&g))
        .unwrap_or_else(|| "jdoe".to_string());

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let query = format!(
        "{{ person(login: \\\"{example_login}\\\") {{ id displayName accounts {{ database userId loginName active groups {{ name }} }} reach {{ database access group {{ name }} }} }} }}"
    );
    println!();
    println!("idgraph demo is running (store: {}).", db_path.display());
    println!("  GraphiQL: http://{addr}/graphql  (add the header  Authorization: Bearer {key})");
    println!("  API key:  {key}  (role admin)");
    println!("  Try:");
    println!(
        "    curl -s http://{addr}/graphql -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"query\": \"{query}\"}}'"
    );
    println!("Press Ctrl-C to stop.");
    api::serve(listener, state, shutdown_signal())
        .await
        .context("serving the API")?;
    drop(dir);
    Ok(ExitCode::SUCCESS)
}

/// 32 random bytes, hex-encoded.
fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutting down");
}

/// A login of the person with accounts in the most databases, for the demo's example query.
fn example_login(graph: &graph::Graph) -> Option<String> {
    graph
        .persons()
        .filter(|p| p.conflicts().is_empty())
        .max_by_key(|p| p.accounts().count())
        .and_then(|p| {
            // A login that is safe inside the printed shell command and JSON.
            p.logins()
                .into_iter()
                .find(|l| {
                    l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
                })
                .map(str::to_string)
        })
}
