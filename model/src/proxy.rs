//! The explicit proxy a flow went through: an HTTP `CONNECT host:port` tunnel or a SOCKS4/4a/5
//! `CONNECT` request, as the classifier read it from the flow's first bytes.
//!
//! Owns: [`ProxyKind`] and [`ProxyTarget`] (what the flow record, the hand-off event, the
//! control plane's observation and the alert carry about the tunnel).
//! Must not: parse wire bytes (that is `portolan_classify::tunnel`) or judge anything.

use serde::{Deserialize, Serialize};

/// Which proxy protocol set the tunnel up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    /// HTTP/1.x `CONNECT host:port` (RFC 9110 9.3.6).
    HttpConnect,
    /// SOCKS4 or SOCKS4a `CONNECT`.
    Socks4,
    /// SOCKS5 `CONNECT` (RFC 1928).
    Socks5,
}

impl ProxyKind {
    /// `http_connect`, `socks4` or `socks5`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::HttpConnect => "http_connect",
            ProxyKind::Socks4 => "socks4",
            ProxyKind::Socks5 => "socks5",
        }
    }
}

/// The destination a client asked a proxy for, and whether the proxy opened the tunnel.
///
/// The flow's own addresses are the proxy hop (client → proxy); when `established` is true the
/// flow's `app_proto` is the protocol spoken *inside* the tunnel and it is judged against
/// [`ProxyTarget::port`], the real destination's port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyTarget {
    /// The proxy protocol.
    pub kind: ProxyKind,
    /// The requested host: a name or an IPv4/IPv6 address literal (at most 255 bytes).
    pub host: String,
    /// The requested port (never 0).
    pub port: u16,
    /// The proxy's reply granted the request and the bytes after it were classified as the
    /// tunnel's content.
    pub established: bool,
}
