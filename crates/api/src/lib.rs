//! idgraph's API: the GraphQL schema over the identity graph and the axum app serving it.
//!
//! - [`schema`] (module and function) holds the GraphQL types and resolvers, with no HTTP;
//!   [`sdl`] prints it (the committed `schema.graphql`).
//! - [`router`] and [`serve`] are the HTTP app: `POST /graphql` behind API keys, GraphiQL on
//!   `GET /graphql`, `/healthz`, `/readyz`, `/metrics`.
//! - [`AppState`] holds the published graph (swapped atomically by [`AppState::publish`] and
//!   [`reload`]), the store, the keys and the limits.
//!
//! The API never writes SQL: it calls `store::Store` methods. Reach answers are computed from
//! iManage Work's own security only (no Security Policy Manager).

mod auth;
mod cache;
mod guard;
#[doc(hidden)]
mod http;
mod limits;
mod metrics;
pub mod schema;
mod state;

pub use auth::{ApiKey, Caller, ParseApiKeyError, Role};
pub use graph::GraphStats;
pub use http::{router, serve};
pub use limits::Limits;
pub use metrics::{record_harvest, record_harvest_leader};
pub use schema::{execute, schema, sdl, Code, IdgraphSchema};
pub use state::AppState;

use std::time::Instant;

/// What can go wrong loading and publishing a graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the state or saving person ids failed.
    #[error("store: {0}")]
    Store(#[from] store::Error),
    /// The resolver panicked (or its task was cancelled).
    #[error("resolving the graph did not finish: {0}")]
    Resolve(#[source] tokio::task::JoinError),
}

/// Loads the store's current state, resolves it (passing the stored person ids, so ids stay
/// stable), persists the new person-id assignment, and publishes the new graph atomically.
/// Used by `serve`, `demo` and after override mutations.
///
/// Reloads are serialized. The person ids are saved before the graph is published: a graph
/// whose ids could not be saved is never served, because the next resolution would not know
/// them and could hand them to someone else.
pub async fn reload(state: &AppState) -> Result<GraphStats, Error> {
    let _one_at_a_time = state.reload_lock().lock().await;
    let started = Instant::now();
    let stored = state.store().load_state().await?;
    let input = graph::Input {
        accounts: stored.accounts,
        groups: stored.groups,
        memberships: stored.memberships,
        workspaces: stored.workspaces,
        workspace_entries: stored.workspace_entries,
        overrides: stored.overrides,
        previous: graph::PersonIds {
            by_account: stored.persons.by_account,
            aliases: stored.persons.aliases,
            created: stored.persons.created,
            next_seq: stored.persons.next_seq,
        },
    };
    let config = state.resolve_config().clone();
    // Resolution is CPU-bound for seconds on a large firm: keep it off the async workers that
    // serve queries meanwhile.
    let graph = tokio::task::spawn_blocking(move || graph::resolve(input, &config))
        .await
        .map_err(Error::Resolve)?;
    let ids = graph.person_ids();
    state
        .store()
        .save_persons(&store::PersonIds {
            by_account: ids.by_account,
            aliases: ids.aliases,
            created: ids.created,
            next_seq: ids.next_seq,
        })
        .await?;
    let stats = graph.stats();
    let elapsed = started.elapsed();
    state.publish_timed(graph, stored.databases, Some(elapsed));
    tracing::info!(
        persons = stats.persons,
        accounts = stats.accounts,
        duration_ms = elapsed.as_millis() as u64,
        "graph published"
    );
    // The input rows (millions of small strings on a large firm) and, once the last request
    // holding it ends, the previous graph are freed by now; hand the freed heap back to the
    // system so a served process's resident size tracks the graph, not its loading.
    tokio::task::spawn_blocking(graph::memory::release_free_memory);
    Ok(stats)
}
