//! A simulator of the iManage Work REST API (`idgraph sim`).
//!
//! It serves the API of `shared/seeds/imanage-work-api-summary.txt` over axum, with its OAuth2
//! token endpoint, on top of a synthetic firm ([`firm::generate`]) whose ground truth
//! ([`firm::Truth`]) says which accounts are the same person and what every account can reach.
//! It speaks one of two shapes ([`ApiProfile`]): the summary's v1 (with a documented workspace
//! extension) or iManage Work's v2 (`/api` discovery, libraries, `X-Auth-Token`, v2 fields and
//! errors). Faults, latency, drift (users added and removed while a crawl pages) and bulk
//! mutations are switched on through [`SimHandle`] or the `/_sim/` control API.
//! `docs/SIMULATOR.md` is the HTTP contract.
//!
//! The simulator deliberately shares no code with the `imanage` client crate, so that a
//! misreading of the API summary in one cannot hide in the other.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use imanage_sim::{Sim, SimConfig};
//! let running = Sim::new(SimConfig::default()).spawn("127.0.0.1:0").await?;
//! println!("{}", running.base_url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod api;
mod auth;
mod control;
mod delay;
mod fault;
pub mod firm;
mod names;
mod pages;
mod rng;
pub mod security;
mod v2;
pub mod world;

pub use fault::FaultKind;
pub use world::{Change, MutationReport};

use axum::routing::{delete, get, post};
use axum::Router;
use firm::{Firm, FirmSpec, SimDatabase, Truth};
use rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--client` value that is not `ID:SECRET:SCOPES`.
    #[error("invalid client spec {0:?}: expected ID:SECRET:SCOPES (scopes space-separated)")]
    InvalidClientSpec(String),
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A file was not the JSON expected.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// An API profile other than `v1` or `v2`.
    #[error("invalid API profile {0:?}: expected v1 or v2")]
    InvalidApiProfile(String),
}

/// A registered OAuth2 client: what `--client ID:SECRET:SCOPES` gives.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// The `client_id`.
    pub id: String,
    /// The `client_secret`; never printed by `Debug`.
    pub secret: String,
    /// Scopes the client may be granted (`admin`, `user`).
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for ClientSpec {
    // The secret stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSpec")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl Default for ClientSpec {
    /// `idgraph:idgraph-secret:admin user`, the default client of `idgraph sim`.
    fn default() -> Self {
        Self {
            id: "idgraph".into(),
            secret: "idgraph-secret".into(),
            scopes: vec!["admin".into(), "user".into()],
        }
    }
}

impl FromStr for ClientSpec {
    type Err = Error;

    /// Parses `ID:SECRET:SCOPES`; the secret may contain `:` (the id ends at the first colon,
    /// the scopes start after the last), scopes are separated by spaces or commas.
    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidClientSpec(s.split(':').next().unwrap_or("").to_string());
        let (id, rest) = s.split_once(':').ok_or_else(invalid)?;
        let (secret, scopes) = rest.rsplit_once(':').ok_or_else(invalid)?;
        let scopes: Vec<String> = scopes
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect();
        if id.is_empty() || secret.is_empty() || scopes.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            id: id.to_string(),
            secret: secret.to_string(),
            scopes,
        })
    }
}

/// The shape of the iManage Work API the simulator serves (`idgraph sim --api v1|v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiProfile {
    /// The API summary's: `/api/v1/customers/{customer_id}/...`, `Authorization: Bearer`.
    #[default]
    V1,
    /// iManage Work's v2: `GET /api` discovery, then
    /// `/work/api/v2/customers/{customerId}/libraries/{libraryId}/...` with one customer id for
    /// the tenant and the databases as libraries; `X-Auth-Token`; v2 field names and errors.
    V2,
}

impl ApiProfile {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiProfile::V1 => "v1",
            ApiProfile::V2 => "v2",
        }
    }
}

impl FromStr for ApiProfile {
    type Err = Error;

    /// `v1` or `v2`, in any letter case.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" => Ok(ApiProfile::V1),
            "v2" => Ok(ApiProfile::V2),
            _ => Err(Error::InvalidApiProfile(s.to_string())),
        }
    }
}

impl std::fmt::Display for ApiProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one customer id of the simulated tenant in the v2 shape (the v1 shape has a customer id
/// per database instead). `GET /api` reports it as the number 1.
pub const V2_CUSTOMER_ID: &str = "1";

/// Everything `idgraph sim` configures.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The firm to generate (by [`Sim::new`]); its seed also seeds faults and drift.
    pub firm: FirmSpec,
    /// Registered OAuth2 clients.
    pub clients: Vec<ClientSpec>,
    /// Added to every API call.
    pub latency_ms: u64,
    /// Probability that an API call fails with 429, 502, 503 or 504.
    pub fault_rate: f64,
    /// Lifetime of access tokens (in the v2 shape: how long a token lives without use).
    pub token_ttl_s: u64,
    /// The shape of the API served.
    pub api: ApiProfile,
    /// In the v1 shape, also serve the workspace endpoints (the simulator's documented
    /// extension; on by default). Off, they answer 404, as a server without them would.
    pub v1_workspaces: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            firm: FirmSpec::default(),
            clients: vec![ClientSpec::default()],
            latency_ms: 0,
            fault_rate: 0.0,
            token_ttl_s: 3600,
            api: ApiProfile::V1,
            v1_workspaces: true,
        }
    }
}

/// What the simulator has served so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// API calls received (whatever their outcome), by kind: `users_list`, `user_get`,
    /// `user_create`, `user_update`, `user_delete`, `groups_list`, `group_get`,
    /// `members_list`, `member_add`, `member_remove`, `workspaces_list`, `workspace_get`,
    /// `workspace_security`, `discovery` (v2 `GET /api`), and `authorize` for the test login.
    pub calls: BTreeMap<String, u64>,
    /// Faults injected, by kind ([`FaultKind::as_str`]): `429_retry_after`, `429`, `502`,
    /// `503`, `504`, and the body faults `malformed_json`, `truncated_body`, `wrong_types`,
    /// `oversized_page`, `huge_body` when they are switched on.
    pub faults: BTreeMap<String, u64>,
    /// Calls refused with 503 because their database was set down.
    pub database_down: u64,
    /// Calls refused with 401.
    pub unauthorized: u64,
    /// Calls refused with 403.
    pub forbidden: u64,
    /// Token endpoint requests, by `grant_type` (failed ones included).
    pub token_requests: BTreeMap<String, u64>,
    /// Access tokens issued, by every grant.
    pub tokens_issued: u64,
    /// Users added by drift.
    pub drift_added: u64,
    /// Users removed by drift.
    pub drift_removed: u64,
}

impl SimStats {
    /// API calls of every kind (the test login excluded).
    pub fn total_calls(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(k, _)| k.as_str() != "authorize")
            .map(|(_, v)| v)
            .sum()
    }

    /// Faults of every kind.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    fn count_call(&mut self, kind: &str) {
        *self.calls.entry(kind.to_string()).or_insert(0) += 1;
    }

    fn count_fault(&mut self, kind: &str) {
        *self.faults.entry(kind.to_string()).or_insert(0) += 1;
    }
}

struct Faults {
    rate: f64,
    latency_ms: u64,
    /// The kinds a fault is drawn from, uniformly.
    kinds: Vec<FaultKind>,
    rng: Rng,
}

/// State shared by the handlers and every [`SimHandle`].
pub(crate) struct Shared {
    world: RwLock<world::World>,
    tokens: Mutex<auth::TokenStore>,
    clients: Vec<ClientSpec>,
    token_ttl: Duration,
    api: ApiProfile,
    v1_workspaces: bool,
    faults: Mutex<Faults>,
    drift: AtomicU32,
    down: RwLock<HashSet<String>>,
    stats: Mutex<SimStats>,
    delays: delay::Delays,
    /// Bumped whenever the world is written ([`Shared::world_mut`]): rendered pages of an
    /// older version are stale.
    world_version: AtomicU64,
    /// Rendered list pages, when switched on ([`SimHandle::cache_pages`]).
    pages: pages::PageCache,
}

impl Shared {
    /// The world, for writing: every rendered page of the version before is stale from now on.
    pub(crate) fn world_mut(&self) -> RwLockWriteGuard<'_, world::World> {
        let guard = write(&self.world);
        self.world_version.fetch_add(1, Ordering::SeqCst);
        guard
    }
}

// A panic while a lock is held (a bug) must not take every later request down with it: the state
// is still consistent enough for a simulator, so the poison is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn sane_rate(rate: f64) -> f64 {
    if rate.is_finite() {
        rate.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The simulator, before it serves.
pub struct Sim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

impl Sim {
    /// Generates the firm of `config.firm` and prepares to serve it.
    pub fn new(config: SimConfig) -> Sim {
        let firm = firm::generate(&config.firm);
        Self::from_firm(config, firm)
    }

    /// Serves a firm built elsewhere (tests build databases of exact sizes this way).
    /// `config.firm.seed` still seeds faults, drift and new ids.
    pub fn from_firm(config: SimConfig, firm: Firm) -> Sim {
        let seed = config.firm.seed;
        let shared = Shared {
            world: RwLock::new(world::World::new(firm, seed)),
            tokens: Mutex::new(auth::TokenStore::default()),
            clients: config.clients,
            token_ttl: Duration::from_secs(config.token_ttl_s),
            api: config.api,
            v1_workspaces: config.v1_workspaces,
            faults: Mutex::new(Faults {
                rate: sane_rate(config.fault_rate),
                latency_ms: config.latency_ms,
                kinds: FaultKind::STATUS.to_vec(),
                rng: Rng::stream(seed, 0xFA17),
            }),
            drift: AtomicU32::new(0),
            down: RwLock::new(HashSet::new()),
            stats: Mutex::new(SimStats::default()),
            delays: delay::Delays::default(),
            world_version: AtomicU64::new(0),
            pages: pages::PageCache::default(),
        };
        Sim {
            shared: Arc::new(shared),
        }
    }

    /// A handle to inspect and steer the simulator while it serves.
    pub fn handle(&self) -> SimHandle {
        SimHandle {
            shared: self.shared.clone(),
        }
    }

    /// The whole HTTP app: the API, the OAuth2 endpoints and `/_sim/`. Pure: no socket, so tests
    /// can drive it with `tower::ServiceExt::oneshot`.
    pub fn router(&self) -> Router {
        let api = match self.shared.api {
            ApiProfile::V1 => self.v1_routes(),
            ApiProfile::V2 => v2::routes(),
        }
        .route_layer(axum::middleware::from_fn_with_state(
            self.shared.clone(),
            api::gate,
        ));
        let oauth = Router::new()
            .route("/auth/oauth2/token", post(auth::token))
            .route("/auth/oauth2/authorize", get(auth::authorize));
        let app = Router::new()
            .merge(api)
            .merge(oauth)
            .merge(control::router())
            .method_not_allowed_fallback(api::method_not_allowed)
            .fallback(api::not_found);
        let app = match self.shared.api {
            ApiProfile::V1 => app,
            // Every error the API's own code makes is rewritten into the v2 envelope; OAuth2
            // errors keep RFC 6749's shape, as they do in iManage.
            ApiProfile::V2 => app.layer(axum::middleware::map_response(v2::error_envelope)),
        };
        app.with_state(self.shared.clone())
    }

    /// The v1 shape: the summary's calls and, unless switched off, the workspace extension.
    fn v1_routes(&self) -> Router<Arc<Shared>> {
        let customer = api::V1_PREFIX;
        let mut routes = Router::new()
            .route(
                &format!("{customer}/users"),
                get(api::list_users).post(api::create_user),
            )
            .route(
                &format!("{customer}/users/{{user_id}}"),
                get(api::get_user)
                    .patch(api::update_user)
                    .delete(api::delete_user),
            )
            .route(&format!("{customer}/groups"), get(api::list_groups))
            .route(
                &format!("{customer}/groups/{{group_id}}"),
                get(api::get_group),
            )
            .route(
                &format!("{customer}/groups/{{group_id}}/members"),
                get(api::list_members).post(api::add_member),
            )
            .route(
                &format!("{customer}/groups/{{group_id}}/members/{{user_id}}"),
                delete(api::remove_member),
            );
        if self.shared.v1_workspaces {
            routes = routes
                .route(&format!("{customer}/workspaces"), get(api::list_workspaces))
                .route(
                    &format!("{customer}/workspaces/{{workspace_id}}/security"),
                    get(api::workspace_security),
                );
        }
        routes
    }

    /// Serves on a bound listener until the process ends.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background task.
    pub async fn spawn(self, addr: &str) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let handle = self.handle();
        let router = self.router();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // Either an explicit shutdown or the RunningSim being dropped.
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(%addr, "iManage simulator listening");
        Ok(RunningSim {
            addr,
            handle,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A simulator serving in a background task. Dropping it stops the server.
pub struct RunningSim {
    /// The address it listens on (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// Steers the running simulator.
    pub handle: SimHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`: the `IMANAGE_BASE_URL` of this simulator.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets requests in flight finish, and waits for the server.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Inspects and steers a simulator, from tests (in-process) or through `/_sim/` (over HTTP).
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The ground truth as it stands now: accounts removed since generation (by drift, mutations
    /// or API deletes) are gone; accounts added by drift and mutations are in; accounts created
    /// through the API are not (the simulator cannot know whose they are). `workspace_access` is
    /// computed from the current memberships and security (about a second for 100,000 accounts
    /// in a debug build; [`SimHandle::databases`] is the cheap way to the database list).
    pub fn truth(&self) -> Truth {
        read(&self.shared.world).current_truth()
    }

    /// The customer ids (v2: library ids) of every database, in order. Cheaper than
    /// [`SimHandle::truth`], which computes the access truth of the whole firm.
    pub fn databases(&self) -> Vec<String> {
        read(&self.shared.world)
            .dbs
            .iter()
            .map(|s| s.db.customer_id.clone())
            .collect()
    }

    /// The shape of the API served.
    pub fn api(&self) -> ApiProfile {
        self.shared.api
    }

    /// A copy of every database as it is now, for exact comparisons.
    pub fn snapshot(&self) -> Vec<SimDatabase> {
        read(&self.shared.world).snapshot()
    }

    /// Sets the probability of a fault per API call (clamped to 0..=1) and the latency added to
    /// every API call.
    pub fn set_faults(&self, fault_rate: f64, latency_ms: u64) {
        let mut f = lock(&self.shared.faults);
        f.rate = sane_rate(fault_rate);
        f.latency_ms = latency_ms;
    }

    /// Serves the answers of list calls (users, groups, members, workspaces, a workspace's
    /// security) from a cache of rendered bodies, kept until the world next changes. Off by
    /// default. The answers are byte for byte the same; what changes is the simulator's CPU:
    /// a benchmark that runs client and simulator on the same cores can take the simulator's
    /// rendering off the client's account (the API it stands for runs on machines of its own).
    /// Switching it off empties the cache.
    pub fn cache_pages(&self, on: bool) {
        self.shared.pages.set_enabled(on);
    }

    /// The current fault rate and latency.
    pub fn faults(&self) -> (f64, u64) {
        let f = lock(&self.shared.faults);
        (f.rate, f.latency_ms)
    }

    /// Sets the kinds a fault is drawn from (uniformly). The default is
    /// [`FaultKind::STATUS`]; an empty list restores it. Body faults
    /// ([`FaultKind::is_body`]) only hit successful `GET` calls: a write, or a call refused
    /// anyway, is served as it is and counts no fault.
    pub fn set_fault_kinds(&self, kinds: &[FaultKind]) {
        let mut f = lock(&self.shared.faults);
        f.kinds = if kinds.is_empty() {
            FaultKind::STATUS.to_vec()
        } else {
            kinds.to_vec()
        };
    }

    /// The kinds a fault is drawn from now.
    pub fn fault_kinds(&self) -> Vec<FaultKind> {
        lock(&self.shared.faults).kinds.clone()
    }

    /// From now on, each users-list call first adds or removes `events_per_page` users of its
    /// database at random positions (0 stops drift). The database stays within 5% (at least 5
    /// users) of its starting size; the sequence is deterministic given the seed and the order
    /// of calls.
    pub fn set_drift(&self, events_per_page: u32) {
        self.shared.drift.store(events_per_page, Ordering::Relaxed);
    }

    /// Changes about `fraction` of all users (field changes, deactivations, reactivations, a
    /// few additions and removals) and about `fraction` of all memberships (half added, half
    /// removed), deterministically for a seed and a state, and reports each change.
    pub fn mutate(&self, fraction: f64, seed: u64) -> MutationReport {
        self.shared.world_mut().mutate(fraction, seed)
    }

    /// Invalidates every access token at once; returns how many there were. Refresh tokens
    /// stay valid.
    pub fn revoke_tokens(&self) -> usize {
        lock(&self.shared.tokens).revoke_access()
    }

    /// What has been served so far.
    pub fn stats(&self) -> SimStats {
        lock(&self.shared.stats).clone()
    }

    /// While `down`, every API call to that database fails with 503.
    pub fn set_database_down(&self, customer_id: &str, down: bool) {
        let mut set = write(&self.shared.down);
        if down {
            set.insert(customer_id.to_string());
        } else {
            set.remove(customer_id);
        }
    }
}
