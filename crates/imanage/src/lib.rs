//! A typed client for the iManage Work REST API, as `shared/seeds/imanage-work-api-summary.txt`
//! describes it (the v1 profile) and as iManage Work's v2 API shapes it (the v2 profile,
//! [`ApiProfile`]); everything above the client sees one [`Directory`] either way.
//!
//! - **OAuth2** at `/auth/oauth2/token`: client credentials, authorization code with PKCE
//!   ([`Client::begin_authorization`]), refresh tokens. One token per client, renewed before it
//!   expires and on a 401 (a fresh token refused twice in a row is an error); concurrent requests share one renewal. The token goes in
//!   `Authorization: Bearer` (v1) or `X-Auth-Token` (v2).
//! - **Every call of the summary** under `/api/v1/customers/{customer_id}`: users (list, get,
//!   find by login, create, update, delete), groups (list), group members (list, add, remove).
//! - **Workspaces and their security** where the deployment offers them; a v1 server without
//!   them is [`WorkspaceListing::NotOffered`], not an error.
//! - **The v2 profile**: discovery of the tenant's customer id and libraries at `GET /api`
//!   ([`Client::discover_libraries`]), the reads under
//!   `/work/api/v2/customers/{customerId}/libraries/{library}`, v2 field names mapped onto the
//!   same [`User`] and [`Group`]. Writes are v1 only ([`Error::Unsupported`]).
//! - **Offset pagination** as a [`Stream`] of [`Page`]s that always ends.
//! - **Retries** with exponential backoff and full jitter on 429, 502, 503, 504, timeouts,
//!   connection errors and bodies that are not JSON (cut short or garbled on the way), honouring
//!   `Retry-After`. A body of the wrong shape, a page longer than asked for, or a body over
//!   [`ClientConfig::max_body_bytes`] is an error at once, and no part of it is returned. Writes whose outcome is unknown are checked
//!   before they are repeated, never sent twice blindly.
//! - **A concurrency cap shared by every database**, held only during an HTTP exchange, and an
//!   optional client-side rate limit.
//! - **Counters** per client and per customer ([`Client::stats`]).
//!
//! Secrets (the client secret, tokens, passwords) are held in `secrecy` types and never appear
//! in Debug output, logs or errors. The crate touches no storage.
//!
//! ```no_run
//! # async fn run() -> imanage::Result<()> {
//! use futures::TryStreamExt;
//! let client = imanage::Client::new(imanage::ClientConfig {
//!     base_url: url::Url::parse("https://acme.imanage.work").expect("url"),
//!     client_id: "idgraph".into(),
//!     client_secret: secrecy::SecretString::from("..."),
//!     ..imanage::ClientConfig::default()
//! })?;
//! let pages: Vec<_> = client.list_users("acme").try_collect().await?;
//! println!("{} pages, {} API calls", pages.len(), client.stats().total.calls);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod auth;
mod client;
mod config;
pub mod decode;
mod error;
mod lenient;
mod models;
mod pagination;
mod permits;
mod retry;
mod stats;

pub use auth::PendingAuthorization;
pub use client::Client;
pub use config::{ApiProfile, ClientConfig, RetryPolicy, DEFAULT_MAX_BODY_BYTES, MAX_PAGE_SIZE};
pub use error::{Error, Result};
pub use models::{
    AddOutcome, Discovery, Group, Member, NewUser, Removal, SecurityMember, User, UserPatch,
    Workspace, WorkspaceListing, WorkspaceSecurity,
};
pub use pagination::Page;
pub use retry::RetryCause;
pub use stats::{CallStats, ClientStats, RetryCounts};

use futures::Stream;
use std::future::Future;

/// The read side of the API that a harvest needs, so the harvester can be driven by a fake in
/// unit tests. [`Client`] implements it, in either profile.
pub trait Directory: Send + Sync {
    /// Every user of one database, page by page.
    fn users(&self, customer_id: &str) -> impl Stream<Item = Result<Page<User>>> + Send + '_;

    /// Every group of one database, page by page.
    fn groups(&self, customer_id: &str) -> impl Stream<Item = Result<Page<Group>>> + Send + '_;

    /// The members of one group, page by page.
    fn group_members(
        &self,
        customer_id: &str,
        group_id: &str,
    ) -> impl Stream<Item = Result<Page<Member>>> + Send + '_;

    /// Every workspace of one database, page by page; or a single
    /// [`WorkspaceListing::NotOffered`] when the deployment has no workspace security to read.
    fn workspaces(
        &self,
        customer_id: &str,
    ) -> impl Stream<Item = Result<WorkspaceListing>> + Send + '_;

    /// The security of one workspace: its default and its entries.
    fn workspace_security(
        &self,
        customer_id: &str,
        workspace_id: &str,
    ) -> impl Future<Output = Result<WorkspaceSecurity>> + Send + '_;
}

impl Directory for Client {
    fn users(&self, customer_id: &str) -> impl Stream<Item = Result<Page<User>>> + Send + '_ {
        self.list_users(customer_id)
    }

    fn groups(&self, customer_id: &str) -> impl Stream<Item = Result<Page<Group>>> + Send + '_ {
        self.list_groups(customer_id)
    }

    fn group_members(
        &self,
        customer_id: &str,
        group_id: &str,
    ) -> impl Stream<Item = Result<Page<Member>>> + Send + '_ {
        self.list_group_members(customer_id, group_id)
    }

    fn workspaces(
        &self,
        customer_id: &str,
    ) -> impl Stream<Item = Result<WorkspaceListing>> + Send + '_ {
        self.list_workspaces(customer_id)
    }

    fn workspace_security(
        &self,
        customer_id: &str,
        workspace_id: &str,
    ) -> impl Future<Output = Result<WorkspaceSecurity>> + Send + '_ {
        self.get_workspace_security(customer_id, workspace_id)
    }
}
