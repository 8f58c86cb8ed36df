//! The client's response decoding on its own, without HTTP: what [`crate::Client`] does with
//! every body it reads. Public for the fuzz targets (`fuzz/`) and for tools that replay saved
//! answers; the client itself is the way to call the API.
//!
//! Every function takes any bytes and answers a value or an [`Error`]; none panics, and an
//! error quotes no value from the body.

use crate::client::error_details;
use crate::config::ApiProfile;
use crate::error::Result;
use crate::models::{self, Listed};
use crate::{Discovery, Group, Member, User, Workspace, WorkspaceSecurity};

/// A page of the users list, in the profile's shape: the users and the list's total, if given.
pub fn users_page(body: &[u8], api: ApiProfile) -> Result<(Vec<User>, Option<u64>)> {
    User::decode_page(body, api)
}

/// A page of the groups list.
pub fn groups_page(body: &[u8], api: ApiProfile) -> Result<(Vec<Group>, Option<u64>)> {
    Group::decode_page(body, api)
}

/// A page of a group's members.
pub fn members_page(body: &[u8], api: ApiProfile) -> Result<(Vec<Member>, Option<u64>)> {
    Member::decode_page(body, api)
}

/// A page of the workspaces list.
pub fn workspaces_page(body: &[u8], api: ApiProfile) -> Result<(Vec<Workspace>, Option<u64>)> {
    Workspace::decode_page(body, api)
}

/// One user (`GET users/{id}`).
pub fn user(body: &[u8], api: ApiProfile) -> Result<User> {
    models::decode_user(body, api)
}

/// A workspace's security.
pub fn workspace_security(body: &[u8]) -> Result<WorkspaceSecurity> {
    models::decode_one(body)
}

/// The v2 discovery (`GET api`).
pub fn discovery(body: &[u8]) -> Result<Discovery> {
    models::decode_discovery(body)
}

/// The `(code, message)` the client reads from an error answer of HTTP `status` (any of the
/// API's error envelopes, OAuth2's, or none); the message is cut to a bounded length.
pub fn error_details_of(status: u16, body: &[u8]) -> (Option<String>, String) {
    let status = reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
    error_details(status, body)
}

/// True when `error` is the decode error of a body that is not JSON at all, which the client
/// retries (as opposed to JSON of the wrong shape, which it does not).
pub fn is_not_json(error: &crate::Error) -> bool {
    models::is_not_json(error)
}
