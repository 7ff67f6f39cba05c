//! OAuth 2.0 client credentials (RFC 6749 4.4): a bearer token from the token endpoint, kept until
//! shortly before it expires, fetched again when it is near expiry or a server refuses it.
//!
//! Owns: [`TokenSource`]. Must not: log or return the secret or a token in an error.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{Answer, Http};
use crate::ConnectorError;

/// The longest head start taken on a token's expiry.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Gets and keeps one client's bearer token.
#[derive(Debug)]
pub struct TokenSource {
    token_url: String,
    form: Vec<(&'static str, String)>,
    token: Option<(String, Instant)>,
    fetched: u32,
}

impl TokenSource {
    /// A source for `client_id`/`secret` at `token_url`; `scope` is sent when given (Graph needs it,
    /// Jamf does not).
    pub fn new(token_url: String, client_id: &str, secret: String, scope: Option<&str>) -> Self {
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", client_id.to_string()),
            ("client_secret", secret),
        ];
        if let Some(s) = scope {
            form.push(("scope", s.to_string()));
        }
        TokenSource {
            token_url,
            form,
            token: None,
            fetched: 0,
        }
    }

    /// How many tokens were fetched so far.
    pub fn fetched(&self) -> u32 {
        self.fetched
    }

    /// Forgets the token (a server answered 401 with it).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    /// A token valid for a while yet: the kept one, or a new one when none is kept or it expires
    /// within its margin (a quarter of its lifetime, at most 60 s).
    pub async fn bearer(&mut self, http: &Http) -> Result<String, ConnectorError> {
        if let Some((token, refresh_at)) = &self.token {
            if Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        let what = format!("POST {}", self.token_url);
        let answer = http
            .send_json(&what, || {
                http.client()
                    .post(&self.token_url)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&self.form)
            })
            .await?;
        let doc = match answer {
            Answer::Json(v) => v,
            Answer::Unauthorized => {
                return Err(ConnectorError::Status {
                    what,
                    status: 401,
                    body: "the client ID or secret was refused".into(),
                })
            }
        };
        let bad = |m: &str| ConnectorError::Protocol {
            what: what.clone(),
            message: m.to_string(),
        };
        let token = doc
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)
            .ok_or_else(|| bad("no `access_token` string in the token response"))?;
        if let Some(kind) = doc.get("token_type").and_then(Value::as_str) {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(bad(&format!("`token_type` is {kind:?}, not Bearer")));
            }
        }
        let expires_in = match doc.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            _ => None,
        }
        .filter(|&s| s > 0)
        .ok_or_else(|| bad("no positive `expires_in` in the token response"))?;
        let lifetime = Duration::from_secs(expires_in.min(365 * 24 * 3600));
        let margin = (lifetime / 4).min(MAX_REFRESH_MARGIN);
        self.token = Some((token.to_string(), Instant::now() + lifetime - margin));
        self.fetched += 1;
        Ok(token.to_string())
    }
}

/// An HTTPS client with its token source: GETs carrying the bearer token, a refused token
/// replaced once per request.
#[derive(Debug)]
pub struct Session {
    /// The client.
    pub http: Http,
    /// The token source.
    pub tokens: TokenSource,
}

impl Session {
    /// GETs `url` as JSON with the bearer token; on 401 fetches a new token and asks once more (a
    /// second 401 is an error: the client lacks the privilege, or tokens are revoked at once).
    pub async fn get_json(&mut self, url: &str) -> Result<Value, ConnectorError> {
        let what = format!("GET {url}");
        for _ in 0..2 {
            let token = self.tokens.bearer(&self.http).await?;
            let http = &self.http;
            match http
                .send_json(&what, || {
                    http.client()
                        .get(url)
                        .bearer_auth(&token)
                        .header(reqwest::header::ACCEPT, "application/json")
                })
                .await?
            {
                Answer::Json(v) => return Ok(v),
                Answer::Unauthorized => {
                    tracing::info!(call = %what, "token refused (401); fetching a new one");
                    self.tokens.invalidate();
                }
            }
        }
        Err(ConnectorError::Status {
            what,
            status: 401,
            body: "refused with a fresh token too: check the API client's privileges".into(),
        })
    }
}
