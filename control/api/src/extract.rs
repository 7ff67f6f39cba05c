//! Request extractors whose every rejection is an RFC 7807 [`Problem`]: JSON bodies (failing field named),
//! raw bodies, query strings (failing parameter named) and path parameters, all within the route's body limit.
//!
//! This module must not interpret what it extracts; handlers do.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::problem::{parse_json, Problem};

/// Bytes past the route's limit of an oversized body read and discarded before the 413 is sent, so that
/// an HTTP/1.1 client still sending it can read the answer instead of a reset connection ("lingering
/// close"). Larger bodies are not read: the connection is closed under them.
pub const DRAIN_CAP_BYTES: u64 = 8 * 1024 * 1024;
/// Longest time spent discarding an oversized body.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The body limit in force for a route, inserted as a request extension by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteBodyLimit(pub usize);

/// Time a client has to send a whole request body once its head is read (a request extension set
/// per route from `api.connections.body_read_timeout_seconds`; absent: 30 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

fn limit_of(req: &Request) -> usize {
    req.extensions()
        .get::<RouteBodyLimit>()
        .map(|l| l.0)
        .unwrap_or(crate::config::DEFAULT_BODY_LIMIT_BYTES)
}

/// Reads and discards what is left of an oversized body, up to [`DRAIN_CAP_BYTES`] past the route's
/// `limit` and for at most [`DRAIN_TIME`].
async fn drain(mut body: Body, already: u64, limit: u64) {
    let cap = limit.saturating_add(DRAIN_CAP_BYTES);
    let _ = tokio::time::timeout(DRAIN_TIME, async move {
        let mut seen = already;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > cap {
                    break;
                }
            }
        }
    })
    .await;
}

/// Reads the whole body within the route's limit: a declared or actual size above it is a 413 (sent after
/// the rest of a not-too-large body has been read and discarded).
async fn read_body(req: Request) -> Result<Bytes, Problem> {
    let timeout = req
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(Duration::from_secs(30), |t| t.0);
    match tokio::time::timeout(timeout, read_body_within_limit(req)).await {
        Ok(result) => result,
        Err(_) => Err(Problem::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!(
                "the request body did not arrive within {} s (api.connections.body_read_timeout_seconds)",
                timeout.as_secs()
            ),
        )),
    }
}

async fn read_body_within_limit(req: Request) -> Result<Bytes, Problem> {
    let limit = limit_of(&req);
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if let Some(n) = declared.filter(|&n| n > limit_u64) {
        if n - limit_u64 <= DRAIN_CAP_BYTES {
            drain(body, 0, limit_u64).await;
        }
        return Err(Problem::payload_too_large(limit));
    }
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    let mut buf: Vec<u8> = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| Problem::bad_request(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit {
                let seen = (buf.len() as u64).saturating_add(data.len() as u64);
                drain(body, seen, limit_u64).await;
                return Err(Problem::payload_too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// The raw request body (e.g. an inventory document in JSON or plist).
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        if bytes.is_empty() {
            return Err(Problem::invalid_body("the request body is empty"));
        }
        Ok(RawBody(bytes))
    }
}

/// A JSON body decoded into `T`; errors name the JSON path of the failing field and its line.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::invalid_body(
                "the request body is empty; a JSON document is required",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Query parameters decoded into `T`; errors name the failing parameter.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

/// Decodes a query string into `T`, naming the failing parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let p = Problem::bad_request(format!("invalid query string: {}", e.inner()));
        if path == "." {
            p
        } else {
            p.with_field(path)
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(QueryParams)
    }
}

/// A path parameter decoded into `T`.
#[derive(Debug, Clone)]
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParam(v))
            .map_err(|rej| Problem::bad_request(format!("invalid path parameter: {rej}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
        severity: Option<String>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let p = parse_query::<Page>("severity=high&limit=abc").unwrap_err();
        assert_eq!(p.status, 400);
        assert_eq!(p.field.as_deref(), Some("limit"));
        let ok: Page = parse_query("limit=5").unwrap();
        assert_eq!(ok.limit, Some(5));
    }
}
