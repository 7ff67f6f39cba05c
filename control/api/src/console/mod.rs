//! The triage console: a build-free web page (ES modules, no bundler) embedded in the binary and served
//! under `/ui/` on the admin API's listener, with its sign-in sessions. Its tables use TanStack Table's
//! `table-core` and its charts uPlot, both vendored unmodified under `assets/vendor/` (see its README)
//! and fetched only after sign-in.
//!
//! Owns: the console's routes (`/`, `/ui/`, `/ui/assets/*`, `/ui/session`), its security headers (a strict
//! Content-Security-Policy without inline script, `frame-ancestors 'none'`, `nosniff`, no referrer), and
//! [`session_identity`], through which the API's auth middleware accepts a console session instead of a
//! bearer token — with the session's CSRF token and a same-origin check on every state-changing request.
//! A sign-in with a bad token, like an unknown session cookie, is a failed authentication of its client
//! address ([`crate::auth::refuse_failed_auth`]): counted, logged and slowed exactly as a bad bearer token.
//! The page calls the ordinary `/api/v1` routes, so roles are enforced by the server, not the page. Must
//! not: hold control-plane logic, or log a token, session id or CSRF token.

pub mod session;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, REFERRER_POLICY,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::refuse_failed_auth;
use crate::connections::{AuthFailures, ClientAddr};
use crate::extract::JsonBody;
use crate::problem::Problem;
use crate::state::ApiState;
use crate::tokens::{Identity, Role};
use session::{csrf_matches, SessionView, CSRF_HEADER, SESSION_COOKIE};

/// The console's Content-Security-Policy: only this origin's scripts, styles, images and requests; no
/// inline script, no plugins, no framing, no `<base>`, forms post only here.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'; object-src 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of the console, embedded at build time.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/dom.js"),
    },
    Asset {
        name: "tables.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/tables.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "vendor/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "vendor/table-core.umd.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/vendor/table-core.umd.min.js"),
    },
    Asset {
        name: "vendor/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/vendor/uPlot.min.css"),
    },
];

const INDEX_HTML: &[u8] = include_bytes!("assets/index.html");

/// The console's routes, to be merged into the API router. A sign-in with a bad token is a failed
/// authentication of its client address in `auth_failures`, shared with the API's bearer tokens.
pub fn router(auth_failures: Arc<AuthFailures>) -> Router<ApiState> {
    Router::new()
        .route("/", get(to_console))
        .route("/ui", get(to_console))
        .route("/ui/", get(index))
        .route("/ui/assets/{*file}", get(asset))
        .route(
            "/ui/session",
            get(current_session).post(sign_in).delete(sign_out),
        )
        .layer(from_fn(security_headers))
        .layer(Extension(auth_failures))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

async fn to_console() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static("/ui/"))],
    )
        .into_response()
}

async fn index() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [(CONTENT_TYPE, HeaderValue::from_static(a.content_type))],
            a.bytes,
        )
            .into_response(),
        None => Problem::not_found("no such console file").into_response(),
    }
}

/// The session cookie's value in `headers`, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a browser request comes from this origin: its `Origin` (when sent) names the `Host` it was
/// sent to, and `Sec-Fetch-Site` (when sent) says `same-origin`.
/// `authority` is the request URI's (HTTP/2 sends `:authority` instead of `Host`).
fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> bool {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or(authority);
    let origin_ok = match headers.get(ORIGIN) {
        None => true,
        Some(o) => {
            let o = o.to_str().unwrap_or("");
            let authority = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"));
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
    };
    let fetch_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == "same-origin" || v == "none");
    origin_ok && fetch_ok
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The caller of an API request made with a console session instead of a bearer token.
///
/// `None` when the request carries an `Authorization` header or no session cookie (the bearer rules
/// apply). `Some(Err)` when the session is unknown or over (401), its token was revoked (401), or a
/// state-changing request lacks the session's CSRF token or comes from another origin (403).
pub fn session_identity(state: &ApiState, req: &Request) -> Option<Result<Identity, Problem>> {
    let headers = req.headers();
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return None;
    }
    let id = session_cookie(headers)?;
    let Some(session) = state.sessions.get(&id) else {
        // Counted, logged and slowed as a failed authentication by the caller (crate::auth).
        return Some(Err(Problem::unauthorized(
            "the console session is over; sign in again",
        )));
    };
    match state.tokens.is_live(session.identity.token_id) {
        Ok(true) => {}
        Ok(false) => {
            state.sessions.remove_token(session.identity.token_id);
            return Some(Err(Problem::unauthorized(
                "the token of this session was revoked; sign in again",
            )));
        }
        Err(e) => return Some(Err(Problem::internal("token lookup", &e))),
    }
    if !is_safe(req.method()) {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !csrf_matches(&session, presented) {
            return Some(Err(Problem::forbidden(
                "a state-changing console request needs the session's X-CSRF-Token header",
            )
            .with_field(CSRF_HEADER)));
        }
        if !same_origin(headers, req.uri().authority().map(|a| a.as_str())) {
            return Some(Err(Problem::forbidden(
                "a state-changing console request must come from the console's own origin",
            )
            .with_field("origin")));
        }
    }
    Some(Ok(session.identity))
}

/// What the console learns about its session.
#[derive(Debug, Serialize)]
struct SessionInfo {
    role: Role,
    label: String,
    csrf_token: String,
    expires_in_s: u64,
    /// The write routes this role may use, so the page can leave out controls the server would refuse.
    can_triage: bool,
    can_administer: bool,
}

impl From<SessionView> for SessionInfo {
    fn from(s: SessionView) -> Self {
        Self {
            role: s.identity.role,
            label: s.identity.label,
            csrf_token: s.csrf,
            expires_in_s: s.expires_in_s,
            can_triage: matches!(s.identity.role, Role::Analyst | Role::Admin),
            can_administer: s.identity.role == Role::Admin,
        }
    }
}

/// The sign-in form's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

fn cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

async fn sign_in(
    State(state): State<ApiState>,
    Extension(auth_failures): Extension<Arc<AuthFailures>>,
    client: Option<Extension<ClientAddr>>,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(form): JsonBody<SignIn>,
) -> Response {
    if !same_origin(&headers, uri.authority().map(|a| a.as_str())) {
        return Problem::forbidden("sign in from the console's own origin")
            .with_field("origin")
            .into_response();
    }
    let tokens = state.tokens.clone();
    let token = form.token.trim().to_string();
    let found = tokio::task::spawn_blocking(move || tokens.authenticate(&token)).await;
    let identity = match found {
        Ok(Ok(Some(id))) => id,
        Ok(Ok(None)) => {
            return refuse_failed_auth(
                &state,
                &auth_failures,
                client.map(|Extension(c)| c),
                "console sign-in",
                Problem::unauthorized("unknown or revoked token").with_field("token"),
            )
            .await;
        }
        Ok(Err(e)) => return Problem::internal("token lookup", &e).into_response(),
        Err(e) => return Problem::internal("token lookup", &e).into_response(),
    };
    let Some(new) = state.sessions.create(identity.clone()) else {
        return Problem::internal("session", &"random source failed").into_response();
    };
    tracing::info!(actor = %identity.actor(), "console sign-in");
    let info = SessionInfo {
        role: identity.role,
        label: identity.label.clone(),
        csrf_token: new.csrf,
        expires_in_s: session::ABSOLUTE_TIMEOUT.as_secs(),
        can_triage: matches!(identity.role, Role::Analyst | Role::Admin),
        can_administer: identity.role == Role::Admin,
    };
    (
        StatusCode::CREATED,
        [(
            SET_COOKIE,
            cookie(&new.id, session::ABSOLUTE_TIMEOUT.as_secs()),
        )],
        Json(info),
    )
        .into_response()
}

async fn current_session(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(id) = session_cookie(&headers) else {
        return Problem::unauthorized("not signed in").into_response();
    };
    match state.sessions.get(&id) {
        Some(s) if state.tokens.is_live(s.identity.token_id).unwrap_or(false) => {
            Json(SessionInfo::from(s)).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(SET_COOKIE, cookie("", 0))],
            Problem::unauthorized("the console session is over; sign in again"),
        )
            .into_response(),
    }
}

async fn sign_out(State(state): State<ApiState>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(id) = session_cookie(&headers) else {
        return Problem::unauthorized("not signed in").into_response();
    };
    let Some(s) = state.sessions.get(&id) else {
        return (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie("", 0))]).into_response();
    };
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !csrf_matches(&s, presented) || !same_origin(&headers, uri.authority().map(|a| a.as_str())) {
        return Problem::forbidden("signing out needs the session's X-CSRF-Token header")
            .with_field(CSRF_HEADER)
            .into_response();
    }
    state.sessions.remove(&id);
    (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie("", 0))]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; __Host-portolan_session=abc ; b=2")]);
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        assert!(session_cookie(&headers(&[("cookie", "portolan_session=abc")])).is_none());
        assert!(session_cookie(&headers(&[("cookie", "__Host-portolan_session=")])).is_none());
    }

    #[test]
    fn cross_origin_requests_are_not_same_origin() {
        let same = |pairs: &[(&'static str, &str)]| same_origin(&headers(pairs), None);
        assert!(same(&[("host", "127.0.0.1:9443")]));
        assert!(same_origin(
            &headers(&[("origin", "https://127.0.0.1:9443")]),
            Some("127.0.0.1:9443")
        ));
        assert!(same(&[
            ("host", "127.0.0.1:9443"),
            ("origin", "https://127.0.0.1:9443"),
            ("sec-fetch-site", "same-origin"),
        ]));
        assert!(!same(&[
            ("host", "127.0.0.1:9443"),
            ("origin", "https://evil.example"),
        ]));
        assert!(!same(&[
            ("host", "127.0.0.1:9443"),
            ("sec-fetch-site", "cross-site"),
        ]));
        assert!(!same(&[("host", "127.0.0.1:9443"), ("origin", "null")]));
    }
}
