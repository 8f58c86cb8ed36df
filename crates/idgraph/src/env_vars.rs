//! The names of every environment variable idgraph reads, in one list that the tests check the
//! README and `docker-compose.yml` against (`tests/compose.rs` includes this file by path, so it
//! must stay free of other code).

/// Every environment variable idgraph reads: the configuration's (see `config.rs`, which maps
/// each to its setting), the logging's (`telemetry.rs`) and the allocator's
/// (`graph::memory::disable_transparent_huge_pages`, called from `main.rs`; mimalloc reads it too).
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "IMANAGE_BASE_URL",
    "IMANAGE_CLIENT_ID",
    "IMANAGE_CLIENT_SECRET",
    "IMANAGE_CLIENT_SECRET_FILE",
    "IMANAGE_CUSTOMERS",
    "IMANAGE_PAGE_SIZE",
    "IMANAGE_MAX_CONCURRENCY",
    "IMANAGE_RATE_LIMIT",
    "IMANAGE_SCOPES",
    "IMANAGE_API",
    "IDGRAPH_API_KEYS",
    "IDGRAPH_API_KEYS_FILE",
    "IDGRAPH_HARVEST_EVERY",
    "IDGRAPH_RESPONSE_CACHE_MB",
    "IDGRAPH_EMAIL_DOMAIN_ALIASES",
    "IDGRAPH_LOGIN_DOMAIN_ALIASES",
    "IDGRAPH_LOG",
    "IDGRAPH_LOG_FORMAT",
    "RUST_LOG",
    "MIMALLOC_ALLOW_THP",
];

/// The variables among [`ENV_VARS`] that hold a secret; each has a `_FILE` twin, and neither
/// has a command-line flag.
/// (`DATABASE_URL` because a PostgreSQL URL carries its password.)
pub const SECRET_VARS: &[&str] = &["DATABASE_URL", "IMANAGE_CLIENT_SECRET", "IDGRAPH_API_KEYS"];
