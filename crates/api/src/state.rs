//! The app's shared state: the published graph, the store, keys and limits.

use crate::auth::{Caller, Keyring};
use crate::cache::ResponseCache;
use crate::{metrics, ApiKey, Limits};
use arc_swap::ArcSwapOption;
use std::sync::Arc;
use std::time::Duration;

/// One published graph together with the database statuses read with it.
///
/// Requests load this once and answer everything from it, so an answer never mixes two graphs,
/// or a graph with the freshness of another.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) graph: Arc<graph::Graph>,
    /// Ordered by database id.
    pub(crate) statuses: Vec<store::DatabaseStatus>,
    /// Answers computed from this graph; a new graph starts with an empty cache.
    pub(crate) responses: ResponseCache,
}

impl Published {
    pub(crate) fn status(&self, database: &str) -> Option<&store::DatabaseStatus> {
        self.statuses
            .binary_search_by(|s| s.database.as_str().cmp(database))
            .ok()
            .map(|i| &self.statuses[i])
    }
}

/// Everything a request needs, cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    published: ArcSwapOption<Published>,
    store: store::Store,
    /// `None` serves without authentication (`--insecure-no-auth`).
    keys: Option<Keyring>,
    limits: Limits,
    resolve_config: graph::ResolveConfig,
    /// Serializes [`crate::reload`]: two reloads racing (a harvest and an override) could
    /// otherwise publish out of order or save person ids computed from an older state last.
    reload_lock: tokio::sync::Mutex<()>,
    /// Runs the admin scenarios against iManage; absent when iManage is not configured.
    operator: std::sync::OnceLock<Arc<ops::Operator>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ready", &self.is_ready())
            .field("keys", &self.inner.keys)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A state with no graph published yet (`/readyz` answers 503 until [`AppState::publish`]
    /// or [`crate::reload`]). `keys: None` serves without authentication, every caller being
    /// an admin; `Some(vec![])` lets nobody in.
    pub fn new(
        store: store::Store,
        keys: Option<Vec<ApiKey>>,
        limits: Limits,
        resolve_config: graph::ResolveConfig,
    ) -> Self {
        // Install the metrics recorder now rather than on the first scrape, so that nothing
        // recorded before it is lost.
        metrics::handle();
        AppState {
            inner: Arc::new(Inner {
                published: ArcSwapOption::empty(),
                store,
                keys: keys.as_deref().map(Keyring::new),
                limits,
                resolve_config,
                reload_lock: tokio::sync::Mutex::new(()),
                operator: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Lets the admin mutations act on iManage through this operator (set once).
    pub fn set_operator(&self, operator: Arc<ops::Operator>) {
        let _ = self.inner.operator.set(operator);
    }

    /// The operator, when iManage is configured.
    pub fn operator(&self) -> Option<Arc<ops::Operator>> {
        self.inner.operator.get().cloned()
    }

    /// Publishes a graph and the database statuses that go with it, atomically: requests that
    /// started before keep the previous graph to the end.
    pub fn publish(&self, graph: graph::Graph, statuses: Vec<store::DatabaseStatus>) {
        self.publish_timed(graph, statuses, None);
    }

    pub(crate) fn publish_timed(
        &self,
        graph: graph::Graph,
        mut statuses: Vec<store::DatabaseStatus>,
        resolve: Option<Duration>,
    ) {
        statuses.sort_by(|a, b| a.database.cmp(&b.database));
        metrics::record_publication(&graph.stats(), &statuses, resolve);
        self.inner.published.store(Some(Arc::new(Published {
            graph: Arc::new(graph),
            statuses,
            responses: ResponseCache::new(self.inner.limits.response_cache_bytes),
        })));
    }

    /// True once a graph is published.
    pub fn is_ready(&self) -> bool {
        self.inner.published.load().is_some()
    }

    /// The graph serving queries now, if any.
    pub fn current(&self) -> Option<Arc<graph::Graph>> {
        self.inner
            .published
            .load_full()
            .map(|p| Arc::clone(&p.graph))
    }

    pub(crate) fn snapshot(&self) -> Option<Arc<Published>> {
        self.inner.published.load_full()
    }

    /// The store this state reads from.
    pub fn store(&self) -> &store::Store {
        &self.inner.store
    }

    /// The limits requests run under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// How accounts are resolved into persons.
    pub fn resolve_config(&self) -> &graph::ResolveConfig {
        &self.inner.resolve_config
    }

    /// True when requests need a key.
    pub fn requires_auth(&self) -> bool {
        self.inner.keys.is_some()
    }

    /// The caller a bearer token (or its absence) stands for; `None` means "reject with 401".
    pub(crate) fn authenticate(&self, token: Option<&str>) -> Option<Caller> {
        match &self.inner.keys {
            None => Some(Caller::anonymous_admin()),
            Some(ring) => token.and_then(|t| ring.authenticate(t)),
        }
    }

    pub(crate) fn reload_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.reload_lock
    }
}
