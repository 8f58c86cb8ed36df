//! The control API under `/_sim/`: state, truth and statistics for tests, and switches for
//! faults, drift, mutations, token revocation and database outages. Not part of iManage; exempt
//! from authentication and faults.

use crate::api::ApiError;
use crate::{read, SimHandle};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

pub(crate) fn router() -> Router<Arc<crate::Shared>> {
    Router::new()
        .route("/_sim/state", get(state))
        .route("/_sim/truth", get(truth))
        .route("/_sim/stats", get(stats))
        .route("/_sim/faults", post(faults))
        .route("/_sim/drift", post(drift))
        .route("/_sim/mutate", post(mutate))
        .route("/_sim/revoke-tokens", post(revoke_tokens))
        .route("/_sim/database-down", post(database_down))
}

fn handle(shared: Arc<crate::Shared>) -> SimHandle {
    SimHandle { shared }
}

fn body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t)
        .map_err(|e| ApiError::bad_request(format!("bad body: {e}")))
}

fn raw_json<T: Serialize>(value: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("cannot serialize: {e}")))?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

async fn state(State(shared): State<Arc<crate::Shared>>) -> Result<Response, ApiError> {
    let world = read(&shared.world);
    raw_json(&world.state_json())
}

async fn truth(State(shared): State<Arc<crate::Shared>>) -> Result<Response, ApiError> {
    raw_json(&handle(shared).truth())
}

async fn stats(State(shared): State<Arc<crate::Shared>>) -> Result<Response, ApiError> {
    raw_json(&handle(shared).stats())
}

#[derive(Deserialize)]
struct FaultsBody {
    fault_rate: Option<f64>,
    latency_ms: Option<u64>,
    /// Names of [`crate::FaultKind`]s; an empty list restores the status faults.
    kinds: Option<Vec<String>>,
}

async fn faults(
    State(shared): State<Arc<crate::Shared>>,
    b: Result<Json<FaultsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if let Some(rate) = b.fault_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ApiError::bad_request("fault_rate must be between 0 and 1"));
        }
    }
    let kinds = match &b.kinds {
        Some(names) => Some(
            names
                .iter()
                .map(|n| n.parse::<crate::FaultKind>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::bad_request)?,
        ),
        None => None,
    };
    let h = handle(shared);
    let (rate, latency) = h.faults();
    let rate = b.fault_rate.unwrap_or(rate);
    let latency = b.latency_ms.unwrap_or(latency);
    h.set_faults(rate, latency);
    if let Some(kinds) = kinds {
        h.set_fault_kinds(&kinds);
    }
    let kinds = h.fault_kinds();
    Ok(Json(json!({ "fault_rate": rate, "latency_ms": latency, "kinds": kinds })).into_response())
}

#[derive(Deserialize)]
struct DriftBody {
    events_per_page: u32,
}

async fn drift(
    State(shared): State<Arc<crate::Shared>>,
    b: Result<Json<DriftBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    handle(shared).set_drift(b.events_per_page);
    Ok(Json(json!({ "events_per_page": b.events_per_page })).into_response())
}

#[derive(Deserialize)]
struct MutateBody {
    fraction: f64,
    #[serde(default)]
    seed: u64,
}

async fn mutate(
    State(shared): State<Arc<crate::Shared>>,
    b: Result<Json<MutateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if !(0.0..=1.0).contains(&b.fraction) {
        return Err(ApiError::bad_request("fraction must be between 0 and 1"));
    }
    let report = handle(shared).mutate(b.fraction, b.seed);
    raw_json(&report)
}

async fn revoke_tokens(State(shared): State<Arc<crate::Shared>>) -> Response {
    let revoked = handle(shared).revoke_tokens();
    Json(json!({ "revoked": revoked })).into_response()
}

#[derive(Deserialize)]
struct DownBody {
    customer_id: String,
    down: bool,
}

async fn database_down(
    State(shared): State<Arc<crate::Shared>>,
    b: Result<Json<DownBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if read(&shared.world).position(&b.customer_id).is_none() {
        return Err(ApiError::not_found(format!(
            "no database {}",
            b.customer_id
        )));
    }
    handle(shared).set_database_down(&b.customer_id, b.down);
    Ok(Json(json!({ "customer_id": b.customer_id, "down": b.down })).into_response())
}
