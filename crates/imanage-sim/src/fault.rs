//! The kinds of fault the gate injects, and how a body fault spoils a good answer.
//!
//! Status faults (429, 502, 503, 504) replace the call. Body faults let the call run and then
//! spoil its `200` answer the way a broken proxy or a buggy server would: not JSON at all, cut
//! short, the right shape with a wrong type in it, far more items than were asked for, or a body
//! larger than any page could be.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::OnceLock;

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `429` with `Retry-After: 1`.
    #[serde(rename = "429_retry_after")]
    RateLimitedRetryAfter,
    /// `429` without `Retry-After`.
    #[serde(rename = "429")]
    RateLimited,
    /// `502`.
    #[serde(rename = "502")]
    BadGateway,
    /// `503`.
    #[serde(rename = "503")]
    Unavailable,
    /// `504`.
    #[serde(rename = "504")]
    GatewayTimeout,
    /// `200`, `application/json`, and a body that is not JSON: the real body with a NUL byte
    /// written over its middle byte.
    MalformedJson,
    /// `200` and the first half of the real body (with a matching `Content-Length`), as a proxy
    /// that lost the rest would send it.
    TruncatedBody,
    /// `200`, valid JSON of the right shape, with a wrong type in it: the last item's `id` of a
    /// list is an object (the items before it are fine), an empty list's `data` is a string, an
    /// object's `id` or `members` is an object or a string.
    WrongTypes,
    /// `200` and a list page holding ten times the `max_results` (v2: `limit`) asked for, the
    /// real items repeated (a few MB at most). An answer that is no list is sent as
    /// [`FaultKind::HugeBody`].
    OversizedPage,
    /// `200` and a well-formed 24 MiB list page of padding items: more than any real page, so a
    /// client must stop reading it at its own cap.
    HugeBody,
}

impl FaultKind {
    /// The status faults, the default set (`--fault-rate` draws from these).
    pub const STATUS: [FaultKind; 5] = [
        FaultKind::RateLimitedRetryAfter,
        FaultKind::RateLimited,
        FaultKind::BadGateway,
        FaultKind::Unavailable,
        FaultKind::GatewayTimeout,
    ];

    /// The body faults, which spoil a successful answer.
    pub const BODY: [FaultKind; 5] = [
        FaultKind::MalformedJson,
        FaultKind::TruncatedBody,
        FaultKind::WrongTypes,
        FaultKind::OversizedPage,
        FaultKind::HugeBody,
    ];

    /// Every kind.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::RateLimitedRetryAfter,
        FaultKind::RateLimited,
        FaultKind::BadGateway,
        FaultKind::Unavailable,
        FaultKind::GatewayTimeout,
        FaultKind::MalformedJson,
        FaultKind::TruncatedBody,
        FaultKind::WrongTypes,
        FaultKind::OversizedPage,
        FaultKind::HugeBody,
    ];

    /// The name used in `/_sim/faults` and in the statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimitedRetryAfter => "429_retry_after",
            FaultKind::RateLimited => "429",
            FaultKind::BadGateway => "502",
            FaultKind::Unavailable => "503",
            FaultKind::GatewayTimeout => "504",
            FaultKind::MalformedJson => "malformed_json",
            FaultKind::TruncatedBody => "truncated_body",
            FaultKind::WrongTypes => "wrong_types",
            FaultKind::OversizedPage => "oversized_page",
            FaultKind::HugeBody => "huge_body",
        }
    }

    /// The status a status fault answers with; `None` for a body fault.
    pub fn status(self) -> Option<u16> {
        match self {
            FaultKind::RateLimitedRetryAfter | FaultKind::RateLimited => Some(429),
            FaultKind::BadGateway => Some(502),
            FaultKind::Unavailable => Some(503),
            FaultKind::GatewayTimeout => Some(504),
            _ => None,
        }
    }

    /// True for the faults that spoil a successful answer rather than replace it.
    pub fn is_body(self) -> bool {
        self.status().is_none()
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    /// One of the names of [`FaultKind::as_str`].
    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown fault kind {s:?}; known: {}", names.join(", "))
            })
    }
}

/// The size of a [`FaultKind::HugeBody`] answer.
pub(crate) const HUGE_BODY_BYTES: usize = 24 * 1024 * 1024;

/// The huge body, made once and shared (a `Bytes` clone copies nothing).
fn huge_body() -> Bytes {
    static HUGE: OnceLock<Bytes> = OnceLock::new();
    HUGE.get_or_init(|| {
        let item: &[u8] = br#"{"id": "pad", "login_name": "padding", "email": null},"#;
        let head: &[u8] = br#"{"data": ["#;
        let tail: &[u8] = br#"{"id": "pad"}], "total_results": 1}"#;
        let n = (HUGE_BODY_BYTES - head.len() - tail.len()) / item.len() + 1;
        let mut body = Vec::with_capacity(head.len() + n * item.len() + tail.len());
        body.extend_from_slice(head);
        for _ in 0..n {
            body.extend_from_slice(item);
        }
        body.extend_from_slice(tail);
        Bytes::from(body)
    })
    .clone()
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The answer a body fault of `kind` makes of a successful answer whose body is `body`.
/// `page_size` is the page the call asked for.
pub(crate) fn spoil(kind: FaultKind, body: Bytes, page_size: usize) -> Response {
    let status = StatusCode::OK;
    match kind {
        FaultKind::MalformedJson => {
            let mut bytes = body.to_vec();
            if bytes.is_empty() {
                bytes.push(0);
            } else {
                let middle = bytes.len() / 2;
                bytes[middle] = 0;
            }
            json_response(status, Bytes::from(bytes))
        }
        FaultKind::TruncatedBody => json_response(status, body.slice(..body.len() / 2)),
        FaultKind::WrongTypes => {
            let mut value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match value.get_mut("data") {
                Some(Value::Array(items)) if !items.is_empty() => {
                    if let Some(Value::Object(last)) = items.last_mut() {
                        last.insert("id".into(), json!({ "unexpected": [1, 2] }));
                    }
                }
                Some(data @ Value::Array(_)) => *data = json!("no items"),
                Some(Value::Object(object)) => {
                    if object.contains_key("members") {
                        object.insert("members".into(), json!("none"));
                    } else {
                        object.insert("id".into(), json!({ "unexpected": true }));
                    }
                }
                _ => value = json!({ "data": 42 }),
            }
            json_response(status, Bytes::from(value.to_string()))
        }
        FaultKind::OversizedPage => {
            let mut value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(Value::Array(items)) = value.get_mut("data") else {
                return json_response(status, huge_body());
            };
            let wanted = page_size.max(1) * 10;
            let source = if items.is_empty() {
                vec![json!({ "id": "pad", "login_name": "padding" })]
            } else {
                items.clone()
            };
            *items = source.iter().cycle().take(wanted).cloned().collect();
            json_response(status, Bytes::from(value.to_string()))
        }
        FaultKind::HugeBody => json_response(status, huge_body()),
        // Status faults never reach here; answer as the gate would have.
        other => {
            let status = other
                .status()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            json_response(status, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Bytes {
        Bytes::from(json!({"data": [{"id": "u1"}, {"id": "u2"}], "total_results": 2}).to_string())
    }

    async fn body_of(resp: Response) -> Vec<u8> {
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    #[tokio::test]
    async fn each_body_fault_spoils_the_page_as_documented() {
        let bad = body_of(spoil(FaultKind::MalformedJson, page(), 100)).await;
        assert!(serde_json::from_slice::<Value>(&bad).is_err());

        let cut = body_of(spoil(FaultKind::TruncatedBody, page(), 100)).await;
        assert_eq!(cut.len(), page().len() / 2);
        assert!(serde_json::from_slice::<Value>(&cut).is_err());

        let wrong: Value =
            serde_json::from_slice(&body_of(spoil(FaultKind::WrongTypes, page(), 100)).await)
                .expect("still JSON");
        assert_eq!(
            wrong["data"][0]["id"],
            json!("u1"),
            "earlier items are fine"
        );
        assert!(wrong["data"][1]["id"].is_object());

        let big: Value =
            serde_json::from_slice(&body_of(spoil(FaultKind::OversizedPage, page(), 3)).await)
                .expect("still JSON");
        assert_eq!(big["data"].as_array().map(Vec::len), Some(30));
        assert_eq!(big["total_results"], json!(2));

        let huge = body_of(spoil(FaultKind::HugeBody, page(), 3)).await;
        assert!(huge.len() >= HUGE_BODY_BYTES);
        let huge: Value = serde_json::from_slice(&huge).expect("well-formed");
        assert!(huge["data"].as_array().map_or(0, Vec::len) > 100_000);
    }

    #[test]
    fn names_round_trip() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("teapot".parse::<FaultKind>().is_err());
        assert!(FaultKind::STATUS.iter().all(|k| !k.is_body()));
        assert!(FaultKind::BODY.iter().all(|k| k.is_body()));
    }
}
