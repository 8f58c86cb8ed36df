//! The axum app: routes, authentication, limits, request ids, tracing and metrics around the
//! GraphQL schema. No GraphQL types live here; see [`crate::schema`].

use crate::auth::{bearer_token, Caller};
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
use axum::{Extension, Router};
use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};
use tower::{BoxError, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Instrument;

/// How often histogram samples are folded into their distributions when nobody scrapes.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What every handler shares: the state and the schema built from it once.
#[derive(Clone)]
struct App {
    state: AppState,
    schema: IdgraphSchema,
    /// The GraphiQL page, rendered once.
    graphiql: Bytes,
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
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
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
    let operation = schema::operation_name(&request)
        .unwrap_or("anonymous")
        .to_string();
    let span = tracing::info_span!("graphql", operation = %operation);
    let response = schema::execute(&app.schema, caller, request)
        .instrument(span)
        .await;
    let elapsed = started.elapsed();
    let outcome = schema::outcome(&response);
    metrics::record_request(&operation, outcome, elapsed);
    tracing::info!(
        operation = %operation,
        outcome,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "graphql request"
    );
    match serde_json::to_vec(&response) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serializing a GraphQL response failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "internal error",
            )
        }
    }
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
