//! The HTTPS client the connectors share: trust (built-in roots or one private CA), time limits,
//! bounded bodies, and retries with back-off that honour `Retry-After`.
//!
//! Owns: [`Http`]. Must not: know a vendor's API, or follow redirects (a bearer token never goes
//! to a host the configuration does not name).

use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::config::HttpLimits;
use crate::ConnectorError;

/// The longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How much of an error body is quoted in an error message.
const ERROR_BODY_QUOTE: usize = 200;

/// One connector's HTTPS client and its bounds.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client,
    limits: HttpLimits,
}

/// A request's outcome that the caller may act on.
#[derive(Debug)]
pub enum Answer {
    /// 2xx with its parsed JSON body.
    Json(Value),
    /// 401: the token was refused (the caller gets a new one and asks again).
    Unauthorized,
}

impl Http {
    /// What both connectors open a pull with: the client secret read from `secret_file` and a
    /// client bounded by `limits` trusting `ca_file`; errors name `<prefix>.client_secret_file`
    /// or `<prefix>.ca_file`.
    pub fn for_section(
        prefix: &str,
        secret_file: &Path,
        limits: &HttpLimits,
        ca_file: Option<&Path>,
    ) -> Result<(String, Http), ConnectorError> {
        let secret =
            crate::config::read_secret(&format!("{prefix}.client_secret_file"), secret_file)?;
        let http = Http::new(limits, ca_file, &format!("{prefix}.ca_file"))?;
        Ok((secret, http))
    }

    /// A client trusting the built-in web roots, or only the PEM certificates of `ca_file` when
    /// given (`field` names it in errors).
    pub fn new(
        limits: &HttpLimits,
        ca_file: Option<&Path>,
        field: &str,
    ) -> Result<Http, ConnectorError> {
        let mut builder = Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.timeout())
            .connect_timeout(Duration::from_secs(limits.connect_timeout_s))
            .user_agent(concat!("portolan/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let bad =
                |m: String| ConnectorError::Config(format!("{field}: {}: {m}", path.display()));
            let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
            if meta.len() > 1024 * 1024 {
                return Err(bad("larger than 1 MiB; not a CA bundle".into()));
            }
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ConnectorError::Config(format!("{field}: HTTPS client: {e}")))?;
        Ok(Http {
            client,
            limits: limits.clone(),
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// The underlying client, to build requests.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends the request `make` builds (once per attempt), retrying connection failures,
    /// timeouts, 5xx and 429 with back-off (a `Retry-After` in seconds or as an HTTP date is
    /// honoured up to `max_retry_after_s`). `what` names the call in errors (`GET https://...`).
    pub async fn send_json(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, ConnectorError> {
        let attempts = self.limits.attempts.max(1);
        let mut backoff = Duration::from_millis(self.limits.backoff_ms);
        let mut last: Option<ConnectorError> = None;
        for attempt in 1..=attempts {
            let wait = match make().send().await {
                Err(e) => {
                    let err = ConnectorError::Transport {
                        what: what.to_string(),
                        message: error_chain(&e),
                    };
                    tracing::warn!(call = what, attempt, error = %err, "connector request failed");
                    last = Some(err);
                    None
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let body = self.read_body(what, resp).await?;
                        let value = serde_json::from_slice(&body).map_err(|e| {
                            ConnectorError::Protocol {
                                what: what.to_string(),
                                message: format!("the body is not JSON: {e}"),
                            }
                        })?;
                        return Ok(Answer::Json(value));
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        return Ok(Answer::Unauthorized);
                    }
                    let retry_after = retry_after(resp.headers());
                    let body = self.read_body(what, resp).await.unwrap_or_default();
                    let err = ConnectorError::Status {
                        what: what.to_string(),
                        status: status.as_u16(),
                        body: quote(&body),
                    };
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(err);
                    }
                    tracing::warn!(
                        call = what,
                        attempt,
                        status = status.as_u16(),
                        "connector request refused; retrying"
                    );
                    last = Some(err);
                    match retry_after {
                        Some(d) if d > Duration::from_secs(self.limits.max_retry_after_s) => {
                            return Err(ConnectorError::Protocol {
                                what: what.to_string(),
                                message: format!(
                                    "HTTP {}: Retry-After {} s is above max_retry_after_s {}",
                                    status.as_u16(),
                                    d.as_secs(),
                                    self.limits.max_retry_after_s
                                ),
                            });
                        }
                        other => other,
                    }
                }
            };
            if attempt == attempts {
                break;
            }
            let pause = wait.unwrap_or(backoff);
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Err(last.unwrap_or_else(|| ConnectorError::Protocol {
            what: what.to_string(),
            message: "no attempt made".into(),
        }))
    }

    /// Reads a body up to `max_response_bytes`; a longer one is an error naming the limit.
    async fn read_body(&self, what: &str, mut resp: Response) -> Result<Vec<u8>, ConnectorError> {
        let cap = self.limits.max_response_bytes;
        let too_big = || ConnectorError::Protocol {
            what: what.to_string(),
            message: format!("the response is larger than max_response_bytes ({cap})"),
        };
        if resp.content_length().is_some_and(|n| n > cap) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ConnectorError::Transport {
            what: what.to_string(),
            message: error_chain(&e),
        })? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// `Retry-After` as a delay: delta-seconds, or an HTTP date (RFC 9110 10.2.3).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    let secs = (when - now).whole_seconds().max(0);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// The start of an error body, printable characters only.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars()
        .filter(|c| !c.is_control())
        .take(ERROR_BODY_QUOTE)
        .collect()
}

/// An error and its sources on one line (reqwest's top-level message omits the TLS reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_bodies_are_quoted_short_and_printable() {
        let q = quote(format!("bad\n\u{1b}[31m{}", "x".repeat(500)).as_bytes());
        assert!(q.starts_with("bad[31m"));
        assert_eq!(q.chars().count(), ERROR_BODY_QUOTE);
    }
}
