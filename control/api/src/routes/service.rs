//! Service routes: liveness and readiness (no token), Prometheus metrics, dataplane statistics and the
//! OpenAPI document.
//!
//! These handlers only read shared state; they must not change the control plane.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::metrics::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use crate::problem::Problem;
use crate::state::ApiState;
use crate::stats::{DataplaneStats, StoreStats};
use crate::tokens::{Identity, Role};

/// Body of `/healthz` and `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (alive) or `ready`.
    pub status: String,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "service", security(()),
    responses((status = 200, description = "The appliance process is alive", body = HealthStatus))
)]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".to_string(),
    })
}

/// Readiness: the dataplane and the control plane are running.
#[utoipa::path(
    get, path = "/readyz", tag = "service", security(()),
    responses(
        (status = 200, description = "Ready to process traffic and requests", body = HealthStatus),
        (status = 503, description = "Not inspecting traffic (starting, waiting for the first inventory, or shutting down), or degraded: findings wait in memory because the store cannot commit (the detail says which)", body = Problem,
         content_type = "application/problem+json")
    )
)]
pub async fn readyz(State(state): State<ApiState>) -> Response {
    // Findings waiting for a store that refuses commits: not lost yet, but not durable either.
    if let Some(reason) = state.control.core().store_health().degraded_reason() {
        return Problem::unavailable(reason).into_response();
    }
    if state.readiness.is_ready() {
        Json(HealthStatus {
            status: "ready".to_string(),
        })
        .into_response()
    } else {
        let reason = state
            .readiness
            .reason()
            .unwrap_or_else(|| "the appliance is starting or shutting down".to_string());
        Problem::unavailable(reason).into_response()
    }
}

/// Prometheus metrics (text format 0.0.4, or OpenMetrics when the scraper asks for it).
#[utoipa::path(
    get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String,
               content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let metrics = state.metrics.clone();
    // Encoding takes the engine lock for its counters: keep it off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        if wants_openmetrics {
            (metrics.encode_openmetrics(), OPENMETRICS_TEXT)
        } else {
            (metrics.encode_prometheus(), PROMETHEUS_TEXT)
        }
    })
    .await;
    let (text, content_type) = match encoded {
        Ok(pair) => pair,
        Err(e) => return Problem::internal("encoding metrics", &e).into_response(),
    };
    match text {
        Ok(body) => (
            [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response(),
        Err(e) => Problem::internal("encoding metrics", &e).into_response(),
    }
}

/// Dataplane statistics per port and worker, and the outputs' counters. A file output's `target`
/// is the server path for admins and the file name for other roles.
#[utoipa::path(
    get, path = "/api/v1/stats", tag = "service",
    responses((status = 200, description = "Latest dataplane counters", body = DataplaneStats))
)]
pub async fn stats(
    State(state): State<ApiState>,
    Extension(who): Extension<Identity>,
) -> Json<DataplaneStats> {
    let mut stats = state.stats.snapshot().as_ref().clone();
    stats.store = Some(StoreStats::from(&state.control.core().store_health()));
    if who.role != Role::Admin {
        for output in &mut stats.outputs {
            if output.kind == "file" {
                if let Some(name) = std::path::Path::new(&output.target).file_name() {
                    output.target = name.to_string_lossy().into_owned();
                }
            }
        }
    }
    Json(stats)
}

/// The OpenAPI 3 document as served (JSON text); the router puts it in every request's extensions.
#[derive(Debug, Clone)]
pub struct ApiDocument(pub Arc<str>);

/// The OpenAPI 3 document of this API.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "service",
    responses((status = 200, description = "OpenAPI 3 document", body = Object))
)]
pub async fn openapi_json(Extension(doc): Extension<ApiDocument>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        doc.0.to_string(),
    )
        .into_response()
}
