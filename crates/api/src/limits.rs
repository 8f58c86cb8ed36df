//! What one request may cost.

use std::time::Duration;

/// Bounds on one request, enforced before and while it runs. Every bound that is hit answers
/// with the error code `LIMIT_EXCEEDED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection nesting (async-graphql's depth limit). GraphiQL's introspection query
    /// needs about 13.
    pub max_depth: usize,
    /// Largest static query complexity: every selected field counts 1, and a paginated field
    /// multiplies its selection by its page size (`first`). Aliases count like fields, so this
    /// also bounds alias and field floods.
    pub max_complexity: usize,
    /// Largest page (`first`) a connection serves; the default page is 50.
    pub max_page: usize,
    /// Most list items one request may resolve. Static complexity cannot see how long an
    /// unpaginated list such as `Group.members` is, so resolvers count what they return and stop
    /// a request that fans out past this (e.g. members -> person -> accounts -> groups -> members).
    pub max_nodes: usize,
    /// Most fields a query document may select, counted as written (each fragment once).
    /// Bounds floods of fields that complexity lets through cheaply and the validation's
    /// overlap check pays for dearly.
    pub max_fields: usize,
    /// Most aliases a query document may use (a thousand aliases of a cheap field run a
    /// thousand resolvers within the complexity bound).
    pub max_aliases: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a request may take, reading its body included.
    pub request_timeout: Duration,
    /// Bytes the response cache of the serving graph may hold (request bodies and JSON
    /// answers); 0 turns the cache off. Only error-free answers to queries that read nothing
    /// but the graph are cached, per role and exact request body, and the cache starts empty
    /// with every newly published graph.
    pub response_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 15,
            max_complexity: 25_000,
            max_page: 500,
            max_nodes: 200_000,
            max_fields: 1_000,
            max_aliases: 100,
            max_body_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(10),
            response_cache_bytes: 256 * 1024 * 1024,
        }
    }
}
