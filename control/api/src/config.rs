//! The `[api]` section of the appliance configuration: where the admin API listens, its TLS files, body and
//! header size limits and the write rate limit, with validation that names the offending field.
//!
//! This module only describes and checks settings; it must not open sockets or files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default listening address of the admin API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9443";
/// Default body limit for `POST /api/v1/inventory` (MDM exports can be large): 16 MiB.
pub const DEFAULT_INVENTORY_BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// Default body limit for every other route: 1 MiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// Default limit on the bytes of one request head (request line and headers): 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default limit on the number of headers of one request.
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// Smallest accepted `max_header_bytes` (hyper cannot read a request head into a smaller buffer).
pub const MIN_HEADER_BYTES: usize = 8192;

/// Settings of the admin HTTP API (TOML section `[api]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Socket address to listen on, e.g. `127.0.0.1:9443`.
    pub listen: SocketAddr,
    /// TLS certificate and key files (PEM). Created self-signed on first start when both are absent.
    pub tls: TlsFiles,
    /// Serve plain HTTP instead of TLS. Only accepted when `listen` is a loopback address.
    pub plain_http: bool,
    /// Largest accepted body of `POST /api/v1/inventory`, in bytes.
    pub inventory_body_limit_bytes: usize,
    /// Largest accepted body of every other route, in bytes.
    pub body_limit_bytes: usize,
    /// Largest accepted request head (request line and headers), in bytes; larger heads get 431.
    pub max_header_bytes: usize,
    /// Largest accepted number of request headers.
    pub max_headers: usize,
    /// Rate limit of write routes, per token.
    pub rate_limit: RateLimitConfig,
    /// Connection caps and timeouts (how the server sheds what it cannot serve).
    pub connections: ConnectionConfig,
}

/// Connection caps and timeouts of the admin API (TOML section `[api.connections]`).
///
/// When a cap is reached the oldest idle connection (no request in flight) of the same scope is
/// closed to make room; only when every connection is busy is the new one refused. The total cap
/// is also held below the process's descriptor limit (see `docs/SECURITY.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Most connections open at once, all clients together.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a complete HTTP/1.1 request head.
    pub header_read_timeout_seconds: u64,
    /// Seconds a client has to send a complete request body, once the head is read.
    pub body_read_timeout_seconds: u64,
    /// Seconds a connection (HTTP/1.1 keep-alive or HTTP/2) may stay open with no request in flight.
    pub idle_timeout_seconds: u64,
    /// Seconds between HTTP/2 PINGs on a connection; a PING unanswered within as long closes it.
    pub http2_ping_interval_seconds: u64,
    /// Failed authentications from one client address within a minute before its further failures
    /// are answered slowly (each one delay doubling, up to 5 s) and logged once per minute.
    pub auth_failures_before_delay: u32,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_client: 128,
            header_read_timeout_seconds: 10,
            body_read_timeout_seconds: 30,
            idle_timeout_seconds: 30,
            http2_ping_interval_seconds: 20,
            auth_failures_before_delay: 10,
        }
    }
}

/// Default validity of the self-signed certificate created on first start, in days.
pub const DEFAULT_SELF_SIGNED_DAYS: u32 = 365;
/// Longest accepted `api.tls.self_signed_days` (ten years).
pub const MAX_SELF_SIGNED_DAYS: u32 = 3650;

/// Paths of the PEM certificate chain and private key used for TLS, and what a self-signed pair
/// created on first start (both files absent) is issued for (TOML section `[api.tls]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file holding the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file holding the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Host names and IP addresses the self-signed certificate names (subject alternative names;
    /// the first host name is also its common name). Empty (the default): this machine's host
    /// name and `localhost`. The loopback addresses and a specific listen address are always
    /// added. Ignored when the files exist.
    #[serde(default)]
    pub names: Vec<String>,
    /// Validity of the self-signed certificate, in days from its creation (default 365).
    #[serde(default = "default_self_signed_days")]
    pub self_signed_days: u32,
}

fn default_self_signed_days() -> u32 {
    DEFAULT_SELF_SIGNED_DAYS
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self {
            cert: PathBuf::from("tls/api-cert.pem"),
            key: PathBuf::from("tls/api-key.pem"),
            names: Vec::new(),
            self_signed_days: DEFAULT_SELF_SIGNED_DAYS,
        }
    }
}

/// Why `name` cannot be a subject alternative name: not an IP address, and not a DNS name
/// (labels of letters, digits and `-`, a leading `*.` wildcard allowed, at most 253 bytes).
pub fn certificate_name_problem(name: &str) -> Option<String> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !host.split('.').all(label_ok) {
        return Some(format!(
            "{name:?} is neither an IP address nor a DNS name (letters, digits, '-' and '.')"
        ));
    }
    None
}

/// Token bucket applied per token to every write route (POST, PUT, DELETE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained write requests per second per token.
    pub writes_per_second: f64,
    /// Burst size: write requests a token may make at once after being idle.
    pub write_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            writes_per_second: 20.0,
            write_burst: 100,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            tls: TlsFiles::default(),
            plain_http: false,
            inventory_body_limit_bytes: DEFAULT_INVENTORY_BODY_LIMIT_BYTES,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            rate_limit: RateLimitConfig::default(),
            connections: ConnectionConfig::default(),
        }
    }
}

/// A setting of `[api]` that cannot be used, with the field's dotted name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting api.{field}: {reason}")]
pub struct ConfigError {
    /// Dotted name of the field below `[api]`, e.g. `rate_limit.write_burst`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl ApiConfig {
    /// Parses an `[api]` table given as TOML text (the section's body, without the `[api]` header).
    pub fn from_toml_str(text: &str) -> Result<Self, String> {
        let cfg: Self = toml::from_str(text).map_err(|e| format!("[api]: {e}"))?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Checks every setting; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.plain_http && !self.listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "plain_http",
                format!(
                    "plain HTTP is only allowed on a loopback address, but listen is {}; \
                     remove plain_http or listen on 127.0.0.1 / [::1]",
                    self.listen
                ),
            ));
        }
        if !self.plain_http {
            if self.tls.cert.as_os_str().is_empty() {
                return Err(ConfigError::new("tls.cert", "must name a file"));
            }
            if self.tls.key.as_os_str().is_empty() {
                return Err(ConfigError::new("tls.key", "must name a file"));
            }
            if self.tls.cert == self.tls.key {
                return Err(ConfigError::new(
                    "tls.key",
                    "must be a different file from tls.cert",
                ));
            }
            for (i, name) in self.tls.names.iter().enumerate() {
                if let Some(problem) = certificate_name_problem(name) {
                    return Err(ConfigError::new("tls.names", format!("[{i}]: {problem}")));
                }
            }
            if !(1..=MAX_SELF_SIGNED_DAYS).contains(&self.tls.self_signed_days) {
                return Err(ConfigError::new(
                    "tls.self_signed_days",
                    format!("must be 1..={MAX_SELF_SIGNED_DAYS}"),
                ));
            }
        }
        if self.body_limit_bytes == 0 {
            return Err(ConfigError::new("body_limit_bytes", "must be at least 1"));
        }
        if self.inventory_body_limit_bytes == 0 {
            return Err(ConfigError::new(
                "inventory_body_limit_bytes",
                "must be at least 1",
            ));
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ConfigError::new(
                "max_header_bytes",
                format!("must be at least {MIN_HEADER_BYTES}"),
            ));
        }
        if self.max_headers == 0 {
            return Err(ConfigError::new("max_headers", "must be at least 1"));
        }
        let rps = self.rate_limit.writes_per_second;
        if !rps.is_finite() || rps <= 0.0 {
            return Err(ConfigError::new(
                "rate_limit.writes_per_second",
                format!("must be a positive number, got {rps}"),
            ));
        }
        if self.rate_limit.write_burst == 0 {
            return Err(ConfigError::new(
                "rate_limit.write_burst",
                "must be at least 1",
            ));
        }
        let c = &self.connections;
        for (field, value, max) in [
            (
                "connections.max_connections",
                c.max_connections as u64,
                1_000_000,
            ),
            (
                "connections.max_connections_per_client",
                c.max_connections_per_client as u64,
                1_000_000,
            ),
            (
                "connections.header_read_timeout_seconds",
                c.header_read_timeout_seconds,
                3600,
            ),
            (
                "connections.body_read_timeout_seconds",
                c.body_read_timeout_seconds,
                3600,
            ),
            (
                "connections.idle_timeout_seconds",
                c.idle_timeout_seconds,
                86_400,
            ),
            (
                "connections.http2_ping_interval_seconds",
                c.http2_ping_interval_seconds,
                86_400,
            ),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::new(
                    field,
                    format!("must be between 1 and {max}, got {value}"),
                ));
            }
        }
        if c.max_connections_per_client > c.max_connections {
            return Err(ConfigError::new(
                "connections.max_connections_per_client",
                format!(
                    "must not exceed connections.max_connections ({})",
                    c.max_connections
                ),
            ));
        }
        Ok(())
    }

    /// Makes relative TLS paths relative to `base` (the directory of the configuration file).
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.tls.cert.is_relative() {
            self.tls.cert = base.join(&self.tls.cert);
        }
        if self.tls.key.is_relative() {
            self.tls.key = base.join(&self.tls.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_listen_on_loopback_with_tls() {
        let cfg = ApiConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
        assert!(!cfg.plain_http);
    }

    #[test]
    fn plain_http_off_loopback_is_refused_naming_the_field() {
        let err =
            ApiConfig::from_toml_str("listen = \"0.0.0.0:8080\"\nplain_http = true\n").unwrap_err();
        assert!(err.contains("api.plain_http"), "{err}");
        assert!(err.contains("loopback"), "{err}");
        ApiConfig::from_toml_str("listen = \"127.0.0.1:8080\"\nplain_http = true\n").unwrap();
        ApiConfig::from_toml_str("listen = \"[::1]:8080\"\nplain_http = true\n").unwrap();
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = ApiConfig::from_toml_str("[rate_limit]\nwrite_burst = 0\n").unwrap_err();
        assert!(err.contains("api.rate_limit.write_burst"), "{err}");
        let err = ApiConfig::from_toml_str("max_header_bytes = 100\n").unwrap_err();
        assert!(err.contains("api.max_header_bytes"), "{err}");
        let err = ApiConfig::from_toml_str("listen = \"nowhere\"\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
        let err = ApiConfig::from_toml_str("bogus = 1\n").unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn relative_tls_paths_follow_the_config_directory() {
        let mut cfg = ApiConfig::default();
        cfg.resolve_paths(Path::new("/etc/portolan"));
        assert_eq!(cfg.tls.cert, Path::new("/etc/portolan/tls/api-cert.pem"));
        assert_eq!(cfg.tls.key, Path::new("/etc/portolan/tls/api-key.pem"));
    }
}
