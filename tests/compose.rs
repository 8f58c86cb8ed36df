//! `docker-compose.yml` and the `Dockerfile`, checked without a Docker engine: the compose file
//! parses, has the production shape of issue 7 (PostgreSQL with a `pg_isready` healthcheck and
//! a volume, idgraph waiting for it to be healthy, the simulator beside them, every port on
//! loopback, secrets from files), and sets for idgraph only variables that idgraph reads.

// The list of variables idgraph reads, from the binary's own source.
#[path = "../crates/idgraph/src/env_vars.rs"]
mod env_vars;

use env_vars::{ENV_VARS, SECRET_VARS};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

const COMPOSE: &str = include_str!("../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../Dockerfile");
const DOCKERIGNORE: &str = include_str!("../.dockerignore");

fn compose() -> Value {
    serde_yaml_ng::from_str(COMPOSE).expect("docker-compose.yml is valid YAML")
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["services"][name];
    assert!(s.is_mapping(), "docker-compose.yml has no service {name:?}");
    s
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// A list of strings, or one string (compose accepts both for `command` and `test`).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().map(str_of).collect(),
        Value::Null => Vec::new(),
        other => vec![str_of(other)],
    }
}

/// A service's `environment`, in either of compose's forms (a map or `KEY=VALUE` items).
fn environment(s: &Value) -> BTreeMap<String, String> {
    match &s["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = if v.is_null() {
                    String::new()
                } else {
                    str_of(v)
                };
                (str_of(k), v)
            })
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let i = str_of(i);
                let (k, v) = i.split_once('=').unwrap_or((&i, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Mapping(m) => m.keys().map(str_of).collect(),
        Value::Sequence(items) => items.iter().map(str_of).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn postgres_is_healthchecked_and_keeps_its_data_in_a_volume() {
    let doc = compose();
    let pg = service(&doc, "postgres");
    assert!(
        str_of(&pg["image"]).starts_with("postgres:"),
        "the postgres service runs the postgres image"
    );
    // Its password comes from a secret too, the one the database URL secret repeats.
    let env = environment(pg);
    assert!(!env.contains_key("POSTGRES_PASSWORD"), "a password inline");
    assert_eq!(
        env.get("POSTGRES_PASSWORD_FILE").map(String::as_str),
        Some("/run/secrets/postgres_password")
    );
    assert!(keys(&pg["secrets"])
        .iter()
        .any(|s| s == "postgres_password"));
    assert!(doc["secrets"]["postgres_password"]["file"].is_string());
    let test = strings(&pg["healthcheck"]["test"]).join(" ");
    assert!(
        test.contains("pg_isready"),
        "postgres healthcheck: {test:?}"
    );
    let volumes = strings(&pg["volumes"]);
    let data = volumes
        .iter()
        .find(|v| v.ends_with(":/var/lib/postgresql/data"))
        .unwrap_or_else(|| panic!("no volume on /var/lib/postgresql/data: {volumes:?}"));
    let name = data.split(':').next().unwrap();
    assert!(
        keys(&doc["volumes"]).iter().any(|v| v == name),
        "the data volume {name:?} is not declared under volumes:"
    );
}

#[test]
fn idgraph_waits_for_a_healthy_postgres_and_the_simulator_runs_beside_it() {
    let doc = compose();
    let idgraph = service(&doc, "idgraph");
    assert_eq!(
        idgraph["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy"),
        "idgraph must wait for postgres to be healthy"
    );
    assert_eq!(
        strings(&idgraph["command"]).first().map(String::as_str),
        Some("serve")
    );
    let sim = service(&doc, "sim");
    assert_eq!(
        strings(&sim["command"]).first().map(String::as_str),
        Some("sim")
    );
    // idgraph reaches both by their service names: PostgreSQL through the URL the header's
    // instructions put in the database_url secret.
    let env = environment(idgraph);
    let made = COMPOSE
        .lines()
        .find(|l| l.contains("> .idgraph-database-url"))
        .expect("the header says how to make the database URL secret");
    assert!(
        made.contains("postgres://idgraph:$pw@postgres:5432/idgraph"),
        "{made}"
    );
    assert_eq!(
        doc["secrets"]["database_url"]["file"].as_str(),
        Some("./.idgraph-database-url")
    );
    assert!(env
        .get("IMANAGE_BASE_URL")
        .is_some_and(|u| u.starts_with("http://sim:")));
    // Both images are the one the Dockerfile builds.
    for s in [idgraph, sim] {
        assert_eq!(s["build"].as_str(), Some("."), "built from the Dockerfile");
    }
}

#[test]
fn every_port_is_bound_to_loopback() {
    let doc = compose();
    let mut seen = 0;
    for name in keys(&doc["services"]) {
        for port in strings(&doc["services"][name.as_str()]["ports"]) {
            seen += 1;
            assert!(
                port.starts_with("127.0.0.1:"),
                "service {name} publishes {port:?} beyond loopback"
            );
        }
    }
    assert!(
        seen >= 3,
        "expected the API, the simulator and PostgreSQL published"
    );
}

#[test]
fn idgraph_is_configured_only_by_variables_it_reads() {
    let doc = compose();
    let env = environment(service(&doc, "idgraph"));
    assert!(!env.is_empty());
    for var in env.keys() {
        assert!(
            ENV_VARS.contains(&var.as_str()),
            "docker-compose.yml sets {var} for idgraph, which idgraph does not read"
        );
    }
}

#[test]
fn secrets_come_from_files_never_from_the_file_itself_or_the_command_line() {
    let doc = compose();
    let idgraph = service(&doc, "idgraph");
    let env = environment(idgraph);
    let granted = keys(&idgraph["secrets"]);
    let declared = &doc["secrets"];
    for var in SECRET_VARS {
        assert!(
            !env.contains_key(*var),
            "{var} is set in the compose file: give it as {var}_FILE and a secret"
        );
        let file_var = format!("{var}_FILE");
        let path = env
            .get(&file_var)
            .unwrap_or_else(|| panic!("{file_var} is not set for idgraph"));
        let secret = path
            .strip_prefix("/run/secrets/")
            .unwrap_or_else(|| panic!("{file_var}={path} is not a compose secret"));
        assert!(
            granted.iter().any(|g| g == secret),
            "idgraph is not granted the secret {secret}"
        );
        assert!(
            declared[secret]["file"].is_string() || declared[secret]["environment"].is_string(),
            "the secret {secret} is not declared with a file or an environment source"
        );
    }
    for arg in strings(&idgraph["command"]) {
        let lower = arg.to_lowercase();
        assert!(
            !lower.contains("secret") && !lower.contains("key"),
            "idgraph's command line carries {arg:?}"
        );
    }
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_unprivileged() {
    let lines: Vec<&str> = DOCKERFILE.lines().map(str::trim).collect();
    assert!(lines
        .iter()
        .any(|l| l.starts_with("FROM ") && l.contains(" AS build")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("RUN cargo build --release --locked -p idgraph")));
    let user = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("the image names a user");
    assert!(!user.contains("root"), "{user}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ENTRYPOINT") && l.contains("idgraph")));
    // The build context (`COPY . .`) leaves out the build output and the compose secrets' files.
    let ignored: Vec<&str> = DOCKERIGNORE.lines().map(str::trim).collect();
    for pattern in ["target", ".idgraph*", "deploy/*secret*"] {
        assert!(
            ignored.contains(&pattern),
            ".dockerignore does not leave out {pattern}"
        );
    }
    // Only variables idgraph reads are baked in.
    for l in lines.iter().filter(|l| l.starts_with("ENV ")) {
        let var = l[4..].split(['=', ' ']).next().unwrap();
        assert!(ENV_VARS.contains(&var), "the Dockerfile sets {var}");
    }
}
