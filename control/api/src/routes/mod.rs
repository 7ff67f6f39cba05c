//! The route table of the admin API and the router built from it.
//!
//! Every route is one [`RouteSpec`] (method, path, required access, body kind) paired with its handler in
//! [`routes`]; the router, the per-route auth/rate-limit middleware, the body limits and the OpenAPI error
//! responses all come from this one table, and a test keeps it in step with the OpenAPI document. This
//! module must not hold business logic; handlers live in the submodules.

pub mod control;
pub mod service;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONNECTION};
use axum::http::{HeaderValue, Method, Version};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::{Extension, Router};

use crate::auth::{guard, RouteGuard};
use crate::config::ApiConfig;
use crate::connections::AuthFailures;
use crate::extract::{BodyReadTimeout, RouteBodyLimit};
use crate::problem::Problem;
use crate::ratelimit::WriteRateLimiter;
use crate::state::ApiState;
use crate::tokens::Access;

/// What a route reads from its request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// A JSON document (limit `body_limit_bytes`).
    Json,
    /// An inventory document, JSON or plist (limit `inventory_body_limit_bytes`).
    Inventory,
}

/// One route of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path template, with `{name}` parameters (the same syntax in axum and OpenAPI).
    pub path: &'static str,
    /// What the caller needs.
    pub access: Access,
    /// What the body holds.
    pub body: BodyKind,
}

fn spec(method: Method, path: &'static str, access: Access, body: BodyKind) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        body,
    }
}

/// Every route with its handler.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<ApiState>)> {
    use self::control as c;
    use self::service as s;
    use routing::{delete, get, post, put};
    use Access::{AdminWrite, AlertWrite, Public, Read};
    use BodyKind::{Inventory, Json, None as NoBody};
    vec![
        (
            spec(Method::GET, "/healthz", Public, NoBody),
            get(s::healthz),
        ),
        (spec(Method::GET, "/readyz", Public, NoBody), get(s::readyz)),
        (spec(Method::GET, "/metrics", Read, NoBody), get(s::metrics)),
        (
            spec(Method::GET, "/api/v1/openapi.json", Read, NoBody),
            get(s::openapi_json),
        ),
        (
            spec(Method::GET, "/api/v1/stats", Read, NoBody),
            get(s::stats),
        ),
        (
            spec(Method::POST, "/api/v1/inventory", AdminWrite, Inventory),
            post(c::import_inventory),
        ),
        (
            spec(Method::GET, "/api/v1/devices", Read, NoBody),
            get(c::list_devices),
        ),
        (
            spec(Method::GET, "/api/v1/devices/{udid}", Read, NoBody),
            get(c::get_device),
        ),
        (
            spec(Method::POST, "/api/v1/device-states", AdminWrite, Json),
            post(c::post_device_states),
        ),
        (
            spec(Method::GET, "/api/v1/roles", Read, NoBody),
            get(c::list_roles),
        ),
        (
            spec(Method::GET, "/api/v1/roles/{name}", Read, NoBody),
            get(c::get_role),
        ),
        (
            spec(Method::PUT, "/api/v1/roles/{name}", AdminWrite, Json),
            put(c::put_role),
        ),
        (
            spec(Method::DELETE, "/api/v1/roles/{name}", AdminWrite, NoBody),
            delete(c::delete_role),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/roles/{name}/baseline",
                AdminWrite,
                Json,
            ),
            post(c::post_role_baseline),
        ),
        (
            spec(Method::GET, "/api/v1/exceptions", Read, NoBody),
            get(c::list_exceptions),
        ),
        (
            spec(Method::POST, "/api/v1/exceptions", AdminWrite, Json),
            post(c::post_exception),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/exceptions/{id}",
                AdminWrite,
                NoBody,
            ),
            delete(c::delete_exception),
        ),
        (
            spec(Method::GET, "/api/v1/learning/proposals", Read, NoBody),
            get(c::list_proposals),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/learning/proposals/{id}/approve",
                AdminWrite,
                Json,
            ),
            post(c::approve_proposal),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/learning/proposals/{id}/reject",
                AdminWrite,
                Json,
            ),
            post(c::reject_proposal),
        ),
        (
            spec(Method::GET, "/api/v1/alerts", Read, NoBody),
            get(c::list_alerts),
        ),
        (
            spec(Method::GET, "/api/v1/alerts/{id}", Read, NoBody),
            get(c::get_alert),
        ),
        (
            spec(Method::POST, "/api/v1/alerts/{id}/ack", AlertWrite, Json),
            post(c::ack_alert),
        ),
        (
            spec(Method::POST, "/api/v1/alerts/{id}/close", AlertWrite, Json),
            post(c::close_alert),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/alerts/{id}/escalate",
                AlertWrite,
                Json,
            ),
            post(c::escalate_alert),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/alerts/{id}/comments",
                AlertWrite,
                Json,
            ),
            post(c::comment_alert),
        ),
        (
            spec(Method::POST, "/api/v1/alerts/{id}/undo", AlertWrite, Json),
            post(c::undo_alert),
        ),
        (
            spec(Method::GET, "/api/v1/alert-groups", Read, NoBody),
            get(c::list_alert_groups),
        ),
        (
            spec(Method::POST, "/api/v1/exceptions/retro-impact", Read, Json),
            post(c::exception_retro_impact),
        ),
        (
            spec(Method::GET, "/api/v1/audit", Read, NoBody),
            get(c::list_audit),
        ),
        (
            spec(Method::POST, "/api/v1/reload", AdminWrite, NoBody),
            post(c::reload),
        ),
    ]
}

/// The route table without handlers.
pub fn route_specs() -> Vec<RouteSpec> {
    routes().into_iter().map(|(s, _)| s).collect()
}

/// Builds the admin API router over `state` with the limits of `cfg`.
pub fn build_router(cfg: &ApiConfig, state: ApiState) -> Router {
    let limiter = Arc::new(WriteRateLimiter::new(&cfg.rate_limit));
    let auth_failures = Arc::new(AuthFailures::new(
        cfg.connections.auth_failures_before_delay,
    ));
    let body_timeout = BodyReadTimeout(std::time::Duration::from_secs(
        cfg.connections.body_read_timeout_seconds,
    ));
    let mut router: Router<ApiState> = Router::new();
    for (spec, handler) in routes() {
        let limit = match spec.body {
            BodyKind::Inventory => cfg.inventory_body_limit_bytes,
            BodyKind::Json | BodyKind::None => cfg.body_limit_bytes,
        };
        let route_guard = RouteGuard {
            state: state.clone(),
            limiter: limiter.clone(),
            auth_failures: auth_failures.clone(),
            access: spec.access,
        };
        let handler: MethodRouter<ApiState> = handler
            .route_layer(from_fn_with_state(route_guard, guard))
            .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(limit))
            .layer::<_, std::convert::Infallible>(Extension(RouteBodyLimit(limit)))
            .layer::<_, std::convert::Infallible>(Extension(body_timeout));
        router = router.route(spec.path, handler);
    }
    let edge = EdgeRules {
        max_headers: cfg.max_headers,
        hsts: !cfg.plain_http,
    };
    router
        .merge(crate::console::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(edge, edge_rules))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// What [`edge_rules`] enforces on every request.
#[derive(Debug, Clone, Copy)]
struct EdgeRules {
    /// Most request headers (HTTP/1.1 enforces this in the parser; HTTP/2 here, with the same 431).
    max_headers: usize,
    /// Whether answers carry `Strict-Transport-Security` (served over TLS).
    hsts: bool,
}

/// `Strict-Transport-Security` of TLS answers: one year, subdomains not included (the appliance
/// is usually reached by address or by one host name).
const HSTS_VALUE: &str = "max-age=31536000";

/// Refuses requests with more headers than `max_headers` (431, as HTTP/1.1's parser does) and adds
/// HSTS to answers over TLS.
async fn edge_rules(State(rules): State<EdgeRules>, req: Request, next: Next) -> Response {
    let mut resp = if req.headers().len() > rules.max_headers {
        Problem::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header-fields-too-large",
            format!(
                "the request has {} header fields; the limit (api.max_headers) is {}",
                req.headers().len(),
                rules.max_headers
            ),
        )
        .into_response()
    } else {
        next.run(req).await
    };
    if rules.hsts {
        resp.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS_VALUE),
        );
    }
    resp
}

async fn no_route() -> Problem {
    Problem::not_found("no such route; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}

/// A request body that notes when it has been read to its end.
struct TrackedBody {
    inner: axum::body::Body,
    finished: Arc<AtomicBool>,
}

impl axum::body::HttpBody for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.finished.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Outermost middleware: request metrics, `Cache-Control: no-store` on every answer, and `Connection: close`
/// on HTTP/1.1 answers given before the request body was read to its end (a 401, 403 or 413 answers before
/// the body is read; the server then closes the connection, and a client that reused it would fail).
async fn observe(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let http1 = req.version() < Version::HTTP_2;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let finished = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        let tracked = TrackedBody {
            finished: Arc::clone(&finished),
            inner,
        };
        // An empty body (no Content-Length, or 0, and not chunked) is already at its end.
        let _ = axum::body::HttpBody::is_end_stream(&tracked);
        axum::body::Body::new(tracked)
    });
    let mut resp = next.run(req).await.into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if http1 && !finished.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    state
        .metrics
        .observe_request(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}
