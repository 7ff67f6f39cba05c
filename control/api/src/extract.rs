//! Request extractors whose every rejection is an RFC 7807 [`Problem`]: JSON bodies (failing field named),
//! raw bodies, query strings (failing parameter named) and path parameters, all within the route's body limit.
//!
//! This module must not interpret what it extracts; handlers do.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{body_rejection, parse_json, Problem};

/// The body limit in force for a route, inserted as a request extension by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteBodyLimit(pub usize);

fn limit_of(req: &Request) -> usize {
    req.extensions()
        .get::<RouteBodyLimit>()
        .map(|l| l.0)
        .unwrap_or(crate::config::DEFAULT_BODY_LIMIT_BYTES)
}

/// Reads the whole body within the route's limit: a declared or actual size above it is a 413.
async fn read_body(req: Request) -> Result<Bytes, Problem> {
    let limit = limit_of(&req);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(Problem::payload_too_large(limit));
    }
    Bytes::from_request(req, &())
        .await
        .map_err(|r| body_rejection(r, limit))
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
