//! Prometheus metrics: requests and latency by GraphQL operation, the size of the published
//! graph, and per-database harvest freshness and errors.
//!
//! The `metrics` facade has one global recorder per process. It is built with
//! `PrometheusBuilder::build_recorder` and installed once, behind a `OnceLock`, the first time
//! anything here is used; every app state in the process (tests build many) shares it. When some
//! other recorder was installed first, ours is not installed and `/metrics` renders only what
//! reaches ours, which is nothing; that is logged once.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REQUESTS: &str = "idgraph_graphql_requests_total";
const REQUEST_SECONDS: &str = "idgraph_graphql_request_duration_seconds";
const GRAPH_SIZE: &str = "idgraph_graph_size";
const GRAPH_PUBLISHED: &str = "idgraph_graph_published_timestamp_seconds";
const GRAPH_RESOLVE_SECONDS: &str = "idgraph_graph_resolve_duration_seconds";
const LAST_COMPLETE: &str = "idgraph_database_last_complete_harvest_timestamp_seconds";
const LAST_OK: &str = "idgraph_database_last_harvest_complete";
const HARVESTS: &str = "idgraph_database_harvests_total";
const HARVEST_ERRORS: &str = "idgraph_database_harvest_errors_total";
const RESPONSE_CACHE: &str = "idgraph_graphql_response_cache_total";
const HARVEST_LEADER: &str = "idgraph_harvest_leader";

/// Latency buckets in seconds: fine-grained below 10 ms, where lookups are expected to land.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Distinct operation names kept as label values; later new names are counted as `other`, so a
/// client inventing names cannot grow the metric set without bound.
const MAX_OPERATION_LABELS: usize = 200;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static OPERATIONS: OnceLock<RwLock<HashMap<Box<str>, Arc<OperationHandles>>>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use.
pub(crate) fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // Both calls only fail on an empty bucket list, which these constants are not.
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), LATENCY_BUCKETS)
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "latency buckets rejected; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "GraphQL requests by operation name and outcome.");
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "GraphQL request latency by operation name."
    );
    metrics::describe_gauge!(
        GRAPH_SIZE,
        "Size of the published graph by kind (persons, accounts, groups, memberships, workspaces, conflicts)."
    );
    metrics::describe_gauge!(
        GRAPH_PUBLISHED,
        metrics::Unit::Seconds,
        "When the serving graph was published (unix seconds)."
    );
    metrics::describe_histogram!(
        GRAPH_RESOLVE_SECONDS,
        metrics::Unit::Seconds,
        "Time to load the store's state and resolve it into a graph."
    );
    metrics::describe_gauge!(
        LAST_COMPLETE,
        metrics::Unit::Seconds,
        "When each database's last complete harvest was committed (unix seconds)."
    );
    metrics::describe_gauge!(
        LAST_OK,
        "1 when the last harvest attempt of the database was complete, else 0."
    );
    metrics::describe_counter!(HARVESTS, "Harvest attempts by database and outcome.");
    metrics::describe_counter!(HARVEST_ERRORS, "Failed or incomplete harvests by database.");
    metrics::describe_counter!(
        RESPONSE_CACHE,
        "Response cache: answers served from it (hit) and answers stored in it (store)."
    );
    metrics::describe_gauge!(
        HARVEST_LEADER,
        "1 while this process holds the harvest leadership (it is the replica that harvests), else 0."
    );
}

/// Renders every metric in the Prometheus text format.
pub(crate) fn render() -> String {
    handle().render()
}

/// Drains histogram samples into their distributions so they do not pile up between scrapes.
pub(crate) fn run_upkeep() {
    handle().run_upkeep();
}

/// Records one harvest attempt of one database: its outcome, an error count, and, when
/// complete, the harvest time (now). The exact commit time from the store replaces it at the next
/// graph publication.
pub fn record_harvest(database: &str, ok: bool) {
    handle();
    let outcome = if ok { "complete" } else { "failed" };
    metrics::counter!(HARVESTS, "database" => database.to_string(), "outcome" => outcome)
        .increment(1);
    metrics::gauge!(LAST_OK, "database" => database.to_string()).set(if ok { 1.0 } else { 0.0 });
    if ok {
        metrics::gauge!(LAST_COMPLETE, "database" => database.to_string())
            .set(unix_seconds(SystemTime::now()));
    } else {
        metrics::counter!(HARVEST_ERRORS, "database" => database.to_string()).increment(1);
    }
}

/// Records whether this process holds the harvest leadership (`idgraph_harvest_leader`).
pub fn record_harvest_leader(leader: bool) {
    handle();
    metrics::gauge!(HARVEST_LEADER).set(if leader { 1.0 } else { 0.0 });
}

/// Sets the graph-size and freshness gauges for a newly published graph.
pub(crate) fn record_publication(
    stats: &graph::GraphStats,
    statuses: &[store::DatabaseStatus],
    resolve: Option<Duration>,
) {
    handle();
    let sizes = [
        ("persons", stats.persons),
        ("accounts", stats.accounts),
        ("groups", stats.groups),
        ("memberships", stats.memberships),
        ("workspaces", stats.workspaces),
        ("conflicts", stats.conflicts),
    ];
    for (kind, n) in sizes {
        metrics::gauge!(GRAPH_SIZE, "kind" => kind).set(n as f64);
    }
    metrics::gauge!(GRAPH_PUBLISHED).set(unix_seconds(SystemTime::now()));
    if let Some(d) = resolve {
        metrics::histogram!(GRAPH_RESOLVE_SECONDS).record(d.as_secs_f64());
    }
    for s in statuses {
        if let Some(at) = s.last_complete_at {
            metrics::gauge!(LAST_COMPLETE, "database" => s.database.clone())
                .set(at as f64 / 1000.0);
        }
        metrics::gauge!(LAST_OK, "database" => s.database.clone()).set(if s.complete {
            1.0
        } else {
            0.0
        });
    }
}

/// Records one GraphQL request.
///
/// The metric handles of an operation are registered once and kept, so that recording a
/// request costs two atomic updates rather than building and looking up label sets.
pub(crate) fn record_request(operation: &str, outcome: &'static str, elapsed: Duration) {
    let handles = operation_handles(operation);
    handles.counter(outcome).increment(1);
    handles.latency.record(elapsed.as_secs_f64());
}

/// Counts a response-cache lookup that hit, or an answer stored after a miss.
pub(crate) fn record_cache(hit: bool) {
    static COUNTERS: OnceLock<[metrics::Counter; 2]> = OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        handle();
        [
            metrics::counter!(RESPONSE_CACHE, "result" => "store"),
            metrics::counter!(RESPONSE_CACHE, "result" => "hit"),
        ]
    });
    counters[usize::from(hit)].increment(1);
}

/// The registered metrics of one operation label.
struct OperationHandles {
    label: Box<str>,
    latency: metrics::Histogram,
    /// Request counters by outcome, registered as outcomes occur (a handful at most).
    outcomes: RwLock<Vec<(&'static str, metrics::Counter)>>,
}

impl OperationHandles {
    fn new(label: &str) -> Self {
        handle();
        OperationHandles {
            label: label.into(),
            latency: metrics::histogram!(REQUEST_SECONDS, "operation" => label.to_string()),
            outcomes: RwLock::new(Vec::new()),
        }
    }

    fn counter(&self, outcome: &'static str) -> metrics::Counter {
        // A poisoned lock only means another thread panicked mid-insert; the list is usable.
        if let Some((_, c)) = self
            .outcomes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(o, _)| *o == outcome)
        {
            return c.clone();
        }
        let mut outcomes = self.outcomes.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = outcomes.iter().find(|(o, _)| *o == outcome) {
            return c.clone();
        }
        let c = metrics::counter!(
            REQUESTS,
            "operation" => self.label.to_string(),
            "outcome" => outcome
        );
        outcomes.push((outcome, c.clone()));
        c
    }
}

/// The handles for an operation name, under its label: the name itself while fewer than
/// [`MAX_OPERATION_LABELS`] distinct names have been seen and it looks like a GraphQL name,
/// `other` after that.
fn operation_handles(name: &str) -> Arc<OperationHandles> {
    let label = operation_label_of(name);
    let seen = OPERATIONS.get_or_init(|| RwLock::new(HashMap::new()));
    if let Some(h) = seen.read().unwrap_or_else(|e| e.into_inner()).get(label) {
        return h.clone();
    }
    let mut map = seen.write().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = map.get(label) {
        return h.clone();
    }
    // `other` is always allowed in, on top of the named operations.
    let label = if label == "other" || map.len() < MAX_OPERATION_LABELS {
        label
    } else {
        "other"
    };
    map.entry(label.into())
        .or_insert_with(|| Arc::new(OperationHandles::new(label)))
        .clone()
}

/// `name` when it looks like a GraphQL name of reasonable length, else `other`.
fn operation_label_of(name: &str) -> &str {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        name
    } else {
        "other"
    }
}

#[cfg(test)]
fn operation_label(name: &str) -> String {
    operation_handles(name).label.to_string()
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_sanitised() {
        assert_eq!(operation_label("PersonByLogin"), "PersonByLogin");
        assert_eq!(operation_label("bad name"), "other");
        assert_eq!(operation_label(""), "other");
        assert_eq!(operation_label(&"x".repeat(65)), "other");
    }

    #[test]
    fn harvests_show_up_in_the_rendering() {
        record_harvest("dbmetrics1", false);
        record_harvest("dbmetrics1", true);
        let text = render();
        assert!(text.contains("idgraph_database_harvest_errors_total{database=\"dbmetrics1\"} 1"));
        assert!(text.contains("idgraph_database_last_harvest_complete{database=\"dbmetrics1\"} 1"));
    }
}
