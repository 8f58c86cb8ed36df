//! The error type at the crate boundary.
//!
//! No variant carries a response body, a token, a secret or a request body: messages come from
//! the API's own error envelope (`{"error": {"code", "message"}}`) or the OAuth2 error code, cut to
//! a short length, and decode errors quote no values.

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call of this client can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint refused the client (bad credentials, revoked refresh token, an invalid
    /// scope), or the API still answered 401 after a fresh token.
    #[error("authentication failed: {message}")]
    Auth {
        /// What was refused, without credentials.
        message: String,
    },

    /// 403: the token lacks the scope the call needs (every write needs `admin`).
    #[error("forbidden: {message}")]
    Forbidden {
        /// The server's explanation.
        message: String,
    },

    /// 404: an unknown customer, user or group.
    #[error("not found: {message}")]
    NotFound {
        /// The server's explanation.
        message: String,
    },

    /// 409: the write conflicts with the current state (a login that exists already, ...).
    #[error("conflict: {message}")]
    Conflict {
        /// The server's explanation.
        message: String,
    },

    /// 429 on every attempt the retry policy allowed.
    #[error("rate limited: gave up after {attempts} attempts")]
    RateLimited {
        /// HTTP attempts made.
        attempts: u32,
    },

    /// Any other error status, or a retryable one (502, 503, 504) after the retries ran out.
    #[error("upstream error {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Upstream {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`unavailable`, `internal`, ...), when it sent one.
        code: Option<String>,
        /// The API's message, or the status's reason phrase.
        message: String,
    },

    /// A response that does not have the shape the API summary gives. `path` is the JSON path of
    /// the offending value (`data[3].active`); the message names the problem, not the value.
    #[error("cannot decode the response at {path}: {message}")]
    Decode {
        /// Where in the JSON the problem is, e.g. `data[3].active`.
        path: String,
        /// What is wrong there.
        message: String,
    },

    /// The request did not complete: connection refused or reset, timeout, TLS.
    #[error("transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// True when no complete answer came in time.
        timeout: bool,
    },

    /// A response body longer than [`crate::ClientConfig::max_body_bytes`]; reading stopped at
    /// the limit. Not retried.
    #[error("the response body is larger than the client's limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },

    /// A list that never ends: more pages than its total (or the configured bound) allows.
    #[error("pagination did not converge: {message}")]
    Pagination {
        /// Which list, and how far it ran.
        message: String,
    },

    /// An argument the API cannot take (an empty id, or `.`/`..`, which would change the path).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// An invalid [`crate::ClientConfig`], or an authorization flow used out of order.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A call the configured API profile does not offer (the v2 profile's writes).
    #[error("{call} is not available in the {profile} API profile")]
    Unsupported {
        /// The call, e.g. `create_user`.
        call: &'static str,
        /// The profile, `v1` or `v2`.
        profile: &'static str,
    },
}

impl Error {
    /// True for failures that a later attempt may not see: rate limiting, 502/503/504,
    /// transport errors. The client has already retried these as far as its policy allows; a
    /// caller may still retry the whole operation later (e.g. the next harvest).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Transport { .. } => true,
            Error::Upstream { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True when the credentials or the scope are the problem, so retrying cannot help.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. } | Error::Forbidden { .. })
    }

    /// The HTTP status this error stands for, when it came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Auth { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::RateLimited { .. } => Some(429),
            Error::Upstream { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Statuses the server sends before (429, 503) or instead of (502, 504) processing a request.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Longest server-provided message kept in an error, in characters.
const MAX_MESSAGE: usize = 200;

/// Cuts a server-provided message to a bounded length, on a character boundary.
pub(crate) fn short(message: &str) -> String {
    let message = message.trim();
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &message[..i]),
        None => message.to_string(),
    }
}

/// Replaces the contents of every double-quoted part of a serde message with `…`, so that
/// `invalid type: string "hunter2", expected a boolean` cannot carry a value into logs.
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            out.push(c);
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// A decode error for a `serde_path_to_error` failure, with values redacted.
pub(crate) fn decode_error(
    prefix: &str,
    err: serde_path_to_error::Error<serde_json::Error>,
) -> Error {
    let inner = err.path().to_string();
    let path = match (prefix.is_empty(), inner.as_str()) {
        (true, _) => inner.clone(),
        (false, ".") => prefix.to_string(),
        (false, p) if p.starts_with('[') => format!("{prefix}{p}"),
        (false, p) => format!("{prefix}.{p}"),
    };
    Error::Decode {
        path,
        message: redact_quoted(&err.into_inner().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "hunter2", expected a boolean"#),
            r#"invalid type: string "…", expected a boolean"#
        );
        assert_eq!(redact_quoted("missing field `id`"), "missing field `id`");
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(500);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(short("  ok "), "ok");
    }

    #[test]
    fn retryable_classification() {
        for status in [429, 502, 503, 504] {
            let e = Error::Upstream {
                status,
                code: None,
                message: String::new(),
            };
            assert!(e.is_retryable(), "{status}");
        }
        let e = Error::Upstream {
            status: 500,
            code: None,
            message: String::new(),
        };
        assert!(!e.is_retryable());
        assert!(!Error::Forbidden {
            message: String::new()
        }
        .is_retryable());
        assert!(Error::RateLimited { attempts: 9 }.is_retryable());
        assert_eq!(
            Error::Conflict {
                message: "x".into()
            }
            .status(),
            Some(409)
        );
    }
}
