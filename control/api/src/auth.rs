//! Bearer-token authentication, role checks and the per-token write rate limit, as route middleware.
//!
//! Order: no or unknown token → 401 (with `WWW-Authenticate: Bearer`), role too low → 403, write budget
//! spent → 429 (with `Retry-After`); only then the handler runs with the caller's [`Identity`] in the request
//! extensions. A console session cookie ([`crate::console::session_identity`]) stands in for the token when
//! no `Authorization` header is sent. This module must never log the presented token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::connections::{AuthFailures, ClientAddr};
use crate::problem::Problem;
use crate::ratelimit::WriteRateLimiter;
use crate::state::ApiState;
use crate::tokens::{Access, Identity};

/// What the auth middleware of one route needs.
#[derive(Clone)]
pub struct RouteGuard {
    /// Shared state (token store, metrics).
    pub state: ApiState,
    /// Write budgets.
    pub limiter: Arc<WriteRateLimiter>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<AuthFailures>,
    /// What the route needs.
    pub access: Access,
}

/// Extracts the bearer token from an `Authorization` header value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// Answers a failed authentication: counted in the metrics, logged (without the token) on the first
/// failure of a client address per minute and when it starts being slowed, and delayed once the
/// address has failed more than `auth_failures_before_delay` times within the minute. Bearer tokens,
/// console session cookies and console sign-ins (`via`) share one count per address.
pub async fn refuse_failed_auth(
    state: &ApiState,
    failures: &AuthFailures,
    client: Option<ClientAddr>,
    via: &'static str,
    problem: Problem,
) -> Response {
    state.metrics.observe_auth_failure();
    if let Some(ClientAddr(addr)) = client {
        let verdict = failures.record(addr.ip());
        if verdict.log {
            tracing::warn!(
                client = %addr.ip(),
                via,
                failures_this_minute = verdict.failures,
                delay_ms = u64::try_from(verdict.delay.as_millis()).unwrap_or(u64::MAX),
                "admin API authentication failed"
            );
        }
        if !verdict.delay.is_zero() {
            state.metrics.observe_auth_failure_delayed();
            tokio::time::sleep(verdict.delay).await;
        }
    }
    problem.into_response()
}

async fn refuse(g: &RouteGuard, client: Option<ClientAddr>, problem: Problem) -> Response {
    refuse_failed_auth(&g.state, &g.auth_failures, client, "bearer token", problem).await
}

/// Middleware: authenticates, authorises and rate-limits one request.
pub async fn guard(State(g): State<RouteGuard>, req: Request, next: Next) -> Response {
    if g.access == crate::tokens::Access::Public {
        return next.run(req).await;
    }
    let client = req.extensions().get::<ClientAddr>().copied();
    let identity = match crate::console::session_identity(&g.state, &req) {
        Some(Ok(identity)) => identity,
        // An unknown, expired or revoked session is a failed authentication like a bad token.
        Some(Err(problem)) if problem.status == 401 => {
            return refuse_failed_auth(
                &g.state,
                &g.auth_failures,
                client,
                "console session",
                problem,
            )
            .await
        }
        Some(Err(problem)) => return problem.into_response(),
        None => match bearer_identity(&g, req.headers(), client).await {
            Ok(identity) => identity,
            Err(resp) => return resp,
        },
    };
    authorized(g, identity, req, next).await
}

/// The caller named by the request's bearer token, or the answer refusing it.
async fn bearer_identity(
    g: &RouteGuard,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
) -> Result<Identity, Response> {
    let Some(header) = headers.get(AUTHORIZATION) else {
        let p = Problem::unauthorized("a bearer token is required (Authorization: Bearer ptl_...)");
        return Err(refuse(g, client, p).await);
    };
    let Some(token) = header.to_str().ok().and_then(bearer).map(str::to_owned) else {
        let p = Problem::unauthorized("the Authorization header must be `Bearer <token>`")
            .with_field("authorization");
        return Err(refuse(g, client, p).await);
    };
    let tokens = g.state.tokens.clone();
    let found = tokio::task::spawn_blocking(move || tokens.authenticate(&token)).await;
    match found {
        Ok(Ok(Some(id))) => Ok(id),
        Ok(Ok(None)) => {
            let p = Problem::unauthorized("unknown or revoked token");
            Err(refuse(g, client, p).await)
        }
        Ok(Err(e)) => Err(Problem::internal("token lookup", &e).into_response()),
        Err(e) => Err(Problem::internal("token lookup", &e).into_response()),
    }
}

/// Checks the caller's role and write budget, then runs the handler with its identity.
async fn authorized(g: RouteGuard, identity: Identity, mut req: Request, next: Next) -> Response {
    if !identity.role.allows(g.access) {
        let needed = match g.access {
            Access::AdminWrite => "admin",
            Access::AlertWrite => "analyst or admin",
            Access::Read | Access::Public => "any",
        };
        return Problem::forbidden(format!(
            "this route needs the {needed} role; the token has role {}",
            identity.role
        ))
        .into_response();
    }
    if g.access.is_write() {
        if let Err(wait) = g.limiter.check(identity.token_id) {
            let secs = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1);
            return Problem::too_many_requests(secs).into_response();
        }
    }
    req.extensions_mut().insert(identity);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
