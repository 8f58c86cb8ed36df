//! Error codes and the mapping of every error to exactly one of them.
//!
//! Resolvers build their errors only through [`ApiError`], which always sets
//! `extensions.code`. An error that arrives without a code therefore comes from async-graphql
//! itself: a parse error, a validation error or an argument that does not coerce to its type,
//! all of them the client's mistake (`BAD_USER_INPUT`), except the depth and complexity limits
//! (`LIMIT_EXCEEDED`), which async-graphql reports with fixed messages.

use async_graphql::{ErrorExtensionValues, Response, Value};

/// The stable error codes a client can branch on (`errors[].extensions.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// No key, or a key that is not configured.
    Unauthenticated,
    /// The key's role may not do this (a reader calling a mutation).
    Forbidden,
    /// The request is malformed or contradicts itself.
    BadUserInput,
    /// Something the request names does not exist.
    NotFound,
    /// A limit was hit: depth, complexity, page size, list fan-out, body size, time.
    LimitExceeded,
    /// Something idgraph depends on (the store, a graph not loaded yet) failed.
    UpstreamError,
    /// A bug; details are in the server's log, not in the answer.
    Internal,
}

impl Code {
    /// The wire name, e.g. `BAD_USER_INPUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::LimitExceeded => "LIMIT_EXCEEDED",
            Code::UpstreamError => "UPSTREAM_ERROR",
            Code::Internal => "INTERNAL",
        }
    }

    /// The inverse of [`Code::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "UNAUTHENTICATED" => Code::Unauthenticated,
            "FORBIDDEN" => Code::Forbidden,
            "BAD_USER_INPUT" => Code::BadUserInput,
            "NOT_FOUND" => Code::NotFound,
            "LIMIT_EXCEEDED" => Code::LimitExceeded,
            "UPSTREAM_ERROR" => Code::UpstreamError,
            "INTERNAL" => Code::Internal,
            _ => return None,
        })
    }
}

/// An error a resolver returns: a code, a message fit for the client, and optional extra
/// extension fields (e.g. the candidates of an ambiguous login).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    code: Code,
    message: String,
    extra: Vec<(&'static str, Value)>,
}

impl ApiError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    pub(crate) fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Code::BadUserInput, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub(crate) fn limit(message: impl Into<String>) -> Self {
        Self::new(Code::LimitExceeded, message)
    }

    /// An internal failure: the detail goes to the log, the client gets a generic message.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering a GraphQL request");
        Self::new(Code::Internal, "internal error")
    }

    /// A store failure: logged in full, answered as `UPSTREAM_ERROR` without the detail.
    pub(crate) fn store(error: store::Error) -> Self {
        tracing::error!(error = %error, "store call failed");
        Self::new(Code::UpstreamError, "the store could not answer")
    }

    pub(crate) fn with(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.extra.push((key, value.into()));
        self
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", e.code.as_str());
        for (k, v) in e.extra {
            extensions.set(k, v);
        }
        async_graphql::Error {
            message: e.message,
            source: None,
            extensions: Some(extensions),
        }
    }
}

/// The messages async-graphql uses for its own depth and complexity limits.
const TOO_COMPLEX: &str = "Query is too complex.";
const TOO_DEEP: &str = "Query is nested too deep.";

/// Gives every error of a response a code (see the module doc for the rule).
pub(crate) fn assign_codes(response: &mut Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .is_some();
        if has_code {
            continue;
        }
        let code = if error.message == TOO_COMPLEX || error.message == TOO_DEEP {
            Code::LimitExceeded
        } else {
            Code::BadUserInput
        };
        error
            .extensions
            .get_or_insert_with(ErrorExtensionValues::default)
            .set("code", code.as_str());
    }
}

/// A bounded label for a response: `ok`, or the code of its first error in lower case.
pub(crate) fn outcome(response: &Response) -> &'static str {
    let Some(first) = response.errors.first() else {
        return "ok";
    };
    let code = first
        .extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .and_then(|v| match v {
            Value::String(s) => Code::parse(s),
            _ => None,
        });
    match code {
        Some(Code::Unauthenticated) => "unauthenticated",
        Some(Code::Forbidden) => "forbidden",
        Some(Code::BadUserInput) => "bad_user_input",
        Some(Code::NotFound) => "not_found",
        Some(Code::LimitExceeded) => "limit_exceeded",
        Some(Code::UpstreamError) => "upstream_error",
        Some(Code::Internal) | None => "internal",
    }
}
