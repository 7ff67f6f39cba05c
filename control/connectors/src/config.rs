//! What an operator configures for a connector (`[inputs.jamf]`, `[inputs.graph]`), its checks,
//! and reading the client secret from its file.
//!
//! Owns: [`JamfConfig`], [`GraphConfig`], [`HttpLimits`], [`read_secret`].
//! Must not: talk to a server, or keep a secret anywhere but in memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ConnectorError;

/// The largest secret file read (a client secret is a few dozen bytes).
pub const MAX_SECRET_BYTES: u64 = 4096;

/// Bounds of every request a connector makes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Whole-request time limit, connection to last body byte (seconds, 1..=600).
    pub timeout_s: u64,
    /// Connection (TCP and TLS) time limit (seconds, 1..=120).
    pub connect_timeout_s: u64,
    /// Largest response body taken, bytes (1 KiB..=256 MiB); a larger one fails the pull.
    pub max_response_bytes: u64,
    /// Pages followed at most per list; a list with more fails the pull (1..=100,000).
    pub max_pages: u32,
    /// Attempts per request for failures that may pass (connection, timeout, 5xx, 429) (1..=10).
    pub attempts: u32,
    /// First back-off between attempts (milliseconds), doubled each time up to 60 s.
    pub backoff_ms: u64,
    /// Longest `Retry-After` honoured (seconds); a server asking for more fails the pull.
    pub max_retry_after_s: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            timeout_s: 60,
            connect_timeout_s: 15,
            max_response_bytes: 64 * 1024 * 1024,
            max_pages: 1000,
            attempts: 4,
            backoff_ms: 1000,
            max_retry_after_s: 300,
        }
    }
}

impl HttpLimits {
    /// Checks each bound, naming the field under `prefix` (e.g. `inputs.jamf`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConnectorError> {
        let range = |field: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(ConnectorError::Config(format!(
                    "{prefix}.{field}: {v} is out of range {lo}..={hi}"
                )))
            } else {
                Ok(())
            }
        };
        range("timeout_s", self.timeout_s, 1, 600)?;
        range("connect_timeout_s", self.connect_timeout_s, 1, 120)?;
        range(
            "max_response_bytes",
            self.max_response_bytes,
            1024,
            256 * 1024 * 1024,
        )?;
        range("max_pages", u64::from(self.max_pages), 1, 100_000)?;
        range("attempts", u64::from(self.attempts), 1, 10)?;
        range("backoff_ms", self.backoff_ms, 0, 60_000)?;
        range("max_retry_after_s", self.max_retry_after_s, 0, 3600)?;
        Ok(())
    }

    /// The whole-request time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

/// `[inputs.jamf]`: the Jamf Pro API, OAuth client credentials (an API client with an API role).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JamfConfig {
    /// The Jamf Pro server, `https://` (e.g. `https://example.jamfcloud.com`); the API is under `/api`.
    pub url: String,
    /// The API client's ID.
    pub client_id: String,
    /// A file holding the API client's secret (mode 0600 or 0400, owned by the daemon's user).
    pub client_secret_file: PathBuf,
    /// Seconds between pulls inside `portolan run` (60..=604,800; default 3,600).
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    /// Devices per page (`page-size`, 1..=2,000; default 200).
    #[serde(default = "default_jamf_page_size")]
    pub page_size: u32,
    /// PEM file of the CA that signed the server's certificate; when set, only it is trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request bounds.
    #[serde(default)]
    pub limits: HttpLimits,
}

/// `[inputs.graph]`: Microsoft Graph (Intune), OAuth client credentials of an app registration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The Entra ID tenant (its ID or a verified domain); used in the default `token_url`.
    pub tenant: String,
    /// The app registration's application (client) ID.
    pub client_id: String,
    /// A file holding the client secret (mode 0600 or 0400).
    pub client_secret_file: PathBuf,
    /// The token endpoint (default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`;
    /// a national cloud has its own).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Graph's base, up to the version (default `https://graph.microsoft.com/v1.0`).
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// The scope asked for (default `https://graph.microsoft.com/.default`: the application
    /// permissions granted to the app).
    #[serde(default = "default_graph_scope")]
    pub scope: String,
    /// Seconds between pulls inside `portolan run` (60..=604,800; default 3,600).
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    /// PEM file of a CA to trust instead of the built-in roots (a TLS-inspecting proxy's CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request bounds.
    #[serde(default)]
    pub limits: HttpLimits,
}

fn default_interval() -> u64 {
    3600
}

fn default_jamf_page_size() -> u32 {
    200
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".to_string()
}

fn default_graph_scope() -> String {
    "https://graph.microsoft.com/.default".to_string()
}

/// The shortest interval between scheduled pulls.
pub const MIN_INTERVAL_S: u64 = 60;
/// The longest interval between scheduled pulls (a week).
pub const MAX_INTERVAL_S: u64 = 7 * 24 * 3600;

impl JamfConfig {
    /// Checks every field, naming it under `prefix` (`inputs.jamf`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConnectorError> {
        https_url(&format!("{prefix}.url"), &self.url)?;
        non_empty(&format!("{prefix}.client_id"), &self.client_id)?;
        interval(prefix, self.interval_s)?;
        if !(1..=2000).contains(&self.page_size) {
            return Err(ConnectorError::Config(format!(
                "{prefix}.page_size: {} is out of range 1..=2000",
                self.page_size
            )));
        }
        self.limits.validate(&format!("{prefix}.limits"))
    }

    /// The server's base URL without a trailing `/`.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }
}

impl GraphConfig {
    /// Checks every field, naming it under `prefix` (`inputs.graph`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConnectorError> {
        let tenant = self.tenant.trim();
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConnectorError::Config(format!(
                "{prefix}.tenant: {:?} is not a tenant ID or domain (letters, digits, `-`, `.`)",
                self.tenant
            )));
        }
        non_empty(&format!("{prefix}.client_id"), &self.client_id)?;
        https_url(&format!("{prefix}.token_url"), &self.token_endpoint())?;
        https_url(&format!("{prefix}.graph_url"), &self.graph_url)?;
        non_empty(&format!("{prefix}.scope"), &self.scope)?;
        interval(prefix, self.interval_s)?;
        self.limits.validate(&format!("{prefix}.limits"))
    }

    /// The token endpoint in force.
    pub fn token_endpoint(&self) -> String {
        match &self.token_url {
            Some(u) => u.clone(),
            None => format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                self.tenant.trim()
            ),
        }
    }

    /// Graph's base without a trailing `/`.
    pub fn base(&self) -> &str {
        self.graph_url.trim_end_matches('/')
    }
}

fn interval(prefix: &str, v: u64) -> Result<(), ConnectorError> {
    if (MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&v) {
        Ok(())
    } else {
        Err(ConnectorError::Config(format!(
            "{prefix}.interval_s: {v} is out of range {MIN_INTERVAL_S}..={MAX_INTERVAL_S}"
        )))
    }
}

fn non_empty(field: &str, v: &str) -> Result<(), ConnectorError> {
    if v.trim().is_empty() {
        Err(ConnectorError::Config(format!(
            "{field}: must not be empty"
        )))
    } else {
        Ok(())
    }
}

fn https_url(field: &str, v: &str) -> Result<(), ConnectorError> {
    let url = reqwest::Url::parse(v)
        .map_err(|e| ConnectorError::Config(format!("{field}: {v:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(ConnectorError::Config(format!(
            "{field}: {v:?} must be an https:// URL (the client secret and tokens travel on it)"
        )));
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(ConnectorError::Config(format!(
            "{field}: {v:?} needs a host and no user or password in the URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConnectorError::Config(format!(
            "{field}: {v:?} must have no query or fragment"
        )));
    }
    Ok(())
}

/// Reads a client secret from `path`, named `field` in errors: a regular file of at most
/// [`MAX_SECRET_BYTES`], not readable or writable by group or others, whose trimmed content is
/// not empty.
pub fn read_secret(field: &str, path: &Path) -> Result<String, ConnectorError> {
    let bad =
        |message: String| ConnectorError::Config(format!("{field}: {}: {message}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "mode {mode:03o} lets group or others read it; `chmod 600` it"
            )));
        }
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(bad(format!(
            "{} bytes; a secret file holds at most {MAX_SECRET_BYTES}",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(bad("empty".into()));
    }
    if secret.contains(['\n', '\r']) {
        return Err(bad("holds more than one line".into()));
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jamf() -> JamfConfig {
        toml_like(
            r#"{"url": "https://jamf.example.com/", "client_id": "abc",
                "client_secret_file": "/nonexistent"}"#,
        )
    }

    fn toml_like(json: &str) -> JamfConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_and_field_names_in_errors() {
        let c = jamf();
        assert_eq!(c.interval_s, 3600);
        assert_eq!(c.page_size, 200);
        assert_eq!(c.base(), "https://jamf.example.com");
        c.validate("inputs.jamf").unwrap();
        let mut plain = c.clone();
        plain.url = "http://jamf.example.com".into();
        let e = plain.validate("inputs.jamf").unwrap_err().to_string();
        assert!(
            e.starts_with("inputs.jamf.url:") && e.contains("https://"),
            "{e}"
        );
        let mut fast = c.clone();
        fast.interval_s = 5;
        let e = fast.validate("inputs.jamf").unwrap_err().to_string();
        assert!(e.starts_with("inputs.jamf.interval_s:"), "{e}");
        let mut pages = c;
        pages.limits.max_pages = 0;
        let e = pages.validate("inputs.jamf").unwrap_err().to_string();
        assert!(e.starts_with("inputs.jamf.limits.max_pages:"), "{e}");
    }

    #[test]
    fn graph_token_url_defaults_to_the_tenant() {
        let g: GraphConfig = serde_json::from_str(
            r#"{"tenant": "contoso.onmicrosoft.com", "client_id": "x", "client_secret_file": "/s"}"#,
        )
        .unwrap();
        assert_eq!(
            g.token_endpoint(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(g.base(), "https://graph.microsoft.com/v1.0");
        g.validate("inputs.graph").unwrap();
        let mut bad = g;
        bad.tenant = "a/b".into();
        let e = bad.validate("inputs.graph").unwrap_err().to_string();
        assert!(e.starts_with("inputs.graph.tenant:"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret("inputs.jamf.client_secret_file", &path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inputs.jamf.client_secret_file") && e.contains("644"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret("f", &path).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_secret("f", &path)
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
