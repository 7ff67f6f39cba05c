//! RFC 7807 problem details: every error the admin API returns is an `application/problem+json` body
//! `{type, title, status, detail, field?}`, built here; plus the JSON body reader that names the failing field.
//!
//! This module must not put secrets (tokens, keys) into a `detail`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 7807 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// URI reference naming the problem type (`about:blank` or a `urn:portolan:problem:*` name).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request field at fault (JSON path, query parameter or header), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl Problem {
    /// A problem with the given status, type suffix and detail.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:portolan:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after_seconds: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 400 for a request body that is not acceptable JSON or content.
    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-body", detail)
    }

    /// 401 without or with an unknown token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the token's role does not allow this route.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 409: the request conflicts with the stored state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 413: the body is larger than the route accepts.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("request body is larger than this route's limit of {limit} bytes"),
        )
    }

    /// 415: the body's media type is not accepted.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            detail,
        )
        .with_field("content-type")
    }

    /// 422: well-formed, but the content cannot be used (e.g. an unknown inventory shape).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", detail)
    }

    /// 429: the token's write budget is spent.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("write rate limit for this token reached; retry after {retry_after_seconds} s"),
        );
        p.retry_after_seconds = Some(retry_after_seconds);
        p
    }

    /// 500: the server failed; the detail is logged, the client sees a generic text.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(context, error = %err, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed; see the appliance log"),
        )
    }

    /// 503: the service is not ready.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// The HTTP status of this problem.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portolan\""),
            );
        }
        if let Some(secs) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Maps a failure to buffer the body (too large, connection error) to a problem.
pub fn body_rejection(rej: BytesRejection, limit: usize) -> Problem {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::payload_too_large(limit)
    } else {
        Problem::bad_request(format!("could not read the request body: {rej}"))
    }
}

/// The pattern every required text field carries in the OpenAPI document: at least one character that is
/// neither ECMAScript whitespace (`\s`, which includes U+FEFF) nor U+0085 (Unicode whitespace that `\s`
/// lacks). It holds exactly when [`is_blank`] is false.
pub const NOT_BLANK_PATTERN: &str = "[^\\s\\u0085]";

/// True when `s` holds only whitespace (Unicode `White_Space`, as `str::trim` removes) and U+FEFF: the API's
/// one definition of a blank text, matching [`NOT_BLANK_PATTERN`].
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
}

/// `s` without leading and trailing whitespace and U+FEFF.
pub fn trim_blank(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// What a JSON body nested past serde_json's recursion limit (128 arrays and objects) is told.
pub(crate) const TOO_DEEP: &str =
    "JSON nests arrays and objects deeper than the limit of 128 levels";

/// Whether serde_json stopped at its recursion limit (it says only "recursion limit exceeded").
pub(crate) fn is_too_deep(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// Decodes a JSON body into `T`, naming the failing field (JSON path) and line/column on error.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_problem(&e))?;
    de.end().map_err(|e| {
        Problem::invalid_body(format!(
            "trailing characters after the JSON value at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(value)
}

fn json_problem(e: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = e.inner();
    let path = e.path().to_string();
    let field = if path == "." { None } else { Some(path) };
    let what = match inner.classify() {
        serde_json::error::Category::Syntax if is_too_deep(inner) => TOO_DEEP,
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Data => "invalid value",
        serde_json::error::Category::Io => "unreadable body",
    };
    let detail = match &field {
        Some(f) => format!(
            "{what} at field `{f}` (line {}, column {}): {inner}",
            inner.line(),
            inner.column()
        ),
        None => format!(
            "{what} (line {}, column {}): {inner}",
            inner.line(),
            inner.column()
        ),
    };
    let mut p = Problem::invalid_body(detail);
    p.field = field;
    p
}

/// Reads a JSON body already buffered by axum: size errors become 413, decode errors 400 with the field.
pub fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, Problem> {
    let bytes = body.map_err(|r| body_rejection(r, limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::invalid_body(
            "the request body is empty; a JSON document is required",
        ));
    }
    parse_json(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_means_what_the_documented_pattern_excludes() {
        // ECMAScript `\s` covers these, and the pattern excludes U+0085 explicitly.
        for blank in [
            "",
            " ",
            "\t\n",
            "\u{85}",
            "\u{feff}",
            "\u{a0}\u{3000}",
            " \u{2028} ",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        // Zero-width space is not whitespace for either; a letter is not.
        for text in ["a", " a ", "\u{200b}", "\u{85}x\u{feff}"] {
            assert!(!is_blank(text), "{text:?}");
        }
        assert_eq!(trim_blank("\u{feff} note\u{85}"), "note");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[test]
    fn json_errors_name_the_failing_field_and_line() {
        let p = parse_json::<Outer>(b"{\n \"inner\": {\"port\": \"x\"}}").unwrap_err();
        assert_eq!(p.status, 400);
        assert_eq!(p.field.as_deref(), Some("inner.port"));
        assert!(p.detail.contains("line 2"), "{}", p.detail);
        let p = parse_json::<Outer>(b"{\"inner\": {\"port\": 1} ").unwrap_err();
        assert!(p.detail.contains("truncated"), "{}", p.detail);
        let p = parse_json::<Outer>(b"{\"inner\": {\"port\": 1}} x").unwrap_err();
        assert!(p.detail.contains("trailing"), "{}", p.detail);
    }

    #[test]
    fn problem_serialises_with_type_and_optional_field() {
        let v = serde_json::to_value(Problem::not_found("no device")).unwrap();
        assert_eq!(v["type"], "urn:portolan:problem:not-found");
        assert_eq!(v["status"], 404);
        assert!(v.get("field").is_none());
    }
}
