//! Rendered answers of list calls, kept until the world changes ([`crate::SimHandle::cache_pages`]).
//!
//! Keyed by the request's path and query (which select the database, the list and the page)
//! and stamped with the world's version when the rendering started: a write to the world bumps
//! the version before it changes anything, so an entry is only served while no write has begun
//! since it was rendered. Only successful answers are kept; faults, refusals and errors are
//! decided before or instead of the handler, every time.

use crate::lock;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The call kinds whose answers depend only on the world and the request's path and query.
pub(crate) fn cacheable(kind: &str) -> bool {
    matches!(
        kind,
        "users_list" | "groups_list" | "members_list" | "workspaces_list" | "workspace_security"
    )
}

#[derive(Default)]
pub(crate) struct PageCache {
    enabled: AtomicBool,
    entries: Mutex<HashMap<String, (u64, HeaderMap, Bytes)>>,
}

impl PageCache {
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        if !on {
            lock(&self.entries).clear();
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The answer rendered for `key` at `version`, if there is one.
    pub(crate) fn get(&self, key: &str, version: u64) -> Option<Response> {
        let (headers, body) = match lock(&self.entries).get(key) {
            Some((v, headers, body)) if *v == version => (headers.clone(), body.clone()),
            _ => return None,
        };
        Some((StatusCode::OK, headers, body).into_response())
    }

    /// Keeps `response` for `key` if it is a success, and returns it.
    pub(crate) async fn fill(&self, key: String, version: u64, response: Response) -> Response {
        if response.status() != StatusCode::OK {
            return response;
        }
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(e) => {
                return crate::api::ApiError::internal(format!("cannot read the answer: {e}"))
                    .into_response()
            }
        };
        lock(&self.entries).insert(key, (version, parts.headers.clone(), body.clone()));
        Response::from_parts(parts, Body::from(body))
    }
}
