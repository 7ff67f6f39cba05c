//! The admin API's router: the route table ([`crate::routes`]) with each route's guard (auth, rate limit),
//! body limit and read timeout, the console's routes, the fallbacks, and the outer middleware (header
//! limit, HSTS, request metrics, `Cache-Control`, `Connection: close` after an unread body). It hands the
//! OpenAPI document ([`crate::openapi`]) to its route through the request extensions.
//!
//! Owns: router assembly and the outer middleware. Must not: list routes (the table does), hold
//! business logic, or be used by the modules it assembles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONNECTION};
use axum::http::{HeaderValue, Version};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Extension, Router};

use crate::auth::{guard, RouteGuard};
use crate::config::ApiConfig;
use crate::connections::AuthFailures;
use crate::extract::{BodyReadTimeout, RouteBodyLimit};
use crate::problem::Problem;
use crate::ratelimit::WriteRateLimiter;
use crate::routes::service::ApiDocument;
use crate::routes::{routes, BodyKind};
use crate::state::ApiState;

/// The OpenAPI document as served, generated once per process.
fn served_document() -> ApiDocument {
    static DOC: OnceLock<ApiDocument> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDocument(Arc::from(
            crate::openapi::document_json().unwrap_or_default(),
        ))
    })
    .clone()
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
        .merge(crate::console::router(auth_failures))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(edge, edge_rules))
        .layer(from_fn_with_state(state.clone(), observe))
        .layer(Extension(served_document()))
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
