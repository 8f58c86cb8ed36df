//! The axum app: routes, authentication, limits, request ids, tracing and metrics around the
//! GraphQL schema. No GraphQL types live here; see [`crate::schema`].

use crate::auth::{bearer_token, Caller};
use crate::cache::{self, CachedResponse, DocumentCache};
use crate::schema::{self, Code, IdgraphSchema};
use crate::{metrics, AppState};
use async_graphql::http::GraphiQLSource;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::{Extension, Router};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::{BoxError, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// How often histogram samples are folded into their distributions when nobody scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What every handler shares: the state and the schema built from it once.
#[derive(Clone)]
struct App {
    state: AppState,
    schema: IdgraphSchema,
    /// The GraphiQL page, rendered once.
    graphiql: Bytes,
    /// Parsed GraphQL documents by query text.
    documents: Arc<DocumentCache>,
}

/// The whole HTTP app: `POST /graphql` (key required), `GET /graphql` (GraphiQL, no key),
/// `GET /healthz`, `GET /readyz`, `GET /metrics`.
///
/// Pure: it binds nothing and spawns nothing, so tests drive it with `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    let limits = state.limits().clone();
    let app = App {
        schema: schema::schema(state.clone()),
        graphiql: Bytes::from(graphiql_page()),
        documents: Arc::new(DocumentCache::default()),
        state,
    };
    // The key check wraps only POST: the GraphiQL page loads without a key and its requests
    // carry the key the user pastes into its headers editor. The time-out wraps the key check
    // and the body read as well, so a client trickling its body in is cut off too.
    let graphql_post = post(graphql_post)
        // Inside the key check: a request without a key gets 401 whatever its content type.
        .route_layer(middleware::from_fn(crate::guard::require_json))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_key))
        .layer::<_, Infallible>(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(limits.request_timeout),
        );
    Router::new()
        .route("/graphql", graphql_post.get(graphiql))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .method_not_allowed_fallback(crate::guard::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(app)
}

/// Serves the app on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let upkeep = tokio::spawn(async {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_EVERY);
        loop {
            tick.tick().await;
            metrics::run_upkeep();
        }
    });
    // Answers go out as written: a GraphQL answer is one write, and a client on a kept-alive
    // connection must not wait on Nagle's algorithm for the tail of a larger one.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

fn make_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

/// Lets a request with a valid key through, carrying its [`Caller`]; answers 401 otherwise,
/// before the body is even read.
async fn require_key(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(caller) = app.state.authenticate(token) else {
        let message = if token.is_none() {
            "missing API key: send Authorization: Bearer KEY"
        } else {
            "invalid API key"
        };
        let mut response = error_response(StatusCode::UNAUTHORIZED, Code::Unauthenticated, message);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn graphql_post(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = app.state.limits().max_body_bytes;
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::LimitExceeded,
                &format!("request body larger than {limit} bytes"),
            );
        }
        Err(rejection) => {
            tracing::debug!(error = %rejection, "unreadable request body");
            return error_response(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                "could not read the request body",
            );
        }
    };
    // One published graph answers the whole request, from the cache or by running GraphQL.
    let snapshot = app.state.snapshot();
    let responses = snapshot
        .as_deref()
        .map(|p| &p.responses)
        .filter(|c| c.enabled());
    if let Some(hit) = responses.and_then(|c| c.get(caller.role, &body)) {
        let elapsed = started.elapsed();
        metrics::record_cache(true);
        metrics::record_request(&hit.operation, "ok", elapsed);
        tracing::debug!(
            operation = %hit.operation,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "graphql request answered from the response cache"
        );
        return json_response(hit.json);
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                &format!(
                    "the body must be JSON {{\"query\", \"variables\", \"operationName\"}}: {e}"
                ),
            );
        }
    };
    let operation: Arc<str> = Arc::from(schema::operation_name(&request).unwrap_or("anonymous"));
    let mut cacheable = false;
    let mut fast = None;
    if let Some(doc) = app.documents.get(&request.query) {
        let operation_name = request.operation_name.as_deref();
        cacheable = responses.is_some() && cache::graph_only(&doc, operation_name);
        fast = snapshot.as_deref().and_then(|published| {
            schema::fast::execute(
                &doc,
                operation_name,
                &request.variables,
                published,
                app.state.limits(),
            )
        });
        if fast.is_none() {
            request.set_parsed_query((*doc).clone());
        }
    }
    let (json, outcome) = match fast {
        Some(json) => (Bytes::from(json), "ok"),
        None => {
            let response =
                schema::execute_on(&app.schema, caller.clone(), request, snapshot.clone()).await;
            let outcome = schema::outcome(&response);
            match serde_json::to_vec(&response) {
                Ok(json) => (Bytes::from(json), outcome),
                Err(e) => {
                    tracing::error!(error = %e, "serializing a GraphQL response failed");
                    return error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Code::Internal,
                        "internal error",
                    );
                }
            }
        }
    };
    let elapsed = started.elapsed();
    metrics::record_request(&operation, outcome, elapsed);
    if outcome == "ok" {
        tracing::debug!(
            operation = %operation,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "graphql request"
        );
    } else {
        tracing::info!(
            operation = %operation,
            outcome,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "graphql request"
        );
    }
    // `ok` means the answer has no errors at all.
    if let (true, "ok", Some(cache)) = (cacheable, outcome, responses) {
        metrics::record_cache(false);
        cache.insert(
            caller.role,
            &body,
            CachedResponse {
                json: json.clone(),
                operation,
            },
        );
    }
    json_response(json)
}

fn json_response(json: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

/// Maps a failure of the time-out layer (or anything under it) to a GraphQL-shaped answer.
async fn timed_out(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        error_response(
            StatusCode::GATEWAY_TIMEOUT,
            Code::LimitExceeded,
            "the request took longer than the server's time limit",
        )
    } else {
        tracing::error!(error = %error, "request failed");
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "internal error",
        )
    }
}

/// The GraphiQL page, with the headers editor pre-filled with where the key goes and an
/// example query. `GraphiQLSource` has no option for either, so they are spliced into its
/// props; should a later template not match, the page simply comes without them. Headers are
/// not persisted by GraphiQL unless the user asks, so a pasted key stays out of browser storage.
fn graphiql_page() -> String {
    const ANCHOR: &str = "defaultEditorToolsVisibility: true,";
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .title("idgraph")
        .finish();
    let headers = r#"{"Authorization": "Bearer PASTE-YOUR-API-KEY"}"#;
    let query = "# Paste your API key into the Headers tab below, then run.\n\
                 query Databases {\n  databases { id accountCount groupCount lastHarvestedAt complete }\n}\n";
    // JSON string literals are valid JavaScript string literals.
    let props = format!(
        "{ANCHOR}\n          defaultHeaders: {},\n          defaultQuery: {},",
        serde_json::Value::from(headers),
        serde_json::Value::from(query),
    );
    page.replacen(ANCHOR, &props, 1)
}

async fn graphiql(State(app): State<App>) -> Html<Bytes> {
    Html(app.graphiql.clone())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<App>) -> (StatusCode, &'static str) {
    if app.state.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no graph loaded yet")
    }
}

async fn prometheus() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(),
    )
}

/// `{"errors":[{"message", "extensions":{"code"}}]}` with an HTTP status, for answers given
/// before (or instead of) running GraphQL.
fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    (status, axum::Json(body)).into_response()
}
